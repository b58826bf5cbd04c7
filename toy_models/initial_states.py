"""Named initial states: functions that set chosen parameters of a freshly initialized model.

A model is first drawn by its config's own init scheme (``toy_models.init``); a named initial state
then overwrites the parameters a construction fixes, e.g. the identity read-in of linear
self-attention. The trainer (``theorybench.train``) applies the one named by ``train.init_state``
before step 1, so a run that starts from a hand-set state is still a function of its config.

A state is ``fn(model, cfg, seed) -> None`` (``cfg`` the model's resolved ``TransformerConfig``,
``seed`` a 32-bit seed for any draws of its own), called under ``torch.no_grad``; it is registered
with ``@register_initial_state(name)`` and found with ``initial_state(name)``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .config import ConfigError, TransformerConfig

ZFB_INIT_SCALE = 0.1  # σ of Zhang, Frei and Bartlett's initialization (small, as their theorem asks)

InitialState = Callable[[nn.Module, TransformerConfig, int], None]
INITIAL_STATES: dict[str, InitialState] = {}


def register_initial_state(name: str):
    """Function decorator: register ``fn(model, cfg, seed)`` as the initial state ``name``."""

    def wrap(fn: InitialState) -> InitialState:
        if name in INITIAL_STATES and INITIAL_STATES[name] is not fn:
            raise ValueError(f"initial state {name!r} is already registered by {INITIAL_STATES[name].__name__}")
        INITIAL_STATES[name] = fn
        return fn

    return wrap


def initial_state(name: str, field: str = "init_state") -> InitialState:
    """The registered initial state ``name``; a ConfigError naming ``field`` and the allowed names if none."""
    if not isinstance(name, str) or name not in INITIAL_STATES:
        raise ConfigError(field, name, f"a registered initial state: {', '.join(sorted(INITIAL_STATES))}, or none")
    return INITIAL_STATES[name]


@torch.no_grad()
def apply_initial_state(name: str, model: nn.Module, cfg: TransformerConfig, seed: int) -> None:
    """Set ``model``'s parameters to the initial state ``name`` (see the module docstring)."""
    initial_state(name)(model, cfg, seed)


def _lsa_read_in_out(model: nn.Module, name: str, sign: float) -> int:
    """W_E = I, b_E = 0, W_U = sign · e_{d+1} on a linear-self-attention model of width d + 1 reading
    stacked tokens [x; y]; returns d. Refuses a model without a square read-in and one output."""
    W_E, W_U = model.embed.W_E, model.unembed.W_U
    if W_E.shape[0] != W_E.shape[1] or W_U.shape != (W_E.shape[1], 1):
        raise ConfigError("init_state", name,
                          f"a model with a square read-in and one output (input_kind='continuous', d_input = d_model, "
                          f"d_vocab_out = 1); this one has W_E {tuple(W_E.shape)}, W_U {tuple(W_U.shape)}")
    W_E.copy_(torch.eye(W_E.shape[0], dtype=W_E.dtype))
    if getattr(model.embed, "b_E", None) is not None:
        model.embed.b_E.zero_()
    W_U.zero_()
    W_U[-1, 0] = sign
    return W_E.shape[0] - 1


@register_initial_state("lsa_gd_readout")
def lsa_gd_readout(model: nn.Module, cfg: TransformerConfig, seed: int) -> None:
    """The fixed read-in and read-out of von Oswald et al.'s GD construction ("Transformers learn
    in-context by gradient descent", 2023; ``toy_models.constructions.lsa``) on a linear-self-attention
    model of width d + 1 reading stacked tokens [x; y]: W_E = I, b_E = 0 and W_U = −e_{d+1}, so that
    ŷ = −(the query's y-slot). The attention weights keep the config's init. Draws nothing."""
    _lsa_read_in_out(model, "lsa_gd_readout", -1.0)


