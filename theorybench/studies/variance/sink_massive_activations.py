"""Figure ``variance_sink_massive_activations``: the largest activation on the BOS token relative to its
layer's median (Sun et al.'s criterion), the infinity norm per variant (clipped softmax and gated attention
against plain Pre-LN, Bondarenko et al.), and the BOS attention mass per block (Guo et al.), on the sink
task's runs (``experiments``; statistics: ``sink_statistics``). Comparisons are paired over seeds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theorybench.claims import Claim, Criterion, Measurement
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.threads import single_thread

from .drawing import band, colors
from .experiments import CLIP_ALPHA, LABELS, SINK_VARIANTS, sink_configs
from .sink_statistics import SINK_CAPTION_SETUP, SinkRuns, sink_setup, undertrained
from .sizes import SINK_SIZES, SinkSizes
from .statistics import over_seeds, paired

SIZES = SINK_SIZES  # what theorybench.figures hashes into each result's provenance
_QUANTITIES = ("bos_ratio", "other_ratio", "max_abs", "kurtosis", "sink_mass", "value_ratio")

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



@dataclass(frozen=True)
class SinkMassiveData:
    """Per variant: each statistic of ``sink_statistics.sink_statistics`` after training [seeds, layers or blocks]
    (``after[v][quantity]``), the largest |x| at init [seeds, L + 1] and the eval copy accuracy [seeds]."""

    sizes: SinkSizes
    after: dict[str, dict[str, np.ndarray]]
    max_abs_init: dict[str, np.ndarray]
    copy_accuracy: dict[str, np.ndarray]

    def infinity_norm(self, variant: str) -> np.ndarray:
        """max |x| over x_0 … x_L after training, per seed."""
        return self.after[variant]["max_abs"].max(-1)


def measure(sizes: SinkSizes) -> SinkMassiveData:
    """Train (or reuse) the sink sweep of ``sizes`` and read every variant's statistics."""
    with single_thread():
        m = SinkRuns(sizes, sink_configs(sizes))
        after = {v: {q: m.stack(v, q) for q in _QUANTITIES} for v in SINK_VARIANTS}
        init = {v: m.stack(v, "max_abs", 0) for v in SINK_VARIANTS}
        copy = {v: m.copy_accuracy(v) for v in SINK_VARIANTS}
    return SinkMassiveData(sizes, after, init, copy)


def plot(data: SinkMassiveData):
    # matplotlib here, not at the top: the command line imports every study and should start fast
    import matplotlib.pyplot as plt

    L = data.sizes.n_layers
    color = colors(SINK_VARIANTS)
    fig, (ax_bos, ax_inf, ax_sink) = plt.subplots(1, 3, figsize=(14.5, 4.3))
    for i, v in enumerate(SINK_VARIANTS):
        band(ax_bos, np.arange(L + 1), data.after[v]["bos_ratio"], color[v], LABELS[v], log=True, marker="o", ms=3)
        max_abs = data.infinity_norm(v)
        ok = np.isfinite(max_abs)
        ax_inf.plot(np.full(ok.sum(), i), max_abs[ok], "o", color=color[v], ms=4)
        ax_inf.plot(np.full(ok.sum(), i), data.max_abs_init[v].max(-1)[ok], "x", color="0.5", ms=4)
        band(ax_sink, np.arange(L), data.after[v]["sink_mass"], color[v], LABELS[v], marker="o", ms=3)
    ax_bos.axhline(1000, color="0.5", ls="--", lw=0.8, label="1,000 × median (Sun et al.)")
    ax_bos.set_yscale("log")
    ax_bos.set_xlabel("layer l (x_0 = embedding)")
    ax_bos.set_ylabel("max abs(x) on BOS / median abs(x) of the layer")
    ax_bos.set_title("Largest activation on the sink token", fontsize=9)
    ax_bos.legend(fontsize=7)
    ax_inf.set_yscale("log")
    ax_inf.set_xticks(range(len(SINK_VARIANTS)), [LABELS[v].replace(" + ", "\n+ ") for v in SINK_VARIANTS], fontsize=7)
    ax_inf.set_ylabel("max abs(x) over x_0 … x_L (dots: seeds; x: at init)")
    ax_inf.set_title("Infinity norm (Bondarenko et al.)", fontsize=9)
    ax_sink.axhline(0.5, color="0.5", ls="--", lw=0.8)
    ax_sink.set_ylim(-0.02, 1.02)
    ax_sink.set_xlabel("block l")
    ax_sink.set_ylabel("BOS attention mass (most BOS-attending head)")
    ax_sink.set_title("Attention sink on BOS (Guo et al.)", fontsize=9)
    fig.suptitle(f"Sink token, outliers and their mitigations: {sink_setup(data.sizes)}", fontsize=10)
    fig.tight_layout()
    return fig


