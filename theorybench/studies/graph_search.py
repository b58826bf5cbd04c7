"""Graph search: why the training distribution must be built for coverage.

Figure ``graph_search_lookahead_coverage``: the histogram of lookahead L (the BFS depth needed
before the next step is certain) on naive random DAGs and on the balanced distribution, and the
chance accuracy 1/outdeg(start) per L that every trained model's accuracy is printed against.
"""

from __future__ import annotations

import numpy as np
import torch

from theorybench.registry import FigureResult, FigureSpec, register_figure

# "tiny" is what the test suite renders (tests/test_studies.py); "quick" and "full" are the user scales.
SIZES = {"quick": dict(max_input_size=64, examples=1500), "full": dict(max_input_size=128, examples=20000),
         "tiny": dict(max_input_size=32, examples=200)}


def lookahead_coverage(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt
    from scipy import stats

    from toy_models.tasks.graph_search import GraphSearchConfig

    size = SIZES[scale]
    samples = {}
    for dist in ("naive", "balanced"):
        task = GraphSearchConfig(max_input_size=size["max_input_size"], distribution=dist).build()
        batch = task.sample(size["examples"], torch.Generator().manual_seed(0))
        samples[dist] = (batch["lookahead"].numpy(), batch["out_degree"].numpy())
    L_max = task.max_lookahead
    edges = np.arange(L_max + 2) - 0.5
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9.6, 3.8))
    for dist, (L, _) in samples.items():
        ax.hist(L, bins=edges, alpha=0.6, label=dist, density=True)
    ax.set_xlabel("lookahead L")
    ax.set_ylabel("fraction of examples")
    ax.set_title(f"Lookahead, N = {size['max_input_size']} ({size['examples']} examples each)")
    ax.legend()
    L, deg = samples["balanced"]
    chance = [np.mean(1.0 / deg[L == k]) if (L == k).any() else np.nan for k in range(L_max + 1)]
    ax2.plot(range(L_max + 1), chance, "o-")
    ax2.set_xlabel("lookahead L")
    ax2.set_ylabel("chance accuracy  E[1 / outdeg(start)]")
    ax2.set_ylim(0, 1.05)
    ax2.set_title("Balanced distribution: chance accuracy per L")
    naive_L = samples["naive"][0]
    counts = np.bincount(L, minlength=L_max + 1)
    return FigureResult(fig, {
        "naive: fraction with L ≥ 5": round(float(np.mean(naive_L >= 5)), 4),
        "naive: largest L seen": int(naive_L.max()),
        "balanced: χ² uniformity p-value": round(float(stats.chisquare(counts).pvalue), 4),
        "balanced: chance accuracy at L ≥ 1": round(float(np.mean(1.0 / deg[L >= 1])), 3),
    })


register_figure(FigureSpec(
    name="graph_search_lookahead_coverage",
    family="graph_search",
    claim=("Naive random DAGs almost never require a long search (lookahead decays roughly exponentially), "
           "so the balanced distribution samples every lookahead 0..L_max uniformly ('Transformers Struggle "
           "to Learn to Search', Saparov et al., ICLR 2025)."),
    make=lookahead_coverage,
))
