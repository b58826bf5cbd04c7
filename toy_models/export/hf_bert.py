"""Export a Post-LN toy transformer to Hugging Face's ``BertForTokenClassification``.

BERT ("BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding", Devlin et
al. 2019) is the toy's ``norm_placement='post'`` with LayerNorm: the embedding LayerNorm (toy
``embed_norm``, on by default for "post"), then per block x ← LN₁(x + Attn(x)); x ← LN₂(x + MLP(x)),
no final norm. The target class is ``BertForTokenClassification`` with ``num_labels = d_vocab_out``:
its ``classifier`` is one Linear on the last hidden state, exactly the toy's x W_U + b_U. The
masked-LM head (``BertForMaskedLM``) would add a dense + activation + LayerNorm transform the toy
does not have.

Token-type embeddings are zero (one type), so they add nothing. The toy's ``padding_mask`` is BERT's
``attention_mask`` (1 = real token; padded keys are not attended to). ``attention_dir='causal'``
maps to ``is_decoder=True``, the causal mode of the same class. Absent biases or gains are written as
zeros or ones, fixed position tables (sinusoidal, one-hot, none) as ``position_embeddings``.
"""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForTokenClassification

from .errors import (BERT, check_exportable, gain_and_bias, heads_in_out, or_zeros, position_table,
                     write_all_parameters)

# toy act_fn → BERT hidden_act ("gelu_pytorch_tanh" is the same torch kernel as the toy's gelu_tanh)
ACTIVATIONS = {"gelu_tanh": "gelu_pytorch_tanh", "gelu": "gelu", "relu": "relu", "silu": "silu"}


@torch.no_grad()
def to_hf_bert(model):
    """A ``transformers.BertForTokenClassification`` in eval mode computing the same logits as ``model``
    (``hf(tokens, attention_mask=padding_mask).logits``).

    Raises ``ExportError`` for a config BERT cannot express (see ``errors.SUPPORT``).
    """
    check_exportable(model, BERT)
    cfg = model.cfg
    dtype = getattr(torch, cfg.dtype)
    hf_cfg = BertConfig(
        vocab_size=cfg.d_vocab, hidden_size=cfg.d_model, num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads, intermediate_size=cfg.mlp_dim, hidden_act=ACTIVATIONS[cfg.act_fn],
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0,
        max_position_embeddings=cfg.n_ctx, type_vocab_size=1, layer_norm_eps=cfg.norm_eps,
        is_decoder=cfg.attention_dir == "causal", use_cache=False, num_labels=cfg.vocab_out, pad_token_id=None,
    )
    hf = BertForTokenClassification(hf_cfg).to(dtype)
    write_all_parameters(hf, _bert_parameters(model, dtype), BERT)
    return hf.eval()


def _bert_parameters(model, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    cfg, d = model.cfg, model.cfg.d_model
    pos = position_table(model, dtype)
    emb = "bert.embeddings."
    params = {emb + "word_embeddings.weight": model.embed.W_E, emb + "position_embeddings.weight": pos,
              emb + "token_type_embeddings.weight": torch.zeros(1, d, dtype=dtype)}
    params[emb + "LayerNorm.weight"], params[emb + "LayerNorm.bias"] = gain_and_bias(model.ln_embed, d, dtype)
    head_bias = (cfg.n_heads, cfg.head_dim)
    for i, block in enumerate(model.blocks):
        attn, mlp, prefix = block.attn, block.mlp, f"bert.encoder.layer.{i}."
        for name, W, b in (("query", attn.W_Q, attn.b_Q), ("key", attn.W_K, attn.b_K), ("value", attn.W_V, attn.b_V)):
            params[prefix + f"attention.self.{name}.weight"] = heads_in_out(W).T  # nn.Linear stores [out, in]
            params[prefix + f"attention.self.{name}.bias"] = or_zeros(b, head_bias, dtype).reshape(-1)
        params[prefix + "attention.output.dense.weight"] = attn.W_O.reshape(-1, d).T
        params[prefix + "attention.output.dense.bias"] = or_zeros(attn.b_O, (d,), dtype)
        ln1 = gain_and_bias(block.ln1, d, dtype)
        params[prefix + "attention.output.LayerNorm.weight"], params[prefix + "attention.output.LayerNorm.bias"] = ln1
        params[prefix + "intermediate.dense.weight"] = mlp.W_in.T
        params[prefix + "intermediate.dense.bias"] = or_zeros(mlp.b_in, (cfg.mlp_dim,), dtype)
        params[prefix + "output.dense.weight"] = mlp.W_out.T
        params[prefix + "output.dense.bias"] = or_zeros(mlp.b_out, (d,), dtype)
        params[prefix + "output.LayerNorm.weight"], params[prefix + "output.LayerNorm.bias"] = gain_and_bias(block.ln2, d, dtype)
    params["classifier.weight"] = model.unembed.W_U.T
    params["classifier.bias"] = or_zeros(model.unembed.b_U, (cfg.vocab_out,), dtype)
    return params
