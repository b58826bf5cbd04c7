"""What each export target can express, and the refusal raised for anything else.

``SUPPORT`` is the one table of what each target accepts, field by field; ``check_exportable``
derives both the decision and the message from it, so the two cannot drift apart. A field a target
does not list is one it accepts with any value. The values checked are the model's *effective*
options (``export_options``): ``embed_norm`` resolved from the placement default, ``d_head`` and
``attn_scale`` resolved to numbers, and each bias flag True only if that bias exists **and** is
nonzero somewhere — a bias that is exactly zero computes the same function as no bias, so a target
without that bias (GPT-2's ``lm_head``, Gemma 2's MLP) still takes a model whose bias is zero.

``write_all_parameters`` is the other guard: an export must write every parameter the target has,
so a target parameter left at its random initialization is an error, never a silent mismatch.
The small layout helpers at the end (identity gain/bias, flattened heads) are shared by every exporter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

Options = dict[str, Any]

GPT2, BERT, GEMMA2, TRANSFORMER_LENS = "GPT-2", "BERT", "Gemma 2", "TransformerLens"
TARGETS = (GPT2, BERT, GEMMA2, TRANSFORMER_LENS)


class ExportError(ValueError):
    """A toy config that the named target cannot express.

    ``mismatches`` holds one ``(field, value, needs, supporting_targets)`` per option that does not fit.
    """

    def __init__(self, target: str, mismatches: list[tuple[str, Any, str, list[str]]]):
        self.target, self.mismatches = target, mismatches
        lines = [
            f"{field}={value!r} cannot be exported to {target} (needs {needs}); targets that support "
            f"{field}={value!r}: {', '.join(others) if others else 'none'}"
            for field, value, needs, others in mismatches
        ]
        super().__init__("; ".join(lines))


@dataclass(frozen=True)
class Rule:
    """Which values of one field a target accepts; ``needs`` says so in words (given the options)."""

    accepts: Callable[[Any, Options], bool]
    needs: Callable[[Options], str]


def one_of(*allowed: Any) -> Rule:
    return Rule(lambda v, o: v in allowed, lambda o: " or ".join(map(repr, allowed)))


_ABSOLUTE_POS = one_of("learned", "sinusoidal", "onehot", "none")  # a fixed or learned table added to x
_HEADS_FILL_D_MODEL = Rule(lambda v, o: v * o["n_heads"] == o["d_model"],
                           lambda o: f"d_model / n_heads = {o['d_model'] / o['n_heads']:g}")
_SAME_VOCAB = Rule(lambda v, o: v == o["d_vocab"], lambda o: f"d_vocab={o['d_vocab']} (one vocabulary in and out)")
_DEFAULT_SCALE = Rule(lambda v, o: v == math.sqrt(o["d_head"]),
                      lambda o: f"√d_head = {math.sqrt(o['d_head']):g}")
# Clipped softmax and the attention gate (Bondarenko et al.) exist in none of the target formats.
_PLAIN_ATTENTION = {"clip_gamma": one_of(0.0), "clip_zeta": one_of(1.0), "attn_gate": one_of(False)}
_HF_COMMON = {"input_kind": one_of("tokens"), "attention": one_of("softmax"), "attn_only": one_of(False),
              **_PLAIN_ATTENTION}

SUPPORT: dict[str, dict[str, Rule]] = {
    GPT2: {
        **_HF_COMMON,
        "norm_placement": one_of("pre"), "norm_kind": one_of("layernorm"), "embed_norm": one_of(False),
        "attention_dir": one_of("causal"), "pos": _ABSOLUTE_POS, "gated_mlp": one_of(False),
        "d_head": _HEADS_FILL_D_MODEL, "d_vocab_out": _SAME_VOCAB, "unembed_bias": one_of(False),
        # scale_attn_weights=True divides by √d_head, False by 1.
        "attn_scale": Rule(lambda v, o: _DEFAULT_SCALE.accepts(v, o) or v == 1.0,
                           lambda o: f"√d_head = {math.sqrt(o['d_head']):g} or 1"),
    },
    BERT: {
        **_HF_COMMON,
        "norm_placement": one_of("post"), "norm_kind": one_of("layernorm"), "embed_norm": one_of(True),
        "pos": _ABSOLUTE_POS, "gated_mlp": one_of(False), "d_head": _HEADS_FILL_D_MODEL,
        "attn_scale": _DEFAULT_SCALE,
    },
    GEMMA2: {
        **_HF_COMMON,
        "norm_placement": one_of("peri"), "norm_kind": one_of("rmsnorm"), "embed_norm": one_of(False),
        "attention_dir": one_of("causal"), "pos": one_of("rotary"), "gated_mlp": one_of(True),
        "mlp_bias": one_of(False), "unembed_bias": one_of(False), "d_vocab_out": _SAME_VOCAB,
        # query_pre_attn_scalar is typed int: scores are divided by √n for an integer n.
        "attn_scale": Rule(lambda v, o: sqrt_of_integer(v) is not None,
                           lambda o: "√n for a positive integer n (query_pre_attn_scalar is an int)"),
        # Gemma2Config validates hidden_size % num_attention_heads == 0 even though head_dim is free.
        "n_heads": Rule(lambda v, o: o["d_model"] % v == 0, lambda o: f"a divisor of d_model={o['d_model']}"),
    },
    TRANSFORMER_LENS: {
        "input_kind": one_of("tokens"), "attention": one_of("softmax"), "embed_norm": one_of(False),
        **_PLAIN_ATTENTION, "norm_placement": one_of("none", "pre", "peri"),
        # Peri-LN's output norm is always an RMSNorm in TransformerLens (use_normalization_before_and_after).
        "norm_kind": Rule(lambda v, o: o["norm_placement"] == "none" or v == "rmsnorm"
                          or (v == "layernorm" and o["norm_placement"] != "peri"),
                          lambda o: "'rmsnorm'" if o["norm_placement"] == "peri" else "'layernorm' or 'rmsnorm'"),
        # GatedMLP adds b_in after the gate product: act(x W_gate)·(x W_in) + b_in.
        "mlp_bias": Rule(lambda v, o: not (v and o["gated_mlp"]), lambda o: "False (or zero biases) with gated_mlp=True"),
    },
}


def sqrt_of_integer(scale: float) -> int | None:
    """The positive integer n with √n == scale exactly (as float64), else None."""
    n = round(scale * scale)
    return n if n >= 1 and math.sqrt(n) == scale else None


def export_options(model: nn.Module) -> Options:
    """The model's config as the support table reads it (effective values; see the module docstring)."""
    cfg = model.cfg
    options = cfg.to_dict()
    options.update(embed_norm=cfg.has_embed_norm, d_head=cfg.head_dim, attn_scale=cfg.scale,
                   d_vocab_out=cfg.vocab_out, d_mlp=cfg.mlp_dim)
    options["attn_bias"] = _any_nonzero(p for b in model.blocks for p in (b.attn.b_Q, b.attn.b_K, b.attn.b_V, b.attn.b_O))
    options["mlp_bias"] = _any_nonzero(p for b in model.blocks if b.mlp is not None for p in (b.mlp.b_in, b.mlp.b_out))
    options["unembed_bias"] = _any_nonzero([model.unembed.b_U])
    return options


