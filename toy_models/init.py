"""Named, seeded initialization schemes, so that statistics at initialization are exact and repeatable.

- ``gpt2``:   every matrix and embedding ~ N(0, σ²) with σ = ``init_std`` (0.02), except the
  projections that write into the residual stream (W_O, the MLP's W_out), ~ N(0, σ²/n_w) with
  n_w the number of residual writers (2L, or L for attention-only models)
  ("Language Models are Unsupervised Multitask Learners", Radford et al. 2019).
- ``fan_in``: every matrix ~ N(0, 1/fan_in) (variance-preserving: Var[(xW)_j] = Var[x_i] for
  independent inputs; a continuous read-in is a matrix), token and position embeddings ~ N(0, 1);
  the scheme the variance-growth derivations assume.
- ``normal``: every matrix and embedding ~ N(0, σ²) with σ = ``init_std``.
- ``zero``:   every weight 0 (a clean slate for exact constructions).

Biases start at 0 and norm gains at 1 in every scheme; frozen one-hot embeddings are left alone.
Draws come from one ``torch.Generator`` seeded with ``cfg.seed``, in parameter-registration order.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Parameters whose fan-in is not the size of their second-to-last dimension.
_RESIDUAL_WRITERS = ("attn.W_O", "mlp.W_out")


def residual_writers(cfg) -> int:
    """How many sublayers add into the residual stream: two per block, one when attention-only."""
    return cfg.n_layers * (1 if cfg.attn_only else 2)


def fan_in(name: str, p: torch.Tensor) -> int:
    if name.endswith("attn.W_O"):
        return p.shape[0] * p.shape[1]  # [head, d_head, d_model]: all heads feed one output
    return p.shape[-2]  # [.., d_in, d_out] (W_Q is [head, d_model, d_head])


@torch.no_grad()
def initialize(model: nn.Module, cfg) -> None:
    gen = torch.Generator().manual_seed(cfg.seed)
    for name, p in model.named_parameters():
        if not p.requires_grad:  # frozen one-hot embeddings
            continue
        leaf = name.rsplit(".", 1)[-1]
        if leaf.startswith("b") or leaf == "b":
            p.zero_()
        elif leaf == "w":  # norm gain
            p.fill_(1.0)
        else:
            p.copy_(_draw(name, p, cfg, gen))


def _draw(name: str, p: torch.Tensor, cfg, gen: torch.Generator) -> torch.Tensor:
    if cfg.init == "zero":
        return torch.zeros_like(p)
    # Token and position tables are embeddings; a continuous read-in (also embed.W_E) is a matrix.
    is_embedding = name == "pos_embed.W_pos" or (name == "embed.W_E" and cfg.input_kind == "tokens")
    if cfg.init == "gpt2":
        std = cfg.init_std
        if name.endswith(_RESIDUAL_WRITERS):
            std /= math.sqrt(residual_writers(cfg))
    elif cfg.init == "fan_in":
        std = 1.0 if is_embedding else 1.0 / math.sqrt(fan_in(name, p))
    else:  # normal
        std = cfg.init_std
    return torch.randn(p.shape, generator=gen, dtype=torch.float64).mul_(std).to(p.dtype)
