"""Test models whose every weight matters, shared by the export tests."""

from __future__ import annotations

from typing import Callable

import torch

from toy_models import Transformer, TransformerConfig


@torch.no_grad()
def randomized(cfg: TransformerConfig, keep_zero_bias: Callable[[str], bool] = lambda name: False) -> Transformer:
    """Fan-in matrices, gains 1 + 0.3·N and biases 0.3·N: the default init leaves gains at 1 and biases
    at 0, which would hide a mis-mapped gain or bias. Biases named by ``keep_zero_bias`` stay 0 (for
    targets that have no such bias)."""
    model = Transformer(cfg.replace(init="fan_in")).eval()
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        noise = 0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
        if leaf == "w":
            p.copy_(1 + noise)
        elif leaf.startswith("b") and not keep_zero_bias(name):
            p.copy_(noise)
    return model
