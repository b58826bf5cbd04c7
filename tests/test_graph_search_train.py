"""Trained searchers beat chance on held-out graphs, by margins set from binomial intervals.

Margin: at each test lookahead L, the 3σ Wilson lower bound of the held-out accuracy (n examples,
each correct or not) must exceed the chance accuracy E[1/outdeg(start)] of the same examples (exact
for those examples, no sampling error of its own). A model at chance fails this with probability
≈ 0.13% per L.
"""

import dataclasses

import pytest

from theorybench.runs import get_or_train
from theorybench.studies.graph_search.common import accuracy_by_lookahead
from theorybench.studies.graph_search.experiments import searcher_experiment, walkthrough_experiment
from theorybench.studies.graph_search.sizes import SIZES


def _assert_beats_chance(scores):
    for s in scores:
        assert s.wilson_lower(3.0) > s.chance, (
            f"L={s.L}: accuracy {s.accuracy:.3f} on {s.n} (3σ lower bound {s.wilson_lower(3.0):.3f}) "
            f"does not beat chance {s.chance:.3f}")


def test_small_balanced_searcher_beats_chance_at_lookahead_one(tmp_path):
    """The notebook's searcher (N = 20, 3 layers, batch 32) after 300 steps: fast, so only L = 1 is claimed.

    Measured: L = 1 accuracy 0.72 against chance 0.40 (n = 300, 3σ lower bound ≈ 0.64). Two-hop
    decisions come much later and not for every seed (L = 2 after 4000 steps: 1 seed of 4 at N = 20),
    so L = 2 is not asserted here; the slow test below checks every L of the quick-scale searcher.
    """
    cfg = walkthrough_experiment("quick")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=300))
    run = get_or_train(cfg, tmp_path, progress=False)
    scores = accuracy_by_lookahead(run.load_model(), cfg.task, SIZES["quick"].test_examples_per_lookahead, lookaheads=[1])
    _assert_beats_chance(scores)


@pytest.mark.slow
def test_quick_balanced_searcher_beats_chance_at_every_trained_lookahead(tmp_path):
    cfg = searcher_experiment("quick", "balanced")
    run = get_or_train(cfg, tmp_path, progress=False)
    scores = accuracy_by_lookahead(run.load_model(), cfg.task, SIZES["quick"].test_examples_per_lookahead)
    assert [s.L for s in scores] == list(range(1, cfg.task.build().max_lookahead + 1))
    _assert_beats_chance(scores)
