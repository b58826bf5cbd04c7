"""Expected prediction errors of in-context regression predictors, in closed form where one exists.

Setting (Garg et al. 2022; Zhang, Frei, Bartlett 2024): x_i, x_q ~ N(0, Λ) i.i.d., w ~ N(0, I_d),
y_i = wᵀx_i + ε_i and y_q = wᵀx_q + ε_q with ε ~ N(0, σ²). Every function returns the expected
squared error of the prediction against the noisy query label,

    E[(ŷ − y_q)²] = E[(ŵ − w)ᵀ Λ (ŵ − w)] + σ²,

over prompt, task, noise and query. Subtract σ² for the excess error; divide by d for Garg's
"normalized squared error". Everything here is EXACT at finite N and d for Gaussian inputs; nothing
is asymptotic. Uniform inputs (von Oswald et al. 2023) have other fourth moments: these formulas do
not apply to them.

Derivations (S = XᵀX / N, W = XᵀX ~ Wishart(Λ, N)):

- Any estimator ŵ = M (1/N) Xᵀy with a fixed matrix M (averaging: M = I; one GD step from 0:
  M = ηI; preconditioned step: M = ηP; Zhang–Frei–Bartlett: M = Γ⁻¹). With ŵ − w = (MS − I) w +
  M Xᵀε / N and the Gaussian moment E[x xᵀ A x xᵀ] = 2 ΛAΛ + tr(AΛ) Λ (A symmetric), the Wishart
  moment is E[W A W] = N(N+1) ΛAΛ + N tr(AΛ) Λ, so with A = MᵀΛM:
      E[(ŷ − y_q)²] = ((N+1)/N) tr(ΛAΛ) + tr(AΛ) tr(Λ)/N − 2 tr(ΛMΛ) + tr(Λ) + σ² tr(AΛ)/N + σ².
  Setting the gradient in M to zero gives M* = (Γ + σ²/N · I)⁻¹ with Γ = (1 + 1/N) Λ + tr(Λ)/N · I:
  the Zhang–Frei–Bartlett optimum when σ = 0.
- Least squares, N ≥ d + 2: ŵ − w = (XᵀX)⁻¹Xᵀε and E[W⁻¹] = Λ⁻¹/(N − d − 1) (inverse Wishart
  mean), so the excess is σ² d/(N − d − 1), for any Λ. Noiseless and N ≥ d: zero.
- Minimum-norm least squares, N ≤ d − 2, Λ = I: ŵ − w = −(I − Π) w + X⁺ε with Π the projector on the
  row space of X (rank N), and X⁺ᵀX⁺ = (XXᵀ)⁻¹ with XXᵀ ~ Wishart(I_N, d), so the excess is
  (d − N) + σ² N/(d − N − 1). At N ∈ {d − 1, d, d + 1} with σ > 0 the expectation is infinite.

Not given (no exact finite-N closed form known to us): ridge / the Bayes posterior mean (its error
is σ² E tr((XᵀX + σ² I)⁻¹) + σ², an expectation over Wishart eigenvalues; only the Marchenko–Pastur
limit is closed), k ≥ 2 GD steps (needs Wishart moments of order ≥ 4, not derived here), dMMSE and
k-nearest-neighbours.
"""

from __future__ import annotations

import math

import sympy
import torch
from jaxtyping import Float
from torch import Tensor

from ..errors import ConfigError

from .predictors import F64, Covariance, covariance_matrix, zfb_gamma

# ---------------------------------------------------------------------------------------- sympy
# One GD step, M = η I: the risk above in the power traces t_k = tr(Λ^k).
_eta, _N, _t1, _t2, _t3, _s2 = sympy.symbols("eta N t1 t2 t3 sigma2", positive=True)
ONE_STEP_RISK = (_eta ** 2 * ((_N + 1) / _N * _t3 + _t2 * _t1 / _N + _s2 * _t2 / _N)
                 - 2 * _eta * _t2 + _t1 + _s2)
"""E[(ŷ − y_q)²] of one GD step with step η, as a sympy expression in eta, N, t_k = tr(Λ^k), sigma2."""
(ETA_STAR,) = sympy.solve(sympy.diff(ONE_STEP_RISK, _eta), _eta)
"""The risk-minimizing step: t2 N / ((N + 1) t3 + t1 t2 + σ² t2); isotropic Λ = I: N / (N + d + 1 + σ²)."""
_eta_star_fn = sympy.lambdify((_N, _t1, _t2, _t3, _s2), ETA_STAR)


