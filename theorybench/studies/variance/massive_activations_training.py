"""Figure ``variance_massive_activations_training``: the largest residual-stream activation over training
(on this task, which has no sink token, none is expected to be massive: that is in ``variance_sink_*``),
and against the learning rate the growth of the last layer's variance and the fraction of diverged runs;
the divergence claim ("Peri-LN") is decided by Clopper–Pearson intervals at the largest lr, with Fisher's
exact test of Pre- against Peri-LN in the numbers. Runs: both Markov sweeps (``experiments``);
statistics and definitions: ``markov_statistics``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theorybench.claims import Claim, Criterion, Measurement, binomial_interval
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.threads import single_thread

from .drawing import band, colors
from .experiments import LABELS, LR_PLACEMENTS, PLACEMENTS, depth_configs, lr_configs, lr_run_config
from .markov_statistics import TRAINING_CAPTION_SETUP, TrainingRuns, outcome, training_run_key
from .sizes import TRAINING_SIZES, TrainingSizes
from .statistics import fisher_exact_p, geo_mean_text, growth_from_init
from .trained_runs import fetch_all

SIZES = TRAINING_SIZES  # what theorybench.figures hashes into each result's provenance

# "Diverges" / "stays stable" at the largest learning rate: more / fewer than half of the runs, decided by
# Clopper–Pearson intervals; fixed before any run.
DIVERGENCE_CLAIMS = (
    Claim(key="pre_ln_diverges_at_high_lr",
          statement=("At a large learning rate without warm-up, Pre-LN runs diverge while Peri-LN runs train "
                     "stably"),
          source="Peri-LN: Revisiting Layer Normalization in the Transformer Architecture (Kim et al. 2025), "
                 "learning-rate sensitivity and divergence",
          criteria=(
              Criterion("div_pre_top_lr", "Pre-LN: fraction of runs diverged at the largest lr", ">=", 0.5),
              Criterion("div_peri_top_lr", "Peri-LN: fraction of runs diverged at the largest lr", "<=", 0.5),
          )),
)



@dataclass(frozen=True)
class DivergenceData:
    """Depth sweep, largest depth: per placement the largest |x| over x_0 … x_L at each checkpoint
    [seeds, checkpoints], and the count of massive entries over all of them. Learning-rate sweep: per
    placement of ``LR_PLACEMENTS`` the outcome of every run [lr][seed] (``markov_statistics.outcome``) and the last
    layer's growth from init [seeds, lr] (NaN where a run stopped on a NaN/Inf)."""

    sizes: TrainingSizes
    max_abs: dict[str, np.ndarray]
    total_massive: int
    outcomes: dict[str, list[list[dict]]]
    lr_growth: dict[str, np.ndarray]

    @property
    def checkpoints(self) -> tuple[int, ...]:
        return (0, *self.sizes.snapshots, self.sizes.steps)

    def diverged(self, placement: str) -> list[int]:
        """Runs diverged at each learning rate."""
        return [sum(o["diverged"] for o in row) for row in self.outcomes[placement]]


def _lr_growth(m: TrainingRuns, sizes: TrainingSizes, placement: str, lr: float, seed: int) -> float:
    """Growth of log Var[x_L] relative to init of one lr-sweep run (NaN if it stopped on a NaN/Inf)."""
    cfg = lr_run_config(sizes, placement, lr, seed)
    after, before = m.at(cfg, sizes.lr_steps), m.at(cfg, 0)
    if after is None:
        return math.nan
    return float(growth_from_init(after["variance"][-1], before["variance"][-1]))


def measure(sizes: TrainingSizes) -> DivergenceData:
    """Train (or reuse) both Markov sweeps of ``sizes`` and read the largest activations and outcomes."""
    S, S_lr, lr, L_max = sizes.seeds, sizes.lr_seeds, sizes.lr, max(sizes.n_layers)
    checkpoints = (0, *sizes.snapshots, sizes.steps)
    with single_thread():
        m = TrainingRuns(sizes)
        depth_runs = fetch_all(depth_configs(sizes), desc="variance_training_depth")
        lr_runs = fetch_all(lr_configs(sizes), desc="variance_training_lr")
        max_abs, total_massive = {}, 0
        for placement in PLACEMENTS:
            max_abs[placement] = np.full((S, len(checkpoints)), np.nan)
            for s in range(S):
                for j, t in enumerate(checkpoints):
                    stats = m.at(depth_runs[training_run_key(placement, L_max, lr, s)].config, t)
                    if stats is not None:
                        max_abs[placement][s, j] = stats["max_abs"].max()
                        total_massive += int(stats["n_massive"])
        outcomes, lr_growth = {}, {}
        for placement in LR_PLACEMENTS:
            outcomes[placement] = [[outcome(lr_runs[lr_run_config(sizes, placement, x, s).name]) for s in range(S_lr)]
                                   for x in sizes.lrs]
            lr_growth[placement] = np.array([[_lr_growth(m, sizes, placement, x, s) for x in sizes.lrs]
                                             for s in range(S_lr)])
    return DivergenceData(sizes, max_abs, total_massive, outcomes, lr_growth)


