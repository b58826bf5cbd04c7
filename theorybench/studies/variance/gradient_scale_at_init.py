"""Figure ``variance_gradient_scale_at_init``: the last block's ‖∇W_out‖ at depth L relative to depth L₀
(``probes.gradient_norms``, loss Σ logits·r with r ~ N(0, I) drawn per seed, as in
``theory.variance.gradients``), Pre-LN against Post-LN, against ``last_layer_grad_ratio``. Where the
theory holds and why: ``at_init``'s docstring."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theory.variance import last_layer_grad_ratio
from theorybench.claims import Claim, Criterion, Measurement
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.threads import single_thread
from toy_models.theory_args import variance_architecture

from .at_init import (AT_INIT_WHERE, PLACEMENTS_AT_INIT, base_config, fixed_tokens, last_layer_grad_sq_monte_carlo,
                      ratio_with_se)
from .sizes import GRADIENT_SCALE_SIZES, GradientScaleSizes

SIZES = GRADIENT_SCALE_SIZES  # what theorybench.figures hashes into each result's provenance
_COMPARED = (("pre", "Pre-LN"), ("post", "Post-LN"))


@dataclass(frozen=True)
class GradientScaleData:
    """Per placement (Pre-, Post-LN): ‖∇W_out‖² samples of the last block per depth [seeds], and the
    theory's ratio ‖∇‖(L)/‖∇‖(L₀) per depth."""

    sizes: GradientScaleSizes
    samples: dict[str, dict[int, np.ndarray]]
    predicted: dict[str, np.ndarray]

    def ratios(self, placement: str) -> list[tuple[float, float]]:
        """Measured √(mean ‖∇‖²(L) / mean ‖∇‖²(L₀)) with its SE at every depth but the first."""
        depths, samples = self.sizes.n_layers, self.samples[placement]
        return [ratio_with_se(samples[L], samples[depths[0]]) for L in depths[1:]]


def measure(sizes: GradientScaleSizes) -> GradientScaleData:
    d, depths, S = sizes.d_model, sizes.n_layers, sizes.seeds
    tokens = fixed_tokens()
    samples, predicted = {}, {}
    with single_thread():
        for placement, _ in _COMPARED:
            base = base_config(d, depths[0], placement)
            samples[placement] = {L: last_layer_grad_sq_monte_carlo(base.replace(n_layers=L), tokens, S)
                                  for L in depths}
            predicted[placement] = np.array([last_layer_grad_ratio(variance_architecture(base), L, depths[0], tokens.numpy()) for L in depths])
    return GradientScaleData(sizes, samples, predicted)


def plot(data: GradientScaleData):
    # matplotlib here, not at the top: the command line imports every study and should start fast
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    d, depths, S = data.sizes.d_model, data.sizes.n_layers, data.sizes.seeds
    L0, L_max = depths[0], depths[-1]
    colors = dict(zip(PLACEMENTS_AT_INIT, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for placement, name in _COMPARED:
        measured, predicted = data.ratios(placement), data.predicted[placement]
        ax.plot(depths, predicted, color=colors[placement], lw=1.4, label=f"{name} (theory)")
        ax.errorbar(depths[1:], [m for m, _ in measured], yerr=[2 * s for _, s in measured], fmt="o", ms=4,
                    color=colors[placement], label=f"{name} (MC ± 2 SE)")
    # Xiong et al.'s asymptote, pinned to Pre-LN's theory at the deepest point: the theory bends onto it
    # once L·c dominates the embedding's variance in m ≈ v₀ + L·c.
    guide = data.predicted["pre"][-1] * np.sqrt(L_max / np.asarray(depths, dtype=float))
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
    return fig


def numbers(data: GradientScaleData) -> dict[str, float | str]:
    depths = data.sizes.n_layers
    L0, L_max = depths[0], depths[-1]
    out: dict[str, float | str] = {}
    for placement, name in _COMPARED:
        measured, predicted = data.ratios(placement), data.predicted[placement]
        gaps = [abs(m - p) / s for (m, s), p in zip(measured, predicted[1:])]
        out[f"{name}: ratio L={L_max} to L={L0}, theory"] = round(float(predicted[-1]), 4)
        out[f"{name}: ratio L={L_max} to L={L0}, MC"] = round(measured[-1][0], 4)
        out[f"{name}: ratio L={L_max} to L={L0}, MC SE"] = round(measured[-1][1], 4)
        out[f"{name}: largest MC−theory gap over depths (SE)"] = round(float(max(gaps)), 2)
    out.update({"d_model": data.sizes.d_model, "seeds per depth": data.sizes.seeds})
    return out


def slope_measurements(data: GradientScaleData) -> dict[str, Measurement]:
    """Per placement: d log‖∇W_out‖ / d log L between the two largest depths (``depth_slope``)."""
    depths = data.sizes.n_layers
    return {f"c_{placement}_slope": depth_slope(data.samples[placement][depths[-2]], data.samples[placement][depths[-1]],
                                                depths[-2], depths[-1]) for placement, _ in _COMPARED}


def gradient_scale(scale: str) -> FigureResult:
    data = measure(SIZES[scale])
    return FigureResult(plot(data), numbers(data), slope_measurements(data))


def depth_slope(sq_a: np.ndarray, sq_b: np.ndarray, depth_a: int, depth_b: int) -> Measurement:
    """d log‖∇‖ / d log L between two depths from samples of ‖∇‖² (independent seeds): log(√(mean b / mean a)) /
    log(depth_b / depth_a), with a normal 95% interval from the delta-method SE of the ratio (``ratio_with_se``).
    Xiong et al.: −1/2 for Pre-LN once the stream's growth dominates, 0 for Post-LN."""
    ratio, se = ratio_with_se(np.asarray(sq_b, dtype=float), np.asarray(sq_a, dtype=float))
    scale = math.log(depth_b / depth_a)
    value, half = math.log(ratio) / scale, 1.959964 * (se / ratio) / scale
    return Measurement(value, value - half, value + half, "delta method, normal", n=min(len(sq_a), len(sq_b)))


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
    name="variance_gradient_scale_at_init",
    family="variance",
    claim=("At initialization the gradient of the last layer's parameters does not shrink with depth in Post-LN "
           "and shrinks like 1/√L in Pre-LN, whose final norm divides by a residual stream that grows linearly "
           "('On Layer Normalization in the Transformer Architecture', Xiong et al. 2020); Monte Carlo over seeds "
           "matches the predicted ratios between depths." + AT_INIT_WHERE),
    make=gradient_scale,
    claims=GRADIENT_SCALE_CLAIMS,
))
