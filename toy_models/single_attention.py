"""One softmax-attention layer with a fixed linear head: f(X) = vᵀ Xᵀ softmax(X W z).

"Transformers as Support Vector Machines" (Tarzanagh, Li, Thrampoulidis, Oymak, 2023): the score of
token t is a_t = x_tᵀ W z, with the query z given (cross-attention) or z = x_1 (self-attention), and
W trained directly (``parameterization='W'``) or as W = K Qᵀ (``'KQ'``, K, Q ∈ R^{d×m}).

The layer *is* a 1-head ``toy_models.attention.Attention`` (attn_scale = 1, no biases, float64):
its score is (W_Qᵀ x_q)·(W_Kᵀ x_k) = x_kᵀ W_K W_Qᵀ x_q, so W_K = K, W_Q = Q with the query z at the
query position gives x_tᵀ K Qᵀ z. For 'W', W_K holds W and W_Q is a frozen identity. The value and
output maps are frozen so that the block output at the query position is (vᵀ Xᵀ s) e_1:
W_V = v e_1ᵀ [d, m], W_O = e_1 e_1ᵀ [m, d]. Cross-attention runs the sequence [z, x_1, …, x_T] with
the query position masked out of its own keys; self-attention runs [x_1, …, x_T] and reads position 0.

``path`` selects the toy transformer's ``reference`` (einsum) or ``kernel`` (SDPA) path, or
``direct``, the formula above written out; all three read the same parameters.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from .attention import Attention, build_allowed
from .config import ConfigError, TransformerConfig

Parameterization = Literal["W", "KQ"]
PATHS = ("direct", "reference", "kernel")


class SingleAttention(nn.Module):
    def __init__(self, v: torch.Tensor, parameterization: Parameterization = "W", m: int | None = None,
                 cross_attn: bool = True):
        super().__init__()
        if parameterization not in ("W", "KQ"):
            raise ConfigError("parameterization", parameterization, "'W' or 'KQ'")
        v = torch.as_tensor(v, dtype=torch.float64)
        if v.ndim != 1:
            raise ConfigError("v", tuple(v.shape), "a head vector of shape [d]")
        d = v.shape[0]
        m = d if (m is None or parameterization == "W") else m
        if not isinstance(m, int) or m < 1:
            raise ConfigError("m", m, "a positive integer (width of K and Q)")
        self.parameterization, self.cross_attn, self.d, self.m = parameterization, cross_attn, d, m
        self.register_buffer("v", v.clone())
        cfg = TransformerConfig(n_layers=1, d_model=d, n_heads=1, d_head=m, attn_bias=False, attention="softmax",
                                attention_dir="bidirectional", attn_scale=1.0, pos="none", dtype="float64",
                                input_kind="continuous", d_input=d, attn_only=True)
        self.attn = Attention(cfg)
        with torch.no_grad():
            self.attn.W_K.zero_()
            self.attn.W_Q.zero_()
            if parameterization == "W":
                self.attn.W_Q.copy_(torch.eye(d, dtype=torch.float64)[None])
                self.attn.W_Q.requires_grad_(False)
            self.attn.W_V.zero_()
            self.attn.W_V[0, :, 0] = v
            self.attn.W_O.zero_()
            self.attn.W_O[0, 0, 0] = 1.0
        self.attn.W_V.requires_grad_(False)
        self.attn.W_O.requires_grad_(False)

    # ------------------------------------------------------------------ parameters
    @property
    def K(self) -> nn.Parameter:
        return self.attn.W_K  # [1, d, m]

    @property
    def Q(self) -> nn.Parameter:
        return self.attn.W_Q  # [1, d, m] (frozen identity for 'W')

    def factors(self) -> list[nn.Parameter]:
        """The trained tensors: [W] or [K, Q]."""
        return [self.K] if self.parameterization == "W" else [self.K, self.Q]

    def W(self) -> torch.Tensor:
        """The combined W = K Qᵀ [d, d] (= the parameter itself for 'W')."""
        return self.K[0] @ self.Q[0].T

    @torch.no_grad()
    def set_W(self, W: torch.Tensor) -> None:
        if self.parameterization != "W":
            raise ConfigError("parameterization", self.parameterization, "'W' to set W directly; set K and Q for 'KQ'")
        self.K.copy_(torch.as_tensor(W, dtype=torch.float64)[None])

    # ------------------------------------------------------------------ forward
    def queries(self, X: torch.Tensor, Z: torch.Tensor | None) -> torch.Tensor:
        if not self.cross_attn:
            return X[:, 0]
        if Z is None:
            raise ConfigError("Z", None, "queries [n, d] for cross-attention")
        return Z

    def attention_probs(self, X: torch.Tensor, Z: torch.Tensor | None = None) -> torch.Tensor:
        """softmax(X W z) [n, T] (direct formula)."""
        z = self.queries(X, Z)
        return torch.softmax(torch.einsum("ntd,de,ne->nt", X, self.W(), z), dim=-1)

    def forward(self, X: torch.Tensor, Z: torch.Tensor | None = None, path: str = "reference") -> torch.Tensor:
        """f(X_i) for every input: [n]."""
        if path not in PATHS:
            raise ConfigError("path", path, f"one of {PATHS}")
        if path == "direct":
            return torch.einsum("nt,ntd,d->n", self.attention_probs(X, Z), X, self.v)
        n, T, _ = X.shape
        if self.cross_attn:
            seq = torch.cat([self.queries(X, Z)[:, None], X], dim=1)  # [n, T+1, d]
            keys = torch.ones(T + 1, T + 1, dtype=torch.bool)
            keys[:, 0] = False  # nobody attends to the query slot: only x_1..x_T are keys
            allowed = build_allowed("bidirectional", None, keys, n, T + 1, X.device)
        else:
            seq, allowed = X, None
        return self.attn(seq, allowed, path)[:, 0, 0]
