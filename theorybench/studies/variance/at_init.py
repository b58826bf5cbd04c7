"""The Monte Carlo and the theory at initialization (figures ``residual_growth_at_init``,
``gradient_scale_at_init``).

Where the theory holds. Both use ``fan_in`` init (the scheme of the variance derivations) with
attention scores divided by ATTN_SCALE = 1e4 (times the stream's largest predicted variance for the
residual figure, see ``uniform_attention_config``) instead of √d_head: the theory takes attention as
uniform at init, exact as the score variance → 0. With fan_in and the default scale the scores have
variance 1 and attention is not uniform; the figure measures that gap on the same weights (a Pre-LN
run at the default scale, crosses; at quick scale +4.7% at layer 2, 8.7 paired SE, washing out to
−0.1% by layer 32) and reports it in its numbers. The MLP uses ReLU, whose kernel has a closed form at
every variance (``theory.variance.gaussian``): the un-normalized stream ("none") grows exponentially
and leaves the range where GELU's quadrature is validated. Its per-seed values are a product of 2L
random gains, heavy-tailed at depth: there the sample mean (and its SE) understate the expectation,
which the figure's numbers show (MC / theory and the seed spread at the last layer).

Every placement is run on the same seeds, so their Monte Carlo fluctuations are correlated: a seed set
that runs high at some layer does so for every placement.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from probes import gradient_norms, residual_stats
from theory.variance import variance_profile
from toy_models import Transformer, TransformerConfig
from toy_models.init import initialize
from toy_models.theory_args import variance_architecture

PLACEMENTS_AT_INIT = ("none", "post", "pre", "peri", "mix")
NORMALIZED = ("post", "pre", "peri", "mix")  # "none": heavy-tailed over seeds at depth (see the module docstring)
ATTN_SCALE = 1e4  # scores ~ N(0, d_head/1e8): attention uniform at init, where the theory is exact
N_CTX, D_VOCAB, N_SEQ = 8, 50, 2
# The caption tail of both figures at initialization: where their theory is exact.
AT_INIT_WHERE = (" Measured at initialization on the toy transformer with fan_in init, near-uniform attention "
          "(score scale 1e4, where the uniform-attention theory is exact) and a ReLU MLP; the gap at the default "
          "1/√d_head score scale is reported among the numbers.")


def base_config(d_model: int, n_layers: int, placement: str, **overrides):
    """The toy model the figures measure: fan_in init, ReLU MLP, near-uniform attention, float64."""
    kw = dict(n_layers=n_layers, d_model=d_model, n_heads=4, n_ctx=N_CTX, d_vocab=D_VOCAB, norm_placement=placement,
              init="fan_in", attn_scale=ATTN_SCALE, act_fn="relu", dtype="float64", mix_alpha=0.25)
    return TransformerConfig(**{**kw, **overrides})


def fixed_tokens() -> torch.Tensor:
    """The sequences every seed is run on (fixed, so that the theory's input kernel is the same)."""
    return torch.randint(0, D_VOCAB, (N_SEQ, N_CTX), generator=torch.Generator().manual_seed(0))


def uniform_attention_config(cfg, tokens: torch.Tensor):
    """``cfg`` with scores divided by ATTN_SCALE · max(1, K_max), K_max the largest predicted per-coordinate
    variance of the stream (the profile does not depend on the score scale): the score variance
    d_head (dσ²_Q K)²/scale² then stays ≤ d_head·1e-8 at every layer, also where an un-normalized
    stream grows exponentially and 1e4 alone would let attention sharpen past layer ~10."""
    k_max = float(np.max(variance_profile(variance_architecture(cfg), tokens.numpy()).per_position))
    return cfg.replace(attn_scale=ATTN_SCALE * max(1.0, k_max))


def theory_per_layer(cfg, tokens: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Predicted mean square at x_0 … x_L and the theory's own finite-width term there (see
    ``VarianceProfile.remainder``: non-zero only at a norm's output, where the seed spread vanishes)."""
    prof = variance_profile(variance_architecture(cfg), tokens.numpy())
    idx = [0] + [i for i, h in enumerate(prof.hooks) if h.endswith("hook_resid_post")]
    return prof.variance[idx], prof.remainder[idx]


def residual_monte_carlo(cfg, tokens: torch.Tensor, n_seeds: int, first_seed: int = 1000) -> np.ndarray:
    """[n_seeds, L + 1]: the mean square of x_0 … x_L (``probes.residual_stats``) per initialization seed."""
    model = Transformer(cfg)
    out = np.empty((n_seeds, cfg.n_layers + 1))
    for s in range(n_seeds):
        initialize(model, cfg.replace(seed=first_seed + s))
        df = residual_stats(model, tokens)
        out[s] = df[df["quantity"] == "mean_square"].sort_values("layer")["value"].to_numpy()
    return out


def last_layer_grad_sq_monte_carlo(cfg, tokens: torch.Tensor, n_seeds: int, first_seed: int = 2000) -> np.ndarray:
    """[n_seeds]: ‖∇W_out‖² of the last MLP (``probes.gradient_norms``) for ℓ = Σ logits·r, r ~ N(0, I)
    drawn afresh per seed (so output gradients of different positions are independent, as the theory assumes)."""
    model, out = Transformer(cfg), np.empty(n_seeds)
    gen = torch.Generator().manual_seed(first_seed)
    for s in range(n_seeds):
        initialize(model, cfg.replace(seed=first_seed + s))
        r = torch.randn(*tokens.shape, cfg.vocab_out, generator=gen, dtype=torch.float64)
        df = gradient_norms(model, tokens, loss_fn=lambda logits: (logits * r).sum())
        row = df[(df["layer"] == cfg.n_layers - 1) & (df["name"] == "mlp.W_out") & (df["quantity"] == "param_grad_norm")]
        out[s] = float(row["value"].iloc[0]) ** 2
    return out


def per_seed_slope(values: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row against the layer index 0 … L: growth per block."""
    layers = np.arange(values.shape[-1])
    return np.polyfit(layers, np.atleast_2d(values).T, 1)[0]


def gap_in_se(mc: np.ndarray, predicted: np.ndarray, remainder: np.ndarray) -> float:
    """Largest |mean − predicted| over layers, in units of (standard error + the theory's finite-width
    term): at a norm's output (Post-LN) the seed spread is ~1e-9 and that term is the only honest scale."""
    mean, se = mc.mean(0), mc.std(0, ddof=1) / math.sqrt(mc.shape[0])
    return float(np.max(np.abs(mean - predicted) / (se + remainder)))


def ratio_with_se(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """√(mean a / mean b) and its standard error (delta method, independent samples a and b)."""
    ma, mb = a.mean(), b.mean()
    ratio = math.sqrt(ma / mb)
    rel = math.hypot(a.std(ddof=1) / math.sqrt(len(a)) / ma, b.std(ddof=1) / math.sqrt(len(b)) / mb)
    return ratio, 0.5 * ratio * rel
