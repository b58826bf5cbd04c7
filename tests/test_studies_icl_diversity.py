"""Task diversity (Raventós et al. 2023): the sweep's members, the transition read-out, and the small-M end.

The transition itself is measured, not asserted: the figure reports the first M of the grid at which the
model is closer to ridge than to dMMSE, or that none is.
"""

import math

from theorybench.studies import icl_diversity


def test_members_cover_the_grid_with_one_pool_per_M():
    sizes = icl_diversity.SIZES["quick"]
    members = icl_diversity.SWEEP.members("quick")
    assert [m.task.n_tasks for m in members] == [M for M in sizes["task_counts"] for _ in range(sizes["seeds"])]
    assert {m.task.pool_seed for m in members} == {0}  # nested pools: M tasks are the first M of a larger pool
    assert len({m.name for m in members}) == len(sizes["task_counts"])
    assert all(m.task.noise_std > 0 for m in members)  # dMMSE needs label noise


def test_transition_is_the_first_M_closer_to_ridge():
    new = {1: dict(diff_ridge=2.0, diff_dMMSE=0.1), 4: dict(diff_ridge=0.5, diff_dMMSE=0.4),
           16: dict(diff_ridge=0.1, diff_dMMSE=0.9), 64: dict(diff_ridge=0.05, diff_dMMSE=1.0),
           None: dict(diff_ridge=0.01)}
    assert icl_diversity.transition(new) == 16.0
    assert math.isinf(icl_diversity.transition({1: dict(diff_ridge=1.0, diff_dMMSE=0.1), None: dict(diff_ridge=0.0)}))


def test_single_task_model_predicts_like_dmmse_not_ridge(monkeypatch):
    """M = 1: dMMSE's posterior is the one pool task, ŷ = w₁ᵀx_q, which a model learns without any in-context
    skill (60 steps suffice at the tiny size). Ridge instead estimates w from the k ≤ N = 4 noisy examples:
    on pool prompts its predictions differ from w₁ᵀx_q by its estimation error, ≳ σ²/(k + 1) per
    coordinate (≈ 0.1 averaged over k = 1 … 4 at σ = 0.5); on new tasks by far more (E‖w − w₁‖²/d ≈ 2 at
    k = 0, shrinking as k grows). The model is required to be closer to dMMSE than to ridge on both — the
    claim's comparison, each a mean over 300 prompts × 4 prefixes. Measured at quick scale (1500 steps):
    0.001 vs 0.47 on pool prompts, 0.002 vs 3.1 on new tasks."""
    monkeypatch.setitem(icl_diversity.SIZES, "quick", icl_diversity.SIZES["tiny"])  # the figure's tiny runs
    curves = icl_diversity.diversity_curves("quick")
    for key in ("new", "pool"):
        m1 = curves[key][1]
        assert m1["diff_dMMSE"] < m1["diff_ridge"], (key, m1)


def test_tiny_figure_reports_its_curves():
    """The figure's numbers are read from diversity_curves at the same (tiny) scale: the transition is
    transition() of the new-task curves, and the errors and differences are those curves' values at the M
    each label names (rounded as printed). Ridge does not depend on the model, and every M is evaluated on
    the same new-task prompts, so ridge's new-task error is the same number at every M."""
    numbers = icl_diversity.task_diversity("tiny").numbers
    new = icl_diversity.diversity_curves("tiny")["new"]
    finite = [M for M in new if M is not None]
    lo, hi = min(finite), max(finite)
    M_star = icl_diversity.transition(new)
    assert numbers["transition M* (first M closer to ridge than to dMMSE, new tasks)"] == (
        M_star if math.isfinite(M_star) else "not reached in the grid")
    assert numbers[f"new tasks, M = {lo}: model error / d"] == round(new[lo]["model_mse"], 4)
    assert numbers[f"new tasks, M = {hi}: model error / d"] == round(new[hi]["model_mse"], 4)
    assert numbers["new tasks, M = ∞: model error / d"] == round(new[None]["model_mse"], 4)
    assert numbers[f"new tasks, M = {lo}: difference to dMMSE / to ridge"] == (
        f"{new[lo]['diff_dMMSE']:.3g} / {new[lo]['diff_ridge']:.3g}")
    ridge = {M: c["ridge_mse"] for M, c in new.items()}
    assert len(set(ridge.values())) == 1, ridge
