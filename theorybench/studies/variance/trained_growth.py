"""Figures of the variance-growth study in training (runs and definitions: ``variance_training``).

- ``variance_trained_growth``: growth of the hidden-state variance relative to initialization (log Var
  after − log Var at init, per layer), over log-spaced checkpoints and against depth, per placement; claim
  (a) of the Peri-LN paper, decided on the paired Pre-LN − Peri-LN growth of the last layer.
- ``variance_massive_activations_training``: the largest residual-stream activation over training (on
  this task, which has no sink token, none is expected to be massive: that is in ``variance_sink_*``),
  and against the learning rate the growth of the last layer's variance and the fraction of diverged
  runs; the divergence claim ("Peri-LN") is decided by Clopper–Pearson intervals at the largest lr, with
  Fisher's exact test of Pre- against Peri-LN in the numbers.
- ``variance_gradient_norms_early_training``: each block's parameter-gradient norm by layer at
  initialization and early in training, per placement; claim (c) as Xiong et al.'s Fig. 3 states it
  ("On Layer Normalization in the Transformer Architecture", Xiong et al. 2020).

Geometric means over seeds with min–max bands where variances span decades.
"""

from __future__ import annotations

import math

import numpy as np

from theorybench.claims import Claim, Criterion, binomial_interval, not_measured, paired_difference, t_interval
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.studies.variance import LABELS
from theorybench.studies.variance_training import (DEPTH_SWEEP, LR_PLACEMENTS, LR_SWEEP, PLACEMENTS, SIZES, check_size,
                                                   fetch_all, fisher_exact_p, growth_from_init, lr_run_config, measure,
                                                   model_at, outcome, paired_difference_ci, probe_batch)
from theorybench.threads import single_thread

__all__ = ["SIZES", "trained_growth", "massive_and_divergence", "gradient_norms_early", "GROWTH_CLAIMS",
           "DIVERGENCE_CLAIMS", "GRADIENT_CLAIMS"]

LN10 = math.log(10.0)


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


