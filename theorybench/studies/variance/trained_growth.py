"""Figure ``variance_trained_growth``: growth of the hidden-state variance relative to initialization (log
Var after − log Var at init, per layer), over log-spaced checkpoints and against depth, per placement;
claim (a) of the Peri-LN paper, decided on the paired Pre-LN − Peri-LN growth of the last layer. Runs:
the depth sweep (``experiments``); statistics and definitions: ``markov_statistics``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theorybench.claims import Measurement, not_measured, paired_difference, t_interval
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.threads import single_thread

from .drawing import band, colors
from .experiments import LABELS, PLACEMENTS, depth_configs
from .markov_statistics import TRAINING_CAPTION_SETUP, TrainingRuns, diverged_reason, training_run_key
from .sizes import TRAINING_SIZES, TrainingSizes
from .statistics import (LN10, ci_text, geo_mean_text, growth_claim, growth_from_init, mean_or_stopped,
                         paired_difference_ci)
from .trained_runs import fetch_all

SIZES = TRAINING_SIZES  # what theorybench.figures hashes into each result's provenance

GROWTH_CLAIMS = (growth_claim(", deepest model"),)



@dataclass(frozen=True)
class TrainedGrowthData:
    """Per (placement, depth): Var[x_l] at init [seeds, L + 1] and its growth from init after training;
    per placement the last layer's growth at each checkpoint of the largest depth [seeds, checkpoints];
    why the Pre- and Peri-LN runs of the largest depth cannot decide the claim (None when they can)."""

    sizes: TrainingSizes
    init: dict[tuple[str, int], np.ndarray]
    grown: dict[tuple[str, int], np.ndarray]
    trajectory: dict[str, np.ndarray]
    diverged: dict[str, str | None]

    @property
    def checkpoints(self) -> tuple[int, ...]:
        return (0, *self.sizes.snapshots, self.sizes.steps)


def measure(sizes: TrainingSizes) -> TrainedGrowthData:
    """Train (or reuse) the depth sweep of ``sizes`` and read the variance profiles at every checkpoint."""
    depths, lr, S = sizes.n_layers, sizes.lr, sizes.seeds
    L_max = max(depths)
    with single_thread():
        m = TrainingRuns(sizes)
        runs = fetch_all(depth_configs(sizes), desc="variance_training_depth")
        init = {(p, d): m.profiles(runs, p, d, lr, 0) for p in PLACEMENTS for d in depths}
        grown = {(p, d): growth_from_init(m.profiles(runs, p, d, lr, sizes.steps), init[p, d])
                 for p in PLACEMENTS for d in depths}
        trajectory = {p: np.stack([growth_from_init(m.profiles(runs, p, L_max, lr, t)[:, -1], init[p, L_max][:, -1])
                                   for t in (0, *sizes.snapshots, sizes.steps)], axis=1) for p in PLACEMENTS}
        names = {p: [training_run_key(p, L_max, lr, s) for s in range(S)] for p in ("pre", "peri")}
        diverged = {"pre": diverged_reason(runs, names["pre"]), "peri": diverged_reason(runs, names["peri"]),
                    "pre+peri": diverged_reason(runs, names["pre"] + names["peri"])}
    return TrainedGrowthData(sizes, init, grown, trajectory, diverged)


def plot(data: TrainedGrowthData):
    # matplotlib here, not at the top: the command line imports every study and should start fast
    import matplotlib.pyplot as plt

    sizes = data.sizes
    depths, lr, S = sizes.n_layers, sizes.lr, sizes.seeds
    L_max = max(depths)
    color = colors(PLACEMENTS)
    fig, (ax_layer, ax_step, ax_depth) = plt.subplots(1, 3, figsize=(14.5, 4.3))
    for placement in PLACEMENTS:
        c, name = color[placement], LABELS[placement]
        band(ax_layer, np.arange(L_max + 1), data.grown[placement, L_max], c, name, marker="o", ms=3)
        band(ax_step, np.array(data.checkpoints, dtype=float), data.trajectory[placement], c, name, marker="o", ms=3)
        by_depth = np.stack([data.grown[placement, d][:, -1] for d in depths], axis=1)
        band(ax_depth, np.array(depths, dtype=float), by_depth, c, name, marker="o", ms=3)
    for ax in (ax_layer, ax_step, ax_depth):
        ax.axhline(LN10, color="0.5", ls="--", lw=0.8)
        ax.axhline(0.0, color="0.8", lw=0.6)
    ax_layer.set_xlabel(f"layer l (x_0 = embedding), depth L = {L_max}")
    ax_layer.set_ylabel("log Var[x_l] after training − at init (nats)")
    ax_layer.set_title(f"Growth relative to init after {sizes.steps} steps (dashed: tenfold)", fontsize=9)
    ax_step.set_xscale("symlog", linthresh=1)
    ax_step.set_xlim(left=0)
    ax_step.set_xlabel("training step (log-spaced checkpoints)")
    ax_step.set_ylabel(f"log Var[x_{L_max}] − at init (nats)")
    ax_step.set_title("Last layer over training", fontsize=9)
    ax_depth.set_xticks(list(depths))
    ax_depth.set_xlabel("depth L")
    ax_depth.set_ylabel("log Var[x_L] − at init after training (nats)")
    ax_depth.set_title("Against depth", fontsize=9)
    ax_layer.legend(fontsize=7)
    fig.suptitle(f"Hidden-state growth in training relative to init: Markov language ({sizes.n_states} states), "
                 f"d_model = {sizes.d_model}, fan_in init, AdamW at lr {lr:g}, {S} seeds (mean, min–max band)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def numbers(data: TrainedGrowthData) -> dict[str, float | str]:
    sizes = data.sizes
    L_max = max(sizes.n_layers)
    out: dict[str, float | str] = {}
    for placement in PLACEMENTS:
        name, init, grown = LABELS[placement], data.init[placement, L_max], data.grown[placement, L_max]
        out[f"{name}: Var[x_L] at init → after training, L={L_max} (geo-mean)"] = (
            f"{geo_mean_text(init[:, -1])} → {geo_mean_text(np.exp(grown[:, -1]) * init[:, -1])}")
        out[f"{name}: growth of log Var[x_L] relative to init, L={L_max} (nats, mean)"] = mean_or_stopped(grown[:, -1])
    for depth in sizes.n_layers:
        out[f"Pre − Peri growth of log Var[x_L] relative to init, L={depth}"] = ci_text(
            *paired_difference_ci(data.grown["pre", depth][:, -1], data.grown["peri", depth][:, -1]))
    out.update({"seeds": sizes.seeds, "steps": sizes.steps, "lr": sizes.lr, "d_model": sizes.d_model})
    return out


def growth_measurements(data: TrainedGrowthData) -> dict[str, Measurement]:
    """Pre- and Peri-LN's last-layer growth at the largest depth (t over seeds) and their paired
    difference, each only on runs that neither diverged nor stayed at the unigram loss."""
    L_max = max(data.sizes.n_layers)
    pre, peri = data.grown["pre", L_max][:, -1], data.grown["peri", L_max][:, -1]
    why = data.diverged
    return {
        "a_pre_growth": not_measured(why["pre"]) if why["pre"] else t_interval(pre),
        "a_peri_growth": not_measured(why["peri"]) if why["peri"] else t_interval(peri),
        "a_pre_minus_peri": not_measured(why["pre+peri"]) if why["pre+peri"] else paired_difference(pre, peri),
    }


def trained_growth(scale: str) -> FigureResult:
    data = measure(SIZES[scale])
    return FigureResult(plot(data), numbers(data), growth_measurements(data))


register_figure(FigureSpec(
    name="variance_trained_growth",
    family="variance",
    claim=("Growth of the hidden-state variance relative to initialization (log Var after training − at init), per "
           "layer, over log-spaced checkpoints and against depth, per norm placement ('Peri-LN: Revisiting Layer "
           "Normalization in the Transformer Architecture', Kim et al. 2025). Placements start at different "
           "variances, so only growth relative to init compares them." + TRAINING_CAPTION_SETUP),
    make=trained_growth,
    claims=GROWTH_CLAIMS,
))