def numbers(data: SinkMassiveData) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    for v in SINK_VARIANTS:
        a = data.after[v]
        out[f"{LABELS[v]}: max abs(x) / median on BOS, largest layer (geo-mean)"] = float(
            f"{np.exp(np.nanmean(np.log(a['bos_ratio'].max(-1)))):.4g}")
        out[f"{LABELS[v]}: max abs(x) / median on other tokens, largest layer (geo-mean)"] = float(
            f"{np.exp(np.nanmean(np.log(a['other_ratio'].max(-1)))):.4g}")
        out[f"{LABELS[v]}: max abs(x) at init → after training (geo-mean)"] = (
            f"{np.exp(np.nanmean(np.log(data.max_abs_init[v].max(-1)))):.3g} → "
            f"{np.exp(np.nanmean(np.log(data.infinity_norm(v)))):.3g}")
        out[f"{LABELS[v]}: kurtosis, largest layer (mean)"] = float(f"{np.nanmean(a['kurtosis'].max(-1)):.4g}")
        out[f"{LABELS[v]}: BOS attention mass, most BOS-attending head per block (mean)"] = ", ".join(
            f"{x:.2f}" for x in np.nanmean(a["sink_mass"], 0))
        out[f"{LABELS[v]}: BOS / other value norm of that head per block (mean)"] = ", ".join(
            f"{x:.2f}" for x in np.nanmean(a["value_ratio"], 0))
    out.update({"seeds": data.sizes.seeds, "steps": data.sizes.steps,
                "clip γ": f"{-CLIP_ALPHA / data.sizes.seq_len:g} (ζ = 1)"})
    return out


def massive_measurements(data: SinkMassiveData) -> dict[str, Measurement]:
    """Pre-LN's largest BOS ratio (log10, t over seeds), the log infinity-norm reductions of the clipped
    softmax and the gate (paired over seeds), Pre-LN's largest BOS attention mass; only on runs that
    learned the task."""
    acc, inf = data.copy_accuracy, data.infinity_norm
    return {
        "b_pre_bos_ratio": over_seeds(np.log10(data.after["pre"]["bos_ratio"].max(-1)), undertrained(acc, "pre")),
        "b_clip_reduces": paired(np.log(inf("pre")), np.log(inf("pre_clip")), undertrained(acc, "pre", "pre_clip")),
        "b_gate_reduces": paired(np.log(inf("pre")), np.log(inf("pre_gate")), undertrained(acc, "pre", "pre_gate")),
        "s_pre_bos_mass": over_seeds(data.after["pre"]["sink_mass"].max(-1), undertrained(acc, "pre")),
    }


def sink_massive(scale: str) -> FigureResult:
    data = measure(SIZES[scale])
    return FigureResult(plot(data), numbers(data), massive_measurements(data))


register_figure(FigureSpec(
    name="variance_sink_massive_activations",
    family="variance",
    claim=("The largest activation on the sink token relative to its layer's median ('Massive Activations in Large "
           "Language Models', Sun et al. 2024), the infinity norm with and without the clipped softmax and gated "
           "attention ('Quantizable Transformers', Bondarenko et al. 2023), and the BOS attention mass per block "
           "(Guo et al. 2024)." + SINK_CAPTION_SETUP),
    make=sink_massive,
    claims=MASSIVE_CLAIMS,
))
