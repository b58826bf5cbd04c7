"""Closed-form in-context regression predictors, batched over prompts.

Every predictor takes a batch of prompts X [B, N, d], y [B, N] and queries x_q [B, d] (one query)
or [B, M, d] (M queries sharing a context), computes in float64, and returns a ``Prediction``:
the predictions ŷ ([B] or [B, M]) and the implicit weight vector ŵ [B, d] with ŷ = x_qᵀ ŵ, so a
model can be compared with a predictor in weight space as well as in prediction space.

Sources: least squares, k-nearest-neighbours and averaging are the baselines of "What Can
Transformers Learn In-Context? A Case Study of Simple Function Classes" (Garg et al. 2022); gradient
descent from w = 0 is "Transformers learn in-context by gradient descent" (von Oswald et al. 2023);
ridge and the Bayes posterior mean are in "What learning algorithm is in-context learning?"
(Akyürek et al. 2023); the preconditioned one-step optimum is "Trained Transformers Learn Linear
Models In-Context" (Zhang, Frei, Bartlett 2024); the dMMSE estimator is "Pretraining task diversity
and the emergence of non-Bayesian in-context learning for regression" (Raventós et al. 2023).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from scipy.optimize import minimize_scalar
from torch import Tensor

from ..errors import ConfigError

# Shapes every predictor takes (array-likes are converted to float64 tensors): B prompts of N examples
# in d dimensions, one query [B, d] or M queries [B, M, d] per prompt.
Prompts = Float[Tensor, "B N d"]
Labels = Float[Tensor, "B N"]
Queries = Float[Tensor, "B d"] | Float[Tensor, "B M d"]
Covariance = Float[Tensor, "d d"] | Float[Tensor, "d"]  # a full matrix or its diagonal

F64 = torch.float64
DMMSE_CHUNK_ELEMENTS = 2**25  # float64 residuals per dMMSE chunk (256 MiB)


@dataclass(frozen=True)
class Prediction:
    """ŷ [B] or [B, M] and the implicit weight vector ŵ [B, d] (None where no linear map exists)."""

    y_hat: Float[Tensor, "B"] | Float[Tensor, "B M"]
    w_hat: Float[Tensor, "B d"] | None


# ---------------------------------------------------------------------------------------- checks
def _prepare(X, y, x_q):
    X, y, x_q = (torch.as_tensor(t).to(F64) for t in (X, y, x_q))
    if X.dim() != 3:
        raise ValueError(f"X must have shape [batch, N, d], got {tuple(X.shape)}")
    B, N, d = X.shape
    if N == 0:
        raise ConfigError("N", 0, "at least one in-context example (X has shape [batch, 0, d])")
    if tuple(y.shape) != (B, N):
        raise ValueError(f"y must have shape [batch, N] = [{B}, {N}], got {tuple(y.shape)}")
    if x_q.dim() not in (2, 3) or x_q.shape[0] != B or x_q.shape[-1] != d:
        raise ValueError(f"x_q must have shape [batch, d] = [{B}, {d}] or [batch, M, d], got {tuple(x_q.shape)}")
    return X, y, x_q


def _predict(w_hat: torch.Tensor, x_q: torch.Tensor) -> Prediction:
    if x_q.dim() == 2:
        return Prediction((x_q * w_hat).sum(-1), w_hat)
    return Prediction(torch.einsum("bmd,bd->bm", x_q, w_hat), w_hat)


def _square_matrix(name: str, A, d: int) -> torch.Tensor:
    """A [d, d] matrix, or a [d] diagonal, as a float64 [d, d] tensor."""
    A = torch.as_tensor(A).to(F64)
    if A.dim() == 1 and A.shape[0] == d:
        return torch.diag(A)
    if tuple(A.shape) != (d, d):
        raise ConfigError(name, tuple(A.shape), f"a [d, d] = [{d}, {d}] matrix or a [d] = [{d}] diagonal")
    return A


def covariance_matrix(cov: Covariance, d: int) -> Float[Tensor, "d d"]:
    """A positive-definite covariance (given as [d, d] or its [d] diagonal); refused otherwise."""
    L = _square_matrix("covariance", cov, d)
    if not torch.allclose(L, L.T, rtol=0, atol=1e-12 * float(L.abs().max().clamp(min=1))):
        raise ConfigError("covariance", L.tolist(), "a symmetric matrix")
    if torch.linalg.eigvalsh(L).min() <= 0:
        raise ConfigError("covariance", L.tolist(), "positive definite (every eigenvalue > 0)")
    return L


# ---------------------------------------------------------------------------------------- predictors
def least_squares(X: Prompts, y: Labels, x_q: Queries) -> Prediction:
    """ŵ = X⁺ y: ordinary least squares, and the minimum-norm interpolant when N < d (Garg et al. 2022)."""
    X, y, x_q = _prepare(X, y, x_q)
    w = (torch.linalg.pinv(X) @ y[..., None])[..., 0]
    return _predict(w, x_q)


def ridge(X: Prompts, y: Labels, x_q: Queries, lam: float) -> Prediction:
    """ŵ = (XᵀX + λ I)⁻¹ Xᵀ y (λ unnormalized, as Raventós et al. 2023 write it); λ = 0 is least squares."""
    if not (isinstance(lam, (int, float)) and lam >= 0):
        raise ConfigError("lam", lam, "a non-negative float (λ = 0 is minimum-norm least squares)")
    if lam == 0:
        return least_squares(X, y, x_q)
    X, y, x_q = _prepare(X, y, x_q)
    d = X.shape[-1]
    A = X.transpose(1, 2) @ X + lam * torch.eye(d, dtype=F64)
    w = torch.linalg.solve(A, (X.transpose(1, 2) @ y[..., None]))[..., 0]
    return _predict(w, x_q)


def bayes_gaussian(X: Prompts, y: Labels, x_q: Queries, noise_std: float, prior_std: float = 1.0) -> Prediction:
    """Posterior mean of w ~ N(0, τ² I) given y = Xw + N(0, σ²): ridge with λ = σ²/τ².

    σ = 0 is the noiseless limit λ → 0, the minimum-norm least-squares solution.
    """
    if not (isinstance(noise_std, (int, float)) and noise_std >= 0):
        raise ConfigError("noise_std", noise_std, "a non-negative float")
    if not (isinstance(prior_std, (int, float)) and prior_std > 0):
        raise ConfigError("prior_std", prior_std, "a positive float")
    return ridge(X, y, x_q, float(noise_std) ** 2 / float(prior_std) ** 2)


def preconditioned_gd(X: Prompts, y: Labels, x_q: Queries, eta: float, steps: int,
                      P: Float[Tensor, "d d"] | None = None) -> Prediction:
    """``steps`` steps of w_{t+1} = w_t − (η/N) P Xᵀ(X w_t − y) from w_0 = 0 (P = I: plain GD).

    Plain GD on L(w) = (1/2N) Σ (wᵀx_i − y_i)² is the algorithm linear self-attention implements
    (von Oswald et al. 2023); P is any fixed [d, d] (or diagonal [d]) preconditioner.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ConfigError("steps", steps, "a non-negative integer")
    if not isinstance(eta, (int, float)):
        raise ConfigError("eta", eta, "a float")
    X, y, x_q = _prepare(X, y, x_q)
    B, N, d = X.shape
    Pm = torch.eye(d, dtype=F64) if P is None else _square_matrix("P", P, d)
    Xt = X.transpose(1, 2)
    w = torch.zeros(B, d, dtype=F64)
    for _ in range(steps):
        grad = (Xt @ ((X @ w[..., None])[..., 0] - y)[..., None])[..., 0] / N
        w = w - eta * grad @ Pm.T
    return _predict(w, x_q)


