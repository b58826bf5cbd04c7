"""Figures of the variance-growth study in training (runs and definitions: ``variance_training``).

- ``variance_trained_growth``: hidden-state variance by layer after training, its growth over training
  steps and against depth, per placement; the Pre-LN − Peri-LN differences of log Var[x_L] and of the
  growth per block over paired seeds with Student-t intervals, at every depth ("Peri-LN", Kim et al.
  2025). It reads the depth sweep, the next figure the learning-rate sweep: each trains about half.
- ``variance_massive_activations_training``: the largest residual-stream activation over training per
  placement ("Massive Activations in Large Language Models", Sun et al. 2024), and against the learning
  rate the last layer's variance and the fraction of diverged runs, per placement.
- ``variance_gradient_norms_early_training``: each block's parameter-gradient norm by layer at
  initialization and early in training, per placement ("On Layer Normalization in the Transformer
  Architecture", Xiong et al. 2020).

Geometric means over seeds with min–max bands: the variances span six decades across placements and
learning rates, where an arithmetic mean ± std would be dominated by one seed.
"""

from __future__ import annotations

import math

import numpy as np

from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.studies.variance import LABELS, per_seed_slope
from theorybench.studies.variance_training import (DEPTH_SWEEP, LR_SWEEP, PLACEMENTS, SIZES, check_size, fetch_all,
                                                   measure, model_at, outcome, paired_difference_ci, probe_batch)
from theorybench.threads import single_thread

__all__ = ["SIZES", "trained_growth", "massive_and_divergence", "gradient_norms_early"]


def _colors() -> dict[str, str]:
    import matplotlib.pyplot as plt

    return dict(zip(PLACEMENTS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))


def _key(placement: str, depth: int, lr: float, seed: int) -> str:
    return f"variance_train-{placement}-L{depth}-lr{lr:g}-s{seed}"


def _geo_band(ax, x, values: np.ndarray, color, label: str, **kw):
    """Geometric mean over rows (seeds) with a min–max band; rows of NaN (failed runs) are left out."""
    values = np.asarray(values, dtype=float)
    values = values[np.all(np.isfinite(values), axis=1)] if values.ndim == 2 else values
    if len(values) == 0:
        return
    ax.plot(x, np.exp(np.log(values).mean(0)), color=color, label=label, **kw)
    ax.fill_between(x, values.min(0), values.max(0), color=color, alpha=0.18, linewidth=0)


def _ci_text(mean: float, lo: float, hi: float) -> str:
    """"mean [low, high] (sign)": the sign is "+" or "−" when the interval excludes 0."""
    sign = "+" if lo > 0 else ("−" if hi < 0 else "0 inside")
    return f"{mean:.3g} [{lo:.3g}, {hi:.3g}] ({sign})"


