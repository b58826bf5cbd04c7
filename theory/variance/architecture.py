"""The facts about a transformer at initialization that the variance theory reads, as plain values.

The theory takes these numbers and names, not the model's config (``toy_models.theory_args``
translates a ``TransformerConfig``, with every default already resolved: ``d_head``, ``d_mlp``,
``attn_scale``, ``embed_norm``). The depth rules below are the papers' constants:

- Mix-LN ("Mix-LN: Unleashing the Power of Deeper Layers by Combining Pre-LN and Post-LN", Li et al.
  2024): the first ⌊α·L⌋ blocks are Post-LN, the rest Pre-LN.
- LayerNorm-Scaling ("The Curse of Depth in Large Language Models", Sun et al. 2025): block
  ℓ = layer + 1 scales its norm's output by 1/√ℓ.
- DeepNorm ("DeepNet: Scaling Transformers to 1,000 Layers", Wang et al. 2022, decoder-only, L blocks):
  residual weight α = (2L)^{1/4}, init gain β = (8L)^{-1/4}.
- GPT-2 init: the output projections are drawn 1/√n_w smaller, n_w the number of sublayers that
  write into the residual stream (two per block, one when attention-only).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Architecture:
    """Shapes, norm placement, attention options and init scheme of one toy transformer."""

    n_layers: int
    d_model: int
    n_heads: int
    d_head: int
    d_mlp: int
    attn_only: bool
    gated_mlp: bool
    act_fn: str
    attention: str  # "softmax" or "linear"
    attention_dir: str  # "causal" or "bidirectional"
    attn_scale: float  # scores are q·k / attn_scale
    clip_gamma: float  # clipped softmax clip((ζ − γ)·softmax + γ, 0, 1); (0, 1) is the plain softmax
    clip_zeta: float
    attn_gate: bool
    norm_placement: str  # none, post, pre, peri, mix, lns, deepnorm
    norm_kind: str  # layernorm, rmsnorm, crmsnorm
    norm_eps: float
    mix_alpha: float
    embed_norm: bool  # a norm on the embedding, before the first block
    input_kind: str  # "tokens" or "continuous"
    embed: str  # "learned" or "onehot"
    pos: str  # learned, sinusoidal, rotary, onehot, none
    init: str  # gpt2, fan_in, normal, zero
    init_std: float

    @property
    def clipped_softmax(self) -> bool:
        return self.clip_gamma != 0.0 or self.clip_zeta != 1.0

    @property
    def deepnorm_alpha(self) -> float:
        return (2.0 * self.n_layers) ** 0.25 if self.norm_placement == "deepnorm" else 1.0

    @property
    def deepnorm_beta(self) -> float:
        return (8.0 * self.n_layers) ** -0.25 if self.norm_placement == "deepnorm" else 1.0

    @property
    def residual_writers(self) -> int:
        return self.n_layers * (1 if self.attn_only else 2)

    def lns_scale(self, layer: int) -> float:
        return 1.0 / math.sqrt(layer + 1) if self.norm_placement == "lns" else 1.0

    def block_placement(self, layer: int) -> str:
        """"mix" resolves to "post" for the first ⌊α·L⌋ blocks and "pre" after; others are as given."""
        if self.norm_placement == "mix":
            return "post" if layer < math.floor(self.mix_alpha * self.n_layers) else "pre"
        return self.norm_placement

    def replace(self, **changes) -> "Architecture":
        return dataclasses.replace(self, **changes)


__all__ = ["Architecture"]