def plot(data: DivergenceData):
    # matplotlib here, not at the top: the command line imports every study and should start fast
    import matplotlib.pyplot as plt

    sizes = data.sizes
    lr, lrs, S_lr, L_max = sizes.lr, sizes.lrs, sizes.lr_seeds, max(sizes.n_layers)
    color = colors(PLACEMENTS)
    fig, (ax_max, ax_var, ax_div) = plt.subplots(1, 3, figsize=(14.5, 4.3))
    for placement in PLACEMENTS:
        band(ax_max, np.array(data.checkpoints, dtype=float), data.max_abs[placement], color[placement],
             LABELS[placement], log=True, marker="o", ms=3)
    for placement in LR_PLACEMENTS:
        c, name, outs = color[placement], LABELS[placement], data.outcomes[placement]
        ax_div.plot(lrs, [k / S_lr for k in data.diverged(placement)], marker="o", ms=4, color=c, label=name)
        ax_div.plot(lrs, [np.mean([o["kind"] == "non-finite" for o in row]) for row in outs], marker="x", ms=5,
                    ls=":", color=c)
        grown = data.lr_growth[placement]
        band(ax_var, np.array(lrs), np.where(np.isfinite(grown), grown, np.nan), c, name, marker="o", ms=4)
    ax_max.axhline(100, color="0.5", ls="--", lw=0.8, label="abs(x) = 100 (Sun et al.'s floor)")
    ax_max.set_xscale("symlog", linthresh=1)
    ax_max.set_xlim(left=0)
    ax_max.set_yscale("log")
    ax_max.set_xlabel("training step")
    ax_max.set_ylabel(f"largest |x| over x_0 … x_{L_max}")
    ax_max.set_title(f"Largest activation, depth {L_max}, lr {lr:g} (no sink token)", fontsize=9)
    ax_max.legend(fontsize=7)
    ax_var.set_xscale("log")
    ax_var.axhline(0.0, color="0.8", lw=0.6)
    ax_var.set_xlabel("learning rate")
    ax_var.set_ylabel(f"log Var[x_L] − at init, depth {min(sizes.n_layers)} (nats)")
    ax_var.set_title("Growth relative to init against lr (finished runs)", fontsize=9)
    ax_div.axhline(0.5, color="0.5", ls="--", lw=0.8)
    ax_div.set_xscale("log")
    ax_div.set_ylim(-0.05, 1.05)
    ax_div.set_xlabel("learning rate")
    ax_div.set_ylabel("fraction of runs diverged")
    ax_div.set_title(f"Diverged of {S_lr} (o: NaN/Inf or no better than unigram; x: NaN/Inf)", fontsize=9)
    ax_div.legend(fontsize=7)
    fig.suptitle(f"Largest activation, learning rate and divergence: Markov language, d_model = {sizes.d_model}, "
                 f"fan_in init, {sizes.lr_steps} steps per lr run", fontsize=10)
    fig.tight_layout()
    return fig


def numbers(data: DivergenceData) -> dict[str, float | str]:
    sizes = data.sizes
    lrs, S_lr, L_max = sizes.lrs, sizes.lr_seeds, max(sizes.n_layers)
    out: dict[str, float | str] = {}
    for placement in PLACEMENTS:
        maxabs = data.max_abs[placement]
        out[f"{LABELS[placement]}: max abs(x) at init → after training, L={L_max} (geo-mean)"] = (
            f"{geo_mean_text(maxabs[:, 0])} → {geo_mean_text(maxabs[:, -1])}")
    out["massive activations found (abs(x) > 100 and > 1000 × median), all snapshots (no sink token here)"] = (
        data.total_massive)
    for placement in LR_PLACEMENTS:
        name = LABELS[placement]
        out[f"{name}: diverged at lr = {', '.join(f'{x:g}' for x in lrs)}"] = ", ".join(
            f"{k}/{S_lr}" for k in data.diverged(placement))
        out[f"{name}: loss spikes (all seeds) at those lr"] = ", ".join(
            str(sum(o["spikes"] for o in row)) for row in data.outcomes[placement])
    pre, peri = data.diverged("pre"), data.diverged("peri")
    for j, x in enumerate(lrs):
        out[f"Pre vs Peri diverged at lr {x:g}: Fisher exact p"] = float(f"{fisher_exact_p(pre[j], S_lr, peri[j], S_lr):.3g}")
    out.update({"seeds (depth sweep)": sizes.seeds, "seeds per lr": S_lr, "steps": sizes.steps})
    return out


def divergence_measurements(data: DivergenceData) -> dict[str, Measurement]:
    """The fraction of Pre- and of Peri-LN runs diverged at the largest learning rate (Clopper–Pearson)."""
    S_lr = data.sizes.lr_seeds
    return {"div_pre_top_lr": binomial_interval(data.diverged("pre")[-1], S_lr),
            "div_peri_top_lr": binomial_interval(data.diverged("peri")[-1], S_lr)}


def massive_and_divergence(scale: str) -> FigureResult:
    data = measure(SIZES[scale])
    return FigureResult(plot(data), numbers(data), divergence_measurements(data))


register_figure(FigureSpec(
    name="variance_massive_activations_training",
    family="variance",
    claim=("Divergence against the learning rate for Post-, Pre- and Peri-LN ('Peri-LN', Kim et al. 2025; Post-LN's "
           "need for warm-up in 'On Layer Normalization in the Transformer Architecture', Xiong et al. 2020), with "
           "the growth of the last layer's variance relative to init at each learning rate, and the largest "
           "activation over training. This task has no sink token, so no massive activations are claimed here "
           "(they are in variance_sink_massive_activations)." + TRAINING_CAPTION_SETUP),
    make=massive_and_divergence,
    claims=DIVERGENCE_CLAIMS,
))
