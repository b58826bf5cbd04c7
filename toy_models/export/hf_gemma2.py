"""Export a Peri-LN RMSNorm toy transformer to Hugging Face's ``Gemma2ForCausalLM``.

Gemma 2 ("Gemma 2: Improving Open Language Models at a Practical Size", Gemma Team 2024) normalizes
each sublayer's input and output — the Peri-LN of "Peri-LN: Revisiting Layer Normalization in the
Transformer Architecture" (Kim et al. 2025): x ← x + RMS_out(F(RMS_in(x))), final RMSNorm, with
rotary positions (half-split ``rotate_half``, the toy's convention), a gated GeGLU MLP
down(act(gate(x)) ⊙ up(x)) and causal attention. Gemma 2's extra options are switched off: no
attention or final-logit soft-capping, no sliding window (every layer
``full_attention``; ``sliding_window`` is set to n_ctx only because Gemma2Model builds that mask anyway), as many
key/value heads as query heads, untied ``lm_head``.

Three reparametrizations, each exact up to one rounding:

- Gemma's RMSNorm multiplies by (1 + weight): weight = w − 1 (w = 1 where the toy has no gain).
- Gemma multiplies embeddings by s = √d_model cast to the dtype: W_E is written as W_E / s, so
  s · fl(W_E / s) = W_E (1 + δ), |δ| ≤ 2u (u = 2⁻²⁴ in float32: ≈ 1.2e-7 relative).
- scores are q·k · query_pre_attn_scalar^(−1/2): query_pre_attn_scalar = attn_scale², which Gemma2Config
  types as an int, so attn_scale must be √n for an integer n (the default √d_head always is).

Numerics that no export can change: Gemma 2 computes RMSNorm, the softmax and the rotary angles
(``inv_freq``, position · inv_freq) in float32 even for a float64 model, so a float64 export agrees
only to about float32 precision.
"""

from __future__ import annotations

import torch
from transformers import Gemma2Config, Gemma2ForCausalLM

from .errors import GEMMA2, check_exportable, gain_and_bias, heads_in_out, sqrt_of_integer, write_all_parameters

# toy act_fn → Gemma hidden_activation ("gelu_pytorch_tanh" is Gemma's own GeGLU activation)
ACTIVATIONS = {"gelu_tanh": "gelu_pytorch_tanh", "gelu": "gelu", "relu": "relu", "silu": "silu"}


@torch.no_grad()
def to_hf_gemma2(model):
    """A ``transformers.Gemma2ForCausalLM`` in eval mode computing the same logits as ``model``.

    Raises ``ExportError`` for a config Gemma 2 cannot express (see ``errors.SUPPORT``).
    """
    check_exportable(model, GEMMA2)
    cfg = model.cfg
    dtype = getattr(torch, cfg.dtype)
    hf_cfg = Gemma2Config(
        vocab_size=cfg.d_vocab, hidden_size=cfg.d_model, intermediate_size=cfg.mlp_dim,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.n_heads,
        head_dim=cfg.head_dim, hidden_activation=ACTIVATIONS[cfg.act_fn], max_position_embeddings=cfg.n_ctx,
        rms_norm_eps=cfg.norm_eps, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": float(cfg.rotary_base)},
        attention_bias=cfg.attn_bias, attention_dropout=0.0, query_pre_attn_scalar=sqrt_of_integer(cfg.scale),
        sliding_window=cfg.n_ctx, layer_types=["full_attention"] * cfg.n_layers,
        final_logit_softcapping=None, attn_logit_softcapping=None,
        use_cache=False, pad_token_id=None, bos_token_id=None, eos_token_id=None,
    )
    hf = Gemma2ForCausalLM(hf_cfg).to(dtype)
    embed_scale = hf.model.embed_tokens.embed_scale.to(dtype)  # the very value forward() multiplies by
    write_all_parameters(hf, _gemma2_parameters(model, dtype, embed_scale), GEMMA2)
    return hf.eval()


def _gemma2_parameters(model, dtype: torch.dtype, embed_scale: torch.Tensor) -> dict[str, torch.Tensor]:
    cfg, d = model.cfg, model.cfg.d_model

    def weight(norm):  # Gemma's RMSNorm scales by (1 + weight)
        return gain_and_bias(norm, d, dtype)[0] - 1.0

    params = {"model.embed_tokens.weight": model.embed.W_E / embed_scale, "model.norm.weight": weight(model.ln_final),
              "lm_head.weight": model.unembed.W_U.T}
    for i, block in enumerate(model.blocks):
        attn, mlp, prefix = block.attn, block.mlp, f"model.layers.{i}."
        params[prefix + "input_layernorm.weight"] = weight(block.ln1)
        params[prefix + "post_attention_layernorm.weight"] = weight(block.ln1_post)
        params[prefix + "pre_feedforward_layernorm.weight"] = weight(block.ln2)
        params[prefix + "post_feedforward_layernorm.weight"] = weight(block.ln2_post)
        for name, W, b in (("q_proj", attn.W_Q, attn.b_Q), ("k_proj", attn.W_K, attn.b_K), ("v_proj", attn.W_V, attn.b_V)):
            params[prefix + f"self_attn.{name}.weight"] = heads_in_out(W).T  # nn.Linear stores [out, in]
            if cfg.attn_bias:
                params[prefix + f"self_attn.{name}.bias"] = b.reshape(-1)
        params[prefix + "self_attn.o_proj.weight"] = attn.W_O.reshape(-1, d).T
        if cfg.attn_bias:
            params[prefix + "self_attn.o_proj.bias"] = attn.b_O
        params[prefix + "mlp.gate_proj.weight"] = mlp.W_gate.T
        params[prefix + "mlp.up_proj.weight"] = mlp.W_in.T
        params[prefix + "mlp.down_proj.weight"] = mlp.W_out.T
    return params
