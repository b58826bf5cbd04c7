"""The KKT certificate certifies solver output and rejects perturbed points."""

import dataclasses

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from theory.attention_svm import certify, solve_att_svm
from toy_models.tasks.attention_svm_data import AttentionSVMData


@pytest.fixture(scope="module")
def solutions():
    inst = AttentionSVMData(seed=0).generate()
    return inst, {norm: solve_att_svm(inst.X, inst.Z, inst.opt, norm) for norm in ("fro", "nuc")}


@pytest.mark.parametrize("norm", ["fro", "nuc"])
def test_certificate_passes_on_solver_output(solutions, norm):
    cert = certify(solutions[1][norm])
    assert cert.passed, cert.summary()


def test_frobenius_solution_is_the_dual_combination(solutions):
    # W = Σ_i Σ_{t≠α_i} λ_it (x_iα − x_it) z_iᵀ, rebuilt here from X, Z and λ without the constraint
    # matrix the solver saw. 1e-8 absolute: the QP's dual residual is ≤ 1e-9 relative (SOLVER_TOL).
    inst, sols = solutions
    sol = sols["fro"]
    lam = sol.duals
    assert np.all(lam >= 0) and np.all(lam[~sol.constrained] == 0)
    diffs = inst.X[np.arange(6), inst.opt][:, None, :] - inst.X  # [n, T, d]
    W = np.einsum("nt,ntd,ne->de", lam, diffs, inst.Z)
    np.testing.assert_allclose(W, sol.W, atol=1e-8)


@pytest.mark.parametrize("norm", ["fro", "nuc"])
@pytest.mark.parametrize("scale", [0.9, 1.1])
def test_certificate_rejects_scaled_solutions(solutions, norm, scale):
    # 0.9·W violates the active margins by 0.1 (primal); 1.1·W leaves slack 0.1 on constraints with
    # λ > 0 (complementary slackness) and breaks stationarity/duality gap. All ≫ the 1e-6 tolerance.
    sol = solutions[1][norm]
    bad = dataclasses.replace(sol, value=scale * sol.value)
    assert not certify(bad).passed


@given(n=st.integers(1, 4), T=st.integers(2, 5), d=st.integers(3, 6), seed=st.integers(0, 10_000))
def test_property_certificates_pass(n, T, d, seed):
    # Stay off the feasibility boundary n(T−1) ≥ d² (as many constraints as unknowns): there ‖W^mm‖
    # blows up and CLARABEL reports the nuclear problem "optimal_inaccurate" even at 1e-8 (measured:
    # n=4, T=5, d=4, seed 8661) — reported by the status, but not a certifiable solution.
    assume(n * (T - 1) < d * d)
    inst = AttentionSVMData(n=n, T=T, d=d, seed=seed, geometry="random").generate()
    for norm in ("fro", "nuc"):
        sol = solve_att_svm(inst.X, inst.Z, inst.opt, norm)
        if sol.infeasible:
            continue  # reported as infeasible (tested in test_attention_svm_problems); nothing to certify
        cert = certify(sol)
        assert cert.passed, cert.summary()