def _geo(values) -> float:
    """Geometric mean of the finite values (NaN: a run that stopped on a NaN/Inf)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(np.exp(np.log(values).mean())) if len(values) else math.nan


class _Measured:
    """Probe statistics of the runs of one scale, computed once per (run, step) in this process."""

    def __init__(self, scale: str):
        self.size = check_size(SIZES[scale])
        self.batch = probe_batch(self.size)
        self.cache: dict = {}

    def at(self, cfg, step: int, gradients: bool = False):
        key = (cfg.config_hash(), step, gradients)
        if key not in self.cache:
            model = model_at(cfg, step)
            self.cache[key] = None if model is None else measure(model, self.batch, gradients=gradients)
        return self.cache[key]


def _runs(sweep, scale: str) -> dict:
    """{member name: run} of a sweep, trained where the run store lacks them."""
    return fetch_all(sweep.members(scale), desc=sweep.name)


def _profiles(m: "_Measured", runs: dict, placement: str, depth: int, lr: float, step: int) -> np.ndarray:
    """[seeds, L + 1] variance of x_0 … x_L after ``step`` updates; NaN rows where a run stopped on a NaN/Inf."""
    out = np.full((m.size["seeds"], depth + 1), np.nan)
    for s in range(m.size["seeds"]):
        stats = m.at(runs[_key(placement, depth, lr, s)].config, step)
        if stats is not None:
            out[s] = stats["variance"]
    return out


def _compare(a: np.ndarray, b: np.ndarray) -> dict[str, tuple[float, float, float]]:
    """Paired-seed differences a − b of [seeds, L + 1] variance profiles, each with its 95% t-interval:
    log Var[x_L] (the variance reached at the last layer, on a log scale since it spans decades), the
    growth per block (least-squares slope over x_0 … x_L, as at init) and that slope from x_1 on
    (leaving out the first block's jump)."""
    return {"log Var[x_L]": paired_difference_ci(np.log(a[:, -1]), np.log(b[:, -1])),
            "growth per block": paired_difference_ci(per_seed_slope(a), per_seed_slope(b)),
            "growth per block from x_1": paired_difference_ci(per_seed_slope(a[:, 1:]), per_seed_slope(b[:, 1:]))}


# ------------------------------------------------------------------------------------------ figure 3
def trained_growth(scale: str) -> FigureResult:
    with single_thread():
        return _trained_growth(scale)


def _trained_growth(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt

    m = _Measured(scale)
    size = m.size
    depths, lr, S = size["depths"], size["lr"], size["seeds"]
    L_max = max(depths)
    steps = (0, *size["snapshots"], size["steps"])
    runs = _runs(DEPTH_SWEEP, scale)
    colors = _colors()
    fig, (ax_layer, ax_step, ax_depth) = plt.subplots(1, 3, figsize=(14.5, 4.3))
    numbers: dict[str, float | str] = {}
    trained = {(p, d): _profiles(m, runs, p, d, lr, size["steps"]) for p in PLACEMENTS for d in depths}
    init = {(p, d): _profiles(m, runs, p, d, lr, 0) for p in PLACEMENTS for d in depths}
    for placement in PLACEMENTS:
        c, name = colors[placement], LABELS[placement]
        _geo_band(ax_layer, np.arange(L_max + 1), trained[placement, L_max], c, name)
        ax_layer.plot(np.arange(L_max + 1), np.exp(np.log(init[placement, L_max]).mean(0)), color=c, ls=":", lw=1)
        last = np.stack([_profiles(m, runs, placement, L_max, lr, t)[:, -1] for t in steps], axis=1)
        _geo_band(ax_step, np.array(steps, dtype=float), last, c, name, marker="o", ms=3)
        by_depth = np.stack([trained[placement, d][:, -1] for d in depths], axis=1)
        _geo_band(ax_depth, np.array(depths, dtype=float), by_depth, c, name, marker="o", ms=3)
        numbers[f"{name}: Var[x_L] at init → after training, L={L_max} (geo-mean)"] = (
            f"{_geo(last[:, 0]):.3g} → {_geo(last[:, -1]):.3g}")
        numbers[f"{name}: growth per block after training, L={L_max} (mean slope)"] = float(
            f"{np.nanmean(per_seed_slope(trained[placement, L_max])):.4g}")
    for depth in depths:
        for stat, (mean, lo, hi) in _compare(trained["pre", depth], trained["peri", depth]).items():
            numbers[f"Pre − Peri {stat} after training, L={depth}: mean"] = float(f"{mean:.4g}")
            numbers[f"Pre − Peri {stat} after training, L={depth}: 95% CI low"] = float(f"{lo:.4g}")
            numbers[f"Pre − Peri {stat} after training, L={depth}: 95% CI high"] = float(f"{hi:.4g}")
        for stat, ci in _compare(init["pre", depth], init["peri", depth]).items():
            numbers[f"Pre − Peri {stat} at init, L={depth}"] = _ci_text(*ci)
    ax_layer.set_yscale("log")
    ax_layer.set_xlabel(f"layer l (x_0 = embedding), depth L = {L_max}")
    ax_layer.set_ylabel("hidden-state variance of x_l")
    ax_layer.set_title(f"After {size['steps']} steps (dotted: at init)", fontsize=9)
    ax_step.set_xscale("symlog", linthresh=1)
    ax_step.set_xlim(left=0)
    ax_step.set_yscale("log")
    ax_step.set_xlabel("training step")
    ax_step.set_ylabel(f"variance of the last layer's output x_{L_max}")
    ax_step.set_title("Growth over training", fontsize=9)
    ax_depth.set_yscale("log")
    ax_depth.set_xticks(list(depths))
    ax_depth.set_xlabel("depth L")
    ax_depth.set_ylabel("variance of x_L after training")
    ax_depth.set_title("Against depth", fontsize=9)
    ax_layer.legend(fontsize=7)
    fig.suptitle(f"Hidden-state variance in training: Markov language ({size['n_states']} states), d_model = "
                 f"{size['d_model']}, AdamW at lr {lr:g}, {S} seeds (geometric mean, min–max band)", fontsize=10)
    fig.tight_layout()
    numbers.update({"seeds": S, "steps": size["steps"], "lr": lr, "d_model": size["d_model"]})
    return FigureResult(fig, numbers)


# ------------------------------------------------------------------------------------------ figure 4
def massive_and_divergence(scale: str) -> FigureResult:
    with single_thread():
        return _massive_and_divergence(scale)


def _massive_and_divergence(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt

    m = _Measured(scale)
    size = m.size
    lr, lrs, S, L_max, L_min = size["lr"], size["lrs"], size["seeds"], max(size["depths"]), min(size["depths"])
    steps = (0, *size["snapshots"], size["steps"])
    depth_runs = _runs(DEPTH_SWEEP, scale)
    lr_runs = _runs(LR_SWEEP, scale)
    colors = _colors()
    fig, (ax_max, ax_var, ax_div) = plt.subplots(1, 3, figsize=(14.5, 4.3))
    numbers: dict[str, float | str] = {}
    total_massive = 0
    for placement in PLACEMENTS:
        c, name = colors[placement], LABELS[placement]
        maxabs = np.full((S, len(steps)), np.nan)
        ratio = np.full((S, len(steps)), np.nan)
        kurt = []
        for s in range(S):
            for j, t in enumerate(steps):
                stats = m.at(depth_runs[_key(placement, L_max, lr, s)].config, t)
                if stats is not None:
                    maxabs[s, j], ratio[s, j] = stats["max_abs"].max(), stats["max_to_median"].max()
                    total_massive += int(stats["n_massive"])
                    if t == size["steps"]:
                        kurt.append(stats["kurtosis"].max())
        _geo_band(ax_max, np.array(steps, dtype=float), maxabs, c, name, marker="o", ms=3)
        numbers[f"{name}: max abs(x) at init → after training, L={L_max} (geo-mean)"] = (
            f"{_geo(maxabs[:, 0]):.3g} → {_geo(maxabs[:, -1]):.3g}")
        finite = ratio[:, -1][np.isfinite(ratio[:, -1])]
        numbers[f"{name}: max abs(x) / median abs(x) after training (largest)"] = (
            float(f"{finite.max():.4g}") if len(finite) else "no finished run")
        numbers[f"{name}: largest kurtosis over layers after training (mean)"] = (
            float(f"{np.mean(kurt):.4g}") if kurt else "no finished run")
        final = np.stack([_profiles(m, lr_runs, placement, L_min, x, size["steps"])[:, -1] for x in lrs], axis=1)
        for j in range(len(lrs)):  # a diverged seed drops out of its own lr only
            ok = np.isfinite(final[:, j])
            if ok.any():
                ax_var.plot([lrs[j]] * ok.sum(), final[ok, j], ".", color=c, ms=3, alpha=0.6)
        ax_var.plot(lrs, [_geo(final[:, j]) for j in range(len(lrs))], marker="o", ms=4, color=c, label=name)
        outs = [[outcome(lr_runs[_key(placement, L_min, x, s)]) for s in range(S)] for x in lrs]
        div = [np.mean([o["diverged"] for o in row]) for row in outs]
        nonfinite = [np.mean([o["kind"] == "non-finite" for o in row]) for row in outs]
        ax_div.plot(lrs, div, marker="o", ms=4, color=c, label=name)
        ax_div.plot(lrs, nonfinite, marker="x", ms=5, ls=":", color=c)
        numbers[f"{name}: diverged fraction at lr = {', '.join(f'{x:g}' for x in lrs)}"] = (
            ", ".join(f"{d:.2g}" for d in div))
        numbers[f"{name}: NaN/Inf fraction at those lr"] = ", ".join(f"{d:.2g}" for d in nonfinite)
        numbers[f"{name}: loss spikes (all seeds) at those lr"] = ", ".join(
            str(sum(o["spikes"] for o in row)) for row in outs)
    numbers["massive activations found (abs(x) > 100 and > 1000 × median), all snapshots"] = total_massive
    for x in lrs:
        pre, peri = (_profiles(m, lr_runs, p, L_min, x, size["steps"]) for p in ("pre", "peri"))
        for stat, ci in _compare(pre, peri).items():
            if stat != "growth per block from x_1":
                numbers[f"Pre − Peri {stat} after training, L={L_min}, lr={x:g}"] = _ci_text(*ci)
    ax_max.axhline(100, color="0.5", ls="--", lw=0.8, label="|x| = 100 (Sun et al.'s floor)")
    ax_max.set_xscale("symlog", linthresh=1)
    ax_max.set_xlim(left=0)
    ax_max.set_yscale("log")
    ax_max.set_xlabel("training step")
    ax_max.set_ylabel(f"largest |x| over x_0 … x_{L_max}")
    ax_max.set_title(f"Largest activation, depth {L_max}, lr {lr:g}", fontsize=9)
    ax_max.legend(fontsize=7)
    ax_var.set_xscale("log")
    ax_var.set_yscale("log")
    ax_var.set_xlabel("learning rate")
    ax_var.set_ylabel(f"variance of x_{L_min} after training")
    ax_var.set_title(f"Last-layer variance, depth {L_min} (dots: seeds)", fontsize=9)
    ax_div.set_xscale("log")
    ax_div.set_ylim(-0.05, 1.05)
    ax_div.set_xlabel("learning rate")
    ax_div.set_ylabel("fraction of runs diverged")
    ax_div.set_title(f"Diverged, depth {L_min} (o: NaN/Inf or no better than unigram; x: NaN/Inf)", fontsize=9)
    ax_div.legend(fontsize=7)
    fig.suptitle(f"Massive activations, learning rate and divergence: d_model = {size['d_model']}, {S} seeds, "
                 f"{size['steps']} steps", fontsize=10)
    fig.tight_layout()
    numbers.update({"seeds": S, "steps": size["steps"]})
    return FigureResult(fig, numbers)


# ------------------------------------------------------------------------------------------ figure 2b
def gradient_norms_early(scale: str) -> FigureResult:
    with single_thread():
        return _gradient_norms_early(scale)


def _gradient_norms_early(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt

    m = _Measured(scale)
    size = m.size
    lr, S, L = size["lr"], size["seeds"], max(size["depths"])
    steps = (0, *size["snapshots"])
    runs = _runs(DEPTH_SWEEP, scale)
    fig, axes = plt.subplots(1, len(PLACEMENTS), figsize=(3.0 * len(PLACEMENTS), 3.4), sharey=True)
    shades = plt.cm.viridis(np.linspace(0.0, 0.85, len(steps)))
    numbers: dict[str, float | str] = {}
    blocks = np.arange(L)
    for ax, placement in zip(axes, PLACEMENTS):
        for j, t in enumerate(steps):
            rows = [m.at(runs[_key(placement, L, lr, s)].config, t, gradients=True) for s in range(S)]
            g = np.array([r["block_grad_norm"] if r is not None else np.full(L, np.nan) for r in rows])
            _geo_band(ax, blocks, g, shades[j], f"step {t}", marker="o", ms=2.5)
            ok = g[np.all(np.isfinite(g), axis=1)]
            if len(ok) and t in (0, steps[-1]):
                ratio = np.exp(np.log(ok[:, -1] / ok[:, 0]).mean())
                numbers[f"{LABELS[placement]}: ‖∇ last block‖ / ‖∇ first block‖ at step {t}"] = float(f"{ratio:.4g}")
        ax.set_yscale("log")
        ax.set_title(LABELS[placement], fontsize=9)
        ax.set_xlabel("block l")
    axes[0].set_ylabel("‖∇ of block l's parameters‖")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Gradient norm by layer at init and early in training: depth {L}, lr {lr:g}, {S} seeds "
                 "(geometric mean, min–max band), cross-entropy on a fixed batch", fontsize=10)
    fig.tight_layout()
    numbers.update({"seeds": S, "depth": L})
    return FigureResult(fig, numbers)


_SETUP = (" Measured on the toy transformer trained on a synthetic Markov language (GPT-2 init, AdamW at a constant "
          "learning rate, no warm-up), over seeds; the definitions are in theorybench/studies/variance_training.py.")

register_figure(FigureSpec(
    name="variance_trained_growth",
    family="variance",
    claim=("In training, Pre-LN's hidden-state variance grows with depth and over training steps, while Peri-LN's "
           "output norms keep it bounded ('Peri-LN: Revisiting Layer Normalization in the Transformer Architecture', "
           "Kim et al. 2025): after training, the Pre-LN − Peri-LN differences of the last layer's log variance and "
           "of the variance's growth per block are positive at every depth, reported with 95% intervals over paired "
           "seeds (at GPT-2 init the order is reversed, since Peri-LN's norms give every update unit variance; the "
           "numbers report both, and the learning-rate dependence is in variance_massive_activations_training)."
           + _SETUP),
    make=trained_growth,
))

register_figure(FigureSpec(
    name="variance_massive_activations_training",
    family="variance",
    claim=("Training creates a few activations far larger than the rest ('Massive Activations in Large Language "
           "Models', Sun et al. 2024; outliers from no-op attention heads in 'Quantizable Transformers', Bondarenko "
           "et al. 2023); Pre-LN's hidden states grow with the learning rate where Peri-LN's stay bounded, and at high "
           "learning rates Pre-LN and Post-LN runs diverge where Peri-LN runs stay stable ('Peri-LN', Kim et al. "
           "2025; Post-LN's need for warm-up in 'On Layer Normalization in the Transformer Architecture', Xiong et al. "
           "2020). The numbers give the Pre − Peri sign at each learning rate and whether any activation is massive."
           + _SETUP),
    make=massive_and_divergence,
))

register_figure(FigureSpec(
    name="variance_gradient_norms_early_training",
    family="variance",
    claim=("'On Layer Normalization in the Transformer Architecture' (Xiong et al. 2020): at initialization Post-LN's "
           "parameter gradients are large near the output, Pre-LN's level across layers. The figure measures each "
           "block's gradient norm at the toy's GPT-2 initialization, where the sublayers (std 0.02) barely move the "
           "stream and Post- and Pre-LN are both level (the depth scaling at fan_in init is in "
           "variance_gradient_scale_at_init), and follows every placement into the first training steps."
           + _SETUP),
    make=gradient_norms_early,
))
