"""Closed-form expected errors against Monte Carlo, and the optima they imply.

Monte Carlo: B prompts (X, w, ε) in float64; for each, the query and its noise are integrated out
exactly, e_b = (ŵ − w)ᵀ Λ (ŵ − w) + σ², so the e_b are i.i.d. with mean the closed form. The check is
|mean(e) − formula| ≤ 4·SE, SE = std(e)/√B: a false failure has probability ≈ 6e-5 per check (CLT),
and the seeds are fixed, so the suite is repeatable.
"""

import math

import numpy as np
import pytest
import sympy
import torch
from scipy.optimize import minimize

from theory.icl import expected_error as E
from theory.icl import predictors as P

F64 = torch.float64
B = 20_000


def _cov(d, seed, lo=0.3, hi=2.5):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))
    return Q @ torch.diag(torch.linspace(lo, hi, d, dtype=F64)) @ Q.T


def _sample(cov, N, noise, seed, batch=B):
    g = torch.Generator().manual_seed(seed)
    d = cov.shape[0]
    chol = torch.linalg.cholesky(cov)
    X = torch.randn(batch, N, d, generator=g, dtype=F64) @ chol.T
    w = torch.randn(batch, d, generator=g, dtype=F64)
    y = (X @ w[..., None])[..., 0] + noise * torch.randn(batch, N, generator=g, dtype=F64)
    return X, y, w


def _mc(cov, N, noise, estimator, seed=0, batch=B):
    X, y, w = _sample(cov, N, noise, seed, batch)
    w_hat = estimator(X, y, torch.zeros(batch, cov.shape[0], dtype=F64)).w_hat
    diff = w_hat - w
    e = torch.einsum("bi,ij,bj->b", diff, cov, diff) + noise**2
    return float(e.mean()), float(e.std() / math.sqrt(batch))


CASES = [(3, 6, 0.0, 0), (3, 6, 0.5, 1), (5, 4, 0.3, 2), (2, 20, 1.0, 3)]  # (d, N, σ, cov seed)


@pytest.mark.parametrize("d,N,noise,seed", CASES)
def test_averaging_error_matches_monte_carlo(d, N, noise, seed):
    cov = _cov(d, seed)
    mean, se = _mc(cov, N, noise, P.averaging, seed)
    assert abs(mean - E.averaging_error(cov, N, noise)) <= 4 * se


@pytest.mark.parametrize("d,N,noise,seed", CASES)
def test_one_step_gd_error_matches_monte_carlo_at_two_steps_sizes(d, N, noise, seed):
    cov = _cov(d, seed)
    for eta in (0.3, E.optimal_one_step_eta(cov, N, noise)):
        mean, se = _mc(cov, N, noise, lambda X, y, q: P.gd(X, y, q, eta, 1), seed + 10)
        assert abs(mean - E.one_step_gd_error(eta, cov, N, noise)) <= 4 * se


@pytest.mark.parametrize("d,N,noise,seed", CASES)
def test_zfb_and_general_linear_moment_errors_match_monte_carlo(d, N, noise, seed):
    cov = _cov(d, seed)
    mean, se = _mc(cov, N, noise, lambda X, y, q: P.zfb_optimum(X, y, q, cov), seed + 20)
    assert abs(mean - E.zfb_error(cov, N, noise)) <= 4 * se
    M = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=F64) * 0.5
    mean, se = _mc(cov, N, noise, lambda X, y, q: P.preconditioned_gd(X, y, q, 1.0, 1, M), seed + 30)
    assert abs(mean - E.linear_moment_error(M, cov, N, noise)) <= 4 * se


@pytest.mark.parametrize("d,N,noise,anisotropic", [(3, 12, 0.5, True), (4, 15, 1.0, False)])
def test_least_squares_error_above_d_matches_monte_carlo(d, N, noise, anisotropic):
    """N − d − 3 > 0 here, so the inverse-Wishart second moment (hence the SE) is finite."""
    cov = _cov(d, 7) if anisotropic else torch.eye(d, dtype=F64)
    mean, se = _mc(cov, N, noise, P.least_squares, 5)
    assert abs(mean - E.least_squares_error(d, N, noise, cov if anisotropic else None)) <= 4 * se


@pytest.mark.parametrize("d,N,noise", [(8, 3, 0.5), (6, 2, 0.0), (5, 5, 0.0)])
def test_min_norm_least_squares_error_below_d_matches_monte_carlo(d, N, noise):
    """d − N − 3 > 0 in the noisy case: finite variance of tr((XXᵀ)⁻¹). Noiseless N = d: error exactly 0
    up to the rounding of the solve (κ·u·‖w‖², far below 4·SE unless SE = 0, hence the 1e-8 floor)."""
    mean, se = _mc(torch.eye(d, dtype=F64), N, noise, P.least_squares, 6)
    assert abs(mean - E.least_squares_error(d, N, noise)) <= 4 * se + 1e-8


def test_least_squares_error_is_infinite_at_the_interpolation_threshold_with_noise():
    assert [E.least_squares_error(6, N, 0.5) for N in (5, 6, 7)] == [math.inf] * 3
    assert E.least_squares_error(6, 8, 0.5) == pytest.approx(0.25 * 6 / 1 + 0.25, rel=1e-15)


