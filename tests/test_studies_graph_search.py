"""The graph-search figures' claims at tiny scale, and the experiments and sweep they read.

Tiny-scale runs are a few optimizer steps: they check that every figure is wired to its runs and that
its numbers mean what they say, not that the tiny models learned (that is
tests/test_graph_search_train.py).
"""

import pytest
from test_studies import render_tiny

from theorybench import registry
from theorybench.studies import graph_search as gs


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("THEORYBENCH_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_naive_graphs_rarely_need_long_searches_and_balanced_is_uniform(monkeypatch):
    _, result = render_tiny("graph_search_lookahead_coverage", monkeypatch)
    assert result.numbers["naive: fraction with L ≥ 5"] < 0.05
    assert result.numbers["balanced: χ² uniformity p-value"] > 1e-3  # fails by chance once in 1000


def test_the_searcher_is_the_papers_architecture():
    cfg = gs.searcher_experiment("full", "balanced").resolved()
    m = cfg.model
    # d_model = vocabulary 46 + 16 + N 128 = 190 at N = 128 (Saparov et al.'s code)
    assert (m.d_model, m.n_heads, m.head_dim, m.mlp_dim, m.n_layers) == (190, 1, 190, 190, 6)
    assert (m.embed, m.pos, m.output, m.attention_dir, m.norm_placement, m.act_fn) == (
        "onehot", "onehot", "onehot", "bidirectional", "pre", "relu")
    from toy_models import Transformer

    n_params = sum(p.numel() for p in Transformer(m).parameters() if p.requires_grad)
    # 6 · (4(d² + d) + 2(d² + d) + 4d) + final LayerNorm 2d = 1,311,380 at d = 190: "≈ 1.3 M"
    assert n_params == 6 * (6 * (190 ** 2 + 190) + 4 * 190) + 2 * 190
    o = cfg.optim
    assert (o.name, o.lr, o.betas[0], o.weight_decay) == ("sign_momentum", 1e-5, 0.965, 0.1)
    assert cfg.train.batch_size == 1024


def test_experiments_are_registered_for_every_distribution_and_both_optimizers():
    registry.load_studies()
    names = set(registry.experiments())
    assert {"graph_search_naive", "graph_search_star", "graph_search_balanced",
            "graph_search_balanced_sign_momentum", "graph_search_balanced_adamw"} <= names
    for scale in registry.SCALES:
        cfg = registry.get_experiment("graph_search_balanced_adamw").build(scale)
        assert cfg.optim.name == "adamw" and cfg.task.distribution == "balanced"


def test_bad_requests_name_the_field():
    with pytest.raises(KeyError, match="distribution='dfs' is not allowed"):
        gs.searcher_experiment("quick", "dfs")
    with pytest.raises(KeyError, match="optimizer='sgd' is not allowed"):
        gs.optimizer("sgd", 1e-3)


def test_the_size_sweep_holds_every_size_and_seed():
    members = gs.SIZE_SWEEP.members("quick")
    sweep = gs.SIZES["quick"]["sweep"]
    assert len(members) == len(sweep["sizes"]) * len(sweep["seeds"])
    assert {(c.task.max_input_size, c.seed) for c in members} == {(N, s) for N in sweep["sizes"] for s in sweep["seeds"]}
    assert all(c.train.steps == sweep["steps"] and c.model.n_layers == sweep["layers"] for c in members)


def test_wilson_bound_is_below_the_accuracy_and_tightens_with_n():
    small = gs.LookaheadScore(L=1, n=50, correct=45, chance=0.5)
    large = gs.LookaheadScore(L=1, n=5000, correct=4500, chance=0.5)
    assert small.wilson_lower() < large.wilson_lower() < 0.9
    # n = 5000, p = 0.9: 3 standard errors = 3·√(0.09/5000) = 0.0127; Wilson's centre shift is O(1/n)
    assert large.wilson_lower() == pytest.approx(0.9 - 0.0127, abs=1e-3)


@pytest.mark.parametrize("name", ["graph_search_accuracy_by_lookahead", "graph_search_reach_radius",
                                  "graph_search_size_sweep"])
def test_trained_figures_render_at_tiny_scale_from_their_runs(name, runs, monkeypatch):
    _, result = render_tiny(name, monkeypatch)
    assert result.numbers
    assert any(runs.iterdir()), "the figure trained (or reused) its runs through the run store"
