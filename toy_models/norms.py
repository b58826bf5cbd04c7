"""LayerNorm and RMSNorm with TransformerLens' hook points (``hook_scale``, ``hook_normalized``).

LayerNorm(x) = γ ⊙ (x − mean(x)) / √(mean((x − mean x)²) + ε) + β
RMSNorm(x)   = γ ⊙ x / √(mean(x²) + ε)

so LayerNorm(x) = RMSNorm(x − mean(x)) with the same gain, plus β: the identity behind the exact
Pre-LN ⇔ Pre-RMSNorm equivalence ("Pre-RMSNorm and Pre-CRMSNorm Transformers", Jiang et al. 2023).

CRMSNorm(x) = γ ⊙ x / √((Σ_i x_i² + (Σ_i x_i)²) / (n + 1) + ε) for x ∈ R^n: the RMSNorm of the
zero-mean vector [x, −Σ_i x_i] ∈ R^{n+1}, restricted to the n stored coordinates (same paper).
``hook_normalized`` fires on x / scale, before the gain and bias, as in TransformerLens.

``fused=True`` (the kernel path) computes LayerNorm and RMSNorm with torch's fused ``layer_norm`` /
``rms_norm`` when no hook is attached to ``hook_scale`` or ``hook_normalized`` (a hooked norm, e.g. under
``run_with_cache``, takes the written-out form, so that the hooks see their tensors): the same function,
rounded differently (one pass, no intermediate tensors; 3 % of a GPT-2-small step on a CPU). Under
``torch.compile`` the written-out form is kept: the compiler fuses it anyway, and compiled runs keep the
graphs (and numbers) they had.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint


class Norm(nn.Module):
    """A LayerNorm (``center=True``), RMSNorm, or CRMSNorm (``compressed=True``); optional gain ``w``
    and bias ``b`` (LayerNorm only)."""

    def __init__(self, d: int, *, center: bool, gain: bool, bias: bool, eps: float, dtype: torch.dtype,
                 compressed: bool = False):
        super().__init__()
        self.center, self.eps, self.compressed = center, eps, compressed
        self.w = nn.Parameter(torch.ones(d, dtype=dtype)) if gain else None
        self.b = nn.Parameter(torch.zeros(d, dtype=dtype)) if (bias and center) else None
        self.hook_scale = HookPoint()  # [batch, pos, 1]
        self.hook_normalized = HookPoint()  # [batch, pos, d]

    def forward(self, x: Float[Tensor, "*batch d"], fused: bool = False) -> Float[Tensor, "*batch d"]:
        if (fused and not self.compressed and not torch.compiler.is_compiling()
                and not (self.hook_scale._forward_hooks or self.hook_normalized._forward_hooks)):
            shape = (x.shape[-1],)
            if self.center:
                return F.layer_norm(x, shape, self.w, self.b, self.eps)
            return F.rms_norm(x, shape, self.w, self.eps)
        if self.center:
            x = x - x.mean(-1, keepdim=True)
        if self.compressed:
            ms = (x.pow(2).sum(-1, keepdim=True) + x.sum(-1, keepdim=True).pow(2)) / (x.shape[-1] + 1)
        else:
            ms = x.pow(2).mean(-1, keepdim=True)
        scale = self.hook_scale((ms + self.eps).sqrt())
        x = self.hook_normalized(x / scale)
        if self.w is not None:
            x = x * self.w
        if self.b is not None:
            x = x + self.b
        return x


def make_norm(cfg, d: int | None = None) -> Norm:
    """The norm that ``cfg`` asks for (``norm_kind``, ``norm_gain``, ``norm_bias``, ``norm_eps``)."""
    return Norm(
        d or cfg.d_model,
        center=cfg.norm_kind == "layernorm",
        gain=cfg.norm_gain,
        bias=cfg.norm_bias,
        eps=cfg.norm_eps,
        dtype=getattr(torch, cfg.dtype),
        compressed=cfg.norm_kind == "crmsnorm",
    )
