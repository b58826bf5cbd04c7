"""Variance growth at initialization: Monte Carlo over seeds against the analytic recursion.

Figure ``variance_residual_growth_at_init``: the mean square of the residual stream x_0 … x_L at each
layer boundary (``probes.residual_stats``), averaged over independently initialized models (points,
±2 standard errors), against ``theory.variance.variance_profile`` (lines), for the none / Post / Pre /
Peri / Mix placements.

Figure ``variance_gradient_scale_at_init``: the last block's ‖∇W_out‖ at depth L relative to depth
L₀ (``probes.gradient_norms``, loss Σ logits·r with r ~ N(0, I) drawn per seed, as in
``theory.variance.gradients``), Pre-LN against Post-LN, against ``last_layer_grad_ratio``.

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

from theorybench.claims import Claim, Criterion, Measurement, exact, paired_difference
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.threads import single_thread

# "tiny" is what the test suite renders (tests/test_studies.py); "quick", "medium" and "full" are the user scales.
# medium: the quick sizes with twice the gradient seeds (the slope criterion's delta-method interval narrows as
# 1/√seeds); an estimate of a few minutes on one core, not timed end to end here.
SIZES = {
    "quick": dict(d_model=32, depth=32, seeds=32, grad_depths=(1, 2, 4, 8, 16, 32), grad_seeds=24),
    "medium": dict(d_model=32, depth=32, seeds=32, grad_depths=(1, 2, 4, 8, 16, 32), grad_seeds=48),
    "full": dict(d_model=64, depth=64, seeds=128, grad_depths=(1, 2, 4, 8, 16, 32, 64), grad_seeds=128),
    "tiny": dict(d_model=16, depth=4, seeds=24, grad_depths=(1, 2, 4), grad_seeds=32),
}
PLACEMENTS = ("none", "post", "pre", "peri", "mix")
NORMALIZED = ("post", "pre", "peri", "mix")  # "none": heavy-tailed over seeds at depth (see the module docstring)
LABELS = {"none": "no norm", "post": "Post-LN", "pre": "Pre-LN", "peri": "Peri-LN", "mix": "Mix-LN (α = 0.25)"}
ATTN_SCALE = 1e4  # scores ~ N(0, d_head/1e8): attention uniform at init, where the theory is exact
N_CTX, D_VOCAB, N_SEQ = 8, 50, 2


def base_config(d_model: int, n_layers: int, placement: str, **overrides):
    """The toy model the figures measure: fan_in init, ReLU MLP, near-uniform attention, float64."""
    from toy_models import TransformerConfig

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
    from theory.variance import variance_profile

    k_max = float(np.max(variance_profile(cfg, tokens.numpy()).per_position))
    return cfg.replace(attn_scale=ATTN_SCALE * max(1.0, k_max))


def theory_per_layer(cfg, tokens: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Predicted mean square at x_0 … x_L and the theory's own finite-width term there (see
    ``VarianceProfile.remainder``: non-zero only at a norm's output, where the seed spread vanishes)."""
    from theory.variance import variance_profile

    prof = variance_profile(cfg, tokens.numpy())
    idx = [0] + [i for i, h in enumerate(prof.hooks) if h.endswith("hook_resid_post")]
    return prof.variance[idx], prof.remainder[idx]


def residual_monte_carlo(cfg, tokens: torch.Tensor, n_seeds: int, first_seed: int = 1000) -> np.ndarray:
    """[n_seeds, L + 1]: the mean square of x_0 … x_L (``probes.residual_stats``) per initialization seed."""
    from probes import residual_stats
    from toy_models import Transformer
    from toy_models.init import initialize

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
    from probes import gradient_norms
    from toy_models import Transformer
    from toy_models.init import initialize

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


# ------------------------------------------------------------------------------------------ figure 1
def residual_growth(scale: str) -> FigureResult:
    with single_thread():
        return _residual_growth(scale)


