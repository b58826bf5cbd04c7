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


@register_initial_state("lsa_gd_readout")
def lsa_gd_readout(model: nn.Module, cfg: TransformerConfig, seed: int) -> None:
    """The fixed read-in and read-out of von Oswald et al.'s GD construction ("Transformers learn
    in-context by gradient descent", 2023; ``toy_models.constructions.lsa``) on a linear-self-attention
    model of width d + 1 reading stacked tokens [x; y]: W_E = I, b_E = 0 and W_U = −e_{d+1}, so that
    ŷ = −(the query's y-slot). The attention weights keep the config's init. Draws nothing."""
    W_E, W_U = model.embed.W_E, model.unembed.W_U
    if W_E.shape[0] != W_E.shape[1] or W_U.shape != (W_E.shape[1], 1):
        raise ConfigError("init_state", "lsa_gd_readout",
                          f"a model with a square read-in and one output (input_kind='continuous', d_input = d_model, "
                          f"d_vocab_out = 1); this one has W_E {tuple(W_E.shape)}, W_U {tuple(W_U.shape)}")
    W_E.copy_(torch.eye(W_E.shape[0], dtype=W_E.dtype))
    if getattr(model.embed, "b_E", None) is not None:
        model.embed.b_E.zero_()
    W_U.zero_()
    W_U[-1, 0] = -1.0


__all__ = ["INITIAL_STATES", "InitialState", "apply_initial_state", "initial_state", "register_initial_state"]
