"""The position-wise feed-forward sublayer, plain or gated.

plain:  MLP(x) = act(x W_in + b_in) W_out + b_out
gated:  MLP(x) = (act(x W_gate) ⊙ (x W_in + b_in)) W_out + b_out
        ("GLU Variants Improve Transformer", Shazeer 2020; Gemma's GeGLU)
Hook names follow TransformerLens: ``hook_pre`` (the activation's input), ``hook_pre_linear`` (the
gated branch's linear input) and ``hook_post`` (the activation's output).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's "gelu_new", Gemma's "gelu_pytorch_tanh"
    "silu": F.silu,
}


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        dtype = getattr(torch, cfg.dtype)
        d, m = cfg.d_model, cfg.mlp_dim
        self.act = ACTIVATIONS[cfg.act_fn]
        self.W_in = nn.Parameter(torch.empty(d, m, dtype=dtype))
        self.W_gate = nn.Parameter(torch.empty(d, m, dtype=dtype)) if cfg.gated_mlp else None
        self.W_out = nn.Parameter(torch.empty(m, d, dtype=dtype))
        self.b_in = nn.Parameter(torch.zeros(m, dtype=dtype)) if cfg.mlp_bias else None
        self.b_out = nn.Parameter(torch.zeros(d, dtype=dtype)) if cfg.mlp_bias else None
        self.hook_pre, self.hook_post = HookPoint(), HookPoint()
        if cfg.gated_mlp:
            self.hook_pre_linear = HookPoint()

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        linear = _affine(x, self.W_in, self.b_in)
        if self.W_gate is None:
            post = self.hook_post(self.act(self.hook_pre(linear)))
        else:
            gate = self.hook_pre(x @ self.W_gate)
            post = self.hook_post(self.act(gate) * self.hook_pre_linear(linear))
        return _affine(post, self.W_out, self.b_out)


def _affine(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    if b is None:
        return x @ W
    return torch.addmm(b, x.reshape(-1, x.shape[-1]), W).view(*x.shape[:-1], W.shape[-1])
