"""Figures of the sink-task training study (runs and definitions: ``variance_sinks``), with their claims.

- ``variance_sink_growth``: growth of the hidden-state variance relative to initialization, per layer and
  over log-spaced checkpoints, per variant (claim (a) of the Peri-LN paper); the angular distance between
  consecutive layers, Pre-LN against Mix-LN (claim (d), Li et al.).
- ``variance_sink_massive_activations``: the largest activation on the BOS token relative to its layer's
  median (Sun et al.'s criterion), the infinity norm per variant (clipped softmax and gated attention
  against plain Pre-LN, Bondarenko et al.), and the BOS attention mass per block (Guo et al.).

Every comparison between variants is paired over seeds (seed s draws the same data for every variant);
intervals are Student-t over seeds (``theorybench.claims``). A run that stopped on a NaN/Inf leaves its
seed out of nothing silently: the measurement is then ``not_measured`` with the count.
"""

from __future__ import annotations

import math

import numpy as np

from theorybench.claims import Claim, Criterion, not_measured, paired_difference, t_interval
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.studies.variance_sinks import (CLIP_ALPHA, LABELS, SINK_SWEEP, SIZES, SNAPSHOT_VARIANTS, VARIANTS, deep_half,
                                                growth, log_spaced, measure, probe_batch)
from theorybench.studies.variance_training import fetch_all, model_at
from theorybench.threads import single_thread

LN10 = math.log(10.0)
# A claim about *trained* models is decided only on runs that learned the task: copying after a trigger is
# the part of the Bayes solution that needs attention, so every run compared must copy correctly at
# ≥ 90% of the post-trigger positions of the eval set; otherwise its measurements are not_measured
# ("undertrained"), which the ledger reports as inconclusive, not as a failure of the claim.
TRAINED_COPY_ACCURACY = 0.9


class _Measured:
    """``measure`` of every (variant, seed, step) of one scale, computed once in this process."""

    def __init__(self, scale: str):
        self.size = SIZES[scale]
        self.batch = probe_batch(self.size)
        self.runs = fetch_all(SINK_SWEEP.members(scale), desc=SINK_SWEEP.name)
        self.cache: dict = {}

    def at(self, variant: str, seed: int, step: int):
        key = (variant, seed, step)
        if key not in self.cache:
            cfg = self.runs[f"variance_sinks-{variant}-s{seed}"].config
            model = model_at(cfg, step)
            self.cache[key] = None if model is None else measure(model, self.batch)
        return self.cache[key]

    def copy_accuracy(self, variant: str) -> np.ndarray:
        """[seeds] final eval copy accuracy (NaN for a run that stopped on a NaN/Inf)."""
        out = []
        for s in range(self.size["seeds"]):
            run = self.runs[f"variance_sinks-{variant}-s{s}"]
            ok = run.status == "done" and "eval_copy_accuracy" in run.metrics
            out.append(float(run.metrics["eval_copy_accuracy"].dropna().iloc[-1]) if ok else math.nan)
        return np.array(out)

    def untrained(self, *variants: str) -> str | None:
        """Why the runs of ``variants`` cannot decide a claim about trained models (None when they can)."""
        short = {v: self.copy_accuracy(v) for v in variants}
        bad = {v: a for v, a in short.items() if not np.all(a >= TRAINED_COPY_ACCURACY)}
        if not bad:
            return None
        return "undertrained: eval copy accuracy " + "; ".join(
            f"{LABELS[v]} {', '.join(f'{x:.2f}' for x in a)}" for v, a in bad.items()) + \
            f" (needs ≥ {TRAINED_COPY_ACCURACY} on every seed)"

    def stack(self, variant: str, quantity: str, step: int | None = None) -> np.ndarray:
        """[seeds, ...] of one quantity; NaN rows for runs that stopped on a NaN/Inf."""
        step = self.size["steps"] if step is None else step
        rows = [self.at(variant, s, step) for s in range(self.size["seeds"])]
        shape = next((r[quantity].shape for r in rows if r is not None), ())
        return np.array([r[quantity] if r is not None else np.full(shape, np.nan) for r in rows])


def over_seeds(values, untrained: str | None = None) -> "object":
    """t interval of per-seed values; not_measured when the runs are undertrained or a seed's run stopped
    on a NaN/Inf."""
    if untrained:
        return not_measured(untrained)
    values = np.asarray(values, dtype=float)
    bad = int((~np.isfinite(values)).sum())
    if bad:
        return not_measured(f"{bad} of {len(values)} runs stopped on a NaN/Inf")
    return t_interval(values)


def paired(a, b, untrained: str | None = None) -> "object":
    if untrained:
        return not_measured(untrained)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    bad = int((~(np.isfinite(a) & np.isfinite(b))).sum())
    if bad:
        return not_measured(f"{bad} of {len(a)} seed pairs have a run that stopped on a NaN/Inf")
    return paired_difference(a, b)


