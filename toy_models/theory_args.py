"""A model config as the plain arguments that ``theory``'s functions take.

``theory`` sits below ``toy_models`` and never reads a ``TransformerConfig``: its functions take
numbers, names and arrays. This module states, once, which config fields (with their defaults
resolved) each theory reads.
"""

from __future__ import annotations

from theory.variance.architecture import Architecture

from .config import TransformerConfig


def variance_architecture(cfg: TransformerConfig) -> Architecture:
    """What ``theory.variance`` reads of ``cfg``: shapes, attention and norm options, init scheme."""
    return Architecture(
        n_layers=cfg.n_layers, d_model=cfg.d_model, n_heads=cfg.n_heads, d_head=cfg.head_dim, d_mlp=cfg.mlp_dim,
        attn_only=cfg.attn_only, gated_mlp=cfg.gated_mlp, act_fn=cfg.act_fn,
        attention=cfg.attention, attention_dir=cfg.attention_dir, attn_scale=cfg.scale, clip_gamma=cfg.clip_gamma,
        clip_zeta=cfg.clip_zeta, attn_gate=cfg.attn_gate, norm_placement=cfg.norm_placement,
        norm_kind=cfg.norm_kind, norm_eps=cfg.norm_eps, mix_alpha=cfg.mix_alpha, embed_norm=cfg.has_embed_norm,
        input_kind=cfg.input_kind, embed=cfg.embed, pos=cfg.pos, init=cfg.init, init_std=cfg.init_std,
    )


__all__ = ["variance_architecture"]
