"""Export a toy transformer to TransformerLens' ``HookedTransformer`` (TransformerLens 3.9).

What ``HookedTransformer`` expresses, and how each toy option maps onto ``HookedTransformerConfig``:

- norms: ``norm_placement='none'`` → ``normalization_type=None`` (no final norm either, as in the toy);
  ``'pre'`` → ``'LN'``/``'RMS'`` when the toy norm has a gain or bias (absent ones written as 1 and 0),
  ``'LNPre'``/``'RMSPre'`` when it has neither; ``'peri'`` → the same plus
  ``use_normalization_before_and_after=True`` (Gemma 2's Peri-LN), whose output norms are always
  ``RMSNorm`` with a weight, hence RMSNorm only. No Post-LN or Mix-LN, and no embedding norm that
  matches the toy's (TransformerLens' ``post_embedding_ln`` normalizes W_E[t] before positions are added).
- positions: learned, sinusoidal, one-hot and none are all a fixed table in ``pos_embed.W_pos``
  (``'standard'``; none is the zero table); rotary → ``'rotary'`` with ``rotary_dim = d_head`` and
  the half-split convention (``rotary_adjacent_pairs=False``), base ``rotary_base``.
- attention: softmax only, ``attention_dir`` causal or bidirectional, scores divided by ``attn_scale``.
- MLP: plain or gated; TransformerLens' gated MLP adds b_in after the gate product
  (act(x W_gate) ⊙ (x W_in) + b_in, the toy's is act(x W_gate) ⊙ (x W_in + b_in)), so a gated MLP
  exports only with zero MLP biases. ``attn_only`` as is.

Two runtime differences no export can remove (TransformerLens 3.9): with an ``attention_mask``,
positions are counted over real tokens only (``get_offset_position_ids``), so padding agrees with
the toy's absolute positions only when it is on the right; and the mask is applied to the keys only
under causal attention — bidirectional attention ignores it.
"""

from __future__ import annotations

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from .errors import TRANSFORMER_LENS, check_exportable, gain_and_bias, or_zeros, position_table, write_all_parameters

# toy act_fn → TransformerLens act_fn ("gelu_pytorch_tanh" is the same torch kernel as the toy's gelu_tanh)
ACTIVATIONS = {"gelu_tanh": "gelu_pytorch_tanh", "gelu": "gelu", "relu": "relu", "silu": "silu"}


@torch.no_grad()
def to_hooked_transformer(model):
    """A ``transformer_lens.HookedTransformer`` in eval mode with ``model``'s weights, logits and
    (at the hook names both define) activations.

    Raises ``ExportError`` for a config TransformerLens cannot express (see ``errors.SUPPORT``).
    """
    check_exportable(model, TRANSFORMER_LENS)
    cfg = model.cfg
    dtype = getattr(torch, cfg.dtype)
    tl_cfg = HookedTransformerConfig(
        n_layers=cfg.n_layers, d_model=cfg.d_model, n_ctx=cfg.n_ctx, d_head=cfg.head_dim, n_heads=cfg.n_heads,
        d_mlp=None if cfg.attn_only else cfg.mlp_dim, d_vocab=cfg.d_vocab, d_vocab_out=cfg.vocab_out,
        act_fn=None if cfg.attn_only else ACTIVATIONS[cfg.act_fn], attn_only=cfg.attn_only,
        gated_mlp=cfg.gated_mlp, normalization_type=_normalization_type(cfg),
        use_normalization_before_and_after=cfg.norm_placement == "peri", eps=cfg.norm_eps,
        attention_dir=cfg.attention_dir, use_attn_scale=True, attn_scale=cfg.scale,
        positional_embedding_type="rotary" if cfg.pos == "rotary" else "standard",
        rotary_dim=cfg.head_dim if cfg.pos == "rotary" else None, rotary_base=cfg.rotary_base,
        rotary_adjacent_pairs=False, dtype=dtype, init_weights=False, default_prepend_bos=False,
    )
    tl = HookedTransformer(tl_cfg)
    write_all_parameters(tl, _tl_parameters(model, tl_cfg.normalization_type, dtype), TRANSFORMER_LENS)
    return tl.eval()


def _normalization_type(cfg) -> str | None:
    if cfg.norm_placement == "none":
        return None
    kind = "LN" if cfg.norm_kind == "layernorm" else "RMS"
    has_params = cfg.norm_gain or (cfg.norm_bias and cfg.norm_kind == "layernorm")
    return kind if has_params else kind + "Pre"


def _tl_parameters(model, normalization_type: str | None, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    cfg, d = model.cfg, model.cfg.d_model
    params = {"embed.W_E": model.embed.W_E, "unembed.W_U": model.unembed.W_U,
              "unembed.b_U": or_zeros(model.unembed.b_U, (cfg.vocab_out,), dtype)}
    if cfg.pos != "rotary":
        params["pos_embed.W_pos"] = position_table(model, dtype)

    def norm(name: str, toy_norm, with_params: bool) -> None:
        if not with_params:
            return
        gain, bias = gain_and_bias(toy_norm, d, dtype)
        params[name + ".w"] = gain
        if normalization_type == "LN" and not name.endswith("_post"):
            params[name + ".b"] = bias

    has_params = normalization_type in ("LN", "RMS")
    if cfg.has_final_norm:
        norm("ln_final", model.ln_final, has_params)
    head_bias = (cfg.n_heads, cfg.head_dim)
    for i, block in enumerate(model.blocks):
        attn, prefix = block.attn, f"blocks.{i}."
        for name in ("W_Q", "W_K", "W_V", "W_O"):
            params[prefix + "attn." + name] = getattr(attn, name)
        for name in ("b_Q", "b_K", "b_V"):
            params[prefix + "attn." + name] = or_zeros(getattr(attn, name), head_bias, dtype)
        params[prefix + "attn.b_O"] = or_zeros(attn.b_O, (d,), dtype)
        sublayers = [("ln1", block.ln1, block.ln1_post)]
        if block.mlp is not None:
            mlp = block.mlp
            sublayers.append(("ln2", block.ln2, block.ln2_post))
            params[prefix + "mlp.W_in"], params[prefix + "mlp.W_out"] = mlp.W_in, mlp.W_out
            params[prefix + "mlp.b_in"] = or_zeros(mlp.b_in, (cfg.mlp_dim,), dtype)
            params[prefix + "mlp.b_out"] = or_zeros(mlp.b_out, (d,), dtype)
            if mlp.W_gate is not None:
                params[prefix + "mlp.W_gate"] = mlp.W_gate
        for name, pre, post in sublayers:
            if pre is not None:
                norm(prefix + name, pre, has_params)
            if post is not None:  # TransformerLens' Peri output norm: always an RMSNorm with a weight
                norm(prefix + name + "_post", post, True)
    return params
