"""k-step gradient descent for every k ≤ K at once, with the step size tuned per k.

The many-step references of in-context regression: w_{t+1} = w_t − η P (1/N) Xᵀ(X w_t − y) from
w_0 = 0 ("Transformers learn in-context by gradient descent", von Oswald et al. 2023; "What learning
algorithm is in-context learning? Investigations with linear models", Akyürek et al. 2023, compare
trained models with GD of many steps). ``gd_trajectories`` runs one trajectory per step size of a
grid and keeps the prediction after every step; ``tuned_gd_path`` picks, for each k, the grid step
with the least squared error against the given labels, on the same prompts (an oracle tuning: it
favours GD, so "closer to least squares than to tuned k-step GD" is the harder comparison).

The grid is geometric, from 10⁻³ to 1.2 times 2 / mean λ_max(XᵀX/N) (past 2/λ_max GD diverges on a
prompt; the error decides whether a step that diverges on a few prompts is worth it). Adjacent grid
steps differ by the factor ``ratio`` reported with the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from scipy.optimize import minimize
from torch import Tensor

from ..errors import ConfigError

from .predictors import Labels, Prompts, Queries, _prepare, _square_matrix

F64 = torch.float64
GRID_SIZE = 64
GRID_LOW = 1e-3  # smallest step, as a fraction of 2 / mean λ_max
GRID_HIGH = 1.2  # largest step, as a multiple of 2 / mean λ_max


def step_grid(X: Prompts, size: int = GRID_SIZE) -> Float[Tensor, "size"]:
    """Geometric grid of step sizes [size] scaled by 2 / mean λ_max(XᵀX/N) of the prompts X [B, N, d]."""
    if not isinstance(size, int) or size < 2:
        raise ConfigError("size", size, "an integer ≥ 2")
    X = torch.as_tensor(X).to(F64)
    lam_max = torch.linalg.eigvalsh(X.transpose(1, 2) @ X / X.shape[1])[:, -1].mean()
    scale = 2 / float(lam_max.clamp_min(torch.finfo(F64).tiny))
    return scale * torch.logspace(torch.log10(torch.tensor(GRID_LOW)), torch.log10(torch.tensor(GRID_HIGH)), size,
                                  dtype=F64)


def gd_trajectories(X: Prompts, y: Labels, x_q: Queries, etas: Float[Tensor, "n_eta"], k_max: int,
                    P: Float[Tensor, "d d"] | None = None) -> Float[Tensor, "n_eta k B"] | Float[Tensor, "n_eta k B M"]:
    """Predictions of k-step (preconditioned) GD from w_0 = 0 for k = 0 … k_max and each η in ``etas``:
    float64 [len(etas), k_max + 1, B] for x_q [B, d] (or [len(etas), k_max + 1, B, M] for x_q [B, M, d]).

    Entry [g, k] equals ``predictors.preconditioned_gd(X, y, x_q, etas[g], k, P)``."""
    if not isinstance(k_max, int) or isinstance(k_max, bool) or k_max < 0:
        raise ConfigError("k_max", k_max, "a non-negative integer")
    X, y, x_q = _prepare(X, y, x_q)
    B, N, d = X.shape
    etas = torch.as_tensor(etas, dtype=F64).reshape(-1)
    Pm = torch.eye(d, dtype=F64) if P is None else _square_matrix("P", P, d)
    gram = X.transpose(1, 2) @ X / N  # [B, d, d]
    moment = (X.transpose(1, 2) @ y[..., None])[..., 0] / N  # [B, d]
    w = torch.zeros(len(etas), B, d, dtype=F64)
    q = x_q if x_q.dim() == 3 else x_q[:, None, :]
    preds = [torch.einsum("gbd,bmd->gbm", w, q)]
    for _ in range(k_max):
        grad = torch.einsum("bij,gbj->gbi", gram, w) - moment
        w = w - etas[:, None, None] * (grad @ Pm.T)
        preds.append(torch.einsum("gbd,bmd->gbm", w, q))
    out = torch.stack(preds, 1)  # [G, K + 1, B, M]
    return out[..., 0] if x_q.dim() == 2 else out


@dataclass(frozen=True)
class TunedGD:
    """For k = 0 … k_max: the tuned step ``eta[k]`` (nan at k = 0), the predictions ``y_hat[k]`` [B] and
    the mean squared error ``mse[k]`` against the labels it was tuned on; ``ratio``: grid resolution."""

    eta: Float[Tensor, "k"]
    y_hat: Float[Tensor, "k B"] | Float[Tensor, "k B M"]
    mse: Float[Tensor, "k"]
    ratio: float


def tuned_gd_path(X: Prompts, y: Labels, x_q: Queries, y_q: Float[Tensor, "B"] | Float[Tensor, "B M"], k_max: int,
                  etas: Float[Tensor, "n_eta"] | None = None, P: Float[Tensor, "d d"] | None = None) -> TunedGD:
    """k-step GD for every k ≤ ``k_max`` with, for each k, the step of ``etas`` (default ``step_grid(X)``)
    that minimizes the mean of (ŷ − y_q)² over these prompts (module docstring). Steps whose trajectory
    overflows on some prompt score inf and are never chosen unless all do."""
    X, y, x_q = _prepare(X, y, x_q)
    y_q = torch.as_tensor(y_q).to(F64)
    if x_q.dim() != 2 or tuple(y_q.shape) != (X.shape[0],):
        raise ValueError(f"need one query per prompt: x_q [B, d] and y_q [B], got {tuple(x_q.shape)}, "
                         f"{tuple(y_q.shape)}")
    etas = step_grid(X) if etas is None else torch.as_tensor(etas, dtype=F64).reshape(-1)
    traj = gd_trajectories(X, y, x_q, etas, k_max, P)  # [G, K + 1, B]
    mse = ((traj - y_q) ** 2).mean(-1)
    mse = torch.where(torch.isfinite(mse), mse, torch.full_like(mse, float("inf")))
    best = mse.argmin(0)  # [K + 1]
    ks = torch.arange(k_max + 1)
    eta = etas[best].clone()
    eta[0] = float("nan")  # zero steps predict 0 whatever the step
    ratio = float(etas[1] / etas[0]) if len(etas) > 1 else float("nan")
    return TunedGD(eta=eta, y_hat=traj[best, ks], mse=mse[best, ks], ratio=ratio)


def gd_plus_plus(X: Prompts, y: Labels, x_q: Queries, etas: Float[Tensor, "K"], gammas: Float[Tensor, "K"]
                 ) -> Float[Tensor, "K+1 B"] | Float[Tensor, "K+1 B M"]:
    """Predictions after each of K = len(etas) layers of GD++ ("Transformers learn in-context by gradient
    descent", von Oswald et al. 2023): float64 [K + 1, B] for x_q [B, d] ([K + 1, B, M] for [B, M, d]).

    Every token (x_j, s_j) — context s_j = y_j, query s_q = 0 — is updated from the layer's input by
        s_j ← s_j − η_t (1/N) Σ_i s_i x_iᵀ x_j,        x_j ← x_j − γ_t S x_j,   S = (1/N) Σ_i x_i x_iᵀ
    (sums over the context), and the prediction is −s_q. With every γ_t = 0 this is k-step GD from w = 0
    (the context's s_j is the residual y_j − ŵ_tᵀx_j, −s_q = ŵ_tᵀx_q); γ_t ≠ 0 also conditions the data, the
    update their trained multi-layer linear self-attention was found to match."""
    X, y, x_q = _prepare(X, y, x_q)
    etas = [float(e) for e in etas]
    gammas = [float(g) for g in gammas]
    if len(etas) != len(gammas):
        raise ConfigError("gammas", gammas, f"one γ per step ({len(etas)} steps)")
    N = X.shape[1]
    single = x_q.dim() == 2
    q = x_q[:, None, :] if single else x_q
    s = torch.zeros(q.shape[:2], dtype=F64)
    ctx, r = X, y
    preds = [-s]
    for eta, gamma in zip(etas, gammas):
        m = (ctx.transpose(1, 2) @ r[..., None])[..., 0] / N  # (1/N) Σ_i s_i x_i
        S = ctx.transpose(1, 2) @ ctx / N
        r, s = r - eta * (ctx @ m[..., None])[..., 0], s - eta * torch.einsum("bmd,bd->bm", q, m)
        ctx, q = ctx - gamma * ctx @ S, q - gamma * q @ S  # S is symmetric
        preds.append(-s)
    out = torch.stack(preds)
    return out[..., 0] if single else out


def tuned_gd_plus_plus(X: Prompts, y: Labels, x_q: Queries, y_q: Float[Tensor, "B"], steps: int,
                       max_evals: int = 2000) -> dict:
    """``steps``-layer GD++ with (η_1 … η_K, γ_1 … γ_K) minimizing the mean squared error against y_q on these
    prompts (Nelder–Mead from the tuned K-step GD step and γ = 0, so it is never worse than plain GD at the
    start point). Returns {"eta", "gamma", "y_hat" [B], "w_hat" [B, d] (ŷ is linear in x_q), "mse"}."""
    X, y, x_q = _prepare(X, y, x_q)
    y_q = torch.as_tensor(y_q).to(F64)
    gd = tuned_gd_path(X, y, x_q, y_q, steps)
    start = [float(gd.eta[steps])] * steps + [0.0] * steps

    def loss(params) -> float:
        pred = gd_plus_plus(X, y, x_q, params[:steps], params[steps:])[-1]
        value = float(((pred - y_q) ** 2).mean())
        return value if value == value and value != float("inf") else 1e300

    res = minimize(loss, start, method="Nelder-Mead", options={"maxfev": max_evals, "xatol": 1e-6, "fatol": 1e-10})
    params = res.x if res.fun <= loss(start) else start
    eta, gamma = list(params[:steps]), list(params[steps:])
    d = X.shape[-1]
    basis = torch.eye(d, dtype=F64).expand(X.shape[0], d, d)
    return {"eta": eta, "gamma": gamma, "y_hat": gd_plus_plus(X, y, x_q, eta, gamma)[-1],
            "w_hat": gd_plus_plus(X, y, basis, eta, gamma)[-1], "mse": loss(params)}


__all__ = ["TunedGD", "gd_plus_plus", "gd_trajectories", "step_grid", "tuned_gd_path", "tuned_gd_plus_plus"]
