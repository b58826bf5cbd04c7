"""Figure ``variance_sink_growth``: growth of the hidden-state variance relative to initialization, per
layer and over log-spaced checkpoints, per variant of the sink task (claim (a) of the Peri-LN paper); the
angular distance between consecutive layers, Pre-LN against Mix-LN (claim (d), Li et al.).

Every comparison between variants is paired over seeds (seed s draws the same data for every variant);
intervals are Student-t over seeds (``theorybench.claims``). A run that stopped on a NaN/Inf leaves its
seed out of nothing silently: the measurement is then ``not_measured`` with the count. Runs and
definitions: ``experiments`` (the sink sweep) and ``sink_statistics``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theorybench.claims import Claim, Criterion, Measurement
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.threads import single_thread

from .drawing import band, colors
from .experiments import LABELS, SINK_VARIANTS, SNAPSHOT_VARIANTS, sink_configs
from .sink_statistics import SINK_CAPTION_SETUP, SinkRuns, sink_setup, undertrained
from .sizes import SINK_SIZES, SinkSizes
from .statistics import LN10, deep_half, growth_claim, growth_from_init, log_spaced, over_seeds, paired

SIZES = SINK_SIZES  # what theorybench.figures hashes into each result's provenance

GROWTH_CLAIMS = (
    growth_claim(""),
    Claim(key="deep_layers_idle_in_pre_ln",
          statement=("The deeper layers of a trained Pre-LN model change the residual stream less than those of "
                     "Mix-LN (Post-LN in the first ⌊αL⌋ blocks)"),
          source="Mix-LN: Unleashing the Power of Deeper Layers by Combining Pre-LN and Post-LN (Li et al. 2024), "
                 "angular distance between consecutive layers",
          criteria=(
              Criterion("d_mix_minus_pre", "angular distance arccos(cos(x_l, x_{l+1}))/π averaged over the deeper "
                        "half of the blocks, Mix-LN − Pre-LN (paired over seeds)", ">=", 0.0),
          )),
)



@dataclass(frozen=True)
class SinkGrowthData:
    """Per variant: the growth of log Var[x_l] from init to the end of training [seeds, L + 1], the
    angular distance per block after training [seeds, L] and the eval copy accuracy [seeds]; per
    snapshot variant the last layer's growth at each log-spaced checkpoint [seeds, checkpoints]."""

    sizes: SinkSizes
    growth: dict[str, np.ndarray]
    angular: dict[str, np.ndarray]
    trajectory: dict[str, np.ndarray]
    copy_accuracy: dict[str, np.ndarray]

    @property
    def checkpoints(self) -> tuple[int, ...]:
        return log_spaced(self.sizes.steps, self.sizes.snapshots)


def measure(sizes: SinkSizes) -> SinkGrowthData:
    """Train (or reuse) the sink sweep of ``sizes`` and read every variant's statistics."""
    with single_thread():
        m = SinkRuns(sizes, sink_configs(sizes))
        growth, angular = {}, {}
        for v in SINK_VARIANTS:
            growth[v] = growth_from_init(m.stack(v, "variance"), m.stack(v, "variance", 0))  # [seeds, L + 1]
            angular[v] = m.stack(v, "angular")
        steps = log_spaced(sizes.steps, sizes.snapshots)
        trajectory = {v: np.stack([growth_from_init(m.stack(v, "variance", t)[:, -1], m.stack(v, "variance", 0)[:, -1])
                                   for t in steps], 1) for v in SNAPSHOT_VARIANTS}
        copy = {v: m.copy_accuracy(v) for v in SINK_VARIANTS}
    return SinkGrowthData(sizes, growth, angular, trajectory, copy)


