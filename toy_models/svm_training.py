"""Full-batch (normalized) gradient descent on the logistic loss of a ``SingleAttention`` layer.

L = (1/n) Σ_i log(1 + exp(−Y_i f(X_i)))  [+ ρ (‖K‖_F² + ‖Q‖_F²) for the (K, Q) parameterization]

- ``normalized``: each trained factor steps by −η ∇/(‖∇‖ + ε) separately (W alone, or K and Q each), the
  algorithm of "Transformers as Support Vector Machines" (Tarzanagh, Li, Thrampoulidis, Oymak, 2023)
  and of the normalized-GD rates in "Implicit Bias and Fast Convergence Rates for Self-attention"
  (Vasudeva, Deora, Thrampoulidis, 2024);
- ``gd``: plain −η ∇.

The ridge ρ defaults to float64 machine epsilon for (K, Q) and 0 for W. Once the softmax saturates
the loss gradient decays like exp(−margin·‖W‖) and falls below round-off; normalizing a gradient made
of round-off would send K and Q in arbitrary directions. The ε-ridge dominates only then, so the
step pulls K and Q toward balance (‖K‖ = ‖Q‖), the minimizer of ½(‖K‖²+‖Q‖²) at fixed KQᵀ whose value
is ‖KQᵀ‖_⋆ — the nuclear-norm bias that the (K, Q) parameterization is predicted to show.

Returns the trajectory of W(k) = K(k) Q(k)ᵀ, the loss and the mean max softmax probability.

``train_prompt``: GD on a trainable prompt p of "Max-Margin Token Selection in Attention Mechanism"
(Tarzanagh, Li, Zhang, Oymak, 2023), f(X) = vᵀ Xᵀ softmax(X p) (keys = tokens, i.e. their W = I). It
is the W-layer above with the constant query z = e_1: the score x_tᵀ W e_1 reads column 0 of W, and
every gradient Σ(…) x e_1ᵀ moves only that column, so W(k) = p(k) e_1ᵀ and ‖∇_W‖ = ‖∇_p‖ — the same
normalized or plain GD on p.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .config import ConfigError
from .single_attention import SingleAttention

METHODS = ("normalized", "gd")
EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Trajectory:
    W: np.ndarray  # [steps+1, d, d], W(0) … W(steps)
    loss: np.ndarray  # [steps+1] logistic loss (no ridge) at each W(k)
    max_prob: np.ndarray  # [steps+1] mean over inputs of max_t softmax(X W z)_t
    selected: np.ndarray  # [n] argmax token of the final attention


@torch.no_grad()
def initialize_factors(model: SingleAttention, seed: int = 0, scale: float = 0.1) -> None:
    """W(0) = 0 for 'W'; K(0) ~ scale·N(0, 1) entrywise and Q(0) = 0 for 'KQ' (KQ = 0 but a nonzero gradient on Q)."""
    model.K.zero_()
    if model.parameterization == "KQ":
        gen = torch.Generator().manual_seed(seed)
        model.K.copy_(scale * torch.randn(model.K.shape, generator=gen, dtype=torch.float64))
        model.Q.zero_()


def logistic_loss(model: SingleAttention, X: torch.Tensor, Z: torch.Tensor | None, Y: torch.Tensor,
                  path: str) -> torch.Tensor:
    return torch.nn.functional.softplus(-Y * model(X, Z, path=path)).mean()


def train(model: SingleAttention, X, Z, Y, steps: int = 1000, lr: float = 0.1, method: str = "normalized",
          ridge: float | None = None, path: str = "reference") -> Trajectory:
    """Run ``steps`` full-batch steps from the model's current parameters; see the module docstring."""
    if method not in METHODS:
        raise ConfigError("method", method, f"one of {METHODS}")
    if not isinstance(steps, int) or steps < 0:
        raise ConfigError("steps", steps, "a non-negative integer")
    if not lr > 0:
        raise ConfigError("lr", lr, "a positive float")
    ridge = (EPS if model.parameterization == "KQ" else 0.0) if ridge is None else float(ridge)
    X = torch.as_tensor(X, dtype=torch.float64)
    Z = None if Z is None else torch.as_tensor(Z, dtype=torch.float64)
    Y = torch.as_tensor(Y, dtype=torch.float64)
    params = model.factors()
    d = model.d
    Ws = np.empty((steps + 1, d, d))
    losses, max_probs = np.empty(steps + 1), np.empty(steps + 1)

    def record(k: int, loss: torch.Tensor) -> None:
        with torch.no_grad():
            Ws[k] = model.W().numpy()
            losses[k] = float(loss)
            max_probs[k] = float(model.attention_probs(X, Z).max(dim=-1).values.mean())

    for k in range(steps + 1):
        loss = logistic_loss(model, X, Z, Y, path)
        record(k, loss.detach())
        if k == steps:
            break
        objective = loss + ridge * sum((p * p).sum() for p in params) if ridge else loss
        grads = torch.autograd.grad(objective, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                if method == "normalized":
                    # +ε as in the paper's code: once the softmax saturates, the loss gradient falls
                    # to round-off (~ε) and normalizing it exactly would amplify noise into full-size
                    # steps (measured: W drifts from corr 0.995 at step 1000 to 0.89 at 2000 on the
                    # random geometry). With +ε the step shrinks instead; an exact zero gives no step.
                    p.sub_(lr * g / (torch.linalg.vector_norm(g) + EPS))
                else:
                    p.sub_(lr * g)
    with torch.no_grad():
        selected = model.attention_probs(X, Z).argmax(dim=-1).numpy()
    return Trajectory(W=Ws, loss=losses, max_prob=max_probs, selected=selected)


@dataclass(frozen=True)
class PromptTrajectory:
    p: np.ndarray  # [steps+1, d], p(0) … p(steps)
    loss: np.ndarray  # [steps+1]
    selected: np.ndarray  # [n] argmax token of the final attention softmax(X p)


def train_prompt(X, Y, v, p0, steps: int = 1000, lr: float = 0.1, method: str = "normalized",
                 path: str = "direct") -> PromptTrajectory:
    """GD on the prompt p from p(0) = ``p0`` (see the module docstring): f(X_i) = vᵀ X_iᵀ softmax(X_i p)."""
    X = torch.as_tensor(X, dtype=torch.float64)
    p0 = torch.as_tensor(p0, dtype=torch.float64)
    d = X.shape[-1]
    if p0.shape != (d,):
        raise ConfigError("p0", tuple(p0.shape), f"a prompt of shape [{d}] (the token dimension)")
    model = SingleAttention(torch.as_tensor(v, dtype=torch.float64), "W", cross_attn=True)
    W0 = torch.zeros(d, d, dtype=torch.float64)
    W0[:, 0] = p0
    model.set_W(W0)
    Z = torch.zeros(X.shape[0], d, dtype=torch.float64)
    Z[:, 0] = 1.0
    tr = train(model, X, Z, Y, steps=steps, lr=lr, method=method, path=path)
    return PromptTrajectory(p=tr.W[:, :, 0].copy(), loss=tr.loss, selected=tr.selected)
