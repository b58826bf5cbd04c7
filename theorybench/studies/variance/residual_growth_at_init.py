"""Figure ``variance_residual_growth_at_init``: the mean square of the residual stream x_0 … x_L at each
layer boundary (``probes.residual_stats``), averaged over independently initialized models (points,
±2 standard errors), against ``theory.variance.variance_profile`` (lines), for the none / Post / Pre /
Peri / Mix placements. Where the theory holds and why: ``at_init``'s docstring."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theorybench.claims import Claim, Criterion, Measurement, exact, paired_difference
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.threads import single_thread

from .at_init import (AT_INIT_WHERE, NORMALIZED, N_CTX, N_SEQ, PLACEMENTS_AT_INIT, base_config, fixed_tokens,
                      gap_in_se, per_seed_slope, residual_monte_carlo, theory_per_layer, uniform_attention_config)
from .experiments import LABELS
from .sizes import RESIDUAL_SIZES, ResidualSizes

SIZES = RESIDUAL_SIZES  # what theorybench.figures hashes into each result's provenance


@dataclass(frozen=True)
class ResidualData:
    """Per placement: the predicted mean square at x_0 … x_L, the theory's finite-width term there, and the
    Monte Carlo [seeds, L + 1]; and the Pre-LN Monte Carlo at the default 1/√d_head score scale on the
    same seeds (``pre_default``)."""

    sizes: ResidualSizes
    predicted: dict[str, np.ndarray]
    remainder: dict[str, np.ndarray]
    mc: dict[str, np.ndarray]
    pre_default: np.ndarray


def measure(sizes: ResidualSizes) -> ResidualData:
    d, L, S = sizes.d_model, sizes.n_layers, sizes.seeds
    tokens = fixed_tokens()
    predicted, remainder, mc = {}, {}, {}
    with single_thread():
        for placement in PLACEMENTS_AT_INIT:
            cfg = uniform_attention_config(base_config(d, L, placement), tokens)
            predicted[placement], remainder[placement] = theory_per_layer(cfg, tokens)
            mc[placement] = residual_monte_carlo(cfg, tokens, S)
        # The honest gap: Pre-LN with fan_in and the default 1/√d_head scale, where attention is not uniform.
        # Same seeds, hence the same weights, as the uniform Pre-LN run: the per-seed difference isolates the
        # effect of the score scale from the draw of the weights (the theory predicts no difference).
        pre_default = residual_monte_carlo(base_config(d, L, "pre", attn_scale=None), tokens, S)
    return ResidualData(sizes, predicted, remainder, mc, pre_default)


def plot(data: ResidualData):
    # matplotlib here, not at the top: the command line imports every study and should start fast
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    d, L, S = data.sizes.d_model, data.sizes.n_layers, data.sizes.seeds
    layers = np.arange(L + 1)
    colors = dict(zip(PLACEMENTS_AT_INIT, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    fig, (ax_log, ax_lin) = plt.subplots(1, 2, figsize=(10.5, 4.2))
    for placement in PLACEMENTS_AT_INIT:
        mc = data.mc[placement]
        mean, se = mc.mean(0), mc.std(0, ddof=1) / math.sqrt(S)
        axes = (ax_log,) if placement == "none" else (ax_log, ax_lin)
        for ax in axes:
            ax.plot(layers, data.predicted[placement], color=colors[placement], lw=1.4, label=f"{LABELS[placement]}")
            ax.errorbar(layers, mean, yerr=2 * se, fmt="o", ms=3, color=colors[placement], elinewidth=0.8)
    pre_default = data.pre_default
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
    return fig


def numbers(data: ResidualData) -> dict[str, float | str]:
    d, L, S = data.sizes.d_model, data.sizes.n_layers, data.sizes.seeds
    predicted, mc = data.predicted, data.mc
    out: dict[str, float | str] = {}
    for placement in PLACEMENTS_AT_INIT:
        out[f"{LABELS[placement]}: largest MC−theory gap (SE)"] = round(
            gap_in_se(mc[placement], predicted[placement], data.remainder[placement]), 2)
    for placement, name in (("pre", "Pre-LN"), ("peri", "Peri-LN")):
        slopes = per_seed_slope(mc[placement])
        out[f"{name} growth per block, theory"] = round(float(per_seed_slope(predicted[placement])[0]), 4)
        out[f"{name} growth per block, MC"] = round(float(slopes.mean()), 4)
        out[f"{name} growth per block, MC SE"] = round(float(slopes.std(ddof=1) / math.sqrt(S)), 4)
    post = mc["post"].mean(0)[1:]
    out["Post-LN: largest MC deviation from 1 after layer 0"] = float(f"{np.max(np.abs(post - 1)):.3g}")
    none_last = mc["none"][:, -1]
    out["no norm: MC / theory at the last layer"] = round(float(none_last.mean() / predicted["none"][-1]), 3)
    # A product of 2L random per-sublayer gains: heavy-tailed over seeds, so at depth the sample mean and its
    # SE both understate; this coefficient of variation says how far that has gone.
    out["no norm: seed std / mean at the last layer"] = round(float(none_last.std(ddof=1) / none_last.mean()), 2)
    diff = data.pre_default - mc["pre"]  # per seed: default scale minus uniform attention
    diff_mean, diff_se = diff.mean(0), diff.std(0, ddof=1) / math.sqrt(S)
    worst = int(np.argmax(np.abs(diff_mean[1:]) / diff_se[1:])) + 1  # layer 0 is the embedding: no difference
    out["Pre-LN, default 1/√d_head scores vs uniform: largest paired gap (SE)"] = round(
        float(abs(diff_mean[worst]) / diff_se[worst]), 2)
    out["Pre-LN, default 1/√d_head scores vs uniform: relative gap at that layer"] = round(
        float(diff_mean[worst] / predicted["pre"][worst]), 4)
    out["Pre-LN, default 1/√d_head scores vs uniform: that layer"] = worst
    out["Pre-LN, default 1/√d_head scores vs uniform: relative gap at layer L"] = round(
        float(diff_mean[-1] / predicted["pre"][-1]), 4)
    out.update({"layers": L, "d_model": d, "seeds": S})
    return out


def init_measurements(data: ResidualData) -> dict[str, Measurement]:
    """The largest Monte Carlo − recursion gap over the normalized placements and layers (in SE plus the
    theory's finite-width term), and Peri-LN's per-seed growth slope minus Pre-LN's (paired over seeds)."""
    gaps = [gap_in_se(data.mc[p], data.predicted[p], data.remainder[p]) for p in NORMALIZED]
    return {
        "init_gap_se": exact(max(gaps), "largest gap over Post/Pre/Peri/Mix-LN and layers, in SE + finite-width term"),
        "init_peri_minus_pre_slope": paired_difference(per_seed_slope(data.mc["peri"]), per_seed_slope(data.mc["pre"])),
    }


def residual_growth(scale: str) -> FigureResult:
    data = measure(SIZES[scale])
    return FigureResult(plot(data), numbers(data), init_measurements(data))


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
           "layer by layer." + AT_INIT_WHERE),
    make=residual_growth,
    claims=INIT_CLAIMS,
))
