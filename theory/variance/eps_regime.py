"""Where Peri-LN's output norms work as designed: the sublayer output's variance against ``norm_eps``.

Peri-LN's output norm N_out(y) = γ ⊙ (y − ȳ)/√(v_y + ε) gives the residual update unit variance (γ = 1 at
init) only when the variance v_y of the sublayer output y = F(N_in(x)) is large against ε: its output
mean square is v_y/(v_y + ε) exactly, and the gradient through it is scaled by 1/√(v_y + ε). With
v_y ≈ ε the update is *not* of unit variance (1/2 at v_y = ε) and gradients are multiplied by ~1/√(2ε)
≈ 220 at ε = 1e-5 ("Peri-LN: Revisiting Layer Normalization in the Transformer Architecture", Kim et
al. 2025, assumes the first regime).

The ratio r = v_y/ε per sublayer, predicted from the init-time recursion (``recursion``; F reads a
normalized input, so v_y does not depend on the stream's scale):

- fan_in init: v_y = O(1) (attention: the average of unit-variance values; MLP: E[φ(z)²], z ~ N(0, 1)),
  so r ~ 1e4–1e5 at ε = 1e-5, at any width.
- gpt2 init (σ = init_std, output projections σ/√(2L)): attention v_y ≈ d² σ⁴/(2L) · a_p, a_p ≤ 1 the
  uniform-attention averaging of the values at position p; so r ≈ 1 at d_model 32, σ = 0.02, L = 4 —
  inside the ε regime — and r ≥ 100 needs d_model ≳ 10·σ⁻²·√(2Lε/a) (≈ 700 at L = 4, a = 0.3).
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float, Int

from ..errors import ConfigError
from .architecture import Architecture
from .recursion import StreamState, _check, attention_kernel, input_kernel, mlp_kernel, norm_state


def peri_output_variance(arch: Architecture, tokens: Int[np.ndarray, "T"]) -> Float[np.ndarray, "sublayer T"]:
    """Predicted variance v_y [n_sublayers, T] of each sublayer's output before Peri-LN's output norm
    (the centred variance for LayerNorm, the mean square for RMSNorm), in forward order."""
    if arch.norm_placement != "peri":
        raise ConfigError("norm_placement", arch.norm_placement, "'peri' (only Peri-LN has output norms)")
    _check(arch)
    tokens = np.asarray(tokens)
    x = StreamState.fresh(arch, input_kernel(arch, tokens))
    if arch.embed_norm:
        x = norm_state(arch, x)
    kernels = [attention_kernel] + ([] if arch.attn_only else [mlp_kernel])
    out = []
    for _ in range(arch.n_layers):
        for kernel in kernels:
            y = StreamState.fresh(arch, kernel(arch, norm_state(arch, x).C))
            out.append(np.diag(y.Cc if arch.norm_kind == "layernorm" else y.C).copy())
            x = x + norm_state(arch, y)
    return np.array(out)


def peri_eps_ratio(arch: Architecture, tokens: Int[np.ndarray, "T"]) -> float:
    """The smallest v_y/ε over sublayers and positions: ≫ 1 means every output norm is out of the ε regime."""
    return float(peri_output_variance(arch, tokens).min() / arch.norm_eps)


__all__ = ["peri_output_variance", "peri_eps_ratio"]
