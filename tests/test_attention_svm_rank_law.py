"""The rank law of the Frobenius Att-SVM, ranks read above the solver's accuracy, bounded certificates.

"Transformers as Support Vector Machines" (Tarzanagh, Li, Thrampoulidis, Oymak, 2023): by KKT,
W^mm = Σ_i (Σ_t λ_it (x_iα − x_it)) z_iᵀ, and an input without a support token has λ_i· = 0. So
rank(W^mm) = min(d, number of inputs with a support token) on generic data, not min(n, d).
"""

import dataclasses

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from theory.attention_svm import (
    SVMInputError, certify, compare, numerical_rank, solve_att_svm, support_inputs,
)
from theory.attention_svm.kkt import MAX_TOL
from toy_models.tasks.attention_svm_data import AttentionSVMData


def _with_slack_copies(X, Z, alpha, copies, scale):
    """Append ``copies`` inputs that repeat input 0 with every token scaled by ``scale`` > 1.

    The copy's margins are ``scale`` × input 0's, all ≥ scale > 1 at any feasible W: it never has a
    support token, and the solution is the one without it."""
    Xc = np.concatenate([X, np.repeat(scale * X[:1], copies, axis=0)])
    Zc = np.concatenate([Z, np.repeat(Z[:1], copies, axis=0)])
    ac = np.concatenate([alpha, np.repeat(alpha[:1], copies)])
    return Xc, Zc, ac


# ------------------------------------------------------------------------------------------ rank law
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 5), T=st.integers(2, 5), d=st.integers(2, 7), seed=st.integers(0, 10_000),
       copies=st.integers(0, 3))
def test_frobenius_rank_is_min_d_and_inputs_with_a_support_token(n, T, d, seed, copies):
    inst = AttentionSVMData(n=n, T=T, d=d, seed=seed, geometry="random").generate()
    X, Z, alpha = _with_slack_copies(inst.X, inst.Z, inst.opt, copies, scale=2.0)
    assume(X.shape[0] * (T - 1) < d * d)  # off the feasibility boundary, where ‖W^mm‖ blows up
    sol = solve_att_svm(X, Z, alpha, "fro")
    if not sol.optimal:
        assume(False)  # infeasible: no solution to read a rank from (reported by its status)
    active = support_inputs(sol)
    assert not active[n:].any(), "a copy with margins ≥ 2 cannot be a support input"
    assert sol.rank == min(d, int(active.sum()))


def test_law_differs_from_min_n_d_when_inputs_lack_support_tokens():
    """Three random inputs and three slack copies in d = 8: min(n, d) = 6, the law says 3."""
    inst = AttentionSVMData(n=3, T=4, d=8, seed=1, geometry="random").generate()
    X, Z, alpha = _with_slack_copies(inst.X, inst.Z, inst.opt, copies=3, scale=1.5)
    sol = solve_att_svm(X, Z, alpha, "fro")
    active = support_inputs(sol)
    assert active.tolist() == [True] * 3 + [False] * 3
    assert sol.rank == 3 < min(X.shape[0], X.shape[2])


# ------------------------------------------------------------------------------------ numerical_rank
def _matrix(s, seed=0):
    rng = np.random.default_rng(seed)
    k = len(s)
    U, _ = np.linalg.qr(rng.standard_normal((k, k)))
    V, _ = np.linalg.qr(rng.standard_normal((k, k)))
    return U @ np.diag(s) @ V.T


@pytest.mark.parametrize("s, accuracy, rank", [
    ((1, 0.233, 0.120, 1e-8), 1e-9, 3),   # the spectrum: 1e-8 is ten floors up, the gap before it 1e7
    ((1, 0.233, 0.120, 1e-8), 1e-8, 3),   # at the floor: zero
    ((1, 0.233, 0.120, 3e-9, 1e-12), 1e-9, 3),
    ((1, 0.5, 2e-10, 1e-10, 0), 1e-9, 2),  # two noise values below the floor
    ((1, 0.1, 0.01, 1e-3), 1e-9, 4),       # full rank: the largest gap is to the floor
    ((1, 1e-4, 5e-5, 1e-12), 1e-9, 3),    # a small but real singular value stays
])
def test_numerical_rank_cuts_above_the_stated_accuracy(s, accuracy, rank):
    assert numerical_rank(_matrix(s), accuracy=accuracy) == rank