def _colors() -> dict[str, str]:
    import matplotlib.pyplot as plt  # only when a figure is drawn: keeps `theorybench list` free of matplotlib

    return dict(zip(VARIANTS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))


def _band(ax, x, rows: np.ndarray, color, label: str, log: bool = False, **kw) -> None:
    rows = np.asarray(rows, dtype=float)
    rows = rows[np.all(np.isfinite(rows), axis=1)]
    if len(rows) == 0:
        return
    centre = np.exp(np.log(rows).mean(0)) if log else rows.mean(0)
    ax.plot(x, centre, color=color, label=label, **kw)
    ax.fill_between(x, rows.min(0), rows.max(0), color=color, alpha=0.18, linewidth=0)


def _setup(size: dict) -> str:
    return (f"Bigram-Backcopy with BOS ({size['n_tokens']} tokens, {size['n_triggers']} triggers, length "
            f"{size['seq_len']}), depth {size['n_layers']}, d_model {size['d_model']}, fan_in init, AdamW at lr "
            f"{size['lr']:g}, {size['steps']} steps, {size['seeds']} seeds")


# ------------------------------------------------------------------------------------------ figure: growth
# "Grows" and "bounded" are read as at least / less than tenfold in variance over training (ln 10 nats): the
# Peri-LN paper's Pre-LN curves grow by orders of magnitude while Peri-LN's stay within one; the factor 10 is
# this project's reading of that contrast, fixed here before any run.
GROWTH_CLAIMS = (
    Claim(key="pre_grows_peri_bounded",
          statement=("In training, Pre-LN's hidden-state variance grows (at least tenfold at the last layer, relative "
                     "to its initialization) while Peri-LN's stays bounded (less than tenfold), and Pre-LN's grows "
                     "more than Peri-LN's"),
          source="Peri-LN: Revisiting Layer Normalization in the Transformer Architecture (Kim et al. 2025), "
                 "hidden-state variance growth in training",
          criteria=(
              Criterion("a_pre_growth", "Pre-LN: log Var[x_L] after training − at init (nats, mean over seeds)",
                        ">=", LN10),
              Criterion("a_peri_growth", "Peri-LN: log Var[x_L] after training − at init (nats, mean over seeds)",
                        "<=", LN10),
              Criterion("a_pre_minus_peri", "growth of log Var[x_L], Pre-LN − Peri-LN (paired over seeds)", ">=", 0.0),
          )),
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


def sink_growth(scale: str) -> FigureResult:
    with single_thread():
        return _sink_growth(scale)


def _sink_growth(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt  # only when a figure is drawn (command-line start-up)

    m = _Measured(scale)
    size = m.size
    L, S = size["n_layers"], size["seeds"]
    steps = log_spaced(size["steps"], size["snapshots"])
    colors = _colors()
    fig, (ax_layer, ax_step, ax_ang) = plt.subplots(1, 3, figsize=(14.5, 4.3))
    numbers: dict[str, float | str] = {}
    g = {}
    for v in VARIANTS:
        g[v] = growth(m.stack(v, "variance"), m.stack(v, "variance", 0))  # [seeds, L + 1]
        _band(ax_layer, np.arange(L + 1), g[v], colors[v], LABELS[v], marker="o", ms=3)
        numbers[f"{LABELS[v]}: growth of log Var[x_L] (nats, mean over seeds)"] = float(f"{np.nanmean(g[v][:, -1]):.4g}")
        ang = m.stack(v, "angular")
        _band(ax_ang, np.arange(L), ang, colors[v], LABELS[v], marker="o", ms=3)
        numbers[f"{LABELS[v]}: angular distance, deeper half (mean)"] = float(f"{np.nanmean(deep_half(ang)):.4g}")
    for v in SNAPSHOT_VARIANTS:
        traj = np.stack([growth(m.stack(v, "variance", t)[:, -1], m.stack(v, "variance", 0)[:, -1]) for t in steps], 1)
        _band(ax_step, np.array(steps, dtype=float), traj, colors[v], LABELS[v], marker="o", ms=3)
    measured = {
        "a_pre_growth": over_seeds(g["pre"][:, -1], m.untrained("pre")),
        "a_peri_growth": over_seeds(g["peri"][:, -1], m.untrained("peri")),
        "a_pre_minus_peri": paired(g["pre"][:, -1], g["peri"][:, -1], m.untrained("pre", "peri")),
        "d_mix_minus_pre": paired(deep_half(m.stack("mix", "angular")), deep_half(m.stack("pre", "angular")),
                                  m.untrained("mix", "pre")),
    }
    for v in VARIANTS:
        numbers[f"{LABELS[v]}: eval copy accuracy (per seed)"] = ", ".join(f"{a:.3f}" for a in m.copy_accuracy(v))
    for ax in (ax_layer, ax_step):
        ax.axhline(LN10, color="0.5", ls="--", lw=0.8)
        ax.axhline(0.0, color="0.8", lw=0.6)
    ax_layer.set_xlabel("layer l (x_0 = embedding)")
    ax_layer.set_ylabel("log Var[x_l] after training − at init (nats)")
    ax_layer.set_title("Growth relative to init (dashed: tenfold)", fontsize=9)
    ax_step.set_xscale("symlog", linthresh=max(1, size["snapshots"][0] if size["snapshots"] else 1))
    ax_step.set_xlabel("training step (log-spaced checkpoints)")
    ax_step.set_ylabel(f"log Var[x_{L}] − at init (nats)")
    ax_step.set_title("Last layer over training", fontsize=9)
    ax_ang.set_xlabel("block l")
    ax_ang.set_ylabel("angular distance x_l → x_{l+1}")
    ax_ang.set_title("Layer contribution after training (Li et al.)", fontsize=9)
    ax_layer.legend(fontsize=7)
    fig.suptitle(f"Hidden-state growth on a task with a sink token: {_setup(size)} (mean, min–max band)", fontsize=10)
    fig.tight_layout()
    numbers.update({"seeds": S, "steps": size["steps"], "d_model": size["d_model"], "depth": L})
    return FigureResult(fig, numbers, measured)


# ------------------------------------------------------------------------------------------ figure: massive
MASSIVE_CLAIMS = (
    Claim(key="massive_on_sink_removed_by_clip_or_gate",
          statement=("Training makes massive activations on the sink (BOS) token in Pre-LN — larger than 1,000 × "
                     "the median magnitude of their hidden state — and the clipped softmax and gated attention "
                     "shrink the largest activation"),
          source="Massive Activations in Large Language Models (Sun et al. 2024), the 1,000 × median criterion; "
                 "Quantizable Transformers: Removing Outliers by Helping Attention Heads Do Nothing (Bondarenko et "
                 "al. 2023), infinity norm with clipped softmax and gated attention",
          criteria=(
              Criterion("b_pre_bos_ratio", "Pre-LN: log10 of (largest abs(x) on BOS / median abs(x) of that layer), "
                        "largest over layers (mean over seeds)", ">=", 3.0),
              Criterion("b_clip_reduces", "log max abs(x) Pre-LN − log max abs(x) Pre-LN + clipped softmax (paired over "
                        "seeds)", ">=", 0.0),
              Criterion("b_gate_reduces", "log max abs(x) Pre-LN − log max abs(x) Pre-LN + gated attention (paired over "
                        "seeds)", ">=", 0.0),
          )),
    Claim(key="bos_attention_sink",
          statement="A trained model's dormant heads put most of their attention on the BOS token",
          source="Active-Dormant Attention Heads: Mechanistically Demystifying Extreme-Token Phenomena in LLMs "
                 "(Guo et al. 2024), Bigram-Backcopy",
          criteria=(
              Criterion("s_pre_bos_mass", "Pre-LN: BOS attention mass of the most BOS-attending head, largest over "
                        "blocks (mean over seeds)", ">=", 0.5),
          )),
)


def sink_massive(scale: str) -> FigureResult:
    with single_thread():
        return _sink_massive(scale)


def _sink_massive(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt  # only when a figure is drawn (command-line start-up)

    m = _Measured(scale)
    size = m.size
    L, S = size["n_layers"], size["seeds"]
    colors = _colors()
    fig, (ax_bos, ax_inf, ax_sink) = plt.subplots(1, 3, figsize=(14.5, 4.3))
    numbers: dict[str, float | str] = {}
    max_abs = {}
    for i, v in enumerate(VARIANTS):
        bos = m.stack(v, "bos_ratio")
        _band(ax_bos, np.arange(L + 1), bos, colors[v], LABELS[v], log=True, marker="o", ms=3)
        max_abs[v] = m.stack(v, "max_abs").max(-1)  # the infinity norm over x_0 … x_L, per seed
        ok = np.isfinite(max_abs[v])
        ax_inf.plot(np.full(ok.sum(), i), max_abs[v][ok], "o", color=colors[v], ms=4)
        ax_inf.plot(np.full(ok.sum(), i), m.stack(v, "max_abs", 0).max(-1)[ok], "x", color="0.5", ms=4)
        sink = m.stack(v, "sink_mass")
        _band(ax_sink, np.arange(L), sink, colors[v], LABELS[v], marker="o", ms=3)
        numbers[f"{LABELS[v]}: max abs(x) / median on BOS, largest layer (geo-mean)"] = float(
            f"{np.exp(np.nanmean(np.log(bos.max(-1)))):.4g}")
        numbers[f"{LABELS[v]}: max abs(x) / median on other tokens, largest layer (geo-mean)"] = float(
            f"{np.exp(np.nanmean(np.log(m.stack(v, 'other_ratio').max(-1)))):.4g}")
        numbers[f"{LABELS[v]}: max abs(x) at init → after training (geo-mean)"] = (
            f"{np.exp(np.nanmean(np.log(m.stack(v, 'max_abs', 0).max(-1)))):.3g} → "
            f"{np.exp(np.nanmean(np.log(max_abs[v]))):.3g}")
        numbers[f"{LABELS[v]}: kurtosis, largest layer (mean)"] = float(f"{np.nanmean(m.stack(v, 'kurtosis').max(-1)):.4g}")
        numbers[f"{LABELS[v]}: BOS attention mass, most BOS-attending head per block (mean)"] = ", ".join(
            f"{x:.2f}" for x in np.nanmean(sink, 0))
        numbers[f"{LABELS[v]}: BOS / other value norm of that head per block (mean)"] = ", ".join(
            f"{x:.2f}" for x in np.nanmean(m.stack(v, "value_ratio"), 0))
    measured = {
        "b_pre_bos_ratio": over_seeds(np.log10(m.stack("pre", "bos_ratio").max(-1)), m.untrained("pre")),
        "b_clip_reduces": paired(np.log(max_abs["pre"]), np.log(max_abs["pre_clip"]), m.untrained("pre", "pre_clip")),
        "b_gate_reduces": paired(np.log(max_abs["pre"]), np.log(max_abs["pre_gate"]), m.untrained("pre", "pre_gate")),
        "s_pre_bos_mass": over_seeds(m.stack("pre", "sink_mass").max(-1), m.untrained("pre")),
    }
    ax_bos.axhline(1000, color="0.5", ls="--", lw=0.8, label="1,000 × median (Sun et al.)")
    ax_bos.set_yscale("log")
    ax_bos.set_xlabel("layer l (x_0 = embedding)")
    ax_bos.set_ylabel("max abs(x) on BOS / median abs(x) of the layer")
    ax_bos.set_title("Largest activation on the sink token", fontsize=9)
    ax_bos.legend(fontsize=7)
    ax_inf.set_yscale("log")
    ax_inf.set_xticks(range(len(VARIANTS)), [LABELS[v].replace(" + ", "\n+ ") for v in VARIANTS], fontsize=7)
    ax_inf.set_ylabel("max abs(x) over x_0 … x_L (dots: seeds; x: at init)")
    ax_inf.set_title("Infinity norm (Bondarenko et al.)", fontsize=9)
    ax_sink.axhline(0.5, color="0.5", ls="--", lw=0.8)
    ax_sink.set_ylim(-0.02, 1.02)
    ax_sink.set_xlabel("block l")
    ax_sink.set_ylabel("BOS attention mass (most BOS-attending head)")
    ax_sink.set_title("Attention sink on BOS (Guo et al.)", fontsize=9)
    fig.suptitle(f"Sink token, outliers and their mitigations: {_setup(size)}", fontsize=10)
    fig.tight_layout()
    numbers.update({"seeds": S, "steps": size["steps"], "clip γ": f"{-CLIP_ALPHA / size['seq_len']:g} (ζ = 1)"})
    return FigureResult(fig, numbers, measured)


_CAPTION_SETUP = (" Measured on the toy transformer trained on Bigram-Backcopy with a BOS token (Guo et al., "
                  "'Active-Dormant Attention Heads'), fan_in init (Peri-LN's output norms out of the ε regime), AdamW "
                  "at a constant learning rate, paired seeds; definitions in theorybench/studies/variance_sinks.py.")

register_figure(FigureSpec(
    name="variance_sink_growth",
    family="variance",
    claim=("Growth of the hidden-state variance relative to initialization, per layer and over log-spaced checkpoints, "
           "for Pre-, Peri- and Mix-LN and Pre-LN with the clipped softmax or gated attention ('Peri-LN: Revisiting "
           "Layer Normalization in the Transformer Architecture', Kim et al. 2025), and the angular distance between "
           "consecutive layers ('Mix-LN', Li et al. 2024)." + _CAPTION_SETUP),
    make=sink_growth,
    claims=GROWTH_CLAIMS,
))

register_figure(FigureSpec(
    name="variance_sink_massive_activations",
    family="variance",
    claim=("The largest activation on the sink token relative to its layer's median ('Massive Activations in Large "
           "Language Models', Sun et al. 2024), the infinity norm with and without the clipped softmax and gated "
           "attention ('Quantizable Transformers', Bondarenko et al. 2023), and the BOS attention mass per block "
           "(Guo et al. 2024)." + _CAPTION_SETUP),
    make=sink_massive,
    claims=MASSIVE_CLAIMS,
))
