"""Degenerate inputs — ties for the optimal token, T = 1, zero vectors — get a clear error or an explicit
"infeasible" result, never a silent answer (issue: attention-as-SVM study, "Tests")."""

import numpy as np
import pytest
import torch

from theory.attention_svm import (
    InfeasibleSVMError, SVMInputError, correlation, is_feasible, optimal_tokens, solve_att_svm, solve_joint_relaxed,
    solve_p_svm, solve_v_svm, svm_equivalence, token_scores,
)
from toy_models.config import ConfigError
from toy_models.single_attention import ReLUHead, SingleAttention
from toy_models.svm_training import train_prompt

X3 = np.array([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]]])  # one input, three distinct tokens in the plane
Z1 = np.array([[1.0, 1.0]])


# ----------------------------------------------------------------------------------------- T = 1
def test_a_single_token_is_refused_everywhere():
    one = np.ones((2, 1, 3))
    for call in (lambda: solve_att_svm(one, np.ones((2, 3)), np.zeros(2, dtype=int)),
                 lambda: solve_p_svm(one, np.zeros(2, dtype=int)),
                 lambda: token_scores(one, np.ones(2), np.ones(3)),
                 lambda: solve_joint_relaxed(one, np.ones(2), np.zeros(2, dtype=int))):
        with pytest.raises(SVMInputError, match="T = 2"):
            call()


# ----------------------------------------------------------------------------------------- ties
def test_tied_top_scores_are_an_error():
    X = np.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
    with pytest.raises(SVMInputError, match="tied") as err:
        optimal_tokens(X, np.array([1.0]), np.array([1.0, 1.0]))  # γ = (1, 1, 0)
    assert err.value.field_name == "X"


def test_selected_token_duplicated_is_infeasible_for_either_copy():
    X = np.array([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])  # tokens 0 and 1 identical: no margin between them
    for alpha in (0, 1):
        for norm in ("fro", "nuc"):
            sol = solve_att_svm(X, Z1, np.array([alpha]), norm)
            assert sol.infeasible and sol.value is None and sol.duals is None
            with pytest.raises(InfeasibleSVMError, match="infeasible"):
                sol.W
    assert not is_feasible(X, Z1, np.array([0]))
    assert solve_p_svm(X, np.array([0])).infeasible


# ----------------------------------------------------------------------------------------- zero vectors
def test_zero_query_zero_tokens_and_zero_keys_are_infeasible():
    for norm in ("fro", "nuc"):
        assert solve_att_svm(X3, np.zeros((1, 2)), np.array([0]), norm).infeasible  # W·0 = 0: no margin
        assert solve_att_svm(np.zeros((1, 3, 2)), Z1, np.array([0]), norm).infeasible  # all tokens equal
    assert solve_p_svm(np.zeros((1, 3, 2)), np.array([0])).infeasible


def test_zero_head_makes_every_score_tie():
    with pytest.raises(SVMInputError, match="tied"):
        optimal_tokens(X3, np.array([1.0]), np.zeros(2))


def test_zero_selected_token_makes_the_v_svm_infeasible():
    v = solve_v_svm(np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([1.0, -1.0]))  # Y·vᵀ0 = 0 < 1
    assert v.infeasible and v.value is None
    X = np.array([[[0.0, 0.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])
    with pytest.raises(InfeasibleSVMError, match="v-SVM"):
        solve_joint_relaxed(X, np.array([1.0, -1.0]), np.array([0, 0]))


def test_correlation_of_a_zero_matrix_is_an_error():
    with pytest.raises(SVMInputError, match="zero matrix") as err:
        correlation(np.zeros((2, 2)), np.eye(2))
    assert err.value.field_name == "A"
    with pytest.raises(SVMInputError, match="shape"):
        correlation(np.eye(2), np.eye(3))


# ----------------------------------------------------------------------------------------- other bad inputs
@pytest.mark.parametrize("X, Z, alpha, field", [
    (np.full((1, 3, 2), np.nan), Z1, np.array([0]), "X"),
    (np.ones((0, 3, 2)), np.ones((0, 2)), np.zeros(0, dtype=int), "X"),
    (np.ones((3, 2)), Z1, np.array([0]), "X"),
    (X3, Z1, np.array([0.0]), "alpha"),
    (X3, Z1, np.array([-1]), "alpha"),
])
def test_malformed_inputs_name_the_field(X, Z, alpha, field):
    with pytest.raises(SVMInputError) as err:
        solve_att_svm(X, Z, alpha)
    assert err.value.field_name == field


def test_solver_and_tolerance_are_checked():
    with pytest.raises(SVMInputError, match="solver"):
        solve_att_svm(X3, Z1, np.array([0]), solver="ECOS")
    with pytest.raises(SVMInputError, match="tol"):
        solve_att_svm(X3, Z1, np.array([0]), tol=0.0)


def test_svm_equivalence_inputs():
    probs = np.array([[0.5, 0.5, 0.0]])
    with pytest.raises(SVMInputError, match="threshold"):
        svm_equivalence(X3, Z1, probs, np.eye(2), threshold=0.9)  # no token reaches the threshold
    with pytest.raises(SVMInputError, match="probs"):
        svm_equivalence(X3, Z1, -probs, np.eye(2))
    # Every token kept: nothing to separate, so W^dir = 0, R = 0 and the prediction is W^fin, which
    # reproduces the log-ratio — reported as such, not a division by zero.
    eq = svm_equivalence(X3[:, :2], Z1, np.array([[0.7, 0.3]]), np.eye(2))
    assert eq.R == 0.0 and not np.any(eq.W_dir) and np.isnan(eq.corr_dir) and np.isfinite(eq.corr_pred)
    a = np.einsum("ntd,de,ne->nt", X3[:, :2], eq.W_fin, Z1)
    assert abs(a[0, 0] - a[0, 1] - np.log(0.7 / 0.3)) <= 1e-8  # equality solved to the solver's 1e-9 (×10)
    # ... and with uniform probabilities W^fin = 0 too: the prediction has no direction, said by nan.
    flat = svm_equivalence(X3[:, :2], Z1, np.array([[0.5, 0.5]]), np.eye(2))
    assert np.linalg.norm(flat.W_pred) <= 1e-8 and np.isnan(flat.corr_pred)


def test_model_and_prompt_inputs():
    with pytest.raises(ConfigError, match="head"):
        SingleAttention(None, "W")
    with pytest.raises(ConfigError) as err:
        SingleAttention(torch.ones(3), "W", head=ReLUHead(3))
    assert err.value.field_name == "v"
    with pytest.raises(ConfigError) as err:
        SingleAttention(None, "KQ", m=2, head=ReLUHead(3))
    assert err.value.field_name == "m"
    with pytest.raises(ConfigError) as err:
        ReLUHead(3, width=0)
    assert err.value.field_name == "width"
    with pytest.raises(ConfigError) as err:
        train_prompt(X3, np.ones(1), np.ones(2), p0=np.ones(3))
    assert err.value.field_name == "p0"
