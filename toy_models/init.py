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

With ``norm_placement='deepnorm'`` the value and output projections and the MLP's weights (W_V, W_O,
W_in, W_gate, W_out) are drawn β = (8L)^{-1/4} times smaller in every scheme ("DeepNet: Scaling
Transformers to 1,000 Layers", Wang et al. 2022: Xavier with gain β there, gain 1 for W_Q, W_K).
The attention gate's W_G [head, d_head] has fan-in d_head (each head reads its own chunk of x).

Biases start at 0 and norm gains at 1 in every scheme; frozen one-hot embeddings are left alone.
Draws come from one ``torch.Generator`` seeded with ``cfg.seed``, in parameter-registration order.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Parameters whose fan-in is not the size of their second-to-last dimension.
_RESIDUAL_WRITERS = ("attn.W_O", "mlp.W_out")
# What DeepNet scales by β at init: the value/output projections and the feed-forward weights.
_DEEPNORM_SCALED = ("attn.W_V", "attn.W_O", "mlp.W_in", "mlp.W_gate", "mlp.W_out")


def residual_writers(cfg) -> int:
    """How many sublayers add into the residual stream: two per block, one when attention-only."""
    return cfg.n_layers * (1 if cfg.attn_only else 2)


def fan_in(name: str, p: torch.Tensor) -> int:
    if name.endswith("attn.W_O"):
        return p.shape[0] * p.shape[1]  # [head, d_head, d_model]: all heads feed one output
    if name.endswith("attn.W_G"):
        return p.shape[-1]  # [head, d_head]: head h's gate reads d_head coordinates
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
    if name.endswith(_DEEPNORM_SCALED):
        std *= cfg.deepnorm_beta  # 1 unless deepnorm
    return torch.randn(p.shape, generator=gen, dtype=torch.float64).mul_(std).to(p.dtype)
