"""Closed-form trainings of the attention-as-SVM study, whose gradients autograd would round away.

The W and (K, Q) layers of "Transformers as Support Vector Machines" (Tarzanagh, Li, Thrampoulidis,
Oymak, 2023) train through the trainer and the run store (``toy_models.single_attention_config``, the
``attention_svm`` task, ``theorybench.studies.attention_svm.experiments``). The two trainings here stay
NumPy loops by design: each needs a gradient written so that it keeps its accuracy once the softmax
saturates, which autograd of the softmax does not give.

- ``train_prompt``: GD on a trainable prompt p of "Max-Margin Token Selection in Attention Mechanism"
(Tarzanagh, Li, Zhang, Oymak, 2023), f(X) = vᵀ Xᵀ softmax(X p) (keys = tokens, i.e. their W = I). It
is the W-layer with the constant query z = e_1 (W(k) = p(k) e_1ᵀ), but computed in closed form
with a gradient that stays accurate after the softmax saturates (``prompt_gradient``), so that
normalized GD keeps following the max-margin ray instead of round-off.
- ``train_relu_head``: normalized GD on batches of the nonlinear-head layer (``relu_head_gradient``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import ConfigError

METHODS = ("normalized", "gd")  # normalized: η ∇/‖∇‖ steps; gd: η ∇ steps
EPS = float(np.finfo(np.float64).eps)
# The stable prompt gradient is accurate while every term that matters (≥ ε × the largest) is a
# normal double; below tiny/ε ≈ 1e-292 those terms are subnormal and lose bits (measured: the
# direction error of a two-support-token ray then jumps by 8 %), so normalized GD stops there.
PRECISION_FLOOR = float(np.finfo(np.float64).tiny / EPS)


@dataclass(frozen=True)
class PromptTrajectory:
    p: np.ndarray  # [K+1, d], p(0) … p(K), K = steps, or the step at which GD stopped
    loss: np.ndarray  # [K+1]
    grad_norm: np.ndarray  # [K+1] ‖∇L(p(k))‖, computed in the stable form
    selected: np.ndarray  # [n] argmax token of the final attention softmax(X p)
    stopped_at: int | None  # the step whose gradient underflowed to exactly 0 (GD stops there), else None


def prompt_gradient(X: np.ndarray, Y: np.ndarray, v: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, float]:
    """∇_p L and L for f(X_i) = vᵀ X_iᵀ s_i, s_i = softmax(X_i p), L = (1/n) Σ_i log(1 + exp(−Y_i f_i)).

    With γ_it = Y_i vᵀ x_it, α_i = argmax_t s_it (the selected token), δ_it = γ_it − γ_iα_i and
    D_it = x_it − x_iα_i, the gradient is written in quantities that vanish with the non-selected
    softmax weights, so that it keeps its relative accuracy when they are far below round-off:

        s_it = exp(pᵀD_it) / (1 + Σ_{τ≠α} exp(pᵀD_iτ)),   Y_i f_i = γ_iα + Σ_{t≠α} s_it δ_it,
        ∇_p L = (1/n) Σ_i ℓ'(Y_i f_i) Σ_{t≠α} s_it δ_it (D_it − Σ_{τ≠α} s_iτ D_iτ),   ℓ'(u) = −1/(1 + e^u).

    (From Y ∂f/∂p = Σ_t s_t (γ_t − γ̄) x_t, subtracting the constants γ_α and x̄ = Σ s x, which the
    weights s_t(γ_t − γ̄) and s_t sum against to 0.) The textbook form Σ_t s_t (γ_t − γ̄) x_t computes
    γ_α − γ̄ ≈ Σ s δ as a difference of two O(1) numbers: once the softmax saturates it is round-off
    (~1e-16) with a direction of its own, which normalized GD then follows at full step.
    """
    n, T, _ = X.shape
    rows = np.arange(n)
    diff = np.einsum("ntd,d->nt", X - X[rows, np.argmax(X @ p, axis=1)][:, None], p)  # pᵀ D_it (≤ 0)
    alpha = np.argmax(diff, axis=1)
    D = X - X[rows, alpha][:, None]
    diff = D @ p
    e = np.exp(diff)  # e_iα = 1; the others underflow to 0 only below ~1e-308
    s = e / e.sum(axis=1, keepdims=True)
    gamma = Y[:, None] * (X @ v)
    delta = gamma - gamma[rows, alpha][:, None]
    margin = gamma[rows, alpha] + np.sum(s * delta, axis=1)  # Y_i f_i
    dloss = -0.5 * (1 - np.tanh(0.5 * margin))  # ℓ'(u) = −1/(1 + e^u), without overflow
    Dbar = np.einsum("nt,ntd->nd", s, D)
    inner = np.einsum("nt,ntd->nd", s * delta, D - Dbar[:, None])
    grad = (dloss[:, None] * inner).mean(axis=0)
    loss = float(np.mean(np.logaddexp(0.0, -margin)))
    return grad, loss


def train_prompt(X, Y, v, p0, steps: int = 1000, lr: float = 0.1, method: str = "normalized") -> PromptTrajectory:
    """GD on the prompt p from p(0) = ``p0`` of "Max-Margin Token Selection in Attention Mechanism"
    (Tarzanagh, Li, Zhang, Oymak, 2023): f(X_i) = vᵀ X_iᵀ softmax(X_i p), the logistic loss.

    ``normalized``: p ← p − η ∇/‖∇‖ (normalized GD of "Implicit Bias and Fast Convergence Rates for
    Self-attention", Vasudeva, Deora, Thrampoulidis, 2024), with the gradient of ``prompt_gradient``,
    which stays accurate however saturated the softmax is. So no ε-guard is needed: every step has
    length η along the true descent direction, ‖p(k)‖ grows linearly and the direction keeps
    converging to the max-margin ray. The run stops (``stopped_at``) when the gradient's largest entry
    falls below PRECISION_FLOOR = tiny/ε ≈ 1e-292: the softmax weights that shape its direction would
    then be subnormal doubles with fewer bits, i.e. the gradient would be at round-off (for the
    prompt-geometry instance: pᵀ(x_t − x_α) ≈ −670 for the support tokens, after ≈ 4,000–7,000 steps).
    ``gd``: p ← p − η ∇.
    """
    if method not in METHODS:
        raise ConfigError("method", method, f"one of {METHODS}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ConfigError("steps", steps, "a non-negative integer")
    if not lr > 0:
        raise ConfigError("lr", lr, "a positive float")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 3:
        raise ConfigError("X", f"array of shape {X.shape}", "tokens [n, T, d]")
    n, _, d = X.shape
    Y = np.asarray(Y, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    p = np.array(p0, dtype=np.float64)
    if p.shape != (d,):
        raise ConfigError("p0", tuple(p.shape), f"a prompt of shape [{d}] (the token dimension)")
    if Y.shape != (n,):
        raise ConfigError("Y", tuple(Y.shape), f"labels of shape [{n}]")
    if v.shape != (d,):
        raise ConfigError("v", tuple(v.shape), f"a head of shape [{d}]")
    ps, losses, norms = [p.copy()], [], []
    stopped_at = None
    for k in range(steps + 1):
        grad, loss = prompt_gradient(X, Y, v, p)
        # ‖∇‖ through the largest entry: squaring entries below 1e-154 would underflow the norm to 0.
        largest = float(np.max(np.abs(grad)))
        direction = grad / largest if largest > 0 else grad
        g = largest * float(np.linalg.norm(direction))
        losses.append(loss)
        norms.append(g)
        if k == steps:
            break
        if largest < PRECISION_FLOOR:
            stopped_at = k
            break
        p = p - lr * (direction / np.linalg.norm(direction) if method == "normalized" else grad)
        ps.append(p.copy())
    selected = np.argmax(X @ p, axis=1)
    return PromptTrajectory(p=np.stack(ps), loss=np.array(losses), grad_norm=np.array(norms),
                            selected=selected, stopped_at=stopped_at)


# ------------------------------------------------------------------------------ nonlinear (ReLU) head
@dataclass(frozen=True)
class ReLUHeadTrajectory:
    steps: np.ndarray  # [K] the iterations k at which W was recorded (0, every, 2·every, …, last)
    W: np.ndarray  # [K, B, d, d] W(k) of each of the B instances
    probs: np.ndarray  # [B, n, T] softmax(X_i W z_i) at the last W


def relu_head_gradient(X: np.ndarray, Z: np.ndarray, Y: np.ndarray, V: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """∇_W L and the softmax s for a batch of B instances of the nonlinear-head model.

    "Transformers as Support Vector Machines" (Tarzanagh, Li, Thrampoulidis, Oymak, 2023), nonlinear
    heads: f(X_i) = 1ᵀ ReLU(Vᵀ X_iᵀ s_i), s_i = softmax(X_i W z_i), L = (1/n) Σ_i log(1 + exp(−Y_i f_i)).
    With r_i = 1[Vᵀ X_iᵀ s_i > 0] and c_it = x_itᵀ V r_i (the head's slope along token t),

        ∇_W L = (1/n) Σ_i ℓ'(Y_i f_i) Y_i Σ_t s_it (c_it − c̄_i) x_it z_iᵀ,   c̄_i = Σ_t s_it c_it,
        ℓ'(u) = −1/(1 + e^u).

    Shapes: X [B, n, T, d], Z [B, n, d], Y [B, n], V [B, d, d], W [B, d, d].
    """
    a = np.einsum("bntd,bde,bne->bnt", X, W, Z)
    s = np.exp(a - a.max(axis=-1, keepdims=True))
    s /= s.sum(axis=-1, keepdims=True)
    u = np.einsum("bnt,bntd,bde->bne", s, X, V)
    f = np.maximum(u, 0.0).sum(axis=-1)
    c = np.einsum("bntd,bde,bne->bnt", X, V, (u > 0).astype(np.float64))
    cbar = np.sum(s * c, axis=-1, keepdims=True)
    margin = Y * f
    dloss = -0.5 * (1 - np.tanh(0.5 * margin)) * Y  # d/df log(1 + exp(−Y f)), without overflow
    weights = dloss[..., None] * s * (c - cbar) / X.shape[1]
    return np.einsum("bnt,bntd,bne->bde", weights, X, Z), s


def train_relu_head(X, Z, Y, V, W0, steps: int = 2000, lr: float = 0.1, record_every: int = 100) -> ReLUHeadTrajectory:
    """Normalized GD W ← W − η ∇/(‖∇‖_F + ε) on a batch of nonlinear-head instances (see
    ``relu_head_gradient``), each instance normalized on its own; the paper's algorithm and its ε
    (its experiments add float64 ε to the norm). Records W every ``record_every`` steps and at the end.

    Unlike the prompt's linear head, the ReLU head keeps several tokens, whose gradient terms
    s_it(c_it − c̄_i) are O(1) differences: no cancellation to round-off within 2,000 steps.
    """
    for name, value in (("steps", steps), ("record_every", record_every)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "steps" else 1):
            raise ConfigError(name, value, "a non-negative integer" if name == "steps" else "a positive integer")
    if not lr > 0:
        raise ConfigError("lr", lr, "a positive float")
    X, Z, Y, V = (np.asarray(a, dtype=np.float64) for a in (X, Z, Y, V))
    W = np.array(W0, dtype=np.float64)
    if X.ndim != 4:
        raise ConfigError("X", f"array of shape {X.shape}", "tokens [B, n, T, d]")
    B, n, T, d = X.shape
    for name, arr, shape in (("Z", Z, (B, n, d)), ("Y", Y, (B, n)), ("V", V, (B, d, d)), ("W0", W, (B, d, d))):
        if arr.shape != shape:
            raise ConfigError(name, f"array of shape {arr.shape}", f"shape {list(shape)}")
    recorded, Ws = [], []
    for k in range(steps + 1):
        if k % record_every == 0 or k == steps:
            recorded.append(k)
            Ws.append(W.copy())
        if k == steps:
            break
        grad, _ = relu_head_gradient(X, Z, Y, V, W)
        norms = np.sqrt(np.sum(grad * grad, axis=(1, 2)))
        W = W - lr * grad / (norms + EPS)[:, None, None]
    _, probs = relu_head_gradient(X, Z, Y, V, W)
    return ReLUHeadTrajectory(steps=np.array(recorded), W=np.stack(Ws), probs=probs)