def check_exportable(model: nn.Module, target: str) -> Options:
    """Raise ``ExportError`` naming every option of ``model`` that ``target`` cannot express."""
    options = export_options(model)
    mismatches = []
    for field, rule in SUPPORT[target].items():
        value = options[field]
        if not rule.accepts(value, options):
            others = [t for t in TARGETS if t != target and (field not in SUPPORT[t] or SUPPORT[t][field].accepts(value, options))]
            mismatches.append((field, value, rule.needs(options), others))
    if mismatches:
        raise ExportError(target, mismatches)
    return options


@torch.no_grad()
def write_all_parameters(target: nn.Module, params: dict[str, torch.Tensor], target_name: str) -> None:
    """Copy ``params`` into ``target`` (cast to its dtype); every parameter of ``target`` must be written."""
    names = {name for name, _ in target.named_parameters()}
    missing, unknown = sorted(names - params.keys()), sorted(params.keys() - names)
    if missing or unknown:
        raise RuntimeError(f"export to {target_name} is incomplete: unwritten {missing}, unknown {unknown}")
    state = target.state_dict()
    for name, tensor in params.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise RuntimeError(f"export to {target_name}: {name} has shape {tuple(state[name].shape)}, "
                               f"got {tuple(tensor.shape)}")
        state[name] = tensor.detach().to(state[name].dtype).clone()
    target.load_state_dict(state, strict=True)


def _any_nonzero(tensors) -> bool:
    return any(t is not None and bool(t.detach().ne(0).any()) for t in tensors)


# ---------------------------------------------------------------------- layout helpers every exporter uses
def gain_and_bias(norm, d: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """A toy ``Norm``'s gain and bias, with the identity (1, 0) where the toy has none."""
    gain = norm.w if norm.w is not None else torch.ones(d, dtype=dtype)
    bias = norm.b if norm.b is not None else torch.zeros(d, dtype=dtype)
    return gain, bias


def or_zeros(bias: torch.Tensor | None, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    return bias if bias is not None else torch.zeros(shape, dtype=dtype)


def position_table(model, dtype: torch.dtype) -> torch.Tensor:
    """The absolute position table [n_ctx, d_model] the toy adds (learned, sinusoidal or one-hot), or
    zeros when it adds none: what a target with a learned position embedding must hold."""
    cfg = model.cfg
    return or_zeros(model.pos_embed.W_pos if model.pos_embed is not None else None, (cfg.n_ctx, cfg.d_model), dtype)


def heads_in_out(W: torch.Tensor) -> torch.Tensor:
    """Per-head [head, d_model, d_head] → one [d_model, head·d_head] matrix, heads in contiguous blocks
    (the layout every Hugging Face attention reshapes with ``view(..., n_heads, head_dim)``)."""
    return W.permute(1, 0, 2).reshape(W.shape[1], -1)
