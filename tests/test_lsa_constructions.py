"""Exact LSA constructions reproduce their closed-form predictors on both attention paths.

Relative error is ‖ŷ_model − ŷ_closed‖ / ‖ŷ_closed‖ over the batch of prompts; the closed form is
computed in float64 from the very inputs the model saw (rounded to the model's dtype first), so only
the model's arithmetic is measured.

Tolerances (the issue's bounds), derived: each layer's output at the query is a sum of n ≲ N·d + d
products, and K ≤ 3 layers compose with a contraction (η in GD's stable range for K ≥ 2), so the
rounding error is at most ~ K·n·u times the cancellation ratio Σ|terms| / |ŷ| (Higham's γ_n bound).
With N ≤ 16, d ≤ 6: K·n ≲ 3·(96 + 6) ≈ 300.
- float64, u = 1.1e-16: 300·u ≈ 3e-14, so 1e-10 leaves a factor ~3e3 for cancellation.
- float32, u = 6.0e-8: the worst-case bound 300·u ≈ 1.8e-5 exceeds 1e-5, but rounding errors add
  like a random walk, ~ √(K·n)·u ≈ 1e-6, so 1e-5 leaves a factor ~10 for cancellation.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from theory.icl import predictors as P
from toy_models.constructions.lsa import gd_lsa, lsa_inputs, preconditioned_gd_lsa, zfb_lsa

PATHS = ("reference", "kernel")
TOL = {"float64": 1e-10, "float32": 1e-5}  # derivation in the module docstring
B = 8


def _prompts(d, N, seed, cov_eigs, dtype):
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    cov = Q @ torch.diag(torch.tensor(cov_eigs, dtype=torch.float64)) @ Q.T
    chol = torch.linalg.cholesky(cov)
    X = torch.randn(B, N, d, generator=gen, dtype=torch.float64) @ chol.T
    x_q = torch.randn(B, d, generator=gen, dtype=torch.float64) @ chol.T
    w = torch.randn(B, d, generator=gen, dtype=torch.float64)
    y = (X @ w[..., None])[..., 0] + 0.1 * torch.randn(B, N, generator=gen, dtype=torch.float64)
    dt = getattr(torch, dtype)
    X, y, x_q = X.to(dt), y.to(dt), x_q.to(dt)
    return X, y, x_q, cov


def _rel(model, X, y, x_q, reference, path):
    inputs, mask = lsa_inputs(X, y, x_q)
    with torch.no_grad():
        out = model(inputs, attn_mask=mask, attn_path=path)[:, -1, 0].double()
    return float((out - reference).norm() / reference.norm())


def _stable_eta(X, frac):
    """η = frac · N / max λ(XᵀX): every prompt's GD is a contraction, so K layers do not amplify rounding."""
    X = X.double()
    return frac * X.shape[1] / float(torch.linalg.eigvalsh(X.transpose(1, 2) @ X)[:, -1].max())


prompt_args = dict(
    d=st.integers(1, 6), N=st.integers(1, 16), seed=st.integers(0, 2**31 - 1),
    eig=st.lists(st.floats(0.2, 3.0), min_size=6, max_size=6), dtype=st.sampled_from(["float64", "float32"]),
)


@given(eta=st.floats(0.01, 10.0), **prompt_args)
def test_one_layer_is_one_gd_step_for_any_eta(d, N, seed, eig, dtype, eta):
    X, y, x_q, _ = _prompts(d, N, seed, eig[:d], dtype)
    ref = P.gd(X.double(), y.double(), x_q.double(), eta, 1).y_hat
    model = gd_lsa(d, eta, 1, n_ctx=N + 1, dtype=dtype)
    for path in PATHS:
        assert _rel(model, X, y, x_q, ref, path) <= TOL[dtype]


