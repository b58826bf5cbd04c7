"""The function-class prompt tasks of Garg et al. ("What Can Transformers Learn In-Context?"): sparse
linear functions, decision trees and two-layer ReLU networks — their data law, layout, curriculum,
seeding and config errors."""

import math
import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from theorybench.experiment import ExperimentConfig, task_class
from toy_models.config import ConfigError
from toy_models.tasks.base import Task
from toy_models.tasks.decision_tree import DecisionTreeConfig, tree_leaf_index
from toy_models.tasks.icl_regression import CurriculumNotSteppedWarning
from toy_models.tasks.relu_network import ReluNetworkConfig
from toy_models.tasks.sparse_linear import SparseLinearConfig

F64 = torch.float64
CONFIGS = {"icl_sparse_linear": SparseLinearConfig, "icl_decision_tree": DecisionTreeConfig,
           "icl_relu_network": ReluNetworkConfig}


def _batch(cfg, B=4, seed=0):
    return cfg.build().sample(B, torch.Generator().manual_seed(seed))


def _z_bound(samples: torch.Tensor, expected: float, z: float = 5.0) -> None:
    """|mean − expected| ≤ z standard errors (estimated): fails with probability < 6e-7 at z = 5 if the
    law is right, while a wrong second moment (a factor ≥ 1.1 here) sits ≫ 5 SE away."""
    mean, se = float(samples.mean()), float(samples.std() / math.sqrt(samples.numel()))
    assert abs(mean - expected) <= z * se, (mean, expected, se)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_registered_found_by_name_and_round_trips_through_an_experiment(name):
    cls = CONFIGS[name]
    assert task_class(name) is cls and isinstance(cls().build(), Task)
    exp = ExperimentConfig(name="t", task=cls(d=4, n_points=6))
    assert ExperimentConfig.from_dict(exp.to_dict()) == exp
    assert exp.resolved().model.n_ctx == 13 and exp.resolved().model.d_input == 4


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_interleaved_layout_and_targets(name):
    task = CONFIGS[name](d=3, n_points=4).build()
    b = task.sample(5, torch.Generator().manual_seed(1))
    inp = b["inputs"]
    assert inp.shape == (5, 9, 3) and task.model_fields()["n_ctx"] == 9
    assert torch.equal(inp[:, 0:8:2], b["X"]) and torch.equal(inp[:, 8], b["x_query"])
    assert torch.equal(inp[:, 1:8:2, 0], b["y"]) and (inp[:, 1:8:2, 1:] == 0).all()
    assert torch.equal(b["targets"], torch.cat([b["y"], b["y_query"][:, None]], 1))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_same_seed_same_batch_other_seed_other_batch(name):
    cfg = CONFIGS[name](d=4, n_points=5)
    a, b, c = _batch(cfg, seed=3), _batch(cfg, seed=3), _batch(cfg, seed=4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["targets"], c["targets"])


