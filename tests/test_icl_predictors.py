"""Closed-form ICL predictors against independent computations (numpy, explicit loops, direct sums).

Tolerances: both sides are float64. Solves of d ≤ 6 systems with condition number κ differ by
~ κ·u (u = 1.1e-16); the prompts below keep κ(XᵀX) ≲ 1e4 (N ≥ d + 3 Gaussian, or ridge λ ≥ 0.1),
so 1e-9 relative leaves a margin of ~1e3. Iterations and sums that involve no solve agree to ~n·u:
1e-12.
"""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from theory.icl import predictors as P

F64 = torch.float64


def _prompts(B, N, d, seed, noise=0.1, M=None):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(B, N, d, generator=g, dtype=F64)
    w = torch.randn(B, d, generator=g, dtype=F64)
    y = (X @ w[..., None])[..., 0] + noise * torch.randn(B, N, generator=g, dtype=F64)
    shape = (B, d) if M is None else (B, M, d)
    return X, y, torch.randn(*shape, generator=g, dtype=F64), w


sizes = dict(N=st.integers(1, 12), d=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))


@given(**sizes)
def test_least_squares_matches_numpy_lstsq_including_min_norm(N, d, seed):
    X, y, x_q, _ = _prompts(3, N, d, seed)
    pred = P.least_squares(X, y, x_q)
    u = np.finfo(np.float64).eps
    for b in range(3):
        Xb, yb = X[b].numpy(), y[b].numpy()
        w_np = np.linalg.lstsq(Xb, yb, rcond=None)[0]  # min-norm when N < d
        # Least-squares perturbation bound (Golub & Van Loan 5.3): two backward-stable solvers differ by
        # ≲ c·u·(κ + κ²‖r‖/(‖X‖‖w‖))·‖w‖, κ = κ₂(X); c = 100 covers the dimension-dependent constants.
        kappa = np.linalg.cond(Xb)
        r = np.linalg.norm(yb - Xb @ w_np)
        wn = max(np.linalg.norm(w_np), 1e-300)
        tol = 100 * u * (kappa + kappa**2 * r / (np.linalg.norm(Xb, 2) * wn)) * wn
        assert np.linalg.norm(pred.w_hat[b].numpy() - w_np) <= tol
    assert torch.allclose(pred.y_hat, (x_q * pred.w_hat).sum(-1), rtol=0, atol=1e-12)


@given(lam=st.floats(0.1, 10.0), **sizes)
def test_ridge_solves_the_normal_equations(N, d, seed, lam):
    X, y, x_q, _ = _prompts(3, N, d, seed)
    w = P.ridge(X, y, x_q, lam).w_hat
    for b in range(3):
        Xb, yb = X[b].numpy(), y[b].numpy()
        residual = (Xb.T @ Xb + lam * np.eye(d)) @ w[b].numpy() - Xb.T @ yb
        assert np.abs(residual).max() <= 1e-9 * max(1.0, np.abs(Xb.T @ yb).max())  # κ ≤ (λmax+λ)/λ ≲ 1e3


@given(noise=st.floats(0.05, 2.0), prior=st.floats(0.3, 3.0), **sizes)
def test_bayes_mean_equals_gaussian_conditioning_in_the_dual_form(N, d, seed, noise, prior):
    """Independent formula: E[w | y] = τ² Xᵀ (τ² X Xᵀ + σ² I_N)⁻¹ y (conditioning the joint Gaussian)."""
    X, y, x_q, _ = _prompts(2, N, d, seed, noise)
    w = P.bayes_gaussian(X, y, x_q, noise, prior).w_hat
    for b in range(2):
        Xb = X[b].numpy()
        K = prior**2 * Xb @ Xb.T + noise**2 * np.eye(N)
        w_dual = prior**2 * Xb.T @ np.linalg.solve(K, y[b].numpy())
        assert np.allclose(w[b].numpy(), w_dual, rtol=1e-8, atol=1e-10)  # κ(K) ≤ 1 + τ²‖X‖²/σ² ≲ 1e5


def test_bayes_noiseless_limit_is_min_norm_least_squares():
    X, y, x_q, _ = _prompts(4, 3, 6, 0, noise=0.0)
    assert torch.equal(P.bayes_gaussian(X, y, x_q, 0.0).w_hat, P.least_squares(X, y, x_q).w_hat)