def _residual_growth(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    size = SIZES[scale]
    d, L, S = size["d_model"], size["depth"], size["seeds"]
    tokens = fixed_tokens()
    layers = np.arange(L + 1)
    colors = dict(zip(PLACEMENTS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    fig, (ax_log, ax_lin) = plt.subplots(1, 2, figsize=(10.5, 4.2))
    numbers: dict[str, float | str] = {}
    results = {}
    for placement in PLACEMENTS:
        cfg = uniform_attention_config(base_config(d, L, placement), tokens)
        predicted, remainder = theory_per_layer(cfg, tokens)
        mc = residual_monte_carlo(cfg, tokens, S)
        results[placement] = (predicted, mc)
        numbers[f"{LABELS[placement]}: largest MC−theory gap (SE)"] = round(gap_in_se(mc, predicted, remainder), 2)
        mean, se = mc.mean(0), mc.std(0, ddof=1) / math.sqrt(S)
        axes = (ax_log,) if placement == "none" else (ax_log, ax_lin)
        for ax in axes:
            ax.plot(layers, predicted, color=colors[placement], lw=1.4, label=f"{LABELS[placement]}")
            ax.errorbar(layers, mean, yerr=2 * se, fmt="o", ms=3, color=colors[placement], elinewidth=0.8)
    # The honest gap: Pre-LN with fan_in and the default 1/√d_head scale, where attention is not uniform.
    # Same seeds, hence the same weights, as the uniform Pre-LN run: the per-seed difference isolates the
    # effect of the score scale from the draw of the weights (the theory predicts no difference).
    pre_default = residual_monte_carlo(base_config(d, L, "pre", attn_scale=None), tokens, S)
    ax_lin.errorbar(layers + 0.3, pre_default.mean(0), yerr=2 * pre_default.std(0, ddof=1) / math.sqrt(S), fmt="x",
                    ms=4, color="0.3", elinewidth=0.8, label="Pre-LN, default 1/√d_head scores (MC)")
    ax_log.set_yscale("log")
    ax_log.set_title("All placements (log scale)")
    ax_lin.set_title("Normalized placements (linear scale)")
    for ax in (ax_log, ax_lin):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer l (x_0 = embedding)")
        ax.set_ylabel("residual mean square  E[x²]")
    ax_log.legend(fontsize=8, title="lines: theory, points: MC ± 2 SE", title_fontsize=8)
    ax_lin.legend(fontsize=8)
    fig.suptitle(f"Residual-stream variance at initialization: d_model = {d}, fan_in init, ReLU MLP, "
                 f"{S} seeds, {N_SEQ}×{N_CTX} tokens", fontsize=10)
    fig.tight_layout()
    for placement, name in (("pre", "Pre-LN"), ("peri", "Peri-LN")):
        predicted, mc = results[placement]
        slopes = per_seed_slope(mc)
        numbers[f"{name} growth per block, theory"] = round(float(per_seed_slope(predicted)[0]), 4)
        numbers[f"{name} growth per block, MC"] = round(float(slopes.mean()), 4)
        numbers[f"{name} growth per block, MC SE"] = round(float(slopes.std(ddof=1) / math.sqrt(S)), 4)
    post = results["post"][1].mean(0)[1:]
    numbers["Post-LN: largest MC deviation from 1 after layer 0"] = float(f"{np.max(np.abs(post - 1)):.3g}")
    none_last = results["none"][1][:, -1]
    numbers["no norm: MC / theory at the last layer"] = round(float(none_last.mean() / results["none"][0][-1]), 3)
    # A product of 2L random per-sublayer gains: heavy-tailed over seeds, so at depth the sample mean and its
    # SE both understate; this coefficient of variation says how far that has gone.
    numbers["no norm: seed std / mean at the last layer"] = round(float(none_last.std(ddof=1) / none_last.mean()), 2)
    diff = pre_default - results["pre"][1]  # per seed: default scale minus uniform attention
    diff_mean, diff_se = diff.mean(0), diff.std(0, ddof=1) / math.sqrt(S)
    worst = int(np.argmax(np.abs(diff_mean[1:]) / diff_se[1:])) + 1  # layer 0 is the embedding: no difference
    numbers["Pre-LN, default 1/√d_head scores vs uniform: largest paired gap (SE)"] = round(
        float(abs(diff_mean[worst]) / diff_se[worst]), 2)
    numbers["Pre-LN, default 1/√d_head scores vs uniform: relative gap at that layer"] = round(
        float(diff_mean[worst] / results["pre"][0][worst]), 4)
    numbers["Pre-LN, default 1/√d_head scores vs uniform: that layer"] = worst
    numbers["Pre-LN, default 1/√d_head scores vs uniform: relative gap at layer L"] = round(
        float(diff_mean[-1] / results["pre"][0][-1]), 4)
    numbers.update({"layers": L, "d_model": d, "seeds": S})
    gaps = [gap_in_se(results[p][1], *theory_per_layer(uniform_attention_config(base_config(d, L, p), tokens), tokens))
            for p in NORMALIZED]
    measured = {
        "init_gap_se": exact(max(gaps), "largest gap over Post/Pre/Peri/Mix-LN and layers, in SE + finite-width term"),
        "init_peri_minus_pre_slope": paired_difference(per_seed_slope(results["peri"][1]),
                                                       per_seed_slope(results["pre"][1])),
    }
    return FigureResult(fig, numbers, measured)


# ------------------------------------------------------------------------------------------ figure 2
def ratio_with_se(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """√(mean a / mean b) and its standard error (delta method, independent samples a and b)."""
    ma, mb = a.mean(), b.mean()
    ratio = math.sqrt(ma / mb)
    rel = math.hypot(a.std(ddof=1) / math.sqrt(len(a)) / ma, b.std(ddof=1) / math.sqrt(len(b)) / mb)
    return ratio, 0.5 * ratio * rel


def gradient_scale(scale: str) -> FigureResult:
    with single_thread():
        return _gradient_scale(scale)


def _gradient_scale(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    from theory.variance import last_layer_grad_ratio

    size = SIZES[scale]
    d, depths, S = size["d_model"], size["grad_depths"], size["grad_seeds"]
    tokens = fixed_tokens()
    L0, L_max = depths[0], depths[-1]
    colors = dict(zip(PLACEMENTS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    numbers: dict[str, float | str] = {}
    slopes = {}
    for placement, name in (("pre", "Pre-LN"), ("post", "Post-LN")):
        base = base_config(d, L0, placement)
        samples = {L: last_layer_grad_sq_monte_carlo(base.replace(n_layers=L), tokens, S) for L in depths}
        slopes[f"c_{placement}_slope"] = depth_slope(samples[depths[-2]], samples[L_max], depths[-2], L_max)
        measured = [ratio_with_se(samples[L], samples[L0]) for L in depths[1:]]
        predicted = np.array([last_layer_grad_ratio(base, L, L0, tokens.numpy()) for L in depths])
        ax.plot(depths, predicted, color=colors[placement], lw=1.4, label=f"{name} (theory)")
        ax.errorbar(depths[1:], [m for m, _ in measured], yerr=[2 * s for _, s in measured], fmt="o", ms=4,
                    color=colors[placement], label=f"{name} (MC ± 2 SE)")
        gaps = [abs(m - p) / s for (m, s), p in zip(measured, predicted[1:])]
        if placement == "pre":
            pre_last = predicted[-1]
        numbers[f"{name}: ratio L={L_max} to L={L0}, theory"] = round(float(predicted[-1]), 4)
        numbers[f"{name}: ratio L={L_max} to L={L0}, MC"] = round(measured[-1][0], 4)
        numbers[f"{name}: ratio L={L_max} to L={L0}, MC SE"] = round(measured[-1][1], 4)
        numbers[f"{name}: largest MC−theory gap over depths (SE)"] = round(float(max(gaps)), 2)
    # Xiong et al.'s asymptote, pinned to Pre-LN's theory at the deepest point: the theory bends onto it
    # once L·c dominates the embedding's variance in m ≈ v₀ + L·c.
    guide = pre_last * np.sqrt(L_max / np.asarray(depths, dtype=float))
    ax.plot(depths, guide, color="0.5", ls=":", lw=1, label="∝ 1/√L")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(depths, [str(L) for L in depths])
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    lo, hi = ax.get_ylim()
    ticks = [t for t in (0.0625, 0.125, 0.25, 0.5, 0.75, 1.0, 1.5) if lo <= t <= hi]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_ylim(lo, hi)
    ax.set_xlabel("depth L")
    ax.set_ylabel(f"‖∇W_out‖ of the last block, relative to L = {L0}")
    ax.set_title(f"Last-layer gradient at initialization: d_model = {d}, fan_in init, {S} seeds per point",
                 fontsize=10)
    ax.legend(fontsize=8)
    numbers.update({"d_model": d, "seeds per depth": S})
    return FigureResult(fig, numbers, slopes)


def depth_slope(sq_a: np.ndarray, sq_b: np.ndarray, depth_a: int, depth_b: int) -> Measurement:
    """d log‖∇‖ / d log L between two depths from samples of ‖∇‖² (independent seeds): log(√(mean b / mean a)) /
    log(depth_b / depth_a), with a normal 95% interval from the delta-method SE of the ratio (``ratio_with_se``).
    Xiong et al.: −1/2 for Pre-LN once the stream's growth dominates, 0 for Post-LN."""
    ratio, se = ratio_with_se(np.asarray(sq_b, dtype=float), np.asarray(sq_a, dtype=float))
    scale = math.log(depth_b / depth_a)
    value, half = math.log(ratio) / scale, 1.959964 * (se / ratio) / scale
    return Measurement(value, value - half, value + half, "delta method, normal", n=min(len(sq_a), len(sq_b)))


_WHERE = (" Measured at initialization on the toy transformer with fan_in init, near-uniform attention "
          "(score scale 1e4, where the uniform-attention theory is exact) and a ReLU MLP; the gap at the default "
          "1/√d_head score scale is reported among the numbers.")

INIT_CLAIMS = (
    Claim(key="init_recursion",
          statement=("At initialization the residual stream's mean square follows Var[x_{l+1}] = Var[x_l] + Var[F] "
                     "through each placement's norms, layer by layer, for Post-, Pre-, Peri- and Mix-LN"),
          source="On Layer Normalization in the Transformer Architecture (Xiong et al. 2020), Sec. 3",
          criteria=(Criterion("init_gap_se", "largest |Monte Carlo − recursion| over placements and layers, in "
                              "standard errors (plus the theory's finite-width term)", "<=", 4.0),)),
    Claim(key="init_peri_slope_exceeds_pre",
          statement=("At initialization only, with fan_in init, near-uniform attention and a ReLU MLP: Peri-LN's "
                     "stream grows by γ² = 1 per sublayer (2 per block) whatever the weights, faster than Pre-LN's, "
                     "whose slope the sublayers' weights set; this says nothing about training"),
          source="Peri-LN: Revisiting Layer Normalization in the Transformer Architecture (Kim et al. 2025), variance "
                 "at initialization",
          criteria=(Criterion("init_peri_minus_pre_slope", "growth per block at init (least-squares slope of the mean "
                              "square over layers), Peri-LN − Pre-LN (paired over seeds)", ">=", 0.0),)),
)

# Xiong et al.: Pre-LN's last-layer gradient ∝ 1/√L (slope −1/2 in log–log), Post-LN's independent of L (slope 0).
# The criterion splits the two at −1/4, fixed before any run; measured between the two largest depths.
GRADIENT_SCALE_CLAIMS = (
    Claim(key="pre_ln_last_layer_gradient_shrinks",
          statement=("At initialization the last layer's gradient shrinks with depth in Pre-LN (like 1/√L) and "
                     "does not in Post-LN"),
          source="On Layer Normalization in the Transformer Architecture (Xiong et al. 2020), Theorem 1",
          criteria=(Criterion("c_pre_slope", "Pre-LN: d log‖∇W_out‖ / d log L between the two largest depths",
                              "<=", -0.25),
                    Criterion("c_post_slope", "Post-LN: d log‖∇W_out‖ / d log L between the two largest depths",
                              ">=", -0.25))),
)

register_figure(FigureSpec(
    name="variance_residual_growth_at_init",
    family="variance",
    claim=("At initialization the residual stream obeys Var[x_{l+1}] = Var[x_l] + Var[F]: Post-LN keeps it fixed, "
           "Pre-LN grows linearly with depth at a slope set by the sublayers' weights ('On Layer Normalization in the "
           "Transformer Architecture', Xiong et al. 2020), Peri-LN grows linearly at a slope fixed by its output "
           "norms, one γ² = 1 per sublayer whatever the weights ('Peri-LN: Revisiting Layer Normalization in the "
           "Transformer Architecture', Kim et al. 2025), Mix-LN is flat over its Post-LN layers and then grows like "
           "Pre-LN ('Mix-LN: Unleashing the Power of Deeper Layers by Combining Pre-LN and Post-LN', Li et al. "
           "2024), and with no norm it grows exponentially; Monte Carlo over seeds matches the analytic recursion "
           "layer by layer." + _WHERE),
    make=residual_growth,
    claims=INIT_CLAIMS,
))

register_figure(FigureSpec(
    name="variance_gradient_scale_at_init",
    family="variance",
    claim=("At initialization the gradient of the last layer's parameters does not shrink with depth in Post-LN "
           "and shrinks like 1/√L in Pre-LN, whose final norm divides by a residual stream that grows linearly "
           "('On Layer Normalization in the Transformer Architecture', Xiong et al. 2020); Monte Carlo over seeds "
           "matches the predicted ratios between depths." + _WHERE),
    make=gradient_scale,
    claims=GRADIENT_SCALE_CLAIMS,
))