@settings(max_examples=30, deadline=None)
@given(r=st.integers(0, 6), extra=st.integers(0, 4), seed=st.integers(0, 10_000),
       log_acc=st.floats(-12, -6))
def test_property_noise_below_the_accuracy_never_counts(r, extra, seed, log_acc):
    """σ_1..σ_r ∈ [0.05, 1] (internal gaps ≤ 20) and `extra` values at most the accuracy: rank r."""
    rng = np.random.default_rng(seed)
    accuracy = 10.0 ** log_acc
    signal = np.sort(rng.uniform(0.05, 1.0, r))[::-1]
    if r:
        signal[0] = 1.0
    noise = rng.uniform(0, accuracy, extra) * (signal[0] if r else 0.0)
    assume(r + extra > 0)
    assert numerical_rank(_matrix(np.concatenate([signal, noise]), seed), accuracy=accuracy) == r


def test_numerical_rank_rejects_a_bad_accuracy():
    for bad in (0.0, 1.0, -1e-9, "1e-9"):
        with pytest.raises(SVMInputError, match="accuracy"):
            numerical_rank(np.eye(2), accuracy=bad)


# ------------------------------------------------------------------------- bounded certificates
@pytest.fixture(scope="module")
def nuclear():
    inst = AttentionSVMData(n=6, T=8, d=10, seed=0).generate()
    return solve_att_svm(inst.X, inst.Z, inst.opt, "nuc")


@pytest.fixture(scope="module")
def frobenius():
    inst = AttentionSVMData(n=6, T=8, d=10, seed=0).generate()
    return solve_att_svm(inst.X, inst.Z, inst.opt, "fro")


def _add_singular_value(sol, level):
    """The solution with one more singular value, level·σ_1, outside its row and column spaces."""
    W = sol.W
    U, s, Vt = np.linalg.svd(W)
    return dataclasses.replace(sol, value=W + level * s[0] * np.outer(U[:, -1], Vt[-1]))


def test_solver_noise_singular_value_keeps_rank_and_tolerance(nuclear):
    noisy = _add_singular_value(nuclear, 10 * nuclear.accuracy)
    assert noisy.rank == nuclear.rank
    cert = certify(noisy)
    assert cert.stationarity_tol <= MAX_TOL and cert.rank == nuclear.rank


def test_a_spurious_singular_value_is_rejected_not_absorbed(nuclear):
    """σ = 1e-4·σ_1 added: read as part of the rank (the gap to the floor is 1e5), the old tolerance
    √(2σ_1·tol·(1 + ‖W‖_⋆))/σ_r became O(1) and passed anything; capped at MAX_TOL it fails."""
    spurious = _add_singular_value(nuclear, 1e-4)
    cert = certify(spurious)
    assert cert.rank == nuclear.rank + 1
    assert cert.stationarity_tol <= MAX_TOL
    assert not cert.passed


@pytest.mark.parametrize("which", ["fro", "nuc"])
@pytest.mark.parametrize("size", [1e-2, 3e-3])
def test_a_perturbed_solution_is_rejected(frobenius, nuclear, which, size):
    """A relative perturbation of 3e-3 or 1e-2 (above MAX_TOL = 1e-3) breaks primal feasibility,
    stationarity or the gap beyond any capped tolerance: the certificate and the agreement fail."""
    sol = frobenius if which == "fro" else nuclear
    rng = np.random.default_rng(7)
    E = rng.standard_normal(sol.W.shape)
    moved = dataclasses.replace(sol, value=sol.W + size * np.linalg.norm(sol.W) * E / np.linalg.norm(E))
    assert certify(sol).passed
    assert not certify(moved).passed
    assert not compare(sol, moved).passed


def test_every_tolerance_is_bounded(frobenius, nuclear):
    for sol in (frobenius, nuclear):
        cert = certify(sol)
        assert max(cert.tol, cert.stationarity_tol) <= MAX_TOL
        agreement = compare(sol, sol)
        assert max(agreement.difference_tol, agreement.objective_tol) <= MAX_TOL + 1e-12
    with pytest.raises(SVMInputError, match="tol"):
        certify(nuclear, tol=0.5)
