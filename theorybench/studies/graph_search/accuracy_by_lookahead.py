"""Figure ``graph_search_accuracy_by_lookahead``: held-out accuracy per test lookahead L of searchers
trained on naive, star and balanced data, with the chance floor beside every accuracy ("Transformers
Struggle to Learn to Search", Saparov et al., ICLR 2025, Fig. 3)."""

from __future__ import annotations

import numpy as np

from theorybench.claims import Claim, Criterion, Measurement, binomial_interval, paired_difference
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.threads import single_thread

from .common import PAPER, LookaheadScore, accuracy_by_lookahead
from .experiments import DISTRIBUTIONS, searcher_configs, trained
from .sizes import SIZES, GraphSearchSizes

LEARNED_ACCURACY = 0.9  # "accurate at every lookahead": held-out accuracy ≥ 0.9 at the worst test lookahead
TRANSFER_GAP = 0.1  # "does not generalize": ≥ 10 points below the balanced searcher at the largest lookahead

ACCURACY_CLAIMS = (
    Claim(key="balanced_learns_naive_does_not",
          statement=("Trained on balanced lookaheads the searcher is accurate at every test lookahead; trained "
                     "on naive graphs it falls behind at the largest one"),
          source=f"{PAPER}, Fig. 3 (sensitivity heatmap)",
          criteria=(Criterion(key="balanced_worst_accuracy",
                              quantity="balanced-trained held-out accuracy at its worst test lookahead (pooled over seeds)",
                              op=">=", threshold=LEARNED_ACCURACY),
                    Criterion(key="naive_gap_at_largest_lookahead",
                              quantity="balanced − naive accuracy at the largest test lookahead (paired over seeds)",
                              op=">=", threshold=TRANSFER_GAP))),
    Claim(key="star_does_not_transfer",
          statement="A searcher trained on star graphs does not transfer to balanced test graphs",
          source=f"{PAPER}, Fig. 3 (the star row)",
          criteria=(Criterion(key="star_gap_at_largest_lookahead",
                              quantity="balanced − star accuracy at the largest test lookahead (paired over seeds)",
                              op=">=", threshold=TRANSFER_GAP),)),
)


def measure(sizes: GraphSearchSizes) -> dict[str, list[list[LookaheadScore]]]:
    """Per training distribution, per seed of ``sizes``: the held-out scores at every test lookahead of
    the searcher trained with ``sizes`` (or reused from the run store)."""
    scores: dict[str, list[list[LookaheadScore]]] = {}
    for (dist, _), cfg in searcher_configs(sizes).items():  # seeds in order within each distribution
        scores.setdefault(dist, []).append(
            accuracy_by_lookahead(trained(cfg).load_model(), cfg.task, sizes.test_examples_per_lookahead))
    return scores


def _mean_accuracy(scores: dict[str, list[list[LookaheadScore]]]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(test lookaheads, chance per L, mean accuracy over seeds [distribution, L])."""
    Ls = [s.L for s in scores["balanced"][0]]
    chance = np.array([np.mean([seed[j].chance for seed in scores["balanced"]]) for j in range(len(Ls))])
    acc = np.array([[np.mean([seed[j].accuracy for seed in scores[d]]) for j in range(len(Ls))] for d in DISTRIBUTIONS])
    return Ls, chance, acc


def plot(scores: dict[str, list[list[LookaheadScore]]], sizes: GraphSearchSizes):
    # matplotlib here, not at the top: the command line imports every study and should start fast
    import matplotlib.pyplot as plt

    Ls, chance, _ = _mean_accuracy(scores)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, d in enumerate(DISTRIBUTIONS):
        pooled = [binomial_interval(sum(seed[j].correct for seed in scores[d]), sum(seed[j].n for seed in scores[d]))
                  for j in range(len(Ls))]
        ax.errorbar(np.array(Ls) + 0.06 * (i - 1), [m.value for m in pooled],
                    yerr=[[m.value - m.low for m in pooled], [m.high - m.value for m in pooled]],
                    fmt="o-", capsize=3, label=f"trained on {d}")
    ax.plot(Ls, chance, "k--", label="chance  E[1/outdeg]")
    ax.axhline(LEARNED_ACCURACY, color="0.7", linestyle=":", linewidth=1, label=f"criterion {LEARNED_ACCURACY}")
    ax.set_xticks(Ls)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("test lookahead L (held-out balanced examples, one useful step)")
    ax.set_ylabel("accuracy (95% Clopper–Pearson, pooled over seeds)")
    ax.set_title(f"N = {sizes.max_input_size}, {sizes.n_layers} layers, {len(sizes.seeds)} seed(s), "
                 f"{sizes.test_examples_per_lookahead} examples per L and seed")
    ax.legend(fontsize=7)
    return fig


def numbers(scores: dict[str, list[list[LookaheadScore]]]) -> dict[str, float | str]:
    Ls, chance, acc = _mean_accuracy(scores)
    return {f"{d}: accuracy (chance) by L, mean over seeds": ", ".join(
        f"L{L} {acc[i, j]:.2f} ({chance[j]:.2f})" for j, L in enumerate(Ls)) for i, d in enumerate(DISTRIBUTIONS)}


def accuracy_measurements(scores: dict[str, list[list[LookaheadScore]]]) -> dict[str, Measurement]:
    """The accuracy criteria from per-seed scores (distribution → [seed][L]; seeds paired by index):
    the balanced searcher's worst lookahead (counts pooled over seeds, Clopper–Pearson), and at the
    largest test lookahead the balanced − naive and balanced − star accuracy, a t interval over seeds
    (one seed: unbounded, so nothing is decided)."""
    bal = scores["balanced"]
    Ls = [s.L for s in bal[0]]
    pooled = [(sum(seed[j].correct for seed in bal), sum(seed[j].n for seed in bal)) for j in range(len(Ls))]
    k, n = min(pooled, key=lambda kn: kn[0] / kn[1])
    out = {"balanced_worst_accuracy": binomial_interval(k, n)}
    for other in ("naive", "star"):
        out[f"{other}_gap_at_largest_lookahead"] = paired_difference(
            [seed[-1].accuracy for seed in bal], [seed[-1].accuracy for seed in scores[other]])
    return out


def accuracy_heatmap(scale: str) -> FigureResult:
    sizes = SIZES[scale]
    with single_thread():
        scores = measure(sizes)
    return FigureResult(plot(scores, sizes), numbers(scores), measured=accuracy_measurements(scores))


register_figure(FigureSpec(
    name="graph_search_accuracy_by_lookahead",
    family="graph_search",
    claim=("Given the right training distribution the transformer learns to search: trained on balanced "
           "lookaheads it is accurate at every test lookahead, while naive-trained accuracy falls toward "
           "chance as the lookahead grows and star training does not transfer ('Transformers Struggle to "
           "Learn to Search', Saparov et al., ICLR 2025)."),
    make=accuracy_heatmap,
    claims=ACCURACY_CLAIMS,
))
