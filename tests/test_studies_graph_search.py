"""The graph-search figures' claims at tiny scale, and the experiments and sweep they read.

Tiny-scale runs are a few optimizer steps: they check that every figure is wired to its runs and that
its numbers mean what they say, not that the tiny models learned (that is
tests/test_graph_search_train.py).
"""

import numpy as np
import pandas as pd
import pytest
from test_studies import render_tiny

from theorybench import registry
from theorybench.claims import judge_all
from theorybench.ledger import _family_config_hashes
from theorybench.studies.graph_search import accuracy_by_lookahead as accuracy
from theorybench.studies.graph_search import common, experiments, lookahead_coverage, path_merging, reach_radius
from theorybench.studies.graph_search import size_sweep as gss
from theorybench.studies.graph_search.sizes import SIZES

GRAPH_FIGURES = ["graph_search_lookahead_coverage", "graph_search_accuracy_by_lookahead", "graph_search_reach_radius",
                 "graph_search_path_merging", "graph_search_size_sweep"]


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("THEORYBENCH_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_coverage_measurements_count_what_they_claim():
    """Hand-made samples with known counts: 480 of 10,000 naive examples at L ≥ 5 (rate 0.048, whose
    Clopper–Pearson 95% interval [0.0439, 0.0524] straddles 0.05: undecided), and a balanced sample whose
    rarest bucket (L = 2) holds 100 of 1,000 with L_max = 3: share 0.1 × 4 = 0.4 < 0.5, not met."""
    naive = np.zeros(10_000, dtype=int)
    naive[:480] = 7
    naive[480:2000] = 4  # L = 4 is not "long": must not be counted
    balanced = np.repeat([0, 1, 2, 3], [300, 300, 100, 300])
    m = lookahead_coverage.coverage_measurements(naive, balanced, L_max=3)
    assert m["naive_long_rate"].value == pytest.approx(0.048)
    assert m["naive_long_rate"].low == pytest.approx(0.04389, rel=1e-3)
    assert m["naive_long_rate"].high == pytest.approx(0.05237, rel=1e-3)
    assert m["balanced_rarest_share"].value == pytest.approx(0.4)
    verdicts = {v.claim.key: v.verdict for v in judge_all(lookahead_coverage.COVERAGE_CLAIMS, m)}
    assert verdicts == {"naive_rarely_long": "inconclusive", "balanced_covers_every_lookahead": "not reproduced"}


def test_the_searcher_is_the_papers_architecture():
    cfg = experiments.searcher_experiment("full", "balanced").resolved()
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
        experiments.searcher_experiment("quick", "dfs")
    with pytest.raises(KeyError, match="optimizer='sgd' is not allowed"):
        experiments.optimizer("sgd", 1e-3)


@pytest.mark.parametrize("scale", ["quick", "medium"])
def test_the_size_sweep_holds_every_size_and_seed_at_one_largest_lookahead(scale):
    members = experiments.SIZE_SWEEP.members(scale)
    sweep = SIZES[scale].sweep
    assert len(members) == len(sweep.max_input_sizes) * len(sweep.seeds)
    assert {(c.task.max_input_size, c.seed) for c in members} == {(N, s) for N in sweep.max_input_sizes for s in sweep.seeds}
    assert all(c.train.steps == sweep.steps and c.model.n_layers == sweep.n_layers for c in members)
    # the largest lookahead is the same at every size (it used to follow the size): size alone varies
    assert {c.task.build().max_lookahead for c in members} == {sweep.max_lookahead}
    assert len(sweep.max_input_sizes) >= 5
    if scale == "medium":
        assert len(sweep.seeds) >= 8 and len(SIZES[scale].seeds) >= 3 and SIZES[scale].patch_examples_per_lookahead >= 200


def test_accuracy_measurements_pool_the_worst_lookahead_and_pair_seeds():
    S = common.LookaheadScore
    scores = {"balanced": [[S(1, 100, 99, .5), S(2, 100, 95, .3)], [S(1, 100, 97, .5), S(2, 100, 93, .3)]],
              "naive": [[S(1, 100, 90, .5), S(2, 100, 40, .3)], [S(1, 100, 92, .5), S(2, 100, 50, .3)]],
              "star": [[S(1, 100, 60, .5), S(2, 100, 35, .3)], [S(1, 100, 62, .5), S(2, 100, 33, .3)]]}
    m = accuracy.accuracy_measurements(scores)
    assert m["balanced_worst_accuracy"].value == pytest.approx(188 / 200)  # L = 2 pooled: 95 + 93 of 200
    assert m["naive_gap_at_largest_lookahead"].value == pytest.approx(((.95 - .40) + (.93 - .50)) / 2)
    assert m["star_gap_at_largest_lookahead"].value == pytest.approx(((.95 - .35) + (.93 - .33)) / 2)
    one_seed = {d: v[:1] for d, v in scores.items()}  # one seed: the paired interval is unbounded
    assert np.isinf(accuracy.accuracy_measurements(one_seed)["naive_gap_at_largest_lookahead"].high)


def test_size_measurements_rank_size_against_examples_to_learn():
    sizes = np.repeat([5, 6, 7, 8, 9], 4)
    rising = sizes * 1000 + np.tile([0, 1, 2, 3], 5)
    m = gss.size_measurements(sizes, rising)["size_rank_correlation"]
    assert m.value > 0.9 and m.low > 0  # perfectly increasing up to within-size jitter: met
    falling = gss.size_measurements(sizes, -rising)["size_rank_correlation"]
    assert falling.high < 0
    censored = gss.size_measurements(sizes, np.full(20, 96_000))["size_rank_correlation"]
    assert not censored.measured


def test_examples_to_learn_reads_the_first_evaluation_at_the_criterion():
    metrics = pd.DataFrame({"step": [100, 200, 300], "eval_accuracy": [0.5, 0.996, 1.0]})
    assert gss.examples_to_learn(metrics, batch=32, budget_steps=300) == (200 * 32, True)
    assert gss.examples_to_learn(metrics.iloc[:1], batch=32, budget_steps=300) == (300 * 32, False)
    # A curriculum run has learned only at its last stage: 0.996 at stage 1 of 2 does not count.
    staged = metrics.assign(task_stage=[1.0, 1.0, 2.0])
    assert gss.examples_to_learn(staged, batch=32, budget_steps=300, last_stage=2) == (300 * 32, True)
    assert gss.examples_to_learn(staged, batch=32, budget_steps=300, last_stage=3) == (300 * 32, False)
    with pytest.raises(ValueError, match="last_stage"):
        gss.examples_to_learn(staged, batch=32, budget_steps=300)


def test_reach_measurements_prefer_doubling_only_for_a_doubling_radius():
    layers = np.arange(6)
    rng = np.random.default_rng(0)
    for law, sign in ((lambda l: 0.5 * 2.0 ** l, 1), (lambda l: 3.0 * l, -1)):
        r = law(layers)
        boot = r + rng.normal(0, 0.05, size=(50, 6))
        control = np.zeros(6)
        m = reach_radius.reach_measurements(r, control, boot, np.zeros((50, 6)), k_max=100.0)
        assert sign * m["reach_doubling_aic"].low > 0 and sign * m["reach_doubling_aic"].high > 0
        assert m["reach_gain_vs_random_init"].value == pytest.approx(r[-1] - r[0])
    short = reach_radius.reach_measurements(np.arange(4.0), np.zeros(4), np.zeros((5, 4)), np.zeros((5, 4)), k_max=100.0)
    assert not short["reach_doubling_aic"].measured  # 4 layers cannot decide the law


def test_patching_measurements_count_only_correct_answers_and_pair_the_control():
    correct = np.array([True] * 200 + [False] * 50)
    explained = np.array([True] * 150 + [False] * 50 + [True] * 50)
    control = np.array([True] * 40 + [False] * 160 + [True] * 50)
    m = path_merging.patching_measurements(explained, control, correct)
    assert m["merging_explained"].value == pytest.approx(150 / 200)
    assert m["merging_over_control"].value == pytest.approx((150 - 40) / 200)
    assert m["merging_over_control"].low > 0.1  # 0.55 ± ~0.07


def test_wilson_bound_is_below_the_accuracy_and_tightens_with_n():
    small = common.LookaheadScore(L=1, n=50, correct=45, chance=0.5)
    large = common.LookaheadScore(L=1, n=5000, correct=4500, chance=0.5)
    assert small.wilson_lower() < large.wilson_lower() < 0.9
    # n = 5000, p = 0.9: 3 standard errors = 3·√(0.09/5000) = 0.0127; Wilson's centre shift is O(1/n)
    assert large.wilson_lower() == pytest.approx(0.9 - 0.0127, abs=1e-3)


@pytest.mark.parametrize("name", GRAPH_FIGURES)
def test_every_figure_measures_each_declared_criterion_at_tiny_scale(name, runs, monkeypatch):
    spec, result = render_tiny(name, monkeypatch)
    assert spec.claims, "every graph-search figure declares its claims"
    verdicts = judge_all(spec.claims, result.measured, name)  # raises if a criterion was not measured
    assert len(verdicts) == len(spec.claims)
    if name != "graph_search_lookahead_coverage":
        assert any(runs.iterdir()), "the figure trained (or reused) its runs through the run store"


@pytest.mark.parametrize("scale", ["tiny", "quick", "medium", "full"])
def test_the_accuracy_figures_searchers_are_a_sweep_at_every_scale(scale):
    # Seeds beyond 0 are no registered experiment: without the sweep the ledger calls a result that read
    # them stale, and `make figures` trains them one after another instead of on the pool.
    wanted = {c.config_hash() for c in experiments.searcher_configs(SIZES[scale]).values()}
    assert len(wanted) == 3 * len(SIZES[scale].seeds)
    assert wanted <= _family_config_hashes(scale)["graph_search"]
