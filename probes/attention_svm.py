"""Probes of the attention-as-SVM study: what a trained attention layer selects, and where W(k) points.

"Transformers as Support Vector Machines" and "Max-Margin Token Selection in Attention Mechanism"
(Tarzanagh, Li, Thrampoulidis, Oymak, 2023) read a training run through a few quantities:

- ``attention_pattern``: the softmax over the tokens, read from the layer's ``hook_pattern`` hook on
  the toy transformer's reference path (the query slot of cross-attention dropped);
- over a trajectory W(k) [K, d, d]: ``correlation_curve`` ⟨W(k), W_svm⟩ / (‖W(k)‖ ‖W_svm‖),
  ``selected_mass`` (mean softmax mass on the selected tokens), ``norm_growth`` ‖W(k)‖_F and
  ``spectrum`` σ_i(W(k)) / σ_1(W(k)), from which ``theory.attention_svm.numerical_rank`` reads a rank.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float, Int
import torch


def attention_pattern(model, X: Float[np.ndarray, "n T d"], Z: Float[np.ndarray, "n d"] | None = None
                      ) -> Float[np.ndarray, "n T"]:
    """softmax(X W z) [n, T] as the attention module computes it, captured by its ``hook_pattern``.

    ``model`` is a ``toy_models.single_attention.SingleAttention``; the reference path is used (the
    kernel path never builds the pattern).
    """
    captured = {}

    def save(pattern, hook):
        captured["pattern"] = pattern.detach()
        return pattern

    hook_point = model.attn.hook_pattern
    hook_point.add_hook(save)
    try:
        with torch.no_grad():
            model(torch.as_tensor(X, dtype=torch.float64), None if Z is None else torch.as_tensor(Z, dtype=torch.float64),
                  path="reference")
    finally:
        hook_point.remove_hooks()
    pattern = captured["pattern"][:, 0, 0]  # [batch, head, query, key] → query position 0, the one read out
    return (pattern[:, 1:] if model.cross_attn else pattern).numpy()


def correlation_curve(W: Float[np.ndarray, "K d d"], W_svm: Float[np.ndarray, "d d"]) -> Float[np.ndarray, "K"]:
    """corr(W(k), W_svm) for every k of a trajectory [K, d, d]; nan where W(k) = 0 (no direction)."""
    W = np.asarray(W, dtype=np.float64)
    norms = np.linalg.norm(W, axis=(1, 2))
    inner = np.einsum("kde,de->k", W, W_svm)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, inner / (norms * np.linalg.norm(W_svm)), np.nan)


def selected_mass(W: Float[np.ndarray, "K d d"], X: Float[np.ndarray, "n T d"], Z: Float[np.ndarray, "n d"],
                  alpha: Int[np.ndarray, "n"]) -> Float[np.ndarray, "K"]:
    """Mean over inputs of softmax(X_i W(k) z_i) at the selected token α_i, for every k: [K]."""
    a = np.einsum("ntd,kde,ne->knt", X, W, Z)
    s = np.exp(a - a.max(axis=-1, keepdims=True))
    s /= s.sum(axis=-1, keepdims=True)
    return s[:, np.arange(len(alpha)), alpha].mean(axis=-1)


def norm_growth(W: Float[np.ndarray, "K d d"]) -> Float[np.ndarray, "K"]:
    """‖W(k)‖_F for every k: [K]."""
    return np.linalg.norm(np.asarray(W, dtype=np.float64), axis=(1, 2))


def spectrum(W: Float[np.ndarray, "K d d"]) -> Float[np.ndarray, "K d"]:
    """σ_i(W(k)) / σ_1(W(k)) [K, d] (nan rows where W(k) = 0)."""
    sv = np.linalg.svd(np.asarray(W, dtype=np.float64), compute_uv=False)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sv / sv[:, :1]