def gd(X: Prompts, y: Labels, x_q: Queries, eta: float, steps: int = 1) -> Prediction:
    """``steps`` steps of gradient descent from w = 0 with step η: w_{t+1} = w_t − (η/N) Xᵀ(X w_t − y)."""
    return preconditioned_gd(X, y, x_q, eta, steps)


def averaging(X: Prompts, y: Labels, x_q: Queries) -> Prediction:
    """ŵ = (1/N) Σ y_i x_i (Garg et al. 2022's averaging baseline; one GD step with η = 1)."""
    X, y, x_q = _prepare(X, y, x_q)
    return _predict((X.transpose(1, 2) @ y[..., None])[..., 0] / X.shape[1], x_q)


def zfb_gamma(cov: Covariance, N: int) -> Float[Tensor, "d d"]:
    """Γ = (1 + 1/N) Λ + (tr Λ / N) I of Zhang, Frei, Bartlett 2024 (their Λ is the input covariance)."""
    if not isinstance(N, int) or N < 1:
        raise ConfigError("N", N, "a positive integer")
    L = _square_matrix("covariance", cov, torch.as_tensor(cov).shape[-1])
    d = L.shape[0]
    return (1 + 1 / N) * L + (torch.trace(L) / N) * torch.eye(d, dtype=F64)


