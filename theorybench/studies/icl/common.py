"""Trained softmax transformers on interleaved in-context regression prompts: configs and read-outs.

"What Can Transformers Learn In-Context? A Case Study of Simple Function Classes" (Garg et al. 2022):
a causal transformer reads x_1, y_1, …, x_N, y_N, x_q (``toy_models.tasks.icl_regression``,
interleaved) and is trained to predict every y from the examples before it. This module builds that
experiment from a size dict (the figures' ``SIZES`` entries) and reads a trained model back as an
error curve over the number of in-context examples, beside the reference estimators on the same
prompts. It registers nothing: the study modules that draw the figures do.

Size dict keys: d, N, noise_std, layers, width, heads, batch, steps, lr, warmup, seeds, eval_prompts
and optionally init, pos, grad_clip and ``curriculum`` = (every, d_start, d_inc, n_start, n_inc)
(Garg et al.'s schedule; it needs the trainer to call ``task.set_step``, see the task module).
"""

from __future__ import annotations

import numpy as np
import torch


def transformer_experiment(size: dict, seed: int = 0, name: str = "icl_transformer", **task_overrides):
    """The ``ExperimentConfig`` of a Pre-LN causal softmax transformer trained on interleaved prompts.

    AdamW (no decay), linear warm-up then cosine decay to 0, the global gradient norm clipped at
    ``size["grad_clip"]`` if given. Init ``size["init"]`` (default the toy's "gpt2").
    """
    from theorybench.experiment import ExperimentConfig, OptimConfig, TrainConfig
    from toy_models import TransformerConfig
    from toy_models.tasks.icl_regression import ICLRegressionConfig

    curriculum = {}
    if size.get("curriculum"):
        every, d_start, d_inc, n_start, n_inc = size["curriculum"]
        curriculum = dict(curriculum_every=every, curriculum_d_start=d_start, curriculum_d_inc=d_inc,
                          curriculum_n_start=n_start, curriculum_n_inc=n_inc)
    task = ICLRegressionConfig(d=size["d"], n_points=size["N"], noise_std=float(size.get("noise_std", 0.0)),
                               tokenization="interleaved", **{**curriculum, **task_overrides})
    model = TransformerConfig(n_layers=size["layers"], d_model=size["width"], n_heads=size["heads"],
                              norm_placement="pre", attention="softmax", attention_dir="causal",
                              pos=size.get("pos", "learned"), init=size.get("init", "gpt2"), attn_path="kernel")
    steps = size["steps"]
    optim = OptimConfig(name="adamw", lr=size["lr"], warmup_steps=size["warmup"], schedule="cosine",
                        grad_clip=size.get("grad_clip"))
    every = max(1, steps // 10)
    train = TrainConfig(steps=steps, batch_size=size["batch"], eval_every=every, eval_batches=4,
                        checkpoint_every=every, log_every=max(1, steps // 100))
    return ExperimentConfig(name=name, task=task, model=model, optim=optim, train=train, seed=seed)


def eval_batch(task_cfg, prompts: int, seed: int = 0) -> dict:
    """``prompts`` held-out prompts of ``task_cfg`` at its final size, in float64 (fixed by ``seed``)."""
    import dataclasses

    from theorybench.experiment import derive_seed

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
    from theory.icl.gd_path import tuned_gd_path

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
