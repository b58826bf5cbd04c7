"""Small-MLP probes: what a layer encodes non-linearly.

"What learning algorithm is in-context learning? Investigations with linear models" (Akyürek et al.
2023, section 5) decode the task w and the moments Xᵀy, XᵀX from hidden states with linear and with
small MLP probes, and find some quantities readable only non-linearly. Here a one-hidden-layer MLP
(GELU, ``hidden`` units) is fitted by full-batch Adam on standardized features and targets of the
training rows (``probes.icl_linear.split_rows``), and scored on the held-out rows exactly as the
linear probe is: per row (‖t − t̂‖², ‖t − t̄_train‖²), R² = 1 − Σ first / Σ second.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from toy_models.config import ConfigError

from .icl_linear import split_rows

F64 = torch.float64


def mlp_probe_residuals(features: Float[Tensor, "B p"], target: Float[Tensor, "B k"], train_fraction: float = 0.5,
                        hidden: int = 64, steps: int = 300, lr: float = 1e-2, weight_decay: float = 1e-4,
                        seed: int = 0) -> tuple[Float[Tensor, "held_out"], Float[Tensor, "held_out"]]:
    """Per held-out row (‖t − t̂‖², ‖t − t̄_train‖²) of an MLP probe features [B, p] → target [B, k] (module
    docstring); the fit is seeded, so a probe is reproducible."""
    for name, value in (("hidden", hidden), ("steps", steps)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(name, value, "a positive integer")
    F, T, n_train = split_rows(features, target, train_fraction)
    f_mean, f_std = F[:n_train].mean(0), F[:n_train].std(0).clamp_min(1e-12)
    t_mean, t_std = T[:n_train].mean(0), T[:n_train].std(0).clamp_min(1e-12)
    Fs, Ts = (F - f_mean) / f_std, (T - t_mean) / t_std
    gen = torch.Generator().manual_seed(seed)
    p, k = Fs.shape[1], Ts.shape[1]
    W1 = (torch.randn(p, hidden, generator=gen, dtype=F64) / p**0.5).requires_grad_()
    b1 = torch.zeros(hidden, dtype=F64, requires_grad=True)
    W2 = (torch.randn(hidden, k, generator=gen, dtype=F64) / hidden**0.5).requires_grad_()
    b2 = torch.zeros(k, dtype=F64, requires_grad=True)
    params = [W1, b1, W2, b2]

    def forward(x):
        return torch.nn.functional.gelu(x @ W1 + b1) @ W2 + b2

    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = (forward(Fs[:n_train]) - Ts[:n_train]).pow(2).mean()
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = forward(Fs[n_train:]) * t_std + t_mean
    return (T[n_train:] - pred).pow(2).sum(1), (T[n_train:] - t_mean).pow(2).sum(1)


__all__ = ["mlp_probe_residuals"]
