"""Read-outs shared by the ICL figures: held-out prompts, a trained model's and the reference predictors'
predictions at every prefix, and the window over which Garg et al.'s least-squares claim is judged.

"What Can Transformers Learn In-Context? A Case Study of Simple Function Classes" (Garg et al. 2022):
a causal transformer reads x_1, y_1, …, x_N, y_N, x_q (``toy_models.tasks.icl_regression``,
interleaved) and predicts every y from the examples before it, so one pass gives its error curve over
the number of in-context examples; the references are read on the same prompts.

``LS_LEVEL`` and ``window`` fix the bar of ``icl_estimator_errors``' claim ``least_squares_level``
(error/d ≤ 0.02 from N = d + 1 to 2d); ``icl_probe_r2`` and ``icl_ood_shifts`` judge only a model that
clears it. ``GD_K_MAX``: the k-step GD references run for every k ≤ 40.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from theory.icl.gd_path import tuned_gd_path
from theorybench.experiment import derive_seed

LS_LEVEL = 0.02  # the bar: error/d ≤ 0.02 from N = d + 1 to 2d
GD_K_MAX = 40  # k-step GD references for every k ≤ 40
GARG_SOURCE = "What Can Transformers Learn In-Context? A Case Study of Simple Function Classes (Garg et al. 2022), fig. 2"


def window(d: int, N_max: int) -> slice:
    """The prefix columns N = d + 1 … min(2d, N_max) of a [.., N + 1] prefix array."""
    return slice(d + 1, min(2 * d, N_max) + 1)


def eval_batch(task_cfg, prompts: int, seed: int = 0) -> dict:
    """``prompts`` held-out prompts of ``task_cfg`` at its final size, in float64 (fixed by ``seed``)."""
    cfg = dataclasses.replace(task_cfg, dtype="float64")
    return cfg.build().sample(prompts, torch.Generator().manual_seed(derive_seed(seed, "icl_eval_prompts")))


@torch.no_grad()
def model_prefix_predictions(model, batch: dict) -> torch.Tensor:
    """The model's prediction of every label, float64 [prompts, N + 1]: column k predicts y_{k+1}
    (y_q for k = N) from the k examples before it (the causal model reads them all in one pass)."""
    dtype = next(model.parameters()).dtype
    return model(batch["inputs"].to(dtype))[:, 0::2, 0].double()


def predictor_prefix_predictions(batch: dict, fn) -> torch.Tensor:
    """A reference predictor ``fn(X, y, x_q) -> Prediction`` at every prefix, float64 [prompts, N + 1]:
    at k examples the query is x_{k+1} (x_q at k = N); with no example it predicts 0."""
    X, y = batch["X"].double(), batch["y"].double()
    xs = torch.cat([X, batch["x_query"].double()[:, None]], 1)
    cols = [torch.zeros(len(X), dtype=torch.float64)]
    cols += [fn(X[:, :k], y[:, :k], xs[:, k]).y_hat for k in range(1, X.shape[1] + 1)]
    return torch.stack(cols, 1)


def tuned_gd_prefix_predictions(batch: dict, k_max: int) -> torch.Tensor:
    """k-step GD from 0 at every prefix, for k = 0 … ``k_max``, the step tuned per (k, prefix length) on these
    prompts' labels (``theory.icl.gd_path.tuned_gd_path``): float64 [k_max + 1, prompts, N + 1], laid out
    as ``predictor_prefix_predictions``."""
    X, y, targets = batch["X"].double(), batch["y"].double(), batch["targets"].double()
    xs = torch.cat([X, batch["x_query"].double()[:, None]], 1)
    cols = [torch.zeros(k_max + 1, len(X), dtype=torch.float64)]
    cols += [tuned_gd_path(X[:, :k], y[:, :k], xs[:, k], targets[:, k], k_max).y_hat for k in range(1, X.shape[1] + 1)]
    return torch.stack(cols, 2)


def model_prefix_errors(model, batch: dict) -> np.ndarray:
    """Squared error / d of the model at every prefix, [prompts, N + 1] (``model_prefix_predictions``)."""
    d = batch["X"].shape[-1]
    return ((model_prefix_predictions(model, batch) - batch["targets"].double()) ** 2 / d).numpy()


def estimator_prefix_errors(batch: dict, predictors: dict) -> dict[str, np.ndarray]:
    """Squared error / d of each reference predictor at every prefix, [prompts, N + 1], on the same
    prompts (``predictor_prefix_predictions``)."""
    d, targets = batch["X"].shape[-1], batch["targets"].double()
    return {name: ((predictor_prefix_predictions(batch, fn) - targets) ** 2 / d).numpy()
            for name, fn in predictors.items()}


def seed_band(curves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over seeds (ddof = 1; 0 for a single seed) of per-seed curves."""
    a = np.stack(curves)
    return a.mean(0), (a.std(0, ddof=1) if len(a) > 1 else np.zeros(a.shape[1]))
