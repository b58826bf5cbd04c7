"""The named sets of reference predictors a trained in-context regressor is read against.

Each entry maps a label to ``fn(X, y, x_q) -> Prediction`` (``theory.icl.predictors``), ready for
``probes.icl_agreement`` and the figures. Parameters that depend on the prompt length (the tuned GD
step) are computed from the prompt given, so one set serves every N.
"""

from __future__ import annotations

from typing import Callable

import torch
from jaxtyping import Float
from torch import Tensor

from ..errors import ConfigError

from . import predictors as P
from .expected_error import optimal_one_step_eta

PredictorFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], P.Prediction]


def tuned_gd_step(noise_std: float, cov: P.Covariance | None = None) -> PredictorFn:
    """One GD step from 0 with the risk-minimizing η for this prompt's N (``optimal_one_step_eta``;
    isotropic: η = N/(N + d + 1 + σ²)), the von Oswald et al. 2023 reference."""

    def fn(X, y, x_q):
        d = X.shape[-1]
        L = torch.eye(d, dtype=torch.float64) if cov is None else cov
        return P.gd(X, y, x_q, optimal_one_step_eta(L, X.shape[1], noise_std), 1)

    return fn


def knn_capped(k: int) -> PredictorFn:
    """k-nearest-neighbours with k capped at the prompt length (Garg et al. 2022 use k = 3)."""
    return lambda X, y, x_q: P.knn(X, y, x_q, min(k, X.shape[1]))


def reference_predictors(noise_std: float, ridge_lam: float | None = None,
                         pool: Float[Tensor, "n_tasks d"] | None = None,
                         cov: P.Covariance | None = None,
                         knn_k: int = 3) -> dict[str, PredictorFn]:
    """Least squares, ridge (λ = ``ridge_lam``, default the Bayes λ = σ² for w ~ N(0, I); omitted when
    that is 0, where it is least squares), one tuned GD step, averaging, k-NN and, given a task
    ``pool``, the dMMSE posterior mean (Raventós et al. 2023; needs σ > 0)."""
    if not (isinstance(noise_std, (int, float)) and noise_std >= 0):
        raise ConfigError("noise_std", noise_std, "a non-negative float")
    if ridge_lam is not None and not (isinstance(ridge_lam, (int, float)) and ridge_lam >= 0):
        raise ConfigError("ridge_lam", ridge_lam, "a non-negative float, or None for the Bayes λ = σ²")
    if not isinstance(knn_k, int) or isinstance(knn_k, bool) or knn_k < 1:
        raise ConfigError("knn_k", knn_k, "a positive integer")
    lam = float(noise_std) ** 2 if ridge_lam is None else float(ridge_lam)
    refs: dict[str, PredictorFn] = {"least squares": P.least_squares}
    if lam > 0:
        refs[f"ridge λ = {lam:g}"] = lambda X, y, x_q: P.ridge(X, y, x_q, lam)
    refs["one GD step, tuned η"] = tuned_gd_step(noise_std, cov)
    refs["averaging"] = P.averaging
    refs[f"{knn_k}-NN"] = knn_capped(knn_k)
    if pool is not None:
        refs["dMMSE"] = lambda X, y, x_q: P.dmmse(X, y, x_q, pool, noise_std)
    return refs
