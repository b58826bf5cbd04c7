"""Residual-stream variance across depth at initialization, for every norm placement.

The state is the position kernel C[p, q] = E[x_p · x_q] / d of the residual stream of one token
sequence (expectation over the weights at initialization; x_p ∈ R^d the stream at position p), so
C[p, p] is the per-coordinate variance at position p. Each sublayer F has an output projection
(W_O or W_out) with zero-mean weights drawn independently of everything upstream, so
E[x_p · F_q] = 0 and, exactly in expectation at any width,

    Var[x_{l+1}] = Var[x_l] + Var[F(·)]        (C ← C + C_F)

("On Layer Normalization in the Transformer Architecture", Xiong et al. 2020; "Peri-LN: Revisiting
Layer Normalization in the Transformer Architecture", Kim et al. 2025). Per placement:

    none: C ← C + F(C)          pre:  C ← C + F(N(C))       peri: C ← C + N(F(N(C)))
    post: C ← N(C + F(C))       mix:  post for the first ⌊αL⌋ blocks, then pre
    lns:  C ← C + F(N(C)/ℓ)     (block ℓ = 1 … L: the norm's output scaled by 1/√ℓ, its kernel by 1/ℓ;
                                 "The Curse of Depth in Large Language Models", Sun et al. 2025)
    deepnorm: C ← N(α² C + F(C)), α = (2L)^{1/4}, F's W_V, W_O, W_in, W_out drawn β = (8L)^{-1/4}
                                 times smaller ("DeepNet: Scaling Transformers to 1,000 Layers")

Sublayer constants, derived for ``toy_models.init`` (σ²_X the variance of matrix X's entries):

- Norm N (LayerNorm, gain 1, bias 0): N(C)[p,q] = c C_pq / √((c C_pp + ε)(c C_qq + ε)) with
  c = 1 − 1/d (removing the token mean removes 1/d of the variance of exchangeable, uncorrelated
  coordinates); c = 1 for RMSNorm. The diagonal is exact per token up to the concentration of
  the token's variance s² (output mean square s²/(s² + ε) exactly).
- Attention: o_p = Σ_h Σ_k A_pk u_k W_V^h W_O^h, hence
  C_attn = H d_head d σ²_V σ²_O · A K Aᵀ, K the input kernel. A is taken as uniform over the
  allowed keys (1/(p+1) on keys ≤ p with a causal mask): exact in the limit of small scores. The
  scores have variance s² = d_head (d σ²_Q K_pp)(d σ²_K K_kk) / scale² (``score_variance``); the
  relative error of the uniform approximation is O(s²). With ``gpt2`` init s² ≈ (d σ²)² ≈ 1e-4;
  with ``fan_in`` s² = 1, where attention is *not* uniform — there set ``attn_scale`` large
  (s² → 0) or expect the prediction to miss (stated in the tests). A clipped softmax (γ, ζ) turns
  the uniform weight 1/n into clip((ζ − γ)/n + γ, 0, 1), exactly; the attention gate is not modelled
  (refused).
- MLP: u W_in has Gaussian columns given u (W_in Gaussian), covariance σ²_in d K, so
  C_mlp = d_mlp σ²_out · E[φ(a_p)φ(a_q)], a ~ N(0, σ²_in d K) (``gaussian.activation_kernel``);
  gated: d_mlp σ²_out · E[φ(g_p)φ(g_q)] ⊙ (σ²_in d K), g ~ N(0, σ²_gate d K).
  fan_in: σ²_in = 1/d, σ²_out = 1/d_mlp, so C_mlp = E[φφ](K) (ReLU: K_pp/2 on the diagonal).
  gpt2: σ²_in = σ², σ²_out = σ²/n_w, n_w = 2L residual writers (L when attention-only).
- Embedding: C0 = σ²_E [t_p = t_q] + σ²_pos [p = q] (learned), + PE_p·PE_q/d (sinusoidal); with
  ``fan_in`` σ²_E = σ²_pos = 1, with ``gpt2`` σ²_E = σ²_pos = init_std².

Infinite-width statements apart from the exact recursion: the per-token variance concentrates (the
norms' 1/σ is deterministic) and correlations between tokens are replaced by their expectations;
both err by O(1/d).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from jaxtyping import Float, Int

from ..errors import ConfigError
from .architecture import Architecture
from .gaussian import activation_kernel, second_moment

Kernel = Float[np.ndarray, "T T"]  # a position kernel C[p, q] = E[x_p · x_q] / d


@dataclass(frozen=True)
class InitVariances:
    """Entry variances of each weight at initialization (``toy_models.init``), by scheme; DeepNorm
    multiplies those of W_V, W_O, W_in (and W_gate) and W_out by β²."""

    embed: float
    pos: float
    qk: float
    v: float
    o: float
    w_in: float
    w_out: float

    @classmethod
    def from_architecture(cls, arch: Architecture) -> "InitVariances":
        d, m, H, dh = arch.d_model, arch.d_mlp, arch.n_heads, arch.d_head
        s2, b2 = arch.init_std**2, arch.deepnorm_beta**2
        if arch.init == "gpt2":
            n_w = arch.residual_writers  # 2L, or L when attention-only: the same rule as the init
            qk, o, w_in, w_out = s2, s2 / n_w, s2, s2 / n_w
        elif arch.init == "fan_in":
            qk, o, w_in, w_out = 1.0 / d, 1.0 / (H * dh), 1.0 / d, 1.0 / m
        elif arch.init == "normal":
            qk, o, w_in, w_out = s2, s2, s2, s2
        else:
            return cls(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        embed = 1.0 if arch.init == "fan_in" else s2
        return cls(embed=embed, pos=embed, qk=qk, v=qk * b2, o=o * b2, w_in=w_in * b2, w_out=w_out * b2)


@dataclass(frozen=True)
class VarianceProfile:
    """Predicted position kernels of the residual stream at each hook, in forward order.

    ``hooks[i]`` is a TransformerLens hook name (``blocks.0.hook_resid_pre``, ``blocks.l.hook_resid_mid``,
    ``blocks.l.hook_resid_post``); ``kernels[i]`` the [T, T] kernel there. ``variance`` is the
    position-averaged per-coordinate variance, E[|x_p|²]/d averaged over p.
    """

    hooks: tuple[str, ...]
    kernels: Float[np.ndarray, "hook T T"]
    # Size of the second-order finite-width term at states that are a norm's output (0 elsewhere):
    # there the per-token mean square is s²/(s² + ε) exactly, and the only error left is how much
    # s² fluctuates, which the Gaussian-coordinate term bounds (s² fixed ⇒ 0, Gaussian ⇒ the term).
    remainder: Float[np.ndarray, "hook"]
    states: tuple = ()  # the StreamState at each hook (one sequence only; empty for a batch)

    @property
    def per_position(self) -> Float[np.ndarray, "hook T"]:
        return np.diagonal(self.kernels, axis1=1, axis2=2)

    @property
    def variance(self) -> Float[np.ndarray, "hook"]:
        return self.per_position.mean(-1)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"hook": self.hooks, "quantity": "variance", "value": self.variance})


def sinusoidal_table(n_pos: int, d_model: int) -> Float[np.ndarray, "n_pos d_model"]:
    """PE[p, 2i] = sin(p / 10000^{2i/d}), PE[p, 2i+1] = cos(p / 10000^{2i/d}) ("Attention Is All You
    Need", Vaswani et al. 2017), float64; for odd d the last column is a sine."""
    pos = np.arange(n_pos, dtype=np.float64)[:, None]
    angles = pos * 10000.0 ** (-np.arange(0, d_model, 2, dtype=np.float64) / d_model)
    table = np.zeros((n_pos, d_model))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles)[:, : d_model // 2]
    return table


def input_kernel(arch: Architecture, tokens: Int[np.ndarray, "T"]) -> Kernel:
    """C0[p, q] = E[x0_p · x0_q]/d for one token sequence (before any embedding norm)."""
    if arch.input_kind != "tokens" or arch.embed != "learned":
        raise ConfigError("input_kind/embed", (arch.input_kind, arch.embed),
                          "learned token embeddings (the theory draws W_E at random)")
    tokens = np.asarray(tokens)
    T = tokens.shape[0]
    iv = InitVariances.from_architecture(arch)
    C = iv.embed * (tokens[:, None] == tokens[None, :]).astype(np.float64)
    if arch.pos == "learned":
        C = C + iv.pos * np.eye(T)
    elif arch.pos == "sinusoidal":
        pe = sinusoidal_table(T, arch.d_model)
        C = C + pe @ pe.T / arch.d_model
    elif arch.pos == "onehot":
        raise ConfigError("pos", arch.pos, "'learned', 'sinusoidal', 'rotary' or 'none'")
    return C


@dataclass(frozen=True)
class StreamState:
    """Second moments of the residual stream at one point of the forward pass.

    C: raw kernel E[x_p·x_q]/d. Cc: the kernel of the token-centred stream (what a LayerNorm sees).
    fixed: per position, the share of the centred variance that comes from a norm's output, whose
    per-token norm is fixed (it sets how much the token variance s² fluctuates, see ``norm_state``).
    """

    C: np.ndarray
    Cc: np.ndarray
    fixed: np.ndarray

    @classmethod
    def fresh(cls, arch: Architecture, C: Kernel) -> "StreamState":
        """A sum of independent writes with exchangeable, uncorrelated coordinates: removing the token
        mean removes 1/d of each kernel entry."""
        return cls(C, (1.0 - 1.0 / arch.d_model) * C, np.zeros(C.shape[0]))

    def __add__(self, other: "StreamState") -> "StreamState":  # independent writes: no cross terms
        return StreamState(self.C + other.C, self.Cc + other.Cc, self.fixed)

    def scaled(self, c: float) -> "StreamState":
        """The stream multiplied by √c: every second moment (and the fixed-norm share) times c."""
        return StreamState(c * self.C, c * self.Cc, c * self.fixed)


def norm_state(arch: Architecture, x: StreamState) -> StreamState:
    """The stream after a norm with gain 1 and bias 0 (its exact init values).

    With S the kernel the norm sees (centred for LayerNorm, raw for RMSNorm) and m_p = S_pp:
    N[p,q] = S_pq / √((m_p + ε)(m_q + ε)). Per token the output mean square is f(s²) = s²/(s² + ε)
    exactly; E[f(s²)] ≈ f(m) + f''(m) Var(s²)/2 with f''(m) = −2ε/(m + ε)³ (the Jensen term; it
    matters when m is comparable to ε, e.g. the gpt2 embedding, m ≈ 8e-4, ε = 1e-5). For a fixed-norm
    part m_x plus a Gaussian part m_F = m − m_x: Var(s²) ≈ (2 m_F² + 4 m_x m_F)/(d − 1).
    """
    d, eps = arch.d_model, arch.norm_eps
    S = x.Cc if arch.norm_kind == "layernorm" else x.C
    m = np.diag(S)
    K = S / np.sqrt((m + eps)[:, None] * (m + eps)[None, :])
    K = K + np.diag(_jensen(arch, m, x.fixed))
    centred = K if arch.norm_kind == "layernorm" else (1.0 - 1.0 / d) * K
    return StreamState(K, centred, np.diag(centred).copy())


def _jensen(arch: Architecture, m: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    d, eps = arch.d_model, arch.norm_eps
    m_x = np.minimum(fixed, m)
    m_f = m - m_x
    var_s2 = (2.0 * m_f**2 + 4.0 * m_x * m_f) / max(d - 1, 1)
    return -eps * var_s2 / (m + eps) ** 3


def norm_kernel(arch: Architecture, C: Kernel) -> Kernel:
    """``norm_state`` of a freshly written stream with raw kernel C (convenience)."""
    return norm_state(arch, StreamState.fresh(arch, C)).C


def averaging_matrix(arch: Architecture, T: int) -> Kernel:
    """Uniform attention over the allowed keys, through the clipped softmax clip((ζ − γ)A + γ, 0, 1)
    when the config clips (disallowed keys stay 0)."""
    allowed = np.tril(np.ones((T, T))) if arch.attention_dir == "causal" else np.ones((T, T))
    A = allowed / allowed.sum(-1, keepdims=True)
    if arch.clipped_softmax:
        A = np.where(allowed > 0, np.clip((arch.clip_zeta - arch.clip_gamma) * A + arch.clip_gamma, 0.0, 1.0), 0.0)
    return A


def attention_kernel(arch: Architecture, K: Kernel) -> Kernel:
    iv = InitVariances.from_architecture(arch)
    A = averaging_matrix(arch, K.shape[0])
    gain = arch.n_heads * arch.d_head * arch.d_model * iv.v * iv.o
    return gain * A @ K @ A.T


def score_variance(arch: Architecture, K: Kernel) -> float:
    """Largest attention-score variance d_head (dσ²_Q K_pp)(dσ²_K K_kk)/scale²; uniform attention needs ≪ 1."""
    iv = InitVariances.from_architecture(arch)
    kmax = float(np.diag(K).max())
    return arch.d_head * (arch.d_model * iv.qk * kmax) ** 2 / arch.attn_scale**2


def mlp_kernel(arch: Architecture, K: Kernel) -> Kernel:
    iv = InitVariances.from_architecture(arch)
    d, m = arch.d_model, arch.d_mlp
    pre = iv.w_in * d * K
    if arch.gated_mlp:  # W_gate is drawn like W_in
        return m * iv.w_out * activation_kernel(arch.act_fn, pre) * pre
    return m * iv.w_out * activation_kernel(arch.act_fn, pre)


def _check(arch: Architecture) -> None:
    if arch.attention != "softmax":
        raise ConfigError("attention", arch.attention, "'softmax' (the theory assumes near-uniform softmax at init)")
    if arch.input_kind != "tokens":
        raise ConfigError("input_kind", arch.input_kind, "'tokens'")
    if arch.attn_gate:
        raise ConfigError("attn_gate", arch.attn_gate, "False (the recursion does not model the gate)")


def variance_profile(arch: Architecture, tokens: Int[np.ndarray, "*batch T"]) -> VarianceProfile:
    """Predicted residual kernels at every resid hook for ``arch`` at init on ``tokens`` [T] or
    [batch, T] (a batch is averaged: the kernels are per sequence, their diagonals are averaged)."""
    _check(arch)
    tokens = np.asarray(tokens)
    if tokens.ndim == 2:
        profiles = [variance_profile(arch, row) for row in tokens]
        return VarianceProfile(profiles[0].hooks, np.mean([p.kernels for p in profiles], axis=0),
                               np.mean([p.remainder for p in profiles], axis=0))
    if tokens.ndim != 1 or tokens.shape[0] == 0:
        raise ValueError(f"tokens must have shape [T] or [batch, T], got {tokens.shape}")
    x = StreamState.fresh(arch, input_kernel(arch, tokens))
    remainder = [0.0]
    if arch.embed_norm:
        x, r = _norm_with_remainder(arch, x)
        remainder = [r]
    hooks, kernels, states = ["blocks.0.hook_resid_pre"], [x.C], [x]
    sublayers = [attention_kernel] + ([] if arch.attn_only else [mlp_kernel])

    def F(kernel, state: StreamState) -> StreamState:
        return StreamState.fresh(arch, kernel(arch, state.C))

    for layer in range(arch.n_layers):
        placement = arch.block_placement(layer)
        for i, kernel in enumerate(sublayers):
            r = 0.0
            if placement == "none":
                x = x + F(kernel, x)
            elif placement == "pre":
                x = x + F(kernel, norm_state(arch, x))
            elif placement == "peri":
                x = x + norm_state(arch, F(kernel, norm_state(arch, x)))
            elif placement == "lns":
                x = x + F(kernel, norm_state(arch, x).scaled(arch.lns_scale(layer) ** 2))
            elif placement == "deepnorm":
                x, r = _norm_with_remainder(arch, x.scaled(arch.deepnorm_alpha**2) + F(kernel, x))
            else:  # post
                x, r = _norm_with_remainder(arch, x + F(kernel, x))
            remainder.append(r)
            last = i == len(sublayers) - 1
            hooks.append(f"blocks.{layer}.hook_resid_post" if last else f"blocks.{layer}.hook_resid_mid")
            kernels.append(x.C)
            states.append(x)
    return VarianceProfile(tuple(hooks), np.stack(kernels), np.array(remainder), tuple(states))


def _norm_with_remainder(arch: Architecture, x: StreamState) -> tuple[StreamState, float]:
    """A norm's output and the size of its Jensen term (position-averaged): at a norm's output the
    seed-to-seed spread vanishes, and what is left is this second-order finite-width term, whose
    Var(s²) is modelled, not exact — the comparison allows its whole size."""
    S = x.Cc if arch.norm_kind == "layernorm" else x.C
    return norm_state(arch, x), float(np.abs(_jensen(arch, np.diag(S), x.fixed)).mean())


def linear_growth_slope(arch: Architecture) -> float:
    """Pre-LN with fan_in init, no token repeats, T → 1 (a single token): each block adds
    d H d_head σ²_Vσ²_O·1 + d_mlp σ²_out E[φ(z)²], z ~ N(0, dσ²_in) — the slope of linear growth."""
    iv = InitVariances.from_architecture(arch)
    attn = arch.n_heads * arch.d_head * arch.d_model * iv.v * iv.o
    if arch.attn_only:
        return attn
    s2 = arch.d_model * iv.w_in
    mlp = arch.d_mlp * iv.w_out * (second_moment(arch.act_fn, s2) * (s2 if arch.gated_mlp else 1.0))
    return attn + mlp


__all__ = ["Architecture", "InitVariances", "VarianceProfile", "sinusoidal_table", "variance_profile", "input_kernel", "norm_kernel",
           "attention_kernel", "mlp_kernel", "StreamState", "norm_state", "score_variance", "linear_growth_slope"]
