"""Graph search: learning gets harder as the graphs grow ("Transformers Struggle to Learn to Search",
Saparov et al., ICLR 2025, Sec. 4).

Figure ``graph_search_size_sweep``: balanced searchers of one depth, one example budget and one largest
lookahead (fixed across sizes, so size is not confounded with lookahead) at ≥ 5 graph sizes, several
seeds each (the sweep ``graph_search_size_sweep``, trained or reused through the run store). For every
run: the examples seen until its training accuracy first met the paper's convergence criterion (any
logged training accuracy ≥ 0.995; here the trainer's fixed evaluation batches drawn from the training
distribution, logged ``eval_every`` steps), censored at the budget; the fraction of seeds that met it
per size; Spearman's ρ between graph size and examples-to-learn with a bootstrap interval over runs.

No curriculum, as in the authors' stored size-sweep runs: their checkpoint paths (scaling_experiments/
*.err in asaparov/learning_to_search) lack the ``_curriculum`` suffix their ``train.py`` appends when
the curriculum is on. Their largest lookahead was the largest that fits, ((N − 5)//3 − 1)//2, which
grows with N; the fixed largest lookahead here is a deliberate deviation that removes that confound. The
curriculum exists as an option (``GraphSearchConfig.curriculum_start``, ``sizes.AUTHORS_CURRICULUM``);
with it, a run counts as learned only once its stage has reached the largest lookahead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from theorybench.claims import Claim, Criterion, Measurement, bootstrap_interval, not_measured
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.threads import single_thread
from toy_models.tasks.graph_search import Vocab

from .common import PAPER, accuracy_by_lookahead
from .experiments import size_sweep_configs, trained
from .sizes import SIZES, GraphSearchSizes, SizeSweep

TRAIN_ACCURACY = 0.995  # the paper's scaling plots: a run has converged once a logged training accuracy ≥ 0.995
MIN_RHO = 0.0  # difficulty grows with size: a positive rank correlation of size and examples-to-learn

SIZE_CLAIMS = (
    Claim(key="difficulty_grows_with_size",
          statement="As the input graphs grow, the transformer needs more examples to learn to search (or fails)",
          source=f"{PAPER}, Sec. 4 and Fig. 5 (fraction of converged seeds against graph size)",
          criteria=(Criterion(key="size_rank_correlation",
                              quantity="Spearman ρ(graph size, examples to reach training accuracy 0.995; censored at the budget)",
                              op=">=", threshold=MIN_RHO),)),
)


def examples_to_learn(metrics, batch: int, budget_steps: int, criterion: float = TRAIN_ACCURACY,
                      last_stage: int | None = None) -> tuple[int, bool]:
    """(examples seen at the first logged evaluation with accuracy ≥ ``criterion``, True), or
    (the budget's examples, False) when no evaluation met it (censored). A curriculum run (a
    ``task_stage`` column) counts only evaluations once its stage is ``last_stage``, its largest lookahead."""
    if "eval_accuracy" in metrics:
        done = metrics["eval_accuracy"] >= criterion
        if "task_stage" in metrics:  # a curriculum run has learned only at its last stage
            if last_stage is None:
                raise ValueError("a curriculum run (metrics with task_stage): give last_stage, its largest lookahead")
            done &= metrics["task_stage"] == last_stage
        hit = metrics[done]
        if len(hit):
            return int(hit["step"].iloc[0]) * batch, True
    return budget_steps * batch, False


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ (average ranks for ties); NaN when either variable is constant."""
    from scipy import stats  # here, not at the top: scipy.stats costs the command line's start-up ~0.8 s

    x, y = np.asarray(x, float), np.asarray(y, float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def size_measurements(sizes: np.ndarray, examples: np.ndarray) -> dict[str, Measurement]:
    """ρ(size, examples-to-learn) with a percentile bootstrap over runs (pairs resampled); not measured
    when examples-to-learn does not vary (every run censored, or every run equally fast)."""
    if np.ptp(examples) == 0:
        return {"size_rank_correlation": not_measured(
            "examples-to-learn is the same for every run (all censored at the budget?): ρ is undefined")}
    pairs = np.stack([sizes, examples], axis=1).astype(float)
    return {"size_rank_correlation": bootstrap_interval(pairs, lambda p: spearman(p[:, 0], p[:, 1]),
                                                        method="percentile bootstrap over runs")}


@dataclass(frozen=True)
class SizeSweepData:
    """One row per run of the sweep: its largest vertex id, the examples it saw until it met the
    criterion (or the budget, censored), whether it met it, and its worst held-out accuracy over L."""

    sweep: SizeSweep
    graph: np.ndarray
    seen: np.ndarray
    learned: np.ndarray
    worst: np.ndarray

    @property
    def graph_sizes(self) -> list[int]:
        return sorted(set(self.graph.tolist()))

    def fraction_learned(self) -> list[float]:
        return [float(self.learned[self.graph == g].mean()) for g in self.graph_sizes]


def measure(sizes: GraphSearchSizes) -> SizeSweepData:
    """Train (or reuse) every run of the size sweep with ``sizes`` and read its examples-to-learn and
    worst held-out accuracy (``test_examples_per_lookahead`` per lookahead)."""
    sweep = sizes.sweep
    rows = []
    for cfg in tqdm(size_sweep_configs(sizes), desc="graph_search size sweep", unit="run", disable=None):
        run = trained(cfg)
        seen, learned = examples_to_learn(run.metrics, sweep.batch_size, sweep.steps,
                                          last_stage=cfg.task.largest_lookahead)
        worst = min(s.accuracy for s in accuracy_by_lookahead(run.load_model(), cfg.task,
                                                              sizes.test_examples_per_lookahead))
        rows.append((Vocab(cfg.task.max_input_size).max_vertex, seen, learned, worst))
    graph, seen, learned, worst = (np.array(c) for c in zip(*rows))
    return SizeSweepData(sweep, graph, seen, learned, worst)


def plot(data: SizeSweepData):
    # matplotlib here, not at the top: the command line imports every study and should start fast
    import matplotlib.pyplot as plt

    sweep, graph, sizes = data.sweep, data.graph, data.graph_sizes
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9.6, 3.6))
    ax.scatter(graph, data.seen, c=np.where(data.learned, "C0", "C3"), alpha=0.7)
    ax.set_xticks(sizes)
    ax.set_xlabel("largest graph (vertex ids) = (N − 5) // 3")
    ax.set_ylabel(f"examples to training accuracy {TRAIN_ACCURACY} (red: censored)")
    ax.set_title(f"{sweep.n_layers} layers, L_max = {sweep.max_lookahead}, {sweep.steps} steps × "
                 f"{sweep.batch_size}, {len(sweep.seeds)} seeds")
    ax2.plot(sizes, data.fraction_learned(), "o-", label="fraction of seeds that learned")
    ax2.scatter(graph, data.worst, color="0.5", alpha=0.5, s=12, label="worst held-out accuracy over L")
    ax2.set_xticks(sizes)
    ax2.set_ylim(-0.05, 1.05)
    ax2.set_xlabel("largest graph (vertex ids)")
    ax2.legend(fontsize=7)
    return fig


