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

A nonlinear ``head`` (the paper's section on nonlinear heads, f(X) = h(Xᵀ softmax(X W z))) replaces
the linear one: W_V = I and W_O = I then carry the whole pooled token Xᵀ s to the head (so m = d).
``ReLUHead`` is the fixed two-layer head h(u) = aᵀ ReLU(B u) used by the study.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from .attention import Attention, build_allowed
from .config import ConfigError, TransformerConfig

Parameterization = Literal["W", "KQ"]
PATHS = ("direct", "reference", "kernel")


class ReLUHead(nn.Module):
    """A fixed (untrained) two-layer head h(u) = aᵀ ReLU(B u), B [width, d] ~ N(0, 1/d), a_j = ±1 (fair signs).

    Drawn from ``torch.Generator().manual_seed(seed)``; float64. With this head the best attention
    output mixes several tokens, so trained attention keeps a *set* of tokens per input.
    """

    def __init__(self, d: int, width: int = 16, seed: int = 0):
        super().__init__()
        for name, value in (("d", d), ("width", width)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(name, value, "a positive integer")
        gen = torch.Generator().manual_seed(seed)
        self.d = d
        self.register_buffer("B", torch.randn(width, d, generator=gen, dtype=torch.float64) / d**0.5)
        signs = torch.randint(0, 2, (width,), generator=gen).to(torch.float64) * 2 - 1
        self.register_buffer("a", signs)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u [n, d] → h(u) [n]."""
        return torch.relu(u @ self.B.T) @ self.a


class SingleAttention(nn.Module):
    def __init__(self, v: torch.Tensor | None, parameterization: Parameterization = "W", m: int | None = None,
                 cross_attn: bool = True, head: nn.Module | None = None, path: str = "reference"):
        super().__init__()
        if parameterization not in ("W", "KQ"):
            raise ConfigError("parameterization", parameterization, "'W' or 'KQ'")
        if path not in PATHS:
            raise ConfigError("path", path, f"one of {PATHS}")
        self.path = path  # the forward's default path
        if head is None:
            if v is None:
                raise ConfigError("v", None, "a head vector of shape [d] (or pass a nonlinear head)")
            v = torch.as_tensor(v, dtype=torch.float64)
            if v.ndim != 1:
                raise ConfigError("v", tuple(v.shape), "a head vector of shape [d]")
            d = v.shape[0]
        else:
            if v is not None:
                raise ConfigError("v", "a vector", "None when a nonlinear head is given (the head replaces v)")
            d = getattr(head, "d", None)
            if not isinstance(d, int) or d < 1:
                raise ConfigError("head", type(head).__name__, "a module with an integer attribute d (its input width)")
        m = d if (m is None or parameterization == "W") else m
        if not isinstance(m, int) or m < 1:
            raise ConfigError("m", m, "a positive integer (width of K and Q)")
        if head is not None and m != d:
            raise ConfigError("m", m, f"{d} (= d) with a nonlinear head: W_V = I carries the pooled token")
        self.parameterization, self.cross_attn, self.d, self.m = parameterization, cross_attn, d, m
        self.head = head
        self.register_buffer("v", v.clone() if v is not None else torch.zeros(0, dtype=torch.float64))
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
            self.attn.W_O.zero_()
            if head is None:
                self.attn.W_V[0, :, 0] = v
                self.attn.W_O[0, 0, 0] = 1.0
            else:
                self.attn.W_V.copy_(torch.eye(d, dtype=torch.float64)[None])
                self.attn.W_O.copy_(torch.eye(d, dtype=torch.float64)[None])
        self.attn.W_V.requires_grad_(False)
        self.attn.W_O.requires_grad_(False)

    # ------------------------------------------------------------------ parameters
    @torch.no_grad()
    def initialize_factors(self, seed: int = 0, scale: float = 0.1) -> None:
        """The paper's start: W(0) = 0 for 'W'; K(0) ~ scale·N(0, 1) entrywise (from
        ``torch.Generator().manual_seed(seed)``) and Q(0) = 0 for 'KQ', so W(0) = K Qᵀ = 0 while the
        gradient on Q is not."""
        self.K.zero_()
        if self.parameterization == "KQ":
            gen = torch.Generator().manual_seed(seed)
            self.K.copy_(scale * torch.randn(self.K.shape, generator=gen, dtype=torch.float64))
            self.Q.zero_()

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

    def forward(self, X: torch.Tensor, queries: torch.Tensor | None = None, path: str | None = None) -> torch.Tensor:
        """f(X_i) for every input: [n]. ``queries`` Z [n, d] (cross-attention); ``path`` defaults to the
        layer's own (the trainer calls ``model(X, queries=Z)``)."""
        Z, path = queries, self.path if path is None else path
        if path not in PATHS:
            raise ConfigError("path", path, f"one of {PATHS}")
        if path == "direct":
            if self.head is not None:
                return self.head(torch.einsum("nt,ntd->nd", self.attention_probs(X, Z), X))
            return torch.einsum("nt,ntd,d->n", self.attention_probs(X, Z), X, self.v)
        n, T, _ = X.shape
        if self.cross_attn:
            seq = torch.cat([self.queries(X, Z)[:, None], X], dim=1)  # [n, T+1, d]
            keys = torch.ones(T + 1, T + 1, dtype=torch.bool)
            keys[:, 0] = False  # nobody attends to the query slot: only x_1..x_T are keys
            allowed = build_allowed("bidirectional", None, keys, n, T + 1, X.device)
        else:
            seq, allowed = X, None
        out = self.attn(seq, allowed, path)[:, 0]  # [n, d], the query position
        return out[:, 0] if self.head is None else self.head(out)