def test_sympy_optimal_step_reduces_to_the_isotropic_formula():
    d = sympy.Symbol("d", positive=True)
    iso = E.ETA_STAR.subs({E._t1: d, E._t2: d, E._t3: d})
    assert sympy.simplify(iso - E._N / (E._N + d + 1 + E._s2)) == 0
    assert E.optimal_one_step_eta(torch.eye(4, dtype=F64), 10, 0.5) == pytest.approx(10 / (10 + 4 + 1 + 0.25),
                                                                                   rel=1e-14)


@pytest.mark.parametrize("d,N,noise,seed", CASES)
def test_optimal_step_minimizes_the_exact_one_step_error(d, N, noise, seed):
    """The risk is a quadratic in η with positive leading coefficient: its vertex beats both neighbours."""
    cov = _cov(d, seed)
    eta = E.optimal_one_step_eta(cov, N, noise)
    best = E.one_step_gd_error(eta, cov, N, noise)
    assert best < E.one_step_gd_error(eta * 0.99, cov, N, noise)
    assert best < E.one_step_gd_error(eta * 1.01, cov, N, noise)


def _quadratic_derivatives(f, n):
    """Gradient and Hessian of a quadratic f on Rⁿ from differences with unit steps: central differences
    of a quadratic have no truncation error at any step, so the only error is the rounding of the f values
    (≈ u·|f| each, u = 1.1e-16), which a unit step does not amplify."""
    unit = np.eye(n)

    def grad(x):
        return np.array([(f(x + unit[i]) - f(x - unit[i])) / 2 for i in range(n)])

    hess = np.array([[(f(unit[i] + unit[j]) - f(unit[i] - unit[j]) - f(unit[j] - unit[i]) + f(-unit[i] - unit[j])) / 4
                      for j in range(n)] for i in range(n)])
    return grad, hess


@pytest.mark.parametrize("d,N,noise,seed", [(2, 5, 0.0, 0), (3, 4, 0.0, 1), (3, 6, 0.7, 2)])
def test_zfb_gamma_inverse_minimizes_the_population_loss_numerically(d, N, noise, seed):
    """Numerical minimization over all d×d matrices M of the exact population loss (MC-checked above)
    lands on Γ⁻¹ (σ = 0, Zhang–Frei–Bartlett) or (Γ + σ²/N I)⁻¹.

    Where BFGS stops depends on the last bits of the loss (it may stop on "precision loss"), so the test
    bounds what any stopping point guarantees instead of a fixed distance. The loss is a quadratic in
    vec(M) with Hessian H: ∇f(M) = H·vec(M − M*), hence ‖M − M*‖_F ≤ ‖∇f(M)‖ / λ_min(H) at ANY point M
    (strong convexity, λ_min > 0 checked). The gradient and H are exact up to rounding (unit-step
    differences of a quadratic), so the computed gradient is off by at most
    ε_g = √n · 64u · max|f| (n = d² entries, each from two f values of relative error ≤ 32u: the
    formula is a handful of d×d products and traces), i.e. ≈ 1e-12 here (|f| ≤ 60 at M ± unit steps)."""
    cov = _cov(d, seed)
    n = d * d

    def loss(m):
        return E.linear_moment_error(torch.tensor(m).reshape(d, d), cov, N, noise)

    grad, hess = _quadratic_derivatives(loss, n)
    lam_min = float(np.linalg.eigvalsh(hess).min())
    assert lam_min > 0  # strongly convex: the premise of the bound (measured 0.17–0.26)
    res = minimize(lambda m: (loss(m), grad(m)), np.zeros(n), jac=True, method="BFGS", options={"gtol": 1e-10})
    M_star = E.optimal_linear_moment_matrix(cov, N, noise).numpy().ravel()
    f_max = max(abs(loss(M_star + s * e)) for s in (1, -1) for e in np.eye(n))
    eps_g = math.sqrt(n) * 64 * np.finfo(float).eps * f_max
    g_norm = float(np.linalg.norm(grad(res.x)))
    # The stopping point is a near-minimizer: BFGS stops at the latest once f no longer decreases in
    # float64, f − f* ≲ u·|f| ≈ 2e-16·2, so ‖M − M*‖ ≤ √(2(f − f*)/λ_min) ≈ 7e-8 and ‖∇f‖/λ_min ≤
    # κ(H)·7e-8 ≈ 2e-5 (κ ≤ 300). Measured: ≤ 2e-9 (so M* is located to ~1e-9).
    assert g_norm / lam_min <= 1e-4
    assert np.linalg.norm(res.x - M_star) <= (g_norm + eps_g) / lam_min
    # and the closed form is itself stationary, to the rounding of the gradient
    assert np.linalg.norm(grad(M_star)) <= eps_g
    if noise == 0:
        assert torch.allclose(torch.tensor(M_star).reshape(d, d), torch.linalg.inv(P.zfb_gamma(cov, N)),
                              rtol=1e-13, atol=1e-13)


def test_isotropic_averaging_error_closed_form():
    d, N, s = 4, 9, 0.6
    assert E.averaging_error(torch.eye(d, dtype=F64), N, s) == pytest.approx(d * (d + 1 + s**2) / N + s**2,
                                                                              rel=1e-14)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="N=0"):
        E.averaging_error(torch.eye(2), 0)
    with pytest.raises(ValueError, match="positive definite"):
        E.zfb_error(torch.tensor([[1.0, 2.0], [2.0, 1.0]]), 5)
    with pytest.raises(ValueError, match="noise_std"):
        E.least_squares_error(3, 10, -0.1)
    with pytest.raises(ValueError, match="cov"):
        E.least_squares_error(5, 2, 0.1, torch.eye(5))
