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


def clipped_softmax(clip_gamma: float, clip_zeta: float) -> bool:
    """True when (γ, ζ) differ from (0, 1), where the clipped softmax is the plain softmax."""
    return clip_gamma != 0.0 or clip_zeta != 1.0


def deepnorm_alpha(norm_placement: str, n_layers: int) -> float:
    """DeepNorm's residual weight α = (2L)^{1/4}; 1 for every other placement."""
    return (2.0 * n_layers) ** 0.25 if norm_placement == "deepnorm" else 1.0


def deepnorm_beta(norm_placement: str, n_layers: int) -> float:
    """DeepNorm's init gain β = (8L)^{-1/4} on W_V, W_O and the MLP's weights; 1 for every other placement."""
    return (8.0 * n_layers) ** -0.25 if norm_placement == "deepnorm" else 1.0


def lns_scale(norm_placement: str, layer: int) -> float:
    """LayerNorm-Scaling's factor 1/√ℓ on block ``layer``'s norm outputs (ℓ = layer + 1); 1 otherwise."""
    return 1.0 / math.sqrt(layer + 1) if norm_placement == "lns" else 1.0


def mix_post_blocks(mix_alpha: float, n_layers: int) -> int:
    """How many leading blocks Mix-LN makes Post-LN: ⌊α·L⌋."""
    return math.floor(mix_alpha * n_layers)


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
        return clipped_softmax(self.clip_gamma, self.clip_zeta)

    @property
    def deepnorm_alpha(self) -> float:
        return deepnorm_alpha(self.norm_placement, self.n_layers)

    @property
    def deepnorm_beta(self) -> float:
        return deepnorm_beta(self.norm_placement, self.n_layers)

    @property
    def residual_writers(self) -> int:
        return self.n_layers * (1 if self.attn_only else 2)

    def lns_scale(self, layer: int) -> float:
        return lns_scale(self.norm_placement, layer)

    def block_placement(self, layer: int) -> str:
        """"mix" resolves to "post" for the first ⌊α·L⌋ blocks and "pre" after; others are as given."""
        if self.norm_placement == "mix":
            return "post" if layer < mix_post_blocks(self.mix_alpha, self.n_layers) else "pre"
        return self.norm_placement

    def replace(self, **changes) -> "Architecture":
        return dataclasses.replace(self, **changes)


__all__ = ["Architecture", "clipped_softmax", "deepnorm_alpha", "deepnorm_beta", "lns_scale", "mix_post_blocks"]