@given(eta=st.floats(0.01, 1.0), steps=st.integers(0, 4), **sizes)
def test_gd_matches_an_explicit_loop(N, d, seed, eta, steps):
    X, y, x_q, _ = _prompts(2, N, d, seed)
    w_hat = P.gd(X, y, x_q, eta, steps).w_hat
    for b in range(2):
        Xb, yb, w = X[b].numpy(), y[b].numpy(), np.zeros(d)
        for _ in range(steps):
            w = w - eta / N * Xb.T @ (Xb @ w - yb)
        assert np.allclose(w_hat[b].numpy(), w, rtol=1e-12, atol=1e-12)  # same n·u-sized sums


@given(eta=st.floats(0.01, 1.0), steps=st.integers(1, 3), **sizes)
def test_preconditioned_gd_matches_an_explicit_loop(N, d, seed, eta, steps):
    X, y, x_q, _ = _prompts(2, N, d, seed)
    Pm = torch.randn(d, d, generator=torch.Generator().manual_seed(seed + 1), dtype=F64)
    w_hat = P.preconditioned_gd(X, y, x_q, eta, steps, Pm).w_hat
    for b in range(2):
        Xb, yb, w = X[b].numpy(), y[b].numpy(), np.zeros(d)
        for _ in range(steps):
            w = w - eta / N * Pm.numpy() @ Xb.T @ (Xb @ w - yb)
        scale = max(1.0, np.abs(w).max())
        assert np.allclose(w_hat[b].numpy(), w, rtol=0, atol=1e-12 * scale)


def test_one_gd_step_with_unit_step_is_averaging():
    X, y, x_q, _ = _prompts(5, 7, 3, 1)
    a, g = P.averaging(X, y, x_q), P.gd(X, y, x_q, 1.0, 1)
    assert torch.allclose(a.w_hat, g.w_hat, rtol=1e-14, atol=0)
    assert torch.allclose(a.w_hat, torch.einsum("bnd,bn->bd", X, y) / 7, rtol=1e-14, atol=0)


@given(**sizes)
def test_zfb_matches_its_formula(N, d, seed):
    X, y, x_q, _ = _prompts(2, N, d, seed)
    eig = torch.linspace(0.5, 2.0, d, dtype=F64)
    gamma = (1 + 1 / N) * torch.diag(eig) + eig.sum() / N * torch.eye(d, dtype=F64)
    w = P.zfb_optimum(X, y, x_q, eig).w_hat
    expect = np.linalg.inv(gamma.numpy()) @ (np.einsum("bnd,bn->bd", X.numpy(), y.numpy()) / N).T
    assert np.allclose(w.numpy(), expect.T, rtol=1e-12, atol=1e-14)  # κ(Γ) ≤ 4


@given(M=st.integers(1, 6), noise=st.floats(0.3, 2.0), **sizes)
def test_dmmse_equals_a_direct_posterior_sum(N, d, seed, M, noise):
    X, y, x_q, _ = _prompts(2, N, d, seed, noise)
    pool = torch.randn(M, d, generator=torch.Generator().manual_seed(seed + 2), dtype=F64)
    w = P.dmmse(X, y, x_q, pool, noise).w_hat
    for b in range(2):
        Xb, yb, pl = X[b].numpy(), y[b].numpy(), pool.numpy()
        # Direct sum in log space relative to the first task, so exp never overflows for these sizes.
        logl = np.array([-((yb - Xb @ pl[m]) ** 2).sum() / (2 * noise**2) for m in range(M)])
        p = np.exp(logl - logl.max())
        assert np.allclose(w[b].numpy(), (p[:, None] * pl).sum(0) / p.sum(), rtol=1e-10, atol=1e-12)


def test_dmmse_is_stable_when_the_likelihood_underflows():
    """σ tiny: every exp(−r²/2σ²) underflows to 0 in a naive sum; the logsumexp form picks the best task."""
    X, _, x_q, _ = _prompts(4, 20, 3, 5)
    pool = torch.randn(5, 3, generator=torch.Generator().manual_seed(9), dtype=F64)
    y = torch.einsum("bnd,d->bn", X, pool[2]) + 0.5
    w = P.dmmse(X, y, x_q, pool, 1e-4).w_hat
    best = ((y[:, None, :] - torch.einsum("bnd,md->bmn", X, pool)) ** 2).sum(-1).argmin(-1)
    assert torch.isfinite(w).all()
    assert torch.equal(w, pool[best])