@register_initial_state("lsa_identity_readout")
def lsa_identity_readout(model: nn.Module, cfg: TransformerConfig, seed: int) -> None:
    """As ``lsa_gd_readout`` but reading ŷ = +(the query's y-slot): W_E = I, b_E = 0, W_U = e_{d+1}
    (the read-out of "Trained Transformers Learn Linear Models In-Context", Zhang, Frei, Bartlett 2024).
    With it k GD steps are not representable by k > 1 layers (the context's residuals and the query's
    prediction would need opposite signs). Draws nothing."""
    _lsa_read_in_out(model, "lsa_identity_readout", 1.0)


def _zfb_theta(d: int) -> torch.Tensor:
    """Θ = d^{-1/4} I in float64 (entries are rounded once, when assigned to the weights), so that
    ‖ΘΘᵀ‖_F = ‖I/√d‖_F = 1 as Zhang, Frei and Bartlett's init asks."""
    return torch.eye(d, dtype=torch.float64) / d**0.25


@register_initial_state("lsa_zfb")
def lsa_zfb(model: nn.Module, cfg: TransformerConfig, seed: int) -> None:
    """The parametrization and initialization of "Trained Transformers Learn Linear Models In-Context"
    (Zhang, Frei, Bartlett 2024), f(E) = E + W^{PV} E M (Eᵀ W^{KQ} E)/N, in a one-layer LSA toy of width
    d + 1: W_E = I, b_E = 0, W_K = W_V = I, W_U = e_{d+1}, W_Q = (W^{KQ})ᵀ and W_O = (W^{PV})ᵀ with
    W^{PV}(0) = σ e_{d+1}e_{d+1}ᵀ, W^{KQ}(0) = σ [[ΘΘᵀ, 0], [0, 0]], Θ = d^{-1/4} I, σ = ``ZFB_INIT_SCALE``.
    Every other attention entry is 0 (use it with ``model.init='zero'``; freeze all but W_Q and W_O for
    their parametrization). Draws nothing."""
    d = _lsa_read_in_out(model, "lsa_zfb", 1.0)
    attn, s = _single_lsa_layer(model, "lsa_zfb"), ZFB_INIT_SCALE
    theta = _zfb_theta(d)
    attn.W_K[0] = torch.eye(d + 1, dtype=attn.W_K.dtype)
    attn.W_V[0] = torch.eye(d + 1, dtype=attn.W_V.dtype)
    attn.W_Q[0, :d, :d] = s * theta @ theta.T
    attn.W_O[0, d, d] = s


@register_initial_state("lsa_zfb_shaped")
def lsa_zfb_shaped(model: nn.Module, cfg: TransformerConfig, seed: int) -> None:
    """Zhang, Frei and Bartlett's initial function (``lsa_zfb``) in the toy's own factored weights, to be
    trained in full: W_Q = W_K = √σ [[Θ, 0], [0, 0]], W_V = W_O = √σ e_{d+1}e_{d+1}ᵀ, W_E = I,
    W_U = e_{d+1}; every other attention entry is 0 (use it with ``model.init='zero'``). Draws nothing."""
    d = _lsa_read_in_out(model, "lsa_zfb_shaped", 1.0)
    attn, s = _single_lsa_layer(model, "lsa_zfb_shaped"), ZFB_INIT_SCALE
    theta = _zfb_theta(d)
    attn.W_Q[0, :d, :d] = s**0.5 * theta
    attn.W_K[0, :d, :d] = s**0.5 * theta
    attn.W_V[0, d, d] = s**0.5
    attn.W_O[0, d, d] = s**0.5


def _single_lsa_layer(model: nn.Module, name: str) -> nn.Module:
    """The attention of a one-layer, one-head model whose head width is the model's (d + 1)."""
    blocks = model.blocks
    attn = blocks[0].attn
    if len(blocks) != 1 or tuple(attn.W_Q.shape) != (1, model.embed.W_E.shape[1], model.embed.W_E.shape[1]):
        raise ConfigError("init_state", name, f"a one-layer, one-head model with d_head = d_model; this one has "
                                              f"{len(blocks)} layers and W_Q {tuple(attn.W_Q.shape)}")
    return attn


__all__ = ["INITIAL_STATES", "InitialState", "apply_initial_state", "initial_state", "register_initial_state"]
