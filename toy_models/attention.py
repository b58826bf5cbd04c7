"""Multi-head attention on two interchangeable paths that share one set of weights.

Per head h, with q_p = W_Qᵀ x_p + b_Q (likewise k, v) and s = attn_scale (√d_head by default):

- softmax:  A = softmax(q kᵀ / s + mask)                           (−∞ where a key is not allowed)
- linear:   A = (q kᵀ / s) ⊙ allowed / n_q,  n_q = #allowed keys of query q  (or 1 if not normalized)
  — the linear self-attention of "Transformers learn in-context by gradient descent" (von Oswald et
  al. 2023) and "Trained Transformers Learn Linear Models In-Context" (Zhang, Frei, Bartlett 2024).

z = A v, and the block output is Σ_h z_h W_O[h] + b_O.

Options from "Quantizable Transformers: Removing Outliers by Helping Attention Heads Do Nothing"
(Bondarenko et al. 2023), on both paths:

- clipped softmax (``clip_gamma`` γ ≤ 0, ``clip_zeta`` ζ ≥ 1): A = clip((ζ − γ)·softmax(·) + γ, 0, 1),
  so a weight can reach exactly 0 (or 1) at finite scores; disallowed keys stay at 0.
- gated attention (``attn_gate``): z_h ← π_h ⊙ z_h with π_h = sigmoid(x_h · W_G[h] + b_G[h]) per token,
  x_h head h's d_head-sized chunk of the attention's input (``hook_gate`` [batch, pos, head]);
  ``hook_z`` fires on the gated z, the input of W_O.

The **reference** path writes every step as an einsum and fires a HookPoint at each intermediate
(TransformerLens names and shapes: ``hook_q`` [batch, pos, head, d_head], ``hook_attn_scores`` and
``hook_pattern`` [batch, head, query, key], ``hook_z``, ``hook_result`` [batch, pos, head, d_model]).
The **kernel** path computes the same function with ``scaled_dot_product_attention`` (softmax; the
clipped softmax, which no fused kernel computes, as batched matmuls in the kernel's [batch, head, pos,
d_head] layout) or re-associated matmuls (linear: q (kᵀ v) when no mask couples queries and keys), as full-scale
models do; scores, pattern and per-head result never exist there, so hooks on them are refused.

A query row with no allowed key (e.g. a left-padded position under a causal mask) outputs z = 0 on
both paths, rather than the NaN of a softmax over an empty set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int, Shaped
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from .positional import apply_rotary, rotary_cos_sin

REFERENCE_ONLY_HOOKS = ("hook_attn_scores", "hook_pattern", "hook_result")


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        dtype = getattr(torch, cfg.dtype)
        H, d, dh = cfg.n_heads, cfg.d_model, cfg.head_dim
        self.W_Q = nn.Parameter(torch.empty(H, d, dh, dtype=dtype))
        self.W_K = nn.Parameter(torch.empty(H, d, dh, dtype=dtype))
        self.W_V = nn.Parameter(torch.empty(H, d, dh, dtype=dtype))
        self.W_O = nn.Parameter(torch.empty(H, dh, d, dtype=dtype))
        if cfg.attn_bias:
            self.b_Q = nn.Parameter(torch.zeros(H, dh, dtype=dtype))
            self.b_K = nn.Parameter(torch.zeros(H, dh, dtype=dtype))
            self.b_V = nn.Parameter(torch.zeros(H, dh, dtype=dtype))
            self.b_O = nn.Parameter(torch.zeros(d, dtype=dtype))
        else:
            self.b_Q = self.b_K = self.b_V = self.b_O = None
        if cfg.pos == "rotary":
            cos, sin = rotary_cos_sin(cfg.n_ctx, dh, cfg.rotary_base, dtype)
            self.register_buffer("rotary_cos", cos, persistent=False)
            self.register_buffer("rotary_sin", sin, persistent=False)
            self.hook_rot_q, self.hook_rot_k = HookPoint(), HookPoint()
        for name in ("hook_q", "hook_k", "hook_v", "hook_z") + REFERENCE_ONLY_HOOKS:
            setattr(self, name, HookPoint())
        if cfg.attn_gate:
            self.W_G = nn.Parameter(torch.empty(H, dh, dtype=dtype))
            self.b_G = nn.Parameter(torch.zeros(H, dtype=dtype))
            self.hook_gate = HookPoint()  # [batch, pos, head]

    # ------------------------------------------------------------------ shared pieces
    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q = torch.einsum("bpm,hmd->bphd", x, self.W_Q)
        k = torch.einsum("bpm,hmd->bphd", x, self.W_K)
        v = torch.einsum("bpm,hmd->bphd", x, self.W_V)
        if self.b_Q is not None:
            q, k, v = q + self.b_Q, k + self.b_K, v + self.b_V
        return self.hook_q(q), self.hook_k(k), self.hook_v(v)

    def _project_fused(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One matmul for q, k and v (what fused QKV layers do); hooks fire on the results."""
        B, T, _ = x.shape
        H, dh = self.cfg.n_heads, self.cfg.head_dim
        W, bias = self._fused_qkv()
        if bias is not None:
            qkv = torch.addmm(bias, x.reshape(B * T, -1), W)
        else:
            qkv = x.reshape(B * T, -1) @ W
        q, k, v = qkv.view(B, T, 3, H, dh).unbind(2)
        return self.hook_q(q), self.hook_k(k), self.hook_v(v)

    def _fused_qkv(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """W_Q | W_K | W_V as one [d_model, 3·H·d_head] matrix (and the biases as one vector), built once
        per parameter update: kept while every parameter's version counter (bumped by each in-place
        write: optimizer steps, load_state_dict), storage and dtype are unchanged. A build that
        autograd must see (gradients enabled and wanted) is made per forward, i.e. once per optimizer
        step in training, and not kept (the graph of one forward is not reused by another); under
        torch.compile the compiler fuses the build into its graph."""
        parts = (self.W_Q, self.W_K, self.W_V) + ((self.b_Q, self.b_K, self.b_V) if self.b_Q is not None else ())
        needs_graph = torch.is_grad_enabled() and any(p.requires_grad for p in parts)
        if needs_graph or torch.compiler.is_compiling() or any(p.is_inference() for p in parts):
            return _build_fused_qkv(parts)  # (inference tensors have no version counter)
        key = tuple((p._version, p.data_ptr(), p.dtype, p.device) for p in parts)
        cached = self.__dict__.get("_fused_qkv_cache")  # a plain attribute: never in state_dict
        if cached is None or cached[0] != key:
            cached = (key, _build_fused_qkv(parts))
            self.__dict__["_fused_qkv_cache"] = cached
        return cached[1]

    def _rotate(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cfg.pos != "rotary":
            return q, k
        T = q.shape[1]
        cos, sin = self.rotary_cos[:T], self.rotary_sin[:T]
        return self.hook_rot_q(apply_rotary(q, cos, sin)), self.hook_rot_k(apply_rotary(k, cos, sin))

    # ------------------------------------------------------------------ forward
    def forward(self, x: Float[Tensor, "batch pos d_model"],
                allowed: Bool[Tensor, "#batch 1 query key"] | CausalMarker | None,
                path: str) -> Float[Tensor, "batch pos d_model"]:
        """allowed: bool, broadcastable to [batch, 1, query, key]; the CAUSAL marker; or None (all keys)."""
        if path == "reference":
            return self._reference(x, allowed)
        self._refuse_reference_only_hooks()
        return self._kernel(x, allowed)

    def _reference(self, x: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        if allowed is CAUSAL:
            allowed = _materialize(allowed, x.shape[1], x.shape[1], x.device)
        q, k, v = self._project(x)
        q, k = self._rotate(q, k)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / self.cfg.scale
        if self.cfg.attention == "softmax":
            if allowed is not None:
                scores = scores.masked_fill(~allowed, float("-inf"))
            scores = self.hook_attn_scores(scores)
            pattern = clipped_softmax(scores, self.cfg.clip_gamma, self.cfg.clip_zeta)
            if allowed is not None:  # empty rows: softmax gave NaN; they attend to nothing
                pattern = torch.where(allowed.any(-1, keepdim=True), pattern, 0.0)
        else:
            if allowed is not None:
                scores = scores.masked_fill(~allowed, 0.0)
            scores = self.hook_attn_scores(scores)
            pattern = scores / self._n_keys(allowed, x) if self.cfg.linear_normalize else scores
        pattern = self.hook_pattern(pattern)
        z = self.hook_z(self._gated(torch.einsum("bhqk,bkhd->bqhd", pattern, v), x))
        result = self.hook_result(torch.einsum("bqhd,hdm->bqhm", z, self.W_O))
        out = result.sum(dim=2)
        return out + self.b_O if self.b_O is not None else out

    def _kernel(self, x: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        q, k, v = self._project_fused(x)
        q, k = self._rotate(q, k)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [batch, head, pos, d_head]
        if self.cfg.attention == "softmax" and self.cfg.clipped_softmax:
            z = self._clipped_kernel(q, k, v, allowed)
        elif self.cfg.attention == "softmax":
            z = self._sdpa(q, k, v, allowed)
        else:
            z = self._linear_kernel(q, k, v, allowed, x)
        z = self.hook_z(self._gated(z.transpose(1, 2), x))  # [batch, pos, head, d_head]
        B, T, H, dh = z.shape
        W_O = self.W_O.reshape(H * dh, -1)
        if self.b_O is not None:
            return torch.addmm(self.b_O, z.reshape(B * T, H * dh), W_O).view(B, T, -1)
        return (z.reshape(B * T, H * dh) @ W_O).view(B, T, -1)

    def _sdpa(self, q, k, v, allowed):
        scale = 1.0 / self.cfg.scale
        if allowed is None:
            return F.scaled_dot_product_attention(q, k, v, scale=scale)
        if allowed is CAUSAL:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
        has_key = allowed.any(-1, keepdim=True)
        # Rows with no allowed key would be NaN inside the kernel: let them see every key, then zero them.
        z = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed | ~has_key, scale=scale)
        return torch.where(has_key, z, 0.0)

    def _clipped_kernel(self, q, k, v, allowed):
        """Clipped softmax on [batch, head, pos, d_head]: scores by one batched matmul, then A v."""
        scores = (q @ k.transpose(-1, -2)) / self.cfg.scale
        if allowed is None:
            return clipped_softmax(scores, self.cfg.clip_gamma, self.cfg.clip_zeta) @ v
        mask = _materialize(allowed, q.shape[-2], k.shape[-2], q.device)
        pattern = clipped_softmax(scores.masked_fill(~mask, float("-inf")), self.cfg.clip_gamma, self.cfg.clip_zeta)
        return torch.where(mask.any(-1, keepdim=True), pattern, 0.0) @ v  # empty rows attend to nothing

    def _gated(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """z [batch, pos, head, d_head] times the head's gate (unchanged when the config has no gate)."""
        if not self.cfg.attn_gate:
            return z
        return z * self.hook_gate(head_gate(x, self.W_G, self.b_G)).unsqueeze(-1)

    def _linear_kernel(self, q, k, v, allowed, x):
        scale = self.cfg.scale
        if allowed is None:  # no mask couples query and key: associate as q (kᵀ v), O(T d²)
            z = q @ (k.transpose(-1, -2) @ v) / scale
        else:
            mask = _materialize(allowed, q.shape[-2], k.shape[-2], q.device)
            z = ((q @ k.transpose(-1, -2)) * mask.to(q.dtype)) @ v / scale
        if self.cfg.linear_normalize:
            z = z / self._n_keys(allowed, x)
        return z

    def _n_keys(self, allowed: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | float:
        """Number of keys each query attends to (at least 1), broadcastable to [batch, head, query, 1]."""
        T = x.shape[1]
        if allowed is None:
            return float(T)
        mask = _materialize(allowed, T, T, x.device)
        return mask.sum(-1, keepdim=True).clamp(min=1).to(x.dtype)

    def _refuse_reference_only_hooks(self) -> None:
        for name in REFERENCE_ONLY_HOOKS:
            hp = getattr(self, name)
            if hp._forward_hooks or hp._backward_hooks or getattr(hp, "fwd_hooks", None) or getattr(hp, "bwd_hooks", None):
                raise RuntimeError(
                    f"{hp.name} has a hook, but the kernel path never materializes attention scores, pattern "
                    f"or per-head result; run with attn_path='reference' to read or patch {name}"
                )


def _build_fused_qkv(parts: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor | None]:
    W_Q, W_K, W_V = parts[:3]  # each [H, d, dh]
    H, d, dh = W_Q.shape
    W = torch.cat([W_Q, W_K, W_V], dim=0).permute(1, 0, 2).reshape(d, 3 * H * dh)
    bias = torch.cat(parts[3:], dim=0).reshape(-1) if len(parts) > 3 else None
    return W, bias


def clipped_softmax(scores: Float[Tensor, "*batch key"], gamma: float, zeta: float) -> Float[Tensor, "*batch key"]:
    """clip((ζ − γ)·softmax(scores) + γ, 0, 1) over the last axis (Bondarenko et al., "Quantizable
    Transformers"); (γ, ζ) = (0, 1) is the softmax itself, returned without the affine step. A −∞ score
    (a disallowed key) has softmax 0, hence weight clip(γ, 0, 1) = 0."""
    p = torch.softmax(scores, dim=-1)
    if gamma == 0.0 and zeta == 1.0:
        return p
    return ((zeta - gamma) * p + gamma).clamp(0.0, 1.0)


def head_gate(x: Float[Tensor, "batch pos d_model"], W_G: Float[Tensor, "head d_head"],
              b_G: Float[Tensor, "head"]) -> Float[Tensor, "batch pos head"]:
    """π [batch, pos, head] = sigmoid(x_h · W_G[h] + b_G[h]), x_h = head h's chunk of x [batch, pos, d_model]
    (the conditional per-head gate of "Quantizable Transformers", Bondarenko et al. 2023)."""
    H, dh = W_G.shape
    chunks = x.reshape(*x.shape[:-1], H, dh)
    return torch.sigmoid(torch.einsum("bphd,hd->bph", chunks, W_G) + b_G)


class CausalMarker:
    """Marker for a pure causal mask, so the kernel path can use the fused ``is_causal`` kernel."""


CAUSAL = CausalMarker()


def _materialize(allowed, T_q: int, T_k: int, device) -> torch.Tensor:
    if allowed is CAUSAL:
        return torch.ones(T_q, T_k, dtype=torch.bool, device=device).tril()
    return allowed


def build_allowed(attention_dir: str, padding_mask: Shaped[Tensor, "batch pos"] | None,
                  attn_mask: Shaped[Tensor, "query key"] | Shaped[Tensor, "batch query key"] | None,
                  batch: int, T: int, device) -> Bool[Tensor, "#batch 1 query key"] | CausalMarker | None:
    """Combine the causal rule and the user's masks into bool ``allowed`` of shape [batch, 1, query, key].

    ``padding_mask`` is a key-padding mask [batch, pos] (1 = a real token, as Hugging Face's
    ``attention_mask``); ``attn_mask`` an explicit [query, key] or [batch, query, key] mask (True = may
    attend). Returns None when every query may attend to every key, and the CAUSAL marker for a plain
    causal mask (so the kernel path can use the fused causal kernel).
    """
    if padding_mask is None and attn_mask is None:
        return CAUSAL if attention_dir == "causal" else None
    allowed = torch.ones(1, 1, T, T, dtype=torch.bool, device=device)
    if attention_dir == "causal":
        allowed = allowed.tril()
    if padding_mask is not None:
        if tuple(padding_mask.shape) != (batch, T):
            raise ValueError(f"padding_mask has shape {tuple(padding_mask.shape)}; expected [batch, pos] = [{batch}, {T}]")
        allowed = allowed & _keep_mask("padding_mask", padding_mask).to(device)[:, None, None, :]
    if attn_mask is not None:
        if tuple(attn_mask.shape) == (T, T):
            allowed = allowed & _keep_mask("attn_mask", attn_mask).to(device)[None, None]
        elif tuple(attn_mask.shape) == (batch, T, T):
            allowed = allowed & _keep_mask("attn_mask", attn_mask).to(device)[:, None]
        else:
            raise ValueError(f"attn_mask has shape {tuple(attn_mask.shape)}; expected [query, key] = [{T}, {T}] "
                             f"or [batch, query, key] = [{batch}, {T}, {T}]")
    return allowed


def _keep_mask(name: str, mask: torch.Tensor) -> torch.Tensor:
    """A Boolean keep-mask from a bool or 0/1 mask.

    An additive float mask (0 = attend, −inf = blocked: the SDPA convention) would be inverted by
    ``.bool()``, so a float ``attn_mask`` is refused; a float ``padding_mask`` is accepted only when it
    holds just 0s and 1s (Hugging Face's ``attention_mask`` is sometimes float).
    """
    if mask.dtype == torch.bool:
        return mask
    if mask.is_floating_point() or mask.is_complex():
        if name == "attn_mask" or not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"{name} must be bool (True = may attend) or 0/1 values, got dtype {mask.dtype}"
                             + ("; for an additive float mask m use (m == 0)" if name == "attn_mask" else ""))
    elif not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{name} must hold only 0s and 1s (1 = may attend), got values outside {{0, 1}}")
    return mask.bool()
