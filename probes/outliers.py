"""Outliers: massive activations, kurtosis, attention sinks.

- Massive activations ("Massive Activations in Large Language Models", Sun et al. 2024): a few
  entries of a hidden state far above the rest, at fixed dimensions and specific tokens. Criterion
  (configurable): |x| > ``abs_threshold`` (100) and |x| > ``rel_threshold`` (1000) × the median |x| of
  that layer's hidden states.
- Kurtosis ("Quantizable Transformers: Removing Outliers by Helping Attention Heads Do Nothing",
  Bondarenko et al. 2023): per token, E[(x − μ)⁴]/σ⁴ over the d_model coordinates (3 for a Gaussian),
  averaged over tokens; with the infinity norm max|x|.
- Attention sinks / "no-op" heads (same paper): in ``probes.attention_sinks_noop`` (re-exported here).
"""

from __future__ import annotations

import pandas as pd
import torch
from jaxtyping import Float, Shaped
from torch import Tensor

from ._common import forward_kwargs, resid_hook_names
from .attention_sinks_noop import attention_sinks  # noqa: F401  (re-exported: its former home)


def kurtosis(x: Float[Tensor, "*batch d"]) -> Float[Tensor, "*batch"]:
    """Per-vector kurtosis E[(x − μ)⁴]/σ⁴ over the last axis (population moments)."""
    x = x.double()
    c = x - x.mean(-1, keepdim=True)
    return c.pow(4).mean(-1) / c.pow(2).mean(-1).pow(2)


def outlier_stats(acts: dict[str, Float[Tensor, "batch pos d"]], abs_threshold: float = 100.0,
                  rel_threshold: float = 1000.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """For named hidden states [batch, pos, d] (in layer order): a per-layer frame (layer, hook,
    quantity, value) with max_abs, median_abs, max_to_median, kurtosis, n_massive, and a frame of the
    massive entries themselves (layer, hook, batch, pos, dim, value, ratio_to_median)."""
    rows, hits = [], []
    for layer, (name, x) in enumerate(acts.items()):
        a = x.detach().double().abs()
        median = float(a.median())
        massive = (a > abs_threshold) & (a > rel_threshold * median)
        rows += [
            (layer, name, "max_abs", float(a.max())),
            (layer, name, "median_abs", median),
            (layer, name, "max_to_median", float(a.max()) / median if median > 0 else float("inf")),
            (layer, name, "kurtosis", float(kurtosis(x.detach()).mean())),
            (layer, name, "n_massive", float(massive.sum())),
        ]
        for b, p, d in massive.nonzero().tolist():
            v = float(x[b, p, d])
            hits.append((layer, name, b, p, d, v, abs(v) / median))
    per_layer = pd.DataFrame(rows, columns=["layer", "hook", "quantity", "value"])
    massive_df = pd.DataFrame(hits, columns=["layer", "hook", "batch", "pos", "dim", "value", "ratio_to_median"])
    return per_layer, massive_df


@torch.no_grad()
def massive_activations(model, inputs: Shaped[Tensor, "batch pos *d_input"], abs_threshold: float = 100.0,
                        rel_threshold: float = 1000.0,
                        hook_names: list[str] | None = None, **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``outlier_stats`` of the residual stream x_0 … x_L (or of ``hook_names``) of any HookedRootModule."""
    names = hook_names or resid_hook_names(model)
    _, cache = model.run_with_cache(inputs, names_filter=names, **forward_kwargs(model, kwargs))
    return outlier_stats({n: cache[n] for n in names}, abs_threshold, rel_threshold)