def _check(cov, N: int, noise_std: float, d: int | None = None) -> torch.Tensor:
    if not isinstance(N, int) or isinstance(N, bool) or N < 1:
        raise ConfigError("N", N, "a positive integer (number of in-context examples)")
    if not (isinstance(noise_std, (int, float)) and noise_std >= 0):
        raise ConfigError("noise_std", noise_std, "a non-negative float")
    cov = torch.as_tensor(cov, dtype=F64)
    return covariance_matrix(cov, cov.shape[-1] if d is None else d)


def linear_moment_error(M: Float[Tensor, "d d"], cov: Covariance, N: int, noise_std: float = 0.0) -> float:
    """Exact E[(ŷ − y_q)²] of ŵ = M (1/N) Σ y_i x_i for a fixed [d, d] matrix M (see module docstring)."""
    L = _check(cov, N, noise_std)
    M = torch.as_tensor(M, dtype=F64)
    if tuple(M.shape) != tuple(L.shape):
        raise ConfigError("M", tuple(M.shape), f"a [d, d] matrix matching the covariance, {tuple(L.shape)}")
    s2 = float(noise_std) ** 2
    A = M.T @ L @ M
    trL = torch.trace(L)
    risk = ((N + 1) / N * torch.trace(L @ A @ L) + torch.trace(A @ L) * trL / N - 2 * torch.trace(L @ M @ L)
            + trL + s2 * torch.trace(A @ L) / N + s2)
    return float(risk)


def averaging_error(cov: Covariance, N: int, noise_std: float = 0.0) -> float:
    """Exact error of ŵ = (1/N) Σ y_i x_i; isotropic Λ = I: d(d + 1 + σ²)/N + σ²."""
    L = _check(cov, N, noise_std)
    return linear_moment_error(torch.eye(L.shape[0], dtype=F64), L, N, noise_std)


def one_step_gd_error(eta: float, cov: Covariance, N: int, noise_std: float = 0.0) -> float:
    """Exact error of one GD step from w = 0 with step η (``ONE_STEP_RISK``)."""
    L = _check(cov, N, noise_std)
    return linear_moment_error(eta * torch.eye(L.shape[0], dtype=F64), L, N, noise_std)


def optimal_one_step_eta(cov: Covariance, N: int, noise_std: float = 0.0) -> float:
    """The η minimizing ``one_step_gd_error``, from the sympy solution ``ETA_STAR`` (exact)."""
    L = _check(cov, N, noise_std)
    t1, t2, t3 = (float(torch.trace(torch.linalg.matrix_power(L, k))) for k in (1, 2, 3))
    return float(_eta_star_fn(N, t1, t2, t3, float(noise_std) ** 2))


def optimal_linear_moment_matrix(cov: Covariance, N: int, noise_std: float = 0.0) -> Float[Tensor, "d d"]:
    """M* = (Γ + σ²/N · I)⁻¹ minimizing ``linear_moment_error``; Γ⁻¹ (Zhang–Frei–Bartlett) at σ = 0."""
    L = _check(cov, N, noise_std)
    G = zfb_gamma(L, N) + float(noise_std) ** 2 / N * torch.eye(L.shape[0], dtype=F64)
    return torch.linalg.inv(G)


def zfb_error(cov: Covariance, N: int, noise_std: float = 0.0) -> float:
    """Exact error of the Zhang–Frei–Bartlett predictor ŷ = x_qᵀ Γ⁻¹ (1/N) Σ y_i x_i."""
    L = _check(cov, N, noise_std)
    return linear_moment_error(torch.linalg.inv(zfb_gamma(L, N)), L, N, noise_std)


def least_squares_error(d: int, N: int, noise_std: float = 0.0, cov: Covariance | None = None) -> float:
    """Exact error of (minimum-norm) least squares; see the module docstring for the derivation.

    N ≥ d: σ² d/(N − d − 1) + σ² for any Λ (0 when noiseless; ∞ at N = d, d + 1 with noise).
    N < d: Λ = I only (``cov`` must be None): (d − N) + σ² N/(d − N − 1) + σ² (∞ at N = d − 1 with noise).
    """
    if not isinstance(d, int) or isinstance(d, bool) or d < 1:
        raise ConfigError("d", d, "a positive integer")
    _check(torch.eye(d, dtype=F64) if cov is None else cov, N, noise_std, d)
    s2 = float(noise_std) ** 2
    if N >= d:
        if s2 == 0:
            return 0.0
        return s2 * d / (N - d - 1) + s2 if N >= d + 2 else math.inf
    if cov is not None:
        raise ConfigError("cov", "given", "None (isotropic inputs): the N < d error is derived for Λ = I only")
    if s2 == 0:
        return float(d - N)
    return (d - N) + s2 * N / (d - N - 1) + s2 if N <= d - 2 else math.inf
