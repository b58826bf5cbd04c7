"""Gradient scale of the last layer at initialization ("On Layer Normalization in the Transformer
Architecture", Xiong et al. 2020): Post-LN's last-layer gradient does not shrink with depth, Pre-LN's
shrinks like 1/√L.

Setting. Loss ℓ = Σ_p logits_p · r_p with r_p i.i.d. N(0, I) fixed probes (so the output gradients of
different positions are independent and zero-mean), gradient of the last MLP's W_out (an MLP block
must be last: attn_only is refused). With post_p the MLP's activation and δ_p = ∂ℓ/∂(MLP output)_p,

    ∇W_out = Σ_p post_pᵀ δ_p,   E‖∇W_out‖² = Σ_p E‖post_p‖² E‖δ_p‖²   (cross terms vanish: r_p ⊥ r_q)

- E‖post_p‖² = d_mlp E[φ(a)²], a ~ N(0, dσ²_in K_pp), K the MLP input's kernel (normalized in
  Pre-LN, a norm's output in Post-LN: independent of L).
- δ_p passes through exactly one norm whose input has centred variance m_p (Pre-LN / Mix-LN: the
  final norm on x_L; Post-LN: the last block's norm on x + MLP(x)); its Jacobian is
  (I − 11ᵀ/d − x̂x̂ᵀ/d)/√(m_p + ε), so E‖δ_p‖² = const · 1/(m_p + ε), with a constant (W_U's scale,
  d − 2 surviving directions) that does not depend on depth.

Hence E‖∇W_out‖² ∝ Σ_p E‖post_p‖² E[1/(s_p² + ε)] ≈ Σ_p E‖post_p‖² / (m_p + ε) — ``last_layer_grad_sq`` — and the ratio between two
depths is what the theory predicts: Pre-LN with fan_in init has m ≈ v₀ + L·c, so the norm shrinks
like 1/√L; Post-LN has m = 1 + c_F at every depth, so it does not shrink.
Infinite-width approximations as in ``recursion`` (norm scale taken as deterministic).
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Int

from ..errors import ConfigError
from .architecture import Architecture
from .gaussian import activation_kernel
from .recursion import InitVariances, StreamState, mlp_kernel, norm_state, variance_profile


def last_layer_grad_sq(arch: Architecture, tokens: Int[np.ndarray, "*batch T"]) -> float:
    """Predicted E‖∇W_out‖² of the last block's MLP, up to a depth-independent constant."""
    if arch.attn_only:
        raise ConfigError("attn_only", arch.attn_only, "False (the prediction is for the last MLP's W_out)")
    placement = arch.block_placement(arch.n_layers - 1)
    if placement not in ("pre", "post"):
        raise ConfigError("norm_placement", arch.norm_placement, "'pre', 'post' or 'mix' (whose last block is Pre-LN)")
    tokens = np.asarray(tokens)
    if tokens.ndim == 2:
        return float(np.sum([last_layer_grad_sq(arch, row) for row in tokens]))
    states = variance_profile(arch, tokens).states
    mid, out = states[-2], states[-1]
    if placement == "pre":
        mlp_in, norm_in = norm_state(arch, mid), out
    else:
        mlp_in = mid
        norm_in = mid + StreamState.fresh(arch, mlp_kernel(arch, mid.C))
    iv = InitVariances.from_architecture(arch)
    pre = iv.w_in * arch.d_model * mlp_in.C
    post_sq = arch.d_mlp * np.diag(activation_kernel(arch.act_fn, pre))
    if arch.gated_mlp:
        post_sq = post_sq * np.diag(pre)
    S = norm_in.Cc if arch.norm_kind == "layernorm" else norm_in.C
    m = np.diag(S)
    # E[1/(s² + ε)] to second order: (1 + Var(s²)/(m + ε)²)/(m + ε), Var(s²) as in recursion._jensen
    # (2/(d − 1) relative for a Gaussian stream, ≈ 0 for a norm's fixed-norm output: a 6% effect at d = 32).
    m_x = np.minimum(norm_in.fixed, m)
    var_s2 = (2.0 * (m - m_x) ** 2 + 4.0 * m_x * (m - m_x)) / max(arch.d_model - 1, 1)
    inv = (1.0 + var_s2 / (m + arch.norm_eps) ** 2) / (m + arch.norm_eps)
    return float(np.sum(post_sq * inv))


def last_layer_grad_ratio(arch: Architecture, depth_a: int, depth_b: int, tokens: Int[np.ndarray, "*batch T"]) -> float:
    """Predicted ‖∇W_out‖ at depth_a over depth_b: √(E‖∇‖²_a / E‖∇‖²_b)."""
    a = last_layer_grad_sq(arch.replace(n_layers=depth_a), tokens)
    b = last_layer_grad_sq(arch.replace(n_layers=depth_b), tokens)
    return float(np.sqrt(a / b))
