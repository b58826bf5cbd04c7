"""Optimizers and the learning-rate schedule named by an ``OptimConfig``.

- ``adamw``: ``torch.optim.AdamW(lr, betas, weight_decay)``.
- ``sgd``: ``torch.optim.SGD(lr, momentum, weight_decay)`` (heavy ball when momentum > 0).
- ``sign_momentum``: ``SignMomentum`` below, the effective optimizer of "Transformers Struggle to
  Learn to Search" (Saparov et al. 2025).
- ``normalized_gd``: ``NormalizedGD`` below, from "Transformers as Support Vector Machines"
  (Tarzanagh et al. 2023).

Schedule factor f(t) multiplying lr for update t = 0, 1, …, T−1 (W warm-up steps, r = min_lr_ratio):

    f(t) = (t+1)/W                                   t < W
    f(t) = 1                                         t ≥ W, constant
    f(t) = r + (1−r)·½(1 + cos(π·(t−W)/(T−W)))       t ≥ W, cosine (f(W) = 1, f(T) = r)
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch.optim.lr_scheduler import LRScheduler

from .experiment import NGD_EPS, OptimConfig


class SignMomentum(torch.optim.Optimizer):
    """Sign of an exponential moving average of gradients, with decoupled weight decay.

        m ← β m + (1−β) g
        θ ← θ (1 − lr·wd) − lr · sign(m)

    This is SophiaG ("Sophia: A Scalable Stochastic Second-order Optimizer", Liu et al. 2023) when
    its Hessian EMA h is never updated: its step clamp(|m| / (ρ·bs·h + 1e-15), max=1)·sign(m) with
    h = 0 is sign(m) for every |m| ≥ 1e-15. The training script of "Transformers Struggle to Learn to
    Search" never updates h, so this is the optimizer its results come from (β = 0.965 there).
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, beta: float = 0.965, weight_decay: float = 0.0):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta={beta!r} is not allowed: a float in [0, 1)")
        super().__init__(params, dict(lr=lr, beta=beta, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, beta, wd = group["lr"], group["beta"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "exp_avg" not in state:
                    state["exp_avg"] = torch.zeros_like(p)
                m = state["exp_avg"]
                m.mul_(beta).add_(p.grad, alpha=1 - beta)
                p.mul_(1 - lr * wd)
                p.add_(m.sign(), alpha=-lr)
        return loss


class NormalizedGD(torch.optim.Optimizer):
    """Gradient descent with each parameter tensor's gradient normalized to unit Frobenius norm.

        g ← ∇ + wd · θ          (the ridge (wd/2)‖θ‖² in the loss; wd = 0 by default)
        θ ← θ − lr · g / (‖g‖_F + eps)

    per tensor, as in "Transformers as Support Vector Machines" (Tarzanagh et al. 2023), which
    normalizes W, or K and Q separately in the (K,Q) parametrization; W_Q and W_K are separate
    tensors here, so each factor is normalized on its own (all heads of a layer together). The eps
    guard makes a zero gradient a zero step instead of 0/0; at float64's machine ε (the paper's code)
    it also shortens the step once the gradient is at round-off, instead of following round-off's
    direction at full length. The paper's (K, Q) runs add an ε-ridge to the loss, which pulls K and Q
    toward balance once the loss gradient has vanished (``toy_models.tasks.attention_svm_data``).
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, eps: float = NGD_EPS, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad
                p.sub_(group["lr"] * g / (torch.linalg.vector_norm(g) + group["eps"]))
        return loss


def build_optimizer(params: Iterable, cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimizer ``cfg.name`` over the parameters that require gradients.

    AdamW and SGD run their multi-tensor ("foreach") implementation on every device (torch picks it
    only on CUDA by default): one call per operation for all parameters instead of a Python loop over
    them, with the same arithmetic per element, so the same bits (tests/test_train_speed.py).
    """
    params = [p for p in params if p.requires_grad]
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, foreach=True)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               foreach=True)
    if cfg.name == "sign_momentum":
        return SignMomentum(params, lr=cfg.lr, beta=cfg.betas[0], weight_decay=cfg.weight_decay)
    if cfg.name == "normalized_gd":
        return NormalizedGD(params, lr=cfg.lr, eps=cfg.eps, weight_decay=cfg.weight_decay)
    raise ValueError(f"optim.name={cfg.name!r} is not allowed")  # unreachable: OptimConfig validates


def lr_factor(t: int, cfg: OptimConfig, total_steps: int) -> float:
    """f(t), the multiplier of lr for update t (0-based); formula in the module docstring."""
    w = cfg.warmup_steps
    if t < w:
        return (t + 1) / w
    if cfg.schedule == "constant":
        return 1.0
    progress = min(1.0, (t - w) / max(1, total_steps - w))
    r = cfg.min_lr_ratio
    return r + (1 - r) * 0.5 * (1 + math.cos(math.pi * progress))


class WarmupSchedule(LRScheduler):
    """lr_t = base_lr · f(t) with f from ``lr_factor``; its state is plain numbers (checkpoint-safe)."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int):
        self.warmup_steps, self.schedule = cfg.warmup_steps, cfg.schedule
        self.min_lr_ratio, self.total_steps = cfg.min_lr_ratio, total_steps
        self._cfg = cfg
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        factor = lr_factor(max(self.last_epoch, 0), self._cfg, self.total_steps)
        return [base * factor for base in self.base_lrs]

    def state_dict(self) -> dict:
        return {k: v for k, v in super().state_dict().items() if k != "_cfg"}


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int) -> LRScheduler:
    """Linear warm-up, then constant or cosine to ``min_lr_ratio``·lr at ``total_steps``."""
    return WarmupSchedule(optimizer, cfg, total_steps)


__all__ = ["SignMomentum", "NormalizedGD", "build_optimizer", "build_scheduler", "lr_factor", "WarmupSchedule"]
