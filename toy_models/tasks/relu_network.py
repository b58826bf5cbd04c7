"""In-context learning of random two-layer ReLU networks ("What Can Transformers Learn In-Context? A
Case Study of Simple Function Classes", Garg et al. 2022, their section 5):

    f(x) = √(2/h) Σ_{j=1..h} a_j · max(0, w_jᵀx),    w_j ~ N(0, I_d), a_j ~ N(0, 1),

with h = ``hidden`` (Garg et al.: d = 20, h = 100, prompts of up to 100 examples). The factor √(2/h)
puts the labels on the linear-regression scale: given x, E[f(x)²] = (2/h) · h · E[max(0, wᵀx)²] =
2 · ‖x‖²/2 = ‖x‖², so E[y²] = d for x ~ N(0, I_d), the normalization of their plots.

Interleaved prompts, curriculum and batch layout: ``function_class_prompts``. The batch carries
``W1`` [B, d, h] (columns w_j) and ``W2`` [B, h] (the a_j).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..config import ConfigError
from .base import register_task
from .function_class_prompts import FunctionClassConfig, FunctionClassTask


@register_task("icl_relu_network")
@dataclass(frozen=True)
class ReluNetworkConfig(FunctionClassConfig):
    """Two-layer ReLU networks with ``hidden`` units, Garg et al.'s √(2/h) output scaling."""

    hidden: int = 100

    def _validate_class(self) -> None:
        h = self.hidden
        if not isinstance(h, int) or isinstance(h, bool) or h < 1:
            raise ConfigError("hidden", h, "a positive integer (hidden units of the target network)")

    def build(self) -> "ReluNetworkTask":
        return ReluNetworkTask(self)


def relu_network(W1: torch.Tensor, W2: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """√(2/h) · relu(x W1) W2 per prompt: W1 [B, d, h], W2 [B, h], points [B, P, d] → [B, P]."""
    h = W1.shape[-1]
    hidden = torch.relu(points @ W1.to(points.dtype))
    return torch.einsum("bph,bh->bp", hidden, W2.to(points.dtype)) * math.sqrt(2 / h)


class ReluNetworkTask(FunctionClassTask):
    def draw_functions(self, batch, d_act, generator):
        h = self.cfg.hidden
        W1 = torch.randn(batch, self.cfg.d, h, generator=generator, dtype=torch.float64)
        W2 = torch.randn(batch, h, generator=generator, dtype=torch.float64)
        return {"W1": W1, "W2": W2}

    def evaluate(self, params, points):
        return relu_network(params["W1"], params["W2"], points)

    def label_second_moment(self) -> float:
        return float(self.cfg.d)
