"""In-context sparse linear regression ("What Can Transformers Learn In-Context? A Case Study of Simple
Function Classes", Garg et al. 2022, their section 5): y = wᵀx with w drawn as N(0, I_d) and then all
but ``sparsity`` = s coordinates, chosen uniformly among the active ones, set to 0 (Garg et al.: d = 20,
s = 3). Noiseless; x ~ N(0, I_d), so E[y²] = s, the normalization of their plots.

Interleaved prompts, curriculum and batch layout: ``function_class_prompts``. The batch carries ``w`` [B, d].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import ConfigError
from .base import register_task
from .function_class_prompts import FunctionClassConfig, FunctionClassTask


@register_task("icl_sparse_linear")
@dataclass(frozen=True)
class SparseLinearConfig(FunctionClassConfig):
    """Sparse linear functions on d inputs with ``sparsity`` non-zero weights (1 ≤ s ≤ d)."""

    sparsity: int = 3

    def _validate_class(self) -> None:
        s = self.sparsity
        if not isinstance(s, int) or isinstance(s, bool) or not 1 <= s <= self.d:
            raise ConfigError("sparsity", s, f"an integer in [1, d = {self.d}] (the number of non-zero weights)")

    def build(self) -> "SparseLinearTask":
        return SparseLinearTask(self)


class SparseLinearTask(FunctionClassTask):
    def draw_functions(self, batch, d_act, generator):
        w = torch.zeros(batch, self.cfg.d, dtype=torch.float64)
        w[:, :d_act] = torch.randn(batch, d_act, generator=generator, dtype=torch.float64)
        # A uniformly random s-subset of the active coordinates per prompt: the first s of a random
        # permutation. While a curriculum has fewer than s active dimensions, all of them are kept (Garg et al.).
        keep = torch.rand(batch, d_act, generator=generator).argsort(dim=1)[:, :min(self.cfg.sparsity, d_act)]
        mask = torch.zeros(batch, self.cfg.d, dtype=torch.bool)
        mask.scatter_(1, keep, True)
        return {"w": w * mask}

    def evaluate(self, params, points):
        return torch.einsum("bpd,bd->bp", points, params["w"].to(torch.float64))

    def label_second_moment(self) -> float:
        return float(self.cfg.sparsity)