def zfb_optimum(X: Prompts, y: Labels, x_q: Queries, cov: Covariance) -> Prediction:
    """ŷ = x_qᵀ Γ⁻¹ (1/N) Σ y_i x_i, the global optimum of one-layer linear self-attention trained by
    gradient flow on x ~ N(0, Λ), w ~ N(0, I) ("Trained Transformers Learn Linear Models In-Context",
    Zhang, Frei, Bartlett 2024)."""
    X, y, x_q = _prepare(X, y, x_q)
    N, d = X.shape[1:]
    gamma = zfb_gamma(covariance_matrix(cov, d), N)
    w = torch.linalg.solve(gamma, ((X.transpose(1, 2) @ y[..., None])[..., 0] / N).T).T
    return _predict(w, x_q)


def dmmse(X: Prompts, y: Labels, x_q: Queries, pool: Float[Tensor, "n_tasks d"], noise_std: float) -> Prediction:
    """Posterior mean over a finite pool of tasks {w_m} with a uniform prior (Raventós et al. 2023):
    ŵ = Σ_m π_m w_m, π_m ∝ exp(−Σ_i (y_i − w_mᵀ x_i)² / (2σ²)), normalized with logsumexp so that
    a large residual (small σ) never overflows."""
    if not (isinstance(noise_std, (int, float)) and noise_std > 0):
        raise ConfigError("noise_std", noise_std, "a positive float (the dMMSE posterior needs label noise)")
    X, y, x_q = _prepare(X, y, x_q)
    pool = torch.as_tensor(pool).to(F64)
    if pool.dim() != 2 or pool.shape[0] == 0 or pool.shape[1] != X.shape[-1]:
        raise ConfigError("pool", tuple(pool.shape), f"a [M, d] tensor of tasks with M ≥ 1 and d = {X.shape[-1]}")
    # The residuals are [B, M, N]: prompts go in chunks so that a pool of 2²⁰ tasks stays within memory.
    B, N = y.shape
    chunk = max(1, DMMSE_CHUNK_ELEMENTS // (len(pool) * N))
    w = []
    for s in range(0, B, chunk):
        resid = y[s:s + chunk, None, :] - torch.einsum("bnd,md->bmn", X[s:s + chunk], pool)
        log_post = -(resid ** 2).sum(-1) / (2 * float(noise_std) ** 2)
        w.append(torch.softmax(log_post, dim=-1) @ pool)  # softmax subtracts the max: logsumexp normalization
    return _predict(torch.cat(w), x_q)


def knn(X: Prompts, y: Labels, x_q: Queries, k: int = 3) -> Prediction:
    """Mean label of the k context points nearest to the query in Euclidean distance (Garg et al. 2022).

    Not a linear map of x_q (piecewise constant), so ``w_hat`` is None.
    """
    X, y, x_q = _prepare(X, y, x_q)
    N = X.shape[1]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= N:
        raise ConfigError("k", k, f"an integer in [1, N = {N}]")
    single = x_q.dim() == 2
    q = x_q[:, None, :] if single else x_q
    dist = torch.cdist(q, X)  # [B, M, N]
    idx = dist.topk(k, dim=-1, largest=False).indices
    y_hat = torch.gather(y[:, None, :].expand(-1, q.shape[1], -1), -1, idx).mean(-1)
    return Prediction(y_hat[:, 0] if single else y_hat, None)


# ---------------------------------------------------------------------------------------- step tuning
def tune_gd_step(X: Prompts, y: Labels, x_q: Queries, y_q: Float[Tensor, "B"] | Float[Tensor, "B M"], steps: int = 1,
                 eta_max: float | None = None, grid: int = 200) -> float:
    """The GD step η minimizing the mean squared error of ``gd(X, y, x_q, η, steps)`` against y_q on
    the given sampled prompts — the line search von Oswald et al. 2023 tune their GD baseline with.

    A grid over (0, eta_max] locates the basin, then bounded Brent refines it. eta_max defaults to
    2N / mean λ_max(XᵀX), past which GD diverges on a typical prompt.
    """
    X64, y64, xq64 = _prepare(X, y, x_q)
    y_q = torch.as_tensor(y_q).to(F64)
    if eta_max is None:
        eta_max = float(2 * X64.shape[1] / torch.linalg.eigvalsh(X64.transpose(1, 2) @ X64)[:, -1].mean())
    if not eta_max > 0:
        raise ConfigError("eta_max", eta_max, "a positive float")

    def loss(eta: float) -> float:
        return float(((gd(X64, y64, xq64, eta, steps).y_hat - y_q) ** 2).mean())

    etas = torch.linspace(0, eta_max, grid + 1, dtype=F64)[1:].tolist()
    losses = [loss(e) for e in etas]
    i = min(range(len(etas)), key=losses.__getitem__)
    lo, hi = (etas[i - 1] if i > 0 else 0.0), (etas[i + 1] if i + 1 < len(etas) else eta_max)
    res = minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10 * eta_max})
    return float(res.x) if res.fun <= losses[i] else etas[i]