# ------------------------------------------------------------------------------------------ sparse linear
@given(d=st.integers(1, 12), data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_sparse_weights_have_exactly_s_nonzeros_and_label_the_points(d, data, seed):
    s = data.draw(st.integers(1, d))
    b = _batch(SparseLinearConfig(d=d, n_points=3, sparsity=s, dtype="float64"), B=64, seed=seed)
    # The kept coordinates are N(0, 1) draws: 0 has probability 0, so the count is exactly s.
    assert ((b["w"] != 0).sum(1) == s).all()
    # y = wᵀx: a d-term float64 dot product of O(1) terms, rounding ≤ d·u·Σ|w_i x_i| ≪ 1e-12.
    assert torch.allclose(b["y"], torch.einsum("bnd,bd->bn", b["X"], b["w"]), rtol=0, atol=1e-12)


def test_sparse_support_is_uniform_over_coordinates():
    """Each coordinate is in the support with probability s/d: counts over B prompts are binomial, so
    every count lies within 5 standard deviations (a fixed support, e.g. the first s, is ~80 SD off)."""
    d, s, B = 8, 3, 4000
    b = _batch(SparseLinearConfig(d=d, n_points=1, sparsity=s), B=B, seed=0)
    counts = (b["w"] != 0).sum(0).double()
    p = s / d
    assert ((counts - B * p).abs() <= 5 * math.sqrt(B * p * (1 - p))).all(), counts


def test_sparse_label_second_moment_is_s():
    b = _batch(SparseLinearConfig(d=10, n_points=20, sparsity=3, dtype="float64"), B=4000, seed=2)
    _z_bound(b["targets"][:, 0] ** 2, 3.0)  # one point per prompt: independent samples of y²
    assert SparseLinearConfig(d=10, sparsity=3).build().label_second_moment() == 3.0


# ------------------------------------------------------------------------------------------ decision trees
def _walk(coords, leaves, x):
    """The tree's value at x by walking it node by node (heap order; x_c > 0 goes right)."""
    node, n_internal = 0, len(coords)
    while node < n_internal:
        node = 2 * node + (2 if x[coords[node]] > 0 else 1)
    return leaves[node - n_internal]


@given(depth=st.integers(1, 5), d=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_tree_labels_are_the_leaf_values_of_each_path(depth, d, seed):
    b = _batch(DecisionTreeConfig(d=d, n_points=6, depth=depth, dtype="float64"), B=6, seed=seed)
    pts = torch.cat([b["X"], b["x_query"][:, None]], 1)
    for i in range(6):
        coords, leaves = b["split_coords"][i].tolist(), b["leaf_values"][i]
        assert 0 <= min(coords) and max(coords) < d
        for p in range(7):
            assert b["targets"][i, p] == _walk(coords, leaves, pts[i, p].tolist())  # a copy: exact


def test_tree_goes_right_on_a_positive_coordinate():
    coords = torch.tensor([[1, 0, 0]])  # depth 2: root tests x_1, both children test x_0
    pts = torch.tensor([[[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [0.0, 0.0]]], dtype=F64)
    assert tree_leaf_index(coords, pts).tolist() == [[0, 1, 2, 3, 0]]  # 0 is not > 0: left


def test_tree_labels_have_unit_second_moment_and_reach_every_leaf():
    b = _batch(DecisionTreeConfig(d=6, n_points=30, depth=3, dtype="float64"), B=4000, seed=5)
    _z_bound(b["targets"][:, 0] ** 2, 1.0)
    pts = torch.cat([b["X"], b["x_query"][:, None]], 1)
    assert set(tree_leaf_index(b["split_coords"], pts).unique().tolist()) == set(range(8))


# ------------------------------------------------------------------------------------------ ReLU networks
def test_relu_network_labels_match_the_formula():
    b = _batch(ReluNetworkConfig(d=3, n_points=4, hidden=7, dtype="float64"), B=3, seed=0)
    for i in range(3):
        for p in range(4):
            x = b["X"][i, p]
            units = [float(b["W2"][i, j]) * max(0.0, float(x @ b["W1"][i, :, j])) for j in range(7)]
            assert abs(float(b["y"][i, p]) - math.sqrt(2 / 7) * sum(units)) <= 1e-12  # 7 O(1) terms in float64


@pytest.mark.parametrize("hidden", [1, 4, 100])
def test_relu_network_scaling_puts_labels_on_the_linear_scale(hidden):
    """Garg et al.'s √(2/h) scaling gives E[y²] = E‖x‖² = d for every width (module docstring)."""
    d = 5
    b = _batch(ReluNetworkConfig(d=d, n_points=1, hidden=hidden, dtype="float64"), B=20000, seed=hidden)
    _z_bound(b["targets"].reshape(-1) ** 2, float(d))
    assert ReluNetworkConfig(d=d, hidden=hidden).build().label_second_moment() == d


# ------------------------------------------------------------------------------------------ curriculum
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_curriculum_grows_dimensions_and_points_then_evaluation_is_full_size(name):
    cfg = CONFIGS[name](d=6, n_points=9, curriculum_every=10, curriculum_d_start=2, curriculum_d_inc=1,
                        curriculum_n_start=3, curriculum_n_inc=2)
    task = cfg.build()
    gen = torch.Generator().manual_seed(0)
    for step, (d_act, N) in {1: (2, 3), 10: (2, 3), 11: (3, 5), 31: (5, 9), 1000: (6, 9)}.items():
        task.set_step(step)
        b = task.sample(8, gen)
        assert b["X"].shape == (8, N, 6) and b["inputs"].shape == (8, 2 * N + 1, 6)
        assert (b["X"][..., d_act:] == 0).all() and (b["X"][..., :d_act] != 0).all()
        if name == "icl_sparse_linear":
            assert (b["w"][:, d_act:] == 0).all()  # the support lies in the active coordinates
        if name == "icl_decision_tree":
            assert (b["split_coords"] < d_act).all()
    task.set_step(None)
    assert task.sample(2, gen)["X"].shape == (2, 9, 6)


def test_curriculum_never_stepped_warns():
    task = SparseLinearConfig(d=4, n_points=6, curriculum_every=5, curriculum_n_start=2).build()
    gen = torch.Generator().manual_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(70):
            task.sample(1, gen)
    assert any(issubclass(w.category, CurriculumNotSteppedWarning) for w in caught)


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("cls,kw,field", [
    (SparseLinearConfig, dict(d=4, sparsity=5), "sparsity"),
    (SparseLinearConfig, dict(sparsity=0), "sparsity"),
    (DecisionTreeConfig, dict(depth=0), "depth"),
    (DecisionTreeConfig, dict(depth=2.0), "depth"),
    (ReluNetworkConfig, dict(hidden=-1), "hidden"),
    (ReluNetworkConfig, dict(d=0), "d"),
    (DecisionTreeConfig, dict(dtype="float16"), "dtype"),
    (SparseLinearConfig, dict(curriculum_d_start=2), "curriculum_every"),
    (ReluNetworkConfig, dict(curriculum_every=5), "curriculum_every"),
    (DecisionTreeConfig, dict(d=3, curriculum_every=5, curriculum_d_start=4), "curriculum_d_start"),
])
def test_bad_config_names_the_field(cls, kw, field):
    with pytest.raises(ConfigError) as err:
        cls(**kw)
    assert err.value.field_name == field


def test_bad_step_and_batch_size_are_refused():
    task = DecisionTreeConfig().build()
    with pytest.raises(ConfigError):
        task.set_step(0)
    with pytest.raises(ConfigError):
        task.sample(0, torch.Generator())
