"""Export a Pre-LN toy transformer to Hugging Face's ``GPT2LMHeadModel``.

GPT-2 ("Language Models are Unsupervised Multitask Learners", Radford et al. 2019) is the toy's
``norm_placement='pre'`` with LayerNorm, a final LayerNorm, absolute positions, a plain MLP and causal
softmax attention: x ← x + Attn(LN₁(x)); x ← x + MLP(LN₂(x)); logits = LN_f(x) W_U.

Where the toy lacks a piece GPT-2 always has, the export writes the identity: biases off → zero
biases, no norm gain → gain 1, sinusoidal or one-hot positions → that fixed table in ``wpe``, no
positions → a zero ``wpe``. GPT-2's ``lm_head`` has no bias, so the toy's ``b_U`` must be zero (or
absent); ``tie_word_embeddings=False`` keeps W_U and W_E separate. GPT-2's ``Conv1D`` stores
weights as [in, out] (y = x W + b), the toy's own layout, so only the heads are flattened.
"""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from .errors import (GPT2, check_exportable, gain_and_bias, heads_in_out, or_zeros, position_table,
                     write_all_parameters)

# toy act_fn → GPT-2 activation_function ("gelu_new" is GPT-2's tanh approximation)
ACTIVATIONS = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu", "silu": "silu"}


@torch.no_grad()
def to_hf_gpt2(model):
    """A ``transformers.GPT2LMHeadModel`` in eval mode computing the same logits as ``model``.

    Raises ``ExportError`` for a config GPT-2 cannot express (see ``errors.SUPPORT``).
    """
    check_exportable(model, GPT2)
    cfg = model.cfg
    dtype = getattr(torch, cfg.dtype)
    hf_cfg = GPT2Config(
        vocab_size=cfg.d_vocab, n_positions=cfg.n_ctx, n_embd=cfg.d_model, n_layer=cfg.n_layers,
        n_head=cfg.n_heads, n_inner=cfg.mlp_dim, activation_function=ACTIVATIONS[cfg.act_fn],
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=cfg.norm_eps,
        scale_attn_weights=cfg.scale != 1.0 or cfg.head_dim == 1, tie_word_embeddings=False,
        use_cache=False, bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )
    hf = GPT2LMHeadModel(hf_cfg).to(dtype)
    write_all_parameters(hf, _gpt2_parameters(model, dtype), GPT2)
    return hf.eval()


def _gpt2_parameters(model, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    cfg, d = model.cfg, model.cfg.d_model
    pos = position_table(model, dtype)
    params = {"transformer.wte.weight": model.embed.W_E, "transformer.wpe.weight": pos}
    for i, block in enumerate(model.blocks):
        attn, mlp, prefix = block.attn, block.mlp, f"transformer.h.{i}."
        params[prefix + "ln_1.weight"], params[prefix + "ln_1.bias"] = gain_and_bias(block.ln1, d, dtype)
        params[prefix + "ln_2.weight"], params[prefix + "ln_2.bias"] = gain_and_bias(block.ln2, d, dtype)
        params[prefix + "attn.c_attn.weight"] = torch.cat([heads_in_out(W) for W in (attn.W_Q, attn.W_K, attn.W_V)], 1)
        params[prefix + "attn.c_attn.bias"] = torch.cat(
            [or_zeros(b, (cfg.n_heads, cfg.head_dim), dtype).reshape(-1) for b in (attn.b_Q, attn.b_K, attn.b_V)])
        params[prefix + "attn.c_proj.weight"] = attn.W_O.reshape(-1, d)
        params[prefix + "attn.c_proj.bias"] = or_zeros(attn.b_O, (d,), dtype)
        params[prefix + "mlp.c_fc.weight"] = mlp.W_in
        params[prefix + "mlp.c_fc.bias"] = or_zeros(mlp.b_in, (cfg.mlp_dim,), dtype)
        params[prefix + "mlp.c_proj.weight"] = mlp.W_out
        params[prefix + "mlp.c_proj.bias"] = or_zeros(mlp.b_out, (d,), dtype)
    params["transformer.ln_f.weight"], params["transformer.ln_f.bias"] = gain_and_bias(model.ln_final, d, dtype)
    params["lm_head.weight"] = model.unembed.W_U.T
    return params