def numbers(data: SizeSweepData) -> dict[str, float | str]:
    graph, sizes = data.graph, data.graph_sizes
    return {
        "graph sizes (vertex ids)": ", ".join(map(str, sizes)),
        f"fraction of seeds reaching training accuracy {TRAIN_ACCURACY}": ", ".join(
            f"{f:.2f}" for f in data.fraction_learned()),
        "median examples to learn (censored at the budget)": ", ".join(
            f"{np.median(data.seen[graph == g]):.0f}" for g in sizes),
        "median worst held-out accuracy": ", ".join(f"{np.median(data.worst[graph == g]):.2f}" for g in sizes),
    }


def size_sweep(scale: str) -> FigureResult:
    with single_thread():
        data = measure(SIZES[scale])
    return FigureResult(plot(data), numbers(data), measured=size_measurements(data.graph, data.seen))


register_figure(FigureSpec(
    name="graph_search_size_sweep",
    family="graph_search",
    claim=("As the input graph grows the transformer has greater difficulty learning to search: at a fixed "
           "budget and largest lookahead, runs need more examples to converge, and fewer seeds do ('Transformers "
           "Struggle to Learn to Search', Saparov et al., ICLR 2025)."),
    make=size_sweep,
    claims=SIZE_CLAIMS,
))