def _compare(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Paired-seed difference a − b of the last layer's growth (nats), with its 95% t-interval."""
    return paired_difference_ci(a[:, -1], b[:, -1])


def _trained(runs: dict, names: list[str]) -> str | None:
    """Why these runs cannot decide a claim about trained models (None when they can): a run that
    diverged (NaN/Inf, or no better than the unigram loss) has not learned the chain."""
    bad = [n for n in names if outcome(runs[n])["diverged"]]
    return f"{len(bad)} of {len(names)} runs diverged or learned nothing: {', '.join(bad)}" if bad else None


def _over_seeds(values, why: str | None = None):
    return not_measured(why) if why else t_interval(values)


def _paired(a, b, why: str | None = None):
    return not_measured(why) if why else paired_difference(a, b)


# ------------------------------------------------------------------------------------------ figure 3
# "Grows" and "bounded" are read as at least / less than tenfold in variance relative to init (ln 10 nats):
# the Peri-LN paper's Pre-LN curves grow by orders of magnitude, Peri-LN's stay within one. Fixed before any run.
GROWTH_CLAIMS = (
    Claim(key="pre_grows_peri_bounded",
          statement=("In training, Pre-LN's hidden-state variance grows (at least tenfold at the last layer, relative "
                     "to its initialization) while Peri-LN's stays bounded (less than tenfold), and Pre-LN's grows "
                     "more than Peri-LN's"),
          source="Peri-LN: Revisiting Layer Normalization in the Transformer Architecture (Kim et al. 2025), "
                 "hidden-state variance growth in training",
          criteria=(
              Criterion("a_pre_growth", "Pre-LN: log Var[x_L] after training − at init, deepest model (nats, mean "
                        "over seeds)", ">=", LN10),
              Criterion("a_peri_growth", "Peri-LN: log Var[x_L] after training − at init, deepest model (nats, "
                        "mean over seeds)", "<=", LN10),
              Criterion("a_pre_minus_peri", "growth of log Var[x_L], Pre-LN − Peri-LN, deepest model (paired over "
                        "seeds)", ">=", 0.0),
          )),
)


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
    init = {(p, d): _profiles(m, runs, p, d, lr, 0) for p in PLACEMENTS for d in depths}
    grown = {(p, d): growth_from_init(_profiles(m, runs, p, d, lr, size["steps"]), init[p, d])
             for p in PLACEMENTS for d in depths}
    for placement in PLACEMENTS:
        c, name = colors[placement], LABELS[placement]
        _band(ax_layer, np.arange(L_max + 1), grown[placement, L_max], c, name, marker="o", ms=3)
        traj = np.stack([growth_from_init(_profiles(m, runs, placement, L_max, lr, t)[:, -1],
                                          init[placement, L_max][:, -1]) for t in steps], axis=1)
        _band(ax_step, np.array(steps, dtype=float), traj, c, name, marker="o", ms=3)
        by_depth = np.stack([grown[placement, d][:, -1] for d in depths], axis=1)
        _band(ax_depth, np.array(depths, dtype=float), by_depth, c, name, marker="o", ms=3)
        numbers[f"{name}: Var[x_L] at init → after training, L={L_max} (geo-mean)"] = (
            f"{_geo(init[placement, L_max][:, -1]):.3g} → "
            f"{_geo(np.exp(grown[placement, L_max][:, -1]) * init[placement, L_max][:, -1]):.3g}")
        numbers[f"{name}: growth of log Var[x_L] relative to init, L={L_max} (nats, mean)"] = float(
            f"{np.nanmean(grown[placement, L_max][:, -1]):.4g}")
    for depth in depths:
        numbers[f"Pre − Peri growth of log Var[x_L] relative to init, L={depth}"] = _ci_text(
            *_compare(grown["pre", depth], grown["peri", depth]))
    names = [_key(p, L_max, lr, s) for p in ("pre", "peri") for s in range(S)]
    why = {p: _trained(runs, [_key(p, L_max, lr, s) for s in range(S)]) for p in ("pre", "peri")}
    measured = {
        "a_pre_growth": _over_seeds(grown["pre", L_max][:, -1], why["pre"]),
        "a_peri_growth": _over_seeds(grown["peri", L_max][:, -1], why["peri"]),
        "a_pre_minus_peri": _paired(grown["pre", L_max][:, -1], grown["peri", L_max][:, -1], _trained(runs, names)),
    }
    for ax in (ax_layer, ax_step, ax_depth):
        ax.axhline(LN10, color="0.5", ls="--", lw=0.8)
        ax.axhline(0.0, color="0.8", lw=0.6)
    ax_layer.set_xlabel(f"layer l (x_0 = embedding), depth L = {L_max}")
    ax_layer.set_ylabel("log Var[x_l] after training − at init (nats)")
    ax_layer.set_title(f"Growth relative to init after {size['steps']} steps (dashed: tenfold)", fontsize=9)
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
    fig.suptitle(f"Hidden-state growth in training relative to init: Markov language ({size['n_states']} states), "
                 f"d_model = {size['d_model']}, fan_in init, AdamW at lr {lr:g}, {S} seeds (mean, min–max band)",
                 fontsize=10)
    fig.tight_layout()
    numbers.update({"seeds": S, "steps": size["steps"], "lr": lr, "d_model": size["d_model"]})
    return FigureResult(fig, numbers, measured)


def _band(ax, x, rows: np.ndarray, color, label: str, **kw):
    """Mean over rows (seeds) with a min–max band; rows with a NaN (failed runs) are left out."""
    rows = np.asarray(rows, dtype=float)
    rows = rows[np.all(np.isfinite(rows), axis=1)]
    if len(rows) == 0:
        return
    ax.plot(x, rows.mean(0), color=color, label=label, **kw)
    ax.fill_between(x, rows.min(0), rows.max(0), color=color, alpha=0.18, linewidth=0)


# ------------------------------------------------------------------------------------------ figure 4
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


def massive_and_divergence(scale: str) -> FigureResult:
    with single_thread():
        return _massive_and_divergence(scale)


def _massive_and_divergence(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt

    m = _Measured(scale)
    size = m.size
    lr, lrs, S, L_max = size["lr"], size["lrs"], size["seeds"], max(size["depths"])
    S_lr = size["lr_seeds"]
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
        for s in range(S):
            for j, t in enumerate(steps):
                stats = m.at(depth_runs[_key(placement, L_max, lr, s)].config, t)
                if stats is not None:
                    maxabs[s, j] = stats["max_abs"].max()
                    total_massive += int(stats["n_massive"])
        _geo_band(ax_max, np.array(steps, dtype=float), maxabs, c, name, marker="o", ms=3)
        numbers[f"{name}: max abs(x) at init → after training, L={L_max} (geo-mean)"] = (
            f"{_geo(maxabs[:, 0]):.3g} → {_geo(maxabs[:, -1]):.3g}")
    numbers["massive activations found (abs(x) > 100 and > 1000 × median), all snapshots (no sink token here)"] = (
        total_massive)
    diverged: dict[str, list[int]] = {}
    lr_size = dict(size, steps=size["lr_steps"], seeds=S_lr)
    for placement in LR_PLACEMENTS:
        c, name = colors[placement], LABELS[placement]
        outs = [[outcome(lr_runs[lr_run_config(size, placement, x, s).name]) for s in range(S_lr)] for x in lrs]
        diverged[placement] = [sum(o["diverged"] for o in row) for row in outs]
        rates = [k / S_lr for k in diverged[placement]]
        ax_div.plot(lrs, rates, marker="o", ms=4, color=c, label=name)
        ax_div.plot(lrs, [np.mean([o["kind"] == "non-finite" for o in row]) for row in outs], marker="x", ms=5,
                    ls=":", color=c)
        grown = np.array([[_lr_growth(m, lr_size, placement, x, s) for x in lrs] for s in range(S_lr)])
        _band(ax_var, np.array(lrs), np.where(np.isfinite(grown), grown, np.nan), c, name, marker="o", ms=4)
        numbers[f"{name}: diverged at lr = {', '.join(f'{x:g}' for x in lrs)}"] = ", ".join(
            f"{k}/{S_lr}" for k in diverged[placement])
        numbers[f"{name}: loss spikes (all seeds) at those lr"] = ", ".join(
            str(sum(o["spikes"] for o in row)) for row in outs)
    for j, x in enumerate(lrs):
        numbers[f"Pre vs Peri diverged at lr {x:g}: Fisher exact p"] = float(
            f"{fisher_exact_p(diverged['pre'][j], S_lr, diverged['peri'][j], S_lr):.3g}")
    measured = {"div_pre_top_lr": binomial_interval(diverged["pre"][-1], S_lr),
                "div_peri_top_lr": binomial_interval(diverged["peri"][-1], S_lr)}
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
    ax_var.set_ylabel(f"log Var[x_L] − at init, depth {min(size['depths'])} (nats)")
    ax_var.set_title("Growth relative to init against lr (finished runs)", fontsize=9)
    ax_div.axhline(0.5, color="0.5", ls="--", lw=0.8)
    ax_div.set_xscale("log")
    ax_div.set_ylim(-0.05, 1.05)
    ax_div.set_xlabel("learning rate")
    ax_div.set_ylabel("fraction of runs diverged")
    ax_div.set_title(f"Diverged of {S_lr} (o: NaN/Inf or no better than unigram; x: NaN/Inf)", fontsize=9)
    ax_div.legend(fontsize=7)
    fig.suptitle(f"Largest activation, learning rate and divergence: Markov language, d_model = {size['d_model']}, "
                 f"fan_in init, {size['lr_steps']} steps per lr run", fontsize=10)
    fig.tight_layout()
    numbers.update({"seeds (depth sweep)": S, "seeds per lr": S_lr, "steps": size["steps"]})
    return FigureResult(fig, numbers, measured)


def _lr_growth(m: "_Measured", lr_size: dict, placement: str, lr: float, seed: int) -> float:
    """Growth of log Var[x_L] relative to init of one lr-sweep run (NaN if it stopped on a NaN/Inf)."""
    cfg = lr_run_config(m.size, placement, lr, seed)
    after, before = m.at(cfg, lr_size["steps"]), m.at(cfg, 0)
    if after is None:
        return math.nan
    return float(growth_from_init(after["variance"][-1], before["variance"][-1]))


# ------------------------------------------------------------------------------------------ figure 2b
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
    log_ratio_at_init = {}
    for ax, placement in zip(axes, PLACEMENTS):
        for j, t in enumerate(steps):
            rows = [m.at(runs[_key(placement, L, lr, s)].config, t, gradients=True) for s in range(S)]
            g = np.array([r["block_grad_norm"] if r is not None else np.full(L, np.nan) for r in rows])
            _geo_band(ax, blocks, g, shades[j], f"step {t}", marker="o", ms=2.5)
            ok = g[np.all(np.isfinite(g), axis=1)]
            if t == 0:
                log_ratio_at_init[placement] = np.log(g[:, -1] / g[:, 0])
            if len(ok) and t in (0, steps[-1]):
                ratio = np.exp(np.log(ok[:, -1] / ok[:, 0]).mean())
                numbers[f"{LABELS[placement]}: ‖∇ last block‖ / ‖∇ first block‖ at step {t}"] = float(f"{ratio:.4g}")
        ax.set_yscale("log")
        ax.set_title(LABELS[placement], fontsize=9)
        ax.set_xlabel("block l")
    measured = {"g_post_log_ratio": t_interval(log_ratio_at_init["post"]),
                "g_pre_log_ratio_high": t_interval(log_ratio_at_init["pre"]),
                "g_pre_log_ratio_low": t_interval(log_ratio_at_init["pre"])}
    axes[0].set_ylabel("‖∇ of block l's parameters‖")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Gradient norm by layer at init and early in training: depth {L}, fan_in init, lr {lr:g}, {S} seeds "
                 "(geometric mean, min–max band), cross-entropy on a fixed batch", fontsize=10)
    fig.tight_layout()
    numbers.update({"seeds": S, "depth": L})
    return FigureResult(fig, numbers, measured)


_SETUP = (" Measured on the toy transformer trained on a synthetic Markov language (fan_in init, so that Peri-LN's "
          "output norms are out of the ε regime; AdamW at a constant learning rate, no warm-up), over paired seeds; "
          "the definitions are in theorybench/studies/variance_training.py.")

register_figure(FigureSpec(
    name="variance_trained_growth",
    family="variance",
    claim=("Growth of the hidden-state variance relative to initialization (log Var after training − at init), per "
           "layer, over log-spaced checkpoints and against depth, per norm placement ('Peri-LN: Revisiting Layer "
           "Normalization in the Transformer Architecture', Kim et al. 2025). Placements start at different "
           "variances, so only growth relative to init compares them." + _SETUP),
    make=trained_growth,
    claims=GROWTH_CLAIMS,
))

register_figure(FigureSpec(
    name="variance_massive_activations_training",
    family="variance",
    claim=("Divergence against the learning rate for Post-, Pre- and Peri-LN ('Peri-LN', Kim et al. 2025; Post-LN's "
           "need for warm-up in 'On Layer Normalization in the Transformer Architecture', Xiong et al. 2020), with "
           "the growth of the last layer's variance relative to init at each learning rate, and the largest "
           "activation over training. This task has no sink token, so no massive activations are claimed here "
           "(they are in variance_sink_massive_activations)." + _SETUP),
    make=massive_and_divergence,
    claims=DIVERGENCE_CLAIMS,
))

register_figure(FigureSpec(
    name="variance_gradient_norms_early_training",
    family="variance",
    claim=("'On Layer Normalization in the Transformer Architecture' (Xiong et al. 2020), Fig. 3: at initialization "
           "Post-LN's parameter gradients grow towards the output while Pre-LN's are level across layers; measured "
           "per block at fan_in init and followed into the first training steps." + _SETUP),
    make=gradient_norms_early,
    claims=GRADIENT_CLAIMS,
))
