"""In-context learning of random decision trees ("What Can Transformers Learn In-Context? A Case Study
of Simple Function Classes", Garg et al. 2022, their section 5).

A tree of ``depth`` = k is complete: internal node n (heap order, root 0, children 2n + 1 and 2n + 2)
tests the sign of one input coordinate c_n, drawn uniformly among the active ones, and goes to the
right child when x_{c_n} > 0; the 2^k leaves carry values v ~ N(0, 1). So f(x) is the value of the
leaf at the end of x's path, and E[y²] = 1 (Garg et al. plot the unnormalized squared error). Garg
et al.: d = 20, k = 4, prompts of up to 100 examples.

Interleaved prompts, curriculum and batch layout: ``function_class_prompts``. The batch carries
``split_coords`` [B, 2^k − 1] (long) and ``leaf_values`` [B, 2^k].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import ConfigError
from .base import register_task
from .function_class_prompts import FunctionClassConfig, FunctionClassTask

MAX_DEPTH = 16  # 2^16 leaves per prompt: far past any prompt length that could identify the tree


@register_task("icl_decision_tree")
@dataclass(frozen=True)
class DecisionTreeConfig(FunctionClassConfig):
    """Complete binary trees of the given depth over sign-of-coordinate splits, Gaussian leaves."""

    depth: int = 4

    def _validate_class(self) -> None:
        k = self.depth
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_DEPTH:
            raise ConfigError("depth", k, f"an integer in [1, {MAX_DEPTH}]")

    def build(self) -> "DecisionTreeTask":
        return DecisionTreeTask(self)


def tree_leaf_index(split_coords: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Index in [0, 2^k) of the leaf each point reaches: split_coords [B, 2^k − 1], points [B, P, d] → [B, P]."""
    n_internal = split_coords.shape[1]
    depth = (n_internal + 1).bit_length() - 1
    node = torch.zeros(points.shape[:2], dtype=torch.long)
    for _ in range(depth):
        coord = torch.gather(split_coords, 1, node)  # [B, P]: the coordinate each point's node tests
        right = torch.gather(points, 2, coord[..., None])[..., 0] > 0
        node = 2 * node + 1 + right.long()
    return node - n_internal


class DecisionTreeTask(FunctionClassTask):
    def draw_functions(self, batch, d_act, generator):
        k = self.cfg.depth
        coords = torch.randint(0, d_act, (batch, 2**k - 1), generator=generator)
        leaves = torch.randn(batch, 2**k, generator=generator, dtype=torch.float64)
        return {"split_coords": coords, "leaf_values": leaves}

    def evaluate(self, params, points):
        leaf = tree_leaf_index(params["split_coords"], points)
        return torch.gather(params["leaf_values"].to(torch.float64), 1, leaf)

    def label_second_moment(self) -> float:
        return 1.0
