"""Figure ``graph_search_path_merging``: attention-weight patching (``probes.attention_patching``) on
held-out examples of every test lookahead: how often the operations the answer depends on compose into
path merging, beside the control that draws each operation's source at random ("Transformers Struggle to
Learn to Search", Saparov et al., ICLR 2025, Sec. 5)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from probes.attention_patching import answer_drops, computation_graph, random_ops_control
from theorybench.claims import Claim, Criterion, Measurement, binomial_interval, not_measured, paired_difference
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.threads import single_thread
from toy_models.tasks.graph_search import GraphSearchConfig, collate

from .common import PAPER
from .experiments import searcher_config, trained
from .sizes import SIZES, GraphSearchSizes

EXPLAINED = 0.5  # "most" correctly answered examples are explained by path merging
OVER_CONTROL = 0.1  # and at least 10 points more often than with random sources

PATCHING_CLAIMS = (
    Claim(key="path_merging_by_patching",
          statement=("The attention operations a trained searcher's answer depends on compose into path merging "
                     "(sets of reachable vertices joined along edges), far more often than chance"),
          source=f"{PAPER}, Sec. 5 (attention-weight patching; explainable fraction)",
          criteria=(Criterion(key="merging_explained",
                              quantity="fraction of correctly answered held-out examples explained as path merging",
                              op=">=", threshold=EXPLAINED),
                    Criterion(key="merging_over_control",
                              quantity="explained − explained with random operation sources (paired per example)",
                              op=">=", threshold=OVER_CONTROL))),
)


def patching_measurements(explained: np.ndarray, control: np.ndarray, correct: np.ndarray) -> dict[str, Measurement]:
    """Criteria from per-example indicators (model explained, control explained, answered correctly):
    the explained fraction among correct answers (Clopper–Pearson) and the paired excess over the
    control among them (t interval over examples; n ≥ 200 per lookahead at medium scale)."""
    e, c = np.asarray(explained, bool)[correct], np.asarray(control, bool)[correct]
    if e.size < 2:
        reason = f"{e.size} correctly answered example(s): nothing to explain"
        return {"merging_explained": not_measured(reason), "merging_over_control": not_measured(reason)}
    out = {"merging_explained": binomial_interval(int(e.sum()), int(e.size))}
    diff = paired_difference(e.astype(float), c.astype(float))
    out["merging_over_control"] = Measurement(diff.value, diff.low, diff.high, "paired t interval over examples",
                                              n=diff.n, level=diff.level)
    return out


@dataclass(frozen=True)
class PatchingData:
    """One row per held-out example: its lookahead, whether the model answered it correctly, whether its
    important operations are explained as path merging, whether the random-source control's are, and
    how many important operations it has."""

    L: np.ndarray
    correct: np.ndarray
    explained: np.ndarray
    control: np.ndarray
    n_ops: np.ndarray
    lookaheads: list[int]
    examples_per_lookahead: int


def measure(sizes: GraphSearchSizes) -> PatchingData:
    """Patch the balanced searcher trained with ``sizes`` on ``patch_examples_per_lookahead`` held-out
    examples of each lookahead (test-set seed 3), beside the random-source control (generator seed 0)."""
    cfg = searcher_config(sizes, "balanced")
    model = trained(cfg).load_model()
    task = GraphSearchConfig(max_input_size=cfg.task.max_input_size, max_lookahead=cfg.task.max_lookahead).build()
    rng = np.random.default_rng(0)
    rows = []
    for L in range(1, task.max_lookahead + 1):
        batch = collate(task.test_set(L, sizes.patch_examples_per_lookahead, seed=3), task.vocab)
        for i in range(batch["inputs"].shape[0]):
            tokens, mask = batch["inputs"][i], batch["padding_mask"][i]
            answer, _, drops = answer_drops(model, tokens, mask)
            graph = computation_graph(tokens, task.vocab, answer, drops)
            control = random_ops_control(tokens, task.vocab, graph, len(drops), rng, mask)
            rows.append((L, graph.correct, graph.explained, control.explained, len(graph.ops)))
    L_col, correct, explained, control, n_ops = (np.array(c) for c in zip(*rows))
    return PatchingData(L_col, correct, explained, control, n_ops, list(range(1, task.max_lookahead + 1)),
                        sizes.patch_examples_per_lookahead)


def _per_lookahead(data: PatchingData, values: np.ndarray) -> list[Measurement]:
    """The explained fraction among correct answers at each lookahead (Clopper–Pearson)."""
    return [binomial_interval(int(values[(data.L == L) & data.correct].sum()),
                              max(1, int(((data.L == L) & data.correct).sum()))) for L in data.lookaheads]


_SERIES = (("model", "explained", "o"), ("random-source control", "control", "s"))


def plot(data: PatchingData):
    # matplotlib here, not at the top: the command line imports every study and should start fast
    import matplotlib.pyplot as plt

    Ls = data.lookaheads
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, field, marker in _SERIES:
        per_L = _per_lookahead(data, getattr(data, field))
        ax.errorbar(Ls, [m.value for m in per_L], yerr=[[m.value - m.low for m in per_L], [m.high - m.value for m in per_L]],
                    fmt=marker + "-", capsize=3, label=name)
    ax.axhline(EXPLAINED, color="0.7", linestyle=":", linewidth=1, label=f"criterion {EXPLAINED}")
    ax.set_xticks(Ls)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("test lookahead L")
    ax.set_ylabel("fraction explained as path merging (95% CP)")
    ax.set_title(f"Attention patching, {data.examples_per_lookahead} held-out examples per L")
    ax.legend(fontsize=7)
    return fig


def numbers(data: PatchingData) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    for name, field, _ in _SERIES:
        out[f"{name}: explained among correct, by L"] = ", ".join(
            f"L{L} {m.value:.2f} [{m.low:.2f}, {m.high:.2f}]" for L, m in zip(data.lookaheads,
                                                                           _per_lookahead(data, getattr(data, field))))
    out["correct answers"] = f"{int(data.correct.sum())} of {len(data.correct)}"
    out["important operations per example (mean)"] = round(float(data.n_ops.mean()), 2)
    return out


def path_merging(scale: str) -> FigureResult:
    with single_thread():
        data = measure(SIZES[scale])
    return FigureResult(plot(data), numbers(data),
                        measured=patching_measurements(data.explained, data.control, data.correct))


register_figure(FigureSpec(
    name="graph_search_path_merging",
    family="graph_search",
    claim=("Attention-weight patching finds the mechanism: the operations a balanced-trained searcher's answer "
           "depends on merge reachable sets along edges (path merging), far more often than the same number of "
           "operations with random sources ('Transformers Struggle to Learn to Search', Saparov et al., ICLR 2025)."),
    make=path_merging,
    claims=PATCHING_CLAIMS,
))
