"""The attention-SVM figures on rank vs d, prompt geometry and nonlinear heads: their claims, from their numbers.

Default suite: the "tiny" renders (a few seconds each). Slow: the claims that need the "quick" runs
(1000–2000 iterations), with the measured numbers beside each assertion.
"""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from test_studies import render_tiny

from theorybench.studies.attention_svm import nonlinear_head as nonlinear
from theorybench.studies.attention_svm import prompt_geometry as prompt
from theorybench.studies.attention_svm import rank_vs_d as rank


def _numbers(name, monkeypatch):
    _, result = render_tiny(name, monkeypatch)
    plt.close(result.figure)
    return result.numbers


def _fraction(text: str) -> tuple[int, int]:
    a, b = text.split("/")
    return int(a), int(b)


# ------------------------------------------------------------------------------------------- rank vs d
@pytest.fixture(scope="module")
def rank_tiny():
    mp = pytest.MonkeyPatch()
    try:
        numbers = _numbers("attention_svm_rank_vs_d", mp)
    finally:
        mp.undo()
    return numbers, rank.measure(rank.SIZES["tiny"])


def test_rank_bounds_hold_on_every_solved_instance(rank_tiny):
    numbers, table = rank_tiny
    solved, total = _fraction(numbers["Frobenius rank ≤ min(n, d)"])
    assert solved == total > 0
    # The exact law: rank = min(d, inputs with a support token), on every solved instance.
    assert _fraction(numbers["Frobenius rank = min(d, inputs with a support token)"]) == (total, total)
    # rank ≤ min(n, d) for both norms (W·P_Z meets the constraints with no larger norm).
    assert _fraction(numbers["nuclear rank ≤ min(n, d)"]) == (total, total)
    # Infeasible instances are counted, not dropped silently: tiny has n = 6, d = 2 (42 constraints, 4 unknowns).
    assert numbers["Att-SVM infeasible (reported, left out)"] >= 1
    assert numbers["instances (n, d, seed)"] == len(table)


def test_nuclear_rank_is_lower_at_the_papers_n(rank_tiny):
    """For n = 6 (the issue's n) every accurately solved nuclear solution has lower rank than the
    Frobenius one (measured 3 vs 4, 5, 6 at d = 4, 6, 8); at n = 2 they can tie (measured at d = 6)."""
    _, table = rank_tiny
    six = [row for (n, d, s), row in table.items() if n == 6 and all(v[0] == "optimal" for v in row.values())]
    assert six and all(row["nuc"][1] < row["fro"][1] for row in six)


def test_inaccurate_solver_inflates_the_nuclear_rank(rank_tiny):
    """CLARABEL's zero singular values come back at its tolerance level or below (measured median
    σ_(r+1)/σ_1 = 4.6e-11; bound 1e-8 = 10 × its 1e-9); SCS at 1e-5 leaves them at ~5e-7 in some
    directions and ~1e-14 in others, and the spectral gap between those two floors reads as rank."""
    numbers, table = rank_tiny
    solved = [row for row in table.values() if all(v[0] == "optimal" for v in row.values())]
    assert all(row["nuc"][2] < 1e-8 for row in solved if np.isfinite(row["nuc"][2]))
    assert numbers["nuc_scs_default: median σ_(r+1)/σ_1 beyond the accurate rank"] > 1e-8
    differ, total = _fraction(numbers["SCS-default nuclear rank ≠ accurate nuclear rank"])
    assert differ >= 1  # measured 4/7: the artifact is there
    assert _fraction(numbers["SCS-default nuclear rank > accurate nuclear rank"]) == (differ, total)  # always up


# ------------------------------------------------------------------------------------------- prompt geometry
@pytest.fixture(scope="module")
def prompt_tiny():
    mp = pytest.MonkeyPatch()
    try:
        numbers = _numbers("attention_svm_prompt_geometry", mp)
    finally:
        mp.undo()
    return numbers, prompt.measure(prompt.SIZES["tiny"])


def test_prompt_paths_end_on_locally_optimal_tokens_both_rays_reached(prompt_tiny):
    numbers, run = prompt_tiny
    assert numbers["locally optimal tokens (with their p-SVM rays)"] == "0, 2"  # token 1 loses to its support token 0
    assert run["opt"] == 2
    n = prompt.SIZES["tiny"].inits
    assert numbers["starts ending on a token that is not locally optimal"] == f"0/{n}"
    local, _ = _fraction(numbers["starts ending on the local token 0"])
    glob, _ = _fraction(numbers["starts ending on the global token 2"])
    assert local >= 1 and glob >= 1 and local + glob == n  # measured 2 and 4


def test_prompt_direction_error_decreases_along_every_path(prompt_tiny):
    _, run = prompt_tiny
    P, sel = run["paths"]["normalized"], run["selected"]["normalized"]
    for path, t in zip(P, sel):
        err = prompt.direction_error(path[None], run["rays"][t])[0]
        # From k = 10 to K = 150 the error falls (measured 3–300×) and by at least 3× on every path.
        assert err[-1] <= err[10] / 3


