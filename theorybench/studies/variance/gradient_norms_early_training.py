"""Figure ``variance_gradient_norms_early_training``: each block's parameter-gradient norm by layer at
initialization and early in training, per placement; claim (c) as Xiong et al.'s Fig. 3 states it ("On
Layer Normalization in the Transformer Architecture", Xiong et al. 2020). Runs: the depth sweep's
snapshots at its largest depth (``experiments``); statistics: ``markov_statistics.training_statistics``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theorybench.claims import Claim, Criterion, Measurement, t_interval
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.threads import single_thread

from .drawing import band
from .experiments import LABELS, PLACEMENTS, depth_configs
from .markov_statistics import TRAINING_CAPTION_SETUP, TrainingRuns, training_run_key
from .sizes import TRAINING_SIZES, TrainingSizes
from .trained_runs import fetch_all

SIZES = TRAINING_SIZES  # what theorybench.figures hashes into each result's provenance

# Xiong et al.'s Fig. 3: at init Post-LN's gradient norm grows towards the output, Pre-LN's stays level.
# "Level" is read as within a factor 1.5 between the last and the first block, fixed before any run.
GRADIENT_CLAIMS = (
    Claim(key="post_ln_gradients_grow_toward_output",
          statement=("At initialization Post-LN's parameter gradients are larger near the output than near the "
                     "input, while Pre-LN's are level across layers"),
          source="On Layer Normalization in the Transformer Architecture (Xiong et al. 2020), Fig. 3",
          criteria=(
              Criterion("g_post_log_ratio", "Post-LN at init: log(‖∇ last block‖ / ‖∇ first block‖) (mean over "
                        "seeds)", ">=", 0.0),
              Criterion("g_pre_log_ratio_high", "Pre-LN at init: log(‖∇ last block‖ / ‖∇ first block‖) (mean "
                        "over seeds)", "<=", math.log(1.5)),
              Criterion("g_pre_log_ratio_low", "Pre-LN at init: log(‖∇ last block‖ / ‖∇ first block‖) (mean "
                        "over seeds)", ">=", -math.log(1.5)),
          )),
)



@dataclass(frozen=True)
class GradientNormsData:
    """Per placement and checkpoint (init and the snapshots): ‖∇ of block l's parameters‖ [seeds, L] at
    the largest depth (NaN rows where a run stopped on a NaN/Inf)."""

    sizes: TrainingSizes
    grad: dict[tuple[str, int], np.ndarray]

    @property
    def checkpoints(self) -> tuple[int, ...]:
        return (0, *self.sizes.snapshots)


def measure(sizes: TrainingSizes) -> GradientNormsData:
    """Train (or reuse) the depth sweep of ``sizes`` and read the block gradient norms at each checkpoint."""
    lr, S, L = sizes.lr, sizes.seeds, max(sizes.n_layers)
    with single_thread():
        m = TrainingRuns(sizes)
        runs = fetch_all(depth_configs(sizes), desc="variance_training_depth")
        grad = {}
        for placement in PLACEMENTS:
            for t in (0, *sizes.snapshots):
                rows = [m.at(runs[training_run_key(placement, L, lr, s)].config, t, gradients=True) for s in range(S)]
                grad[placement, t] = np.array([r["block_grad_norm"] if r is not None else np.full(L, np.nan)
                                               for r in rows])
    return GradientNormsData(sizes, grad)


def plot(data: GradientNormsData):
    # matplotlib here, not at the top: the command line imports every study and should start fast
    import matplotlib.pyplot as plt

    sizes = data.sizes
    lr, S, L = sizes.lr, sizes.seeds, max(sizes.n_layers)
    steps = data.checkpoints
    fig, axes = plt.subplots(1, len(PLACEMENTS), figsize=(3.0 * len(PLACEMENTS), 3.4), sharey=True)
    shades = plt.cm.viridis(np.linspace(0.0, 0.85, len(steps)))
    blocks = np.arange(L)
    for ax, placement in zip(axes, PLACEMENTS):
        for j, t in enumerate(steps):
            band(ax, blocks, data.grad[placement, t], shades[j], f"step {t}", log=True, marker="o", ms=2.5)
        ax.set_yscale("log")
        ax.set_title(LABELS[placement], fontsize=9)
        ax.set_xlabel("block l")
    axes[0].set_ylabel("‖∇ of block l's parameters‖")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Gradient norm by layer at init and early in training: depth {L}, fan_in init, lr {lr:g}, {S} seeds "
                 "(geometric mean, min–max band), cross-entropy on a fixed batch", fontsize=10)
    fig.tight_layout()
    return fig


def numbers(data: GradientNormsData) -> dict[str, float | str]:
    steps = data.checkpoints
    out: dict[str, float | str] = {}
    for placement in PLACEMENTS:
        for t in steps:
            g = data.grad[placement, t]
            ok = g[np.all(np.isfinite(g), axis=1)]
            if len(ok) and t in (0, steps[-1]):
                ratio = np.exp(np.log(ok[:, -1] / ok[:, 0]).mean())
                out[f"{LABELS[placement]}: ‖∇ last block‖ / ‖∇ first block‖ at step {t}"] = float(f"{ratio:.4g}")
    out.update({"seeds": data.sizes.seeds, "depth": max(data.sizes.n_layers)})
    return out


def gradient_measurements(data: GradientNormsData) -> dict[str, Measurement]:
    """log(‖∇ last block‖ / ‖∇ first block‖) at init per seed, t interval over seeds: Post-LN, and Pre-LN
    against both bounds of "level"."""
    log_ratio = {p: np.log(data.grad[p, 0][:, -1] / data.grad[p, 0][:, 0]) for p in ("post", "pre")}
    return {"g_post_log_ratio": t_interval(log_ratio["post"]),
            "g_pre_log_ratio_high": t_interval(log_ratio["pre"]),
            "g_pre_log_ratio_low": t_interval(log_ratio["pre"])}


def gradient_norms_early(scale: str) -> FigureResult:
    data = measure(SIZES[scale])
    return FigureResult(plot(data), numbers(data), gradient_measurements(data))


register_figure(FigureSpec(
    name="variance_gradient_norms_early_training",
    family="variance",
    claim=("'On Layer Normalization in the Transformer Architecture' (Xiong et al. 2020), Fig. 3: at initialization "
           "Post-LN's parameter gradients grow towards the output while Pre-LN's are level across layers; measured "
           "per block at fan_in init and followed into the first training steps." + TRAINING_CAPTION_SETUP),
    make=gradient_norms_early,
    claims=GRADIENT_CLAIMS,
))