@given(steps=st.integers(2, 3), frac=st.floats(0.05, 1.0), **prompt_args)
def test_k_layers_are_k_gd_steps(d, N, seed, eig, dtype, steps, frac):
    X, y, x_q, _ = _prompts(d, N, seed, eig[:d], dtype)
    eta = _stable_eta(X, frac)
    ref = P.gd(X.double(), y.double(), x_q.double(), eta, steps).y_hat
    model = gd_lsa(d, eta, steps, n_ctx=N + 1, dtype=dtype)
    for path in PATHS:
        assert _rel(model, X, y, x_q, ref, path) <= TOL[dtype]


@given(steps=st.integers(1, 3), frac=st.floats(0.05, 1.0), **prompt_args)
def test_preconditioned_layers_with_a_nonsymmetric_preconditioner(d, N, seed, eig, dtype, steps, frac):
    X, y, x_q, _ = _prompts(d, N, seed, eig[:d], dtype)
    gen = torch.Generator().manual_seed(seed + 1)
    Pm = torch.eye(d, dtype=torch.float64) + 0.3 * torch.randn(d, d, generator=gen, dtype=torch.float64)
    # Stable range for the preconditioned iteration: scale η by the spectral radius of P S.
    S = X.double().transpose(1, 2) @ X.double() / N
    rho = float(torch.linalg.eigvals(Pm @ S).abs().max())
    eta = frac / rho
    ref = P.preconditioned_gd(X.double(), y.double(), x_q.double(), eta, steps, Pm).y_hat
    model = preconditioned_gd_lsa(d, eta, steps, Pm, n_ctx=N + 1, dtype=dtype)
    for path in PATHS:
        assert _rel(model, X, y, x_q, ref, path) <= TOL[dtype]


@given(**prompt_args)
def test_zfb_layer_is_the_zfb_optimum(d, N, seed, eig, dtype):
    X, y, x_q, cov = _prompts(d, N, seed, eig[:d], dtype)
    ref = P.zfb_optimum(X.double(), y.double(), x_q.double(), cov).y_hat
    model = zfb_lsa(cov, N, n_ctx=N + 1, dtype=dtype)
    for path in PATHS:
        assert _rel(model, X, y, x_q, ref, path) <= TOL[dtype]
    # W^{KQ} = W_Q W_Kᵀ holds Γ⁻¹ in its x-block (float64 weights: inversion error only, ~ κ(Γ)·u ≤ 1e-14).
    attn = model.blocks[0].attn
    wkq = (attn.W_Q[0] @ attn.W_K[0].T)[:d, :d].double()
    gamma = P.zfb_gamma(cov, N)
    if dtype == "float64":
        assert torch.allclose(wkq @ gamma, torch.eye(d, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("steps", [1, 3])
def test_input_gradient_at_the_query_is_the_implicit_weight(steps):
    """ŷ of the construction is linear in x_q, so ∂ŷ/∂x_q (von Oswald's "model gradient") equals ŵ_K.

    float64 autograd through K layers of sums of ~N·d products: error ~ K·N·d·u ≈ 3e-15; bound 1e-12.
    """
    d, N = 4, 9
    X, y, x_q, _ = _prompts(d, N, 3, [1.0, 0.5, 2.0, 1.5], "float64")
    eta = _stable_eta(X, 0.7)
    model = gd_lsa(d, eta, steps, n_ctx=N + 1)
    inputs, mask = lsa_inputs(X, y, x_q)
    inputs.requires_grad_(True)
    model(inputs, attn_mask=mask)[:, -1, 0].sum().backward()
    w_hat = P.gd(X, y, x_q, eta, steps).w_hat
    assert torch.allclose(inputs.grad[:, -1, :d], w_hat, rtol=0, atol=1e-12 * float(w_hat.abs().max()))


def test_bad_construction_arguments_are_refused():
    with pytest.raises(ValueError, match="steps"):
        gd_lsa(3, 0.1, 0)
    with pytest.raises(ValueError, match="P"):
        preconditioned_gd_lsa(3, 0.1, 1, torch.eye(2))
    with pytest.raises(ValueError, match="positive definite"):
        zfb_lsa(torch.tensor([1.0, -1.0]), 5)
