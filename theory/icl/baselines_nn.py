"""A two-layer ReLU network trained on the prompt by gradient descent, batched over prompts: the
baseline of "What Can Transformers Learn In-Context? A Case Study of Simple Function Classes" (Garg et
al. 2022) for random two-layer ReLU networks.

Per prompt, g(x) = a · relu(Wᵀx + b) + c with ``hidden`` units, initialized as PyTorch's ``nn.Linear``
(every weight and bias U(−1/√fan_in, 1/√fan_in)), trained on L = (1/N) Σ_i (g(x_i) − y_i)² by Adam
(Garg et al.: h = 100, learning rate 5e-3, 100 steps; their minibatches of 100 examples are the whole
prompt for N ≤ 100, as here) or by plain gradient descent. Each prompt has its own network; the batch
is trained at once on Σ_prompts L_prompt, whose gradient in one prompt's parameters is that prompt's
own, and Adam acts elementwise, so every prompt is trained exactly as if alone.

Interface: that of ``theory.icl.predictors``; ``w_hat`` is None.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor

from ..errors import ConfigError

from .predictors import F64, Labels, Prediction, Prompts, Queries, _prepare

GARG_NN = dict(hidden=100, lr=5e-3, steps=100, optimizer="adam")
OPTIMIZERS = ("adam", "gd")


def init_two_layer(batch: int, d: int, hidden: int, generator: torch.Generator) -> dict[str, Float[Tensor, "B ..."]]:
    """Per-prompt parameters W [B, d, h], b [B, h], a [B, h], c [B], in nn.Linear's default init."""

    def uniform(shape, fan_in):
        bound = 1 / math.sqrt(fan_in)
        return (torch.rand(shape, generator=generator, dtype=F64) * 2 - 1) * bound

    return {"W": uniform((batch, d, hidden), d), "b": uniform((batch, hidden), d),
            "a": uniform((batch, hidden), hidden), "c": uniform((batch,), hidden)}


def two_layer_forward(params: dict[str, Float[Tensor, "B ..."]], points: Float[Tensor, "B P d"]
                      ) -> Float[Tensor, "B P"]:
    """g(x) = a · relu(Wᵀx + b) + c for points [B, P, d] → [B, P]."""
    hidden = torch.relu(points @ params["W"] + params["b"][:, None])
    return torch.einsum("bph,bh->bp", hidden, params["a"]) + params["c"][:, None]


def two_layer_nn_gd(X: Prompts, y: Labels, x_q: Queries, hidden: int = GARG_NN["hidden"], lr: float = GARG_NN["lr"],
                    steps: int = GARG_NN["steps"], optimizer: str = GARG_NN["optimizer"], seed: int = 0) -> Prediction:
    """Train a two-layer ReLU network on each prompt's examples (module docstring) and predict its queries."""
    for name, v in (("hidden", hidden), ("steps", steps)):
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "hidden" else 0):
            raise ConfigError(name, v, "a positive integer" if name == "hidden" else "a non-negative integer")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ConfigError("lr", lr, "a positive float")
    if optimizer not in OPTIMIZERS:
        raise ConfigError("optimizer", optimizer, f"one of {', '.join(map(repr, OPTIMIZERS))}")
    X, y, x_q = _prepare(X, y, x_q)
    B, N, d = X.shape
    params = init_two_layer(B, d, hidden, torch.Generator().manual_seed(seed))
    for p in params.values():
        p.requires_grad_(True)
    opt = (torch.optim.Adam(params.values(), lr=lr) if optimizer == "adam"
           else torch.optim.SGD(params.values(), lr=lr))
    with torch.enable_grad():
        for _ in range(steps):
            # Σ over prompts of each prompt's mean squared error: prompts do not interact (module docstring).
            loss = ((two_layer_forward(params, X) - y) ** 2).mean(dim=1).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    single = x_q.dim() == 2
    with torch.no_grad():
        y_hat = two_layer_forward(params, x_q[:, None] if single else x_q)
    return Prediction(y_hat[:, 0] if single else y_hat, None)
