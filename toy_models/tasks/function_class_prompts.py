"""Interleaved in-context prompts of a random function class, shared by the sparse-linear, decision-tree
and two-layer-ReLU tasks of "What Can Transformers Learn In-Context? A Case Study of Simple Function
Classes" (Garg et al. 2022).

A prompt draws one function f from the class and N + 1 points x ~ N(0, I_d); it is written as the
tokens x_1, (f(x_1), 0, …, 0), …, x_N, (f(x_N), 0, …, 0), x_q (``interleave_tokens`` of the linear
task), and a causal model predicts each label at its x's position, so the loss averages the squared
error over all N + 1 prefixes. Each class's labels have a known second moment E[y²] (s, 1 and d for
sparse linear, trees and ReLU networks), which is the normalization Garg et al. plot with
(``nse`` = query squared error / E[y²]: predicting 0 scores 1).

Curriculum (Garg et al., section 4), with the schedule and hook of ``icl_regression``: the batch of
training step s (1-based) uses stage k = ⌊(s − 1)/S⌋, d_k = min(d, d_start + k·d_inc) active input
dimensions (coordinates d_k … d − 1 of every x are 0, and the function is drawn on the active ones)
and N_k = min(N, n_start + k·n_inc) examples. The trainer calls ``task.set_step(s)`` before drawing
the batch of step s; ``set_step(None)`` (and never being told a step) samples at the final size.

Every batch carries the raw tensors X [B, N, d], y [B, N], x_query [B, d], y_query [B] (the batch's
dtype) for the baselines, and the drawn function's parameters (named by each class).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from ..config import ConfigError
from .base import Batch
from .icl_regression import DTYPES, UNSTEPPED_DRAWS_BEFORE_WARNING, CurriculumNotSteppedWarning, interleave_tokens


def _positive_int(obj, name: str, upper: int | None = None, none_ok: bool = False) -> None:
    v = getattr(obj, name)
    if v is None and none_ok:
        return
    if not isinstance(v, int) or isinstance(v, bool) or v < 1 or (upper is not None and v > upper):
        rule = f"an integer in [1, {upper}]" if upper is not None else "a positive integer"
        raise ConfigError(name, v, rule + (" or None" if none_ok else ""))


@dataclass(frozen=True)
class FunctionClassConfig:
    """Fields every function-class prompt task shares (module docstring); subclasses add the class's own."""

    d: int = 5
    n_points: int = 10
    dtype: str = "float32"
    curriculum_every: int | None = None
    curriculum_d_start: int | None = None
    curriculum_d_inc: int = 1
    curriculum_n_start: int | None = None
    curriculum_n_inc: int = 2

    def __post_init__(self) -> None:
        _positive_int(self, "d")
        _positive_int(self, "n_points")
        if self.dtype not in DTYPES:
            raise ConfigError("dtype", self.dtype, f"one of {', '.join(map(repr, DTYPES))}")
        _positive_int(self, "curriculum_every", none_ok=True)
        _positive_int(self, "curriculum_d_start", self.d, none_ok=True)
        _positive_int(self, "curriculum_n_start", self.n_points, none_ok=True)
        _positive_int(self, "curriculum_d_inc")
        _positive_int(self, "curriculum_n_inc")
        starts = (self.curriculum_d_start, self.curriculum_n_start)
        if self.curriculum_every is None and any(v is not None for v in starts):
            raise ConfigError("curriculum_every", None, "steps per curriculum stage (a positive integer) when "
                              "curriculum_d_start or curriculum_n_start is set")
        if self.curriculum_every is not None and all(v is None for v in starts):
            raise ConfigError("curriculum_every", self.curriculum_every, "None unless curriculum_d_start or "
                              "curriculum_n_start is set (a curriculum needs something to grow)")
        self._validate_class()

    def _validate_class(self) -> None:
        """The class's own fields (subclasses)."""

    def curriculum_sizes(self, step: int | None) -> tuple[int, int]:
        """(active dimensions, in-context examples) of the batch of training step ``step`` (1-based);
        the final (d, n_points) for ``step=None`` or without a curriculum."""
        if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 1):
            raise ConfigError("step", step, "a positive integer (the 1-based training step) or None")
        if step is None or self.curriculum_every is None:
            return self.d, self.n_points
        k = (step - 1) // self.curriculum_every
        d_act = (self.d if self.curriculum_d_start is None
                 else min(self.d, self.curriculum_d_start + k * self.curriculum_d_inc))
        n_act = (self.n_points if self.curriculum_n_start is None
                 else min(self.n_points, self.curriculum_n_start + k * self.curriculum_n_inc))
        return d_act, n_act

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class FunctionClassTask:
    """Sampling, loss and metrics of interleaved function-class prompts. A subclass sets
    ``draw_functions(B, d_act, gen) -> params``, ``evaluate(params, points) -> labels`` and
    ``label_second_moment()`` (E[y²] at the final size, the error normalization)."""

    def __init__(self, cfg: FunctionClassConfig):
        self.cfg = cfg
        self.dtype = getattr(torch, cfg.dtype)
        self.step: int | None = None
        self._unstepped_draws = 0

    # ------------------------------------------------------------------ the class (subclasses)
    def draw_functions(self, batch: int, d_act: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def evaluate(self, params: dict[str, torch.Tensor], points: torch.Tensor) -> torch.Tensor:
        """Labels [B, P] of points [B, P, d] (float64) under each prompt's function."""
        raise NotImplementedError

    def label_second_moment(self) -> float:
        raise NotImplementedError

    # ------------------------------------------------------------------ Task protocol
    def model_fields(self) -> dict[str, Any]:
        return {"input_kind": "continuous", "d_input": self.cfg.d, "n_ctx": 2 * self.cfg.n_points + 1,
                "d_vocab_out": 1}

    def set_step(self, step: int | None) -> None:
        """The training step whose batch is drawn next (the curriculum hook). None: the final size."""
        self.cfg.curriculum_sizes(step)  # refuses a bad step
        self.step = step

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError("batch_size", batch_size, "a positive integer")
        self._check_stepped()
        d_act, N = self.cfg.curriculum_sizes(self.step)
        pts = torch.randn(batch_size, N + 1, self.cfg.d, generator=generator, dtype=torch.float64)
        pts[..., d_act:] = 0.0  # a d_act-dimensional problem written in d coordinates (Garg et al.)
        params = self.draw_functions(batch_size, d_act, generator)
        labels = self.evaluate(params, pts)
        raw = dict(X=pts[:, :N], y=labels[:, :N], x_query=pts[:, N], y_query=labels[:, N])
        raw = {k: v.to(self.dtype) for k, v in raw.items()}
        params = {k: v.to(self.dtype) if v.is_floating_point() else v for k, v in params.items()}
        inputs = interleave_tokens(raw["X"], raw["y"], raw["x_query"])
        return {"inputs": inputs, "targets": labels.to(self.dtype), **raw, **params}

    def predictions(self, output: torch.Tensor) -> torch.Tensor:
        """Predicted labels [B, N + 1], read at every x position."""
        return output[:, 0::2, 0]

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Mean squared error averaged over all N + 1 prefixes (Garg et al. 2022)."""
        return ((self.predictions(output) - batch["targets"]) ** 2).mean()

    @torch.no_grad()
    def metrics(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        err = (self.predictions(output) - batch["targets"]) ** 2
        mse = float(err[:, -1].mean())
        return {"mse": mse, "nse": mse / self.label_second_moment(), "mse_all_prefixes": float(err.mean())}

    def _check_stepped(self) -> None:
        if self.cfg.curriculum_every is None or self.step is not None:
            return
        self._unstepped_draws += 1
        if self._unstepped_draws == UNSTEPPED_DRAWS_BEFORE_WARNING + 1:
            warnings.warn(
                f"{type(self.cfg).task_name}: a curriculum is configured (curriculum_every="
                f"{self.cfg.curriculum_every}) but {UNSTEPPED_DRAWS_BEFORE_WARNING} batches were drawn without "
                "task.set_step(step): every batch is at the final size.", CurriculumNotSteppedWarning, stacklevel=3)