@given(k=st.integers(1, 5), **sizes)
def test_knn_matches_brute_force(N, d, seed, k):
    k = min(k, N)
    X, y, x_q, _ = _prompts(2, N, d, seed, M=3)
    pred = P.knn(X, y, x_q, k)
    assert pred.w_hat is None
    for b in range(2):
        for m in range(3):
            dist = ((X[b] - x_q[b, m]) ** 2).sum(-1).numpy()
            idx = np.argsort(dist, kind="stable")[:k]
            assert abs(float(pred.y_hat[b, m]) - y[b].numpy()[idx].mean()) <= 1e-12


def test_multiple_queries_share_the_implicit_weight():
    X, y, x_q, _ = _prompts(3, 8, 4, 2, M=5)
    for pred in (P.least_squares(X, y, x_q), P.ridge(X, y, x_q, 0.5), P.gd(X, y, x_q, 0.3, 2)):
        assert pred.y_hat.shape == (3, 5)
        assert torch.allclose(pred.y_hat, torch.einsum("bmd,bd->bm", x_q, pred.w_hat), rtol=0, atol=1e-12)


def test_tune_gd_step_finds_the_exact_one_step_optimum():
    """One step: ŷ(η) = η a with a = x_qᵀXᵀy/N, so the empirical MSE is minimized at η* = Σ a y_q / Σ a².

    Brent's bounded search on a quadratic converges to xatol = 1e-10·eta_max; bound 1e-6 relative.
    """
    X, y, x_q, w = _prompts(256, 10, 5, 4)
    y_q = (x_q * w).sum(-1)
    a = P.averaging(X, y, x_q).y_hat
    eta_exact = float((a * y_q).sum() / (a * a).sum())
    eta = P.tune_gd_step(X, y, x_q, y_q, steps=1)
    assert abs(eta - eta_exact) <= 1e-6 * eta_exact


def test_tune_gd_step_multi_step_beats_its_grid_neighbours():
    X, y, x_q, w = _prompts(128, 10, 5, 6)
    y_q = (x_q * w).sum(-1)
    eta = P.tune_gd_step(X, y, x_q, y_q, steps=3)

    def loss(e):
        return float(((P.gd(X, y, x_q, e, 3).y_hat - y_q) ** 2).mean())

    assert loss(eta) <= min(loss(eta * 0.97), loss(eta * 1.03))


def test_bad_input_is_refused_with_the_field_named():
    X, y, x_q, _ = _prompts(2, 4, 3, 0)
    with pytest.raises(ValueError, match="N=0"):
        P.least_squares(X[:, :0], y[:, :0], x_q)
    with pytest.raises(ValueError, match="lam=-1"):
        P.ridge(X, y, x_q, -1.0)
    with pytest.raises(ValueError, match="pool"):
        P.dmmse(X, y, x_q, torch.zeros(0, 3), 0.5)
    with pytest.raises(ValueError, match="noise_std"):
        P.dmmse(X, y, x_q, torch.zeros(2, 3), 0.0)
    with pytest.raises(ValueError, match="positive definite"):
        P.zfb_optimum(X, y, x_q, torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="symmetric"):
        P.zfb_optimum(X, y, x_q, torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="k=5"):
        P.knn(X, y, x_q, 5)
    with pytest.raises(ValueError, match="y must have shape"):
        P.gd(X, y[:, :2], x_q, 0.1)
    with pytest.raises(ValueError, match="steps"):
        P.gd(X, y, x_q, 0.1, -1)


def test_dmmse_in_chunks_equals_one_pass(monkeypatch):
    """Chunking the prompts changes nothing per prompt but, possibly, the order a batched kernel sums the d
    terms of w_mᵀx_i in: agreement to ~d·u relative, bound 1e-13."""
    X, y, x_q, _ = _prompts(7, 5, 3, 11, 0.5)
    pool = torch.randn(6, 3, generator=torch.Generator().manual_seed(3), dtype=F64)
    whole = P.dmmse(X, y, x_q, pool, 0.5)
    monkeypatch.setattr(P, "DMMSE_CHUNK_ELEMENTS", 2 * 6 * 5)  # chunks of 2 prompts
    chunked = P.dmmse(X, y, x_q, pool, 0.5)
    assert torch.allclose(whole.w_hat, chunked.w_hat, rtol=1e-13, atol=0)
    assert torch.allclose(whole.y_hat, chunked.y_hat, rtol=1e-13, atol=1e-15)
