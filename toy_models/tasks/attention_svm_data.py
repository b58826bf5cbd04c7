"""Synthetic token-selection data (X, z, Y, v) for the attention-as-SVM study.

"Transformers as Support Vector Machines" (Tarzanagh, Li, Thrampoulidis, Oymak, 2023), experiments
with n = 6 inputs, T = 8 tokens, d = 10: the head v is a fixed unit vector, labels Y_i = ±1, queries
z_i unit vectors (cross-attention; self-attention uses z_i = x_i1), and the globally optimal token of
input i is opt_i = argmax_t Y_i vᵀ x_it.

Geometries:

- ``"random"``: the paper's setup: every token and query a uniformly random unit vector, Y_i a fair
  coin. GD then converges to *a* locally-optimal selection, not necessarily opt (the paper's local
  convergence theorem; compare with the SVM for the tokens GD ends up selecting).
- ``"equal_scores"``: the geometry of the paper's global-convergence result for GD on W — every
  non-optimal token of an input has the same score, γ_it = γ_low < γ_high = γ_i,opt_i. Tokens are unit
  vectors x_it = Y_i c_t v + √(1 − c_t²) u_it with u_it a random unit vector orthogonal to v and
  c_t ∈ {``score_low``, ``score_high``}; the optimal position is drawn uniformly per input.

Everything is drawn from one ``numpy.random.Generator`` seeded with ``seed``; float64 throughout.

As a task of the trainer (registered ``attention_svm``), an instance is one full batch: every step
trains on all n inputs (``train.batch_size`` must be n), the loss is the paper's logistic loss
(1/n) Σ_i log(1 + exp(−Y_i f(X_i))), and the task fixes the layer's ``d``, ``v`` and ``cross_attn``
(``toy_models.single_attention_config``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ..config import ConfigError
from .base import Batch, register_task

Geometry = Literal["random", "equal_scores"]


@dataclass(frozen=True)
class AttentionSVMInstance:
    X: np.ndarray  # [n, T, d] tokens
    Z: np.ndarray  # [n, d] queries (X[:, 0] for self-attention)
    Y: np.ndarray  # [n] labels ±1
    v: np.ndarray  # [d] fixed head
    opt: np.ndarray  # [n] globally optimal token per input

    @property
    def scores(self) -> np.ndarray:
        """γ [n, T] with γ_it = Y_i vᵀ x_it."""
        return self.Y[:, None] * (self.X @ self.v)


@register_task("attention_svm")
@dataclass(frozen=True)
class AttentionSVMData:
    """Config of one synthetic instance; ``generate()`` draws it, ``build()`` makes it a full-batch task."""

    n: int = 6
    T: int = 8
    d: int = 10
    seed: int = 0
    geometry: Geometry = "equal_scores"
    cross_attn: bool = True
    score_low: float = 0.0
    score_high: float = 0.5

    def __post_init__(self) -> None:
        for name in ("n", "T", "d"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(name, value, "a positive integer")
        if self.T < 2:
            raise ConfigError("T", self.T, "at least 2 tokens (with one token there is nothing to select)")
        if self.d < 2 and self.geometry == "equal_scores":
            raise ConfigError("d", self.d, "at least 2 for 'equal_scores' (tokens need a direction orthogonal to v)")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError("seed", self.seed, "a non-negative integer")
        if self.geometry not in ("random", "equal_scores"):
            raise ConfigError("geometry", self.geometry, "'random' or 'equal_scores'")
        if not (-1.0 <= self.score_low < self.score_high <= 1.0):
            raise ConfigError("score_high", self.score_high, f"in ({self.score_low}, 1] with score_low ≥ -1")

    def generate(self) -> AttentionSVMInstance:
        rng = np.random.default_rng(self.seed)
        n, T, d = self.n, self.T, self.d
        v = _unit(rng.standard_normal(d))
        Y = np.where(rng.standard_normal(n) > 0, 1.0, -1.0)
        if self.geometry == "random":
            X = _unit(rng.standard_normal((n, T, d)))
        else:
            opt_pos = rng.integers(0, T, size=n)
            c = np.full((n, T), self.score_low)
            c[np.arange(n), opt_pos] = self.score_high
            U = rng.standard_normal((n, T, d))
            U = _unit(U - (U @ v)[..., None] * v)  # orthogonal to v
            X = (Y[:, None] * c)[..., None] * v + np.sqrt(1.0 - c**2)[..., None] * U
        Z = _unit(rng.standard_normal((n, d))) if self.cross_attn else X[:, 0].copy()
        opt = np.argmax(Y[:, None] * (X @ v), axis=1)
        return AttentionSVMInstance(X=X, Z=Z, Y=Y, v=v, opt=opt)

    def build(self) -> "AttentionSVMTask":
        return AttentionSVMTask(self.generate(), self.cross_attn)


class AttentionSVMTask:
    """One instance as a full-batch task: ``inputs`` X [n, T, d], ``queries`` Z [n, d] (cross-attention
    only) and ``targets`` Y [n], the same at every step (the generator is not drawn from)."""

    def __init__(self, inst: AttentionSVMInstance, cross_attn: bool = True):
        self.inst, self.cross_attn, self.n = inst, cross_attn, inst.X.shape[0]
        self.batch: Batch = {"inputs": torch.from_numpy(inst.X.copy()), "targets": torch.from_numpy(inst.Y.copy())}
        if cross_attn:  # self-attention reads its query from the tokens
            self.batch["queries"] = torch.from_numpy(inst.Z.copy())

    def model_fields(self) -> dict:
        return {"d": int(self.inst.X.shape[2]), "v": tuple(float(x) for x in self.inst.v),
                "cross_attn": self.cross_attn}

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        if batch_size != self.n:
            raise ConfigError("train.batch_size", batch_size, f"{self.n}, the task's n: every step is a full-batch "
                                                              "step on all n inputs")
        return dict(self.batch)

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """(1/n) Σ_i log(1 + exp(−Y_i f(X_i))), the output being f [n]."""
        return torch.nn.functional.softplus(-batch["targets"] * output).mean()

    def metrics(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        """The logistic loss and the fraction of inputs classified right (sign f = Y)."""
        return {"loss": float(self.loss(output, batch)),
                "accuracy": float((torch.sign(output) == batch["targets"]).double().mean())}


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)