def test_prompt_norm_growth_normalized_vs_constant_step(prompt_tiny):
    numbers, run = prompt_tiny
    K = prompt.SIZES["tiny"].steps
    norms = np.linalg.norm(run["paths"]["normalized"], axis=-1)
    # Normalized steps have length η: ‖p(k)‖ ≤ ‖p(0)‖ + ηk by the triangle inequality (+ round-off 1e-12).
    assert np.all(norms <= prompt.R0 + prompt.LR * np.arange(K + 1) + 1e-12)
    # Constant steps shrink with the gradient: measured ‖p(K)‖ 3.1 against 16.3 normalized at K = 150.
    assert numbers[f"constant-step GD: mean ‖p(K)‖ at K = {K}"] < 0.5 * numbers[f"normalized GD: mean ‖p(K)‖ at K = {K}"]


@pytest.mark.slow
def test_prompt_claims_at_quick_scale():
    size = prompt.SIZES["quick"]
    run = prompt.measure(size)
    P, sel = run["paths"]["normalized"], run["selected"]["normalized"]
    for t, ray in run["rays"].items():
        mine = sel == t
        assert mine.any()
        # The threshold, corr ≥ 0.99 averaged (here over starts). Measured at K = 1000 before the
        # stable gradient: 0.9990 (local), 0.9957 (global), limited by round-off; it can only be higher now.
        assert np.mean(1 - prompt.direction_error(P[mine], ray)[:, -1]) >= 0.99
    K = size.steps
    # No float64 wall any more: with the stable gradient, normalized GD grows ‖p‖ by ≈ η per step for
    # the whole run (each step has length η and, once on the ray, points along p: ≥ 0.99 η measured
    # after the first 100 steps of turning).
    norms = np.linalg.norm(P, axis=-1)
    assert np.all(norms[:, K] - norms[:, 100] >= 0.99 * prompt.LR * (K - 100))
    # Constant steps: once a path runs along a ray, ‖p‖ ≈ ‖p^mm‖ ln k + c, i.e. at most ‖p^mm‖ ln 2 per
    # doubling of k (a logarithm, reached from below). With η = 0.1 most constant-step paths are still
    # turning at K = 1000 (1 − corr 0.1–0.4 at K/2, measured); the bound is checked on those already
    # aligned at K/2 (1 − corr ≤ 0.01): measured one start, increment 0.14 against 0.42.
    G, gsel = run["paths"]["gd"], run["selected"]["gd"]
    aligned = 0
    for t, ray in run["rays"].items():
        mine = gsel == t
        err = prompt.direction_error(G[mine], ray)[:, K // 2]
        g = np.linalg.norm(G[mine], axis=-1)
        ok = err <= 0.01
        aligned += int(ok.sum())
        assert np.all(g[ok, K] - g[ok, K // 2] <= np.linalg.norm(ray) * np.log(2))
    assert aligned >= 1


# ------------------------------------------------------------------------------------------- nonlinear head
@pytest.fixture(scope="module")
def nonlinear_tiny():
    mp = pytest.MonkeyPatch()
    try:
        numbers = _numbers("attention_svm_nonlinear_head", mp)
    finally:
        mp.undo()
    return numbers, nonlinear.measure(nonlinear.SIZES["tiny"])


def test_nonlinear_counts_every_attempt(nonlinear_tiny):
    """accepted + rejected (per reason) = attempts: nothing is dropped without being counted."""
    numbers, runs = nonlinear_tiny
    for d, r in runs.items():
        accepted, attempts = _fraction(numbers[f"d = {d}: accepted / attempts"])
        assert accepted == len(r["accepted"]) and attempts == r["attempts"]
        assert accepted + sum(r["rejected"].values()) == attempts


def test_accepted_instances_pass_the_papers_filter(nonlinear_tiny):
    """Re-train two accepted instances alone and check the filter on their final softmax: no probability
    in (1e-6, 1e-3] and some probability ≤ 1e-6; and the batch gave the same W (instances are independent)."""
    from toy_models.svm_training import train_relu_head

    _, runs = nonlinear_tiny
    for d, r in runs.items():
        for result in r["accepted"][:2]:
            inst = nonlinear.paper_instance(d, result["seed"])
            tr = train_relu_head(*(inst[k][None] for k in ("X", "Z", "Y", "V", "W0")), steps=nonlinear.STEPS,
                                 lr=nonlinear.LR, record_every=nonlinear.RECORD_EVERY)
            s = tr.probs[0]
            assert not np.any((s > nonlinear.DROP) & (s <= nonlinear.KEEP)) and np.any(s <= nonlinear.DROP)
            assert result["left_out"] <= nonlinear.DROP


def test_paper_instances_have_the_papers_normalizations():
    for d, seed in ((4, 1), (10, 7)):
        inst = nonlinear.paper_instance(d, seed)
        if inst is None:
            continue
        assert np.isclose(np.linalg.norm(inst["V"]), 1.0, atol=1e-14)
        assert np.allclose(np.linalg.norm(inst["X"], axis=-1), 1.0, atol=1e-14)
        assert np.allclose(np.linalg.norm(inst["Z"], axis=-1), 1.0, atol=1e-14)
        assert np.any(inst["Y"] < 0) and np.all(np.abs(inst["Y"]) == 1)
        assert np.all(np.abs(inst["W0"]) <= 1 / np.sqrt(d))
    # An all-positive draw is redrawn (the paper skips it): some seed in 1..40 gives None at n = 3 (p = 1/8).
    assert any(nonlinear.paper_instance(4, s) is None for s in range(1, 41))
