"""Attention sinks and "no-op" heads, on any HookedRootModule (toy Transformer, HookedTransformer).

"Quantizable Transformers: Removing Outliers by Helping Attention Heads Do Nothing" (Bondarenko et al.
2023): a head that has nothing to add puts (almost) all its attention on a low-information key — the
first token, a delimiter — whose value vector is small, so its update A·V is close to zero. Two
numbers per head say whether it does that:

- ``sink_mass`` = mean over (batch, query) of Σ_{k ∈ S} A[q, k], S the sink keys. Sinks are positions
  (``sink_positions``, default the first token) or, with ``sink_tokens``, every key holding one of those
  token ids (delimiters). Queries at or before the first sink key are left out: under a causal mask
  query 0 can only attend to key 0, which says nothing about the head.
- ``value_norms=True`` adds ``sink_value_norm`` = mean ‖v_k‖ over sink keys, ``other_value_norm`` = mean
  ‖v_k‖ over the other keys (v from ``blocks.l.attn.hook_v``), and their ratio ``value_norm_ratio``
  (≪ 1 with a high sink mass: a no-op head).
"""

from __future__ import annotations

from typing import Iterable

import pandas as pd
import torch
from jaxtyping import Shaped
from torch import Tensor

from ._common import forward_kwargs, n_layers


@torch.no_grad()
def attention_sinks(model, inputs: Shaped[Tensor, "batch pos *d_input"], sink_positions: tuple[int, ...] = (0,),
                    sink_tokens: Iterable[int] | None = None,
                    value_norms: bool = False, **kwargs) -> pd.DataFrame:
    """Tidy frame (layer, head, quantity, value) with ``sink_mass`` per head (and the value norms if asked).

    ``sink_tokens`` (token-id inputs only) replaces ``sink_positions``: the sink keys are then the
    positions holding those tokens, which may differ between sequences."""
    L = n_layers(model)
    patterns = [f"blocks.{layer}.attn.hook_pattern" for layer in range(L)]
    values = [f"blocks.{layer}.attn.hook_v" for layer in range(L)] if value_norms else []
    _, cache = model.run_with_cache(inputs, names_filter=patterns + values,
                                    **forward_kwargs(model, kwargs, need_pattern=True))
    B, _, T, _ = cache[patterns[0]].shape
    sink, query_ok = _sink_masks(inputs, sink_positions, sink_tokens, B, T)
    if value_norms and sink.all():
        raise ValueError("every key is a sink: the value-norm comparison needs other keys")
    rows = []
    for layer in range(L):
        pattern = cache[patterns[layer]].double()  # [batch, head, query, key]
        mass = (pattern * sink[:, None, None, :]).sum(-1)  # [batch, head, query]
        weight = query_ok[:, None, :].expand_as(mass)
        mass = (mass * weight).sum(dim=(0, 2)) / weight.sum(dim=(0, 2))
        rows += [(layer, h, "sink_mass", float(m)) for h, m in enumerate(mass)]
        if value_norms:
            norms = _value_norms(cache[values[layer]], pattern.shape[1])  # [batch, key, head]
            in_sink = sink[:, :, None].expand_as(norms)
            on = (norms * in_sink).sum(dim=(0, 1)) / in_sink.sum(dim=(0, 1))
            off = (norms * ~in_sink).sum(dim=(0, 1)) / (~in_sink).sum(dim=(0, 1))
            for h in range(len(on)):
                rows += [(layer, h, "sink_value_norm", float(on[h])), (layer, h, "other_value_norm", float(off[h])),
                         (layer, h, "value_norm_ratio", float(on[h] / off[h]))]
    return pd.DataFrame(rows, columns=["layer", "head", "quantity", "value"])


def _sink_masks(inputs, sink_positions, sink_tokens, B: int, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sink [batch, key] bool, informative query [batch, query] bool); refuses an empty selection."""
    if sink_tokens is not None:
        if not (isinstance(inputs, torch.Tensor) and inputs.dtype in (torch.int64, torch.int32)):
            raise ValueError("sink_tokens needs token-id inputs [batch, pos]; use sink_positions for other inputs")
        sink = torch.isin(inputs, torch.as_tensor(list(sink_tokens), dtype=inputs.dtype))
        where = f"sink_tokens={tuple(sink_tokens)}"
    else:
        if not sink_positions or any(not 0 <= p < T for p in sink_positions):
            raise ValueError(f"sink_positions={tuple(sink_positions)} is not allowed: positions in [0, {T})")
        sink = torch.zeros(B, T, dtype=torch.bool)
        sink[:, list(sink_positions)] = True
        where = f"sink_positions={tuple(sink_positions)}"
    positions = torch.arange(T)
    # The first query after the last sink position (positions) or after the sequence's first sink token.
    if sink_tokens is None:
        first_query = torch.full((B,), max(sink_positions) + 1)
    else:
        first_query = torch.where(sink.any(1), sink.float().argmax(1) + 1, torch.full((B,), T))
    query_ok = positions[None, :] >= first_query[:, None]
    if not query_ok.any():
        raise ValueError(f"no query comes after a sink key ({where}, sequence length {T}): nothing to measure")
    return sink, query_ok


def _value_norms(v: torch.Tensor, n_heads: int) -> torch.Tensor:
    """‖v‖ per (batch, key, head) from hook_v [batch, pos, kv_head, d_head]; grouped-query models share
    one value head among n_heads / kv_heads query heads."""
    norms = v.double().norm(dim=-1)
    kv_heads = norms.shape[-1]
    return norms.repeat_interleave(n_heads // kv_heads, dim=-1) if kv_heads != n_heads else norms


__all__ = ["attention_sinks"]
