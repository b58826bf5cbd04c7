"""Linear probes from each layer's residual stream to the quantities of in-context regression.

"What learning algorithm is in-context learning? Investigations with linear models" (Akyürek et al.
2023, section 5) asks which intermediate quantities of the candidate algorithms a trained model
represents: the task w, the moment Xᵀy and the Gram matrix XᵀX. Here, for each residual stream
x_0 … x_L (block inputs, then the last output) at one position (by default the query token, which has
seen the whole context), a ridge-regularized linear map with intercept is fitted on a training split
of prompts and scored on the held-out rest by

    R² = 1 − Σ_test ‖t − t̂‖² / Σ_test ‖t − t̄_train‖²

pooled over the target's coordinates (the fraction of the target's held-out variance the probe
explains; 0 for a probe that learned nothing, negative for one that overfits). XᵀX is symmetric:
its d(d + 1)/2 upper-triangular entries are the target.

Held-out R² of an ordinary least-squares probe on features unrelated to the target has expectation
≈ −p/(n_train − p − 1) (p features): the ridge and a training set several times p keep that small.
"""

from __future__ import annotations

from typing import Mapping

import pandas as pd
import torch
from jaxtyping import Float, Shaped
from torch import Tensor

from toy_models.config import ConfigError

from ._common import forward_kwargs, resid_hook_names

F64 = torch.float64


def regression_targets(X: Float[Tensor, "B N d"], y: Float[Tensor, "B N"], w: Float[Tensor, "B d"]
                       ) -> dict[str, Float[Tensor, "B k"]]:
    """The probe targets of Akyürek et al.: w [B, d], Xᵀy [B, d], and XᵀX's upper triangle [B, d(d+1)/2]."""
    X, y = X.to(F64), y.to(F64)
    d = X.shape[-1]
    gram = X.transpose(1, 2) @ X
    iu = torch.triu_indices(d, d)
    return {"w": w.to(F64), "Xᵀy": (X.transpose(1, 2) @ y[..., None])[..., 0], "XᵀX": gram[:, iu[0], iu[1]]}


def split_rows(features: Float[Tensor, "B p"], target: Float[Tensor, "B k"], train_fraction: float
               ) -> tuple[Float[Tensor, "B p"], Float[Tensor, "B k"], int]:
    """(F, T, n_train): features [B, p] and target [B, k] as float64 matrices, and the training rows' count
    (the first ``train_fraction`` of the rows train, the rest test)."""
    if not 0 < train_fraction < 1:
        raise ConfigError("train_fraction", train_fraction, "a fraction in (0, 1)")
    F, T = features.to(F64).reshape(len(features), -1), target.to(F64).reshape(len(target), -1)
    if len(F) != len(T):
        raise ValueError(f"features and target need the same number of rows, got {len(F)} and {len(T)}")
    n_train = int(round(train_fraction * len(F)))
    if n_train < 2 or len(F) - n_train < 1:
        raise ConfigError("prompts", len(F), "enough rows for a training split of ≥ 2 and a test split of ≥ 1")
    return F, T, n_train


def linear_probe_residuals(features: Float[Tensor, "B p"], target: Float[Tensor, "B k"], train_fraction: float = 0.5,
                           ridge: float = 1e-4) -> tuple[Float[Tensor, "held_out"], Float[Tensor, "held_out"]]:
    """Per held-out row: (‖t − t̂‖², ‖t − t̄_train‖²) of a ridge probe features [B, p] → target [B, k], so that
    R² = 1 − Σ first / Σ second (module docstring) and rows can be resampled for an interval.

    The ridge is relative: λ = ``ridge`` · tr(FᵀF)/p on the centred training features F, so it means the
    same at every activation scale."""
    if not (isinstance(ridge, (int, float)) and ridge >= 0):
        raise ConfigError("ridge", ridge, "a non-negative float")
    F, T, n_train = split_rows(features, target, train_fraction)
    f_mean, t_mean = F[:n_train].mean(0), T[:n_train].mean(0)
    Ftr, Ttr = F[:n_train] - f_mean, T[:n_train] - t_mean
    p = Ftr.shape[1]
    gram = Ftr.T @ Ftr
    lam = ridge * float(torch.trace(gram)) / p
    coef = torch.linalg.solve(gram + lam * torch.eye(p, dtype=F64), Ftr.T @ Ttr)
    pred = (F[n_train:] - f_mean) @ coef + t_mean
    return (T[n_train:] - pred).pow(2).sum(1), (T[n_train:] - t_mean).pow(2).sum(1)


def linear_probe_r2(features: Float[Tensor, "B p"], target: Float[Tensor, "B k"], train_fraction: float = 0.5,
                    ridge: float = 1e-4) -> float:
    """Held-out R² (module docstring) of a ridge probe features [B, p] → target [B, k]
    (``linear_probe_residuals``)."""
    resid, total = linear_probe_residuals(features, target, train_fraction, ridge)
    return float(1 - resid.sum() / total.sum())


@torch.no_grad()
def residual_probe_r2(model, inputs: Shaped[Tensor, "B pos *d_input"], targets: Mapping[str, Float[Tensor, "B k"]],
                      position: int = -1,
                      train_fraction: float = 0.5, ridge: float = 1e-4, **kwargs) -> pd.DataFrame:
    """Tidy frame (layer, hook, target, r2): ``linear_probe_r2`` from the residual stream x_l at
    ``position`` (default the last token, the query) to each target, for l = 0 … L."""
    names = resid_hook_names(model)
    _, cache = model.run_with_cache(inputs, names_filter=names, **forward_kwargs(model, kwargs))
    rows = []
    for layer, name in enumerate(names):
        feats = cache[name][:, position]
        for tname, t in targets.items():
            rows.append((layer, name, tname, linear_probe_r2(feats, t, train_fraction, ridge)))
    return pd.DataFrame(rows, columns=["layer", "hook", "target", "r2"])


__all__ = ["linear_probe_r2", "linear_probe_residuals", "regression_targets", "residual_probe_r2", "split_rows"]
