"""Shared helpers for the probes: layer count and forward arguments of any HookedRootModule."""

from __future__ import annotations

from typing import Any

from toy_models.model import Transformer


def n_layers(model) -> int:
    cfg = getattr(model, "cfg", None)
    if cfg is None or not hasattr(cfg, "n_layers"):
        raise ValueError(f"model of type {type(model).__name__} has no cfg.n_layers; the probes need a "
                         "TransformerLens-style model (toy Transformer, HookedTransformer)")
    return int(cfg.n_layers)


def forward_kwargs(model, kwargs: dict[str, Any], need_pattern: bool = False) -> dict[str, Any]:
    """On the toy model, reading attention patterns needs the reference path (the kernel path never
    builds them); other models take the keyword arguments as given."""
    if need_pattern and isinstance(model, Transformer) and "attn_path" not in kwargs:
        return {**kwargs, "attn_path": "reference"}
    return kwargs


def resid_hook_names(model) -> list[str]:
    """The residual stream at each layer boundary: x_0 … x_L (block l's input, then the last output)."""
    L = n_layers(model)
    return [f"blocks.{layer}.hook_resid_pre" for layer in range(L)] + [f"blocks.{L - 1}.hook_resid_post"]
