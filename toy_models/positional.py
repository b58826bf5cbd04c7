"""Positional encodings: sinusoidal tables and rotary embeddings.

Sinusoidal ("Attention Is All You Need", Vaswani et al. 2017):
PE[p, 2i] = sin(p / 10000^{2i/d}),  PE[p, 2i+1] = cos(p / 10000^{2i/d}).

Rotary ("RoFormer: Enhanced Transformer with Rotary Position Embedding", Su et al. 2021), in the
half-split convention of GPT-NeoX, Llama, Gemma and TransformerLens: with x = [x₁, x₂] (halves of the
head dimension) and θ_i = base^{−2i/d_head},
rot(x)_p = x ⊙ cos(p θ) + [−x₂, x₁] ⊙ sin(p θ),  so q_pᵀ k_s depends on p − s only.
"""

from __future__ import annotations

import torch


def sinusoidal_table(n_ctx: int, d_model: int, dtype: torch.dtype) -> torch.Tensor:
    pos = torch.arange(n_ctx, dtype=torch.float64)[:, None]
    inv_freq = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    table = torch.zeros(n_ctx, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * inv_freq)
    table[:, 1::2] = torch.cos(pos * inv_freq)[:, : d_model // 2]
    return table.to(dtype)


def rotary_cos_sin(n_ctx: int, d_head: int, base: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables of shape [n_ctx, d_head], each frequency repeated for both halves."""
    inv_freq = base ** (-torch.arange(0, d_head, 2, dtype=torch.float64) / d_head)
    angles = torch.arange(n_ctx, dtype=torch.float64)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x of shape [batch, pos, head, d_head] by the tables of shape [pos, d_head]."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return x * cos[:, None, :] + rotated * sin[:, None, :]