def plot(data: SinkGrowthData):
    # matplotlib here, not at the top: the command line imports every study and should start fast
    import matplotlib.pyplot as plt

    sizes = data.sizes
    L = sizes.n_layers
    color = colors(SINK_VARIANTS)
    fig, (ax_layer, ax_step, ax_ang) = plt.subplots(1, 3, figsize=(14.5, 4.3))
    for v in SINK_VARIANTS:
        band(ax_layer, np.arange(L + 1), data.growth[v], color[v], LABELS[v], marker="o", ms=3)
        band(ax_ang, np.arange(L), data.angular[v], color[v], LABELS[v], marker="o", ms=3)
    for v in SNAPSHOT_VARIANTS:
        band(ax_step, np.array(data.checkpoints, dtype=float), data.trajectory[v], color[v], LABELS[v], marker="o",
             ms=3)
    for ax in (ax_layer, ax_step):
        ax.axhline(LN10, color="0.5", ls="--", lw=0.8)
        ax.axhline(0.0, color="0.8", lw=0.6)
    ax_layer.set_xlabel("layer l (x_0 = embedding)")
    ax_layer.set_ylabel("log Var[x_l] after training − at init (nats)")
    ax_layer.set_title("Growth relative to init (dashed: tenfold)", fontsize=9)
    ax_step.set_xscale("symlog", linthresh=max(1, sizes.snapshots[0] if sizes.snapshots else 1))
    ax_step.set_xlim(left=0)  # steps are ≥ 0: no negative half of the symlog axis
    ax_step.set_xlabel("training step (log-spaced checkpoints)")
    ax_step.set_ylabel(f"log Var[x_{L}] − at init (nats)")
    ax_step.set_title("Last layer over training", fontsize=9)
    ax_ang.set_xlabel("block l")
    ax_ang.set_ylabel("angular distance x_l → x_{l+1}")
    ax_ang.set_title("Layer contribution after training (Li et al.)", fontsize=9)
    ax_layer.legend(fontsize=7)
    fig.suptitle(f"Hidden-state growth on a task with a sink token: {sink_setup(sizes)} (mean, min–max band)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def numbers(data: SinkGrowthData) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    for v in SINK_VARIANTS:
        out[f"{LABELS[v]}: growth of log Var[x_L] (nats, mean over seeds)"] = float(f"{np.nanmean(data.growth[v][:, -1]):.4g}")
        out[f"{LABELS[v]}: angular distance, deeper half (mean)"] = float(f"{np.nanmean(deep_half(data.angular[v])):.4g}")
    for v in SINK_VARIANTS:
        out[f"{LABELS[v]}: eval copy accuracy (per seed)"] = ", ".join(f"{a:.3f}" for a in data.copy_accuracy[v])
    out.update({"seeds": data.sizes.seeds, "steps": data.sizes.steps, "d_model": data.sizes.d_model,
                "depth": data.sizes.n_layers})
    return out


def growth_measurements(data: SinkGrowthData) -> dict[str, Measurement]:
    """Pre- and Peri-LN's last-layer growth (t over seeds), their paired difference, and Mix-LN − Pre-LN's
    angular distance over the deeper half (paired), each only on runs that learned the task."""
    g, acc = data.growth, data.copy_accuracy
    return {
        "a_pre_growth": over_seeds(g["pre"][:, -1], undertrained(acc, "pre")),
        "a_peri_growth": over_seeds(g["peri"][:, -1], undertrained(acc, "peri")),
        "a_pre_minus_peri": paired(g["pre"][:, -1], g["peri"][:, -1], undertrained(acc, "pre", "peri")),
        "d_mix_minus_pre": paired(deep_half(data.angular["mix"]), deep_half(data.angular["pre"]),
                                  undertrained(acc, "mix", "pre")),
    }


def sink_growth(scale: str) -> FigureResult:
    data = measure(SIZES[scale])
    return FigureResult(plot(data), numbers(data), growth_measurements(data))


register_figure(FigureSpec(
    name="variance_sink_growth",
    family="variance",
    claim=("Growth of the hidden-state variance relative to initialization, per layer and over log-spaced checkpoints, "
           "for Pre-, Peri- and Mix-LN and Pre-LN with the clipped softmax or gated attention ('Peri-LN: Revisiting "
           "Layer Normalization in the Transformer Architecture', Kim et al. 2025), and the angular distance between "
           "consecutive layers ('Mix-LN', Li et al. 2024)." + SINK_CAPTION_SETUP),
    make=sink_growth,
    claims=GROWTH_CLAIMS,
))
