"""The attention-SVM figures' numbers at the tiny size (n=6, T=8, d=10, 300 steps, 2 seeds).

The training tests (test_attention_svm_training.py) check the ≥ 0.99 correlations at 1000 steps on
their own runs; these check that the figures report the claims they plot, from the figures' numbers.
Both figures share one cached set of runs, so the second render costs only the plotting.
"""

import matplotlib.pyplot as plt
import pytest
from test_studies import render_tiny

from theorybench import registry
from theorybench.claims import judge_all
from theorybench.studies.attention_svm.sizes import SEED_RUN_SIZES as SIZES

SVM_FIGURES = sorted(name for name in registry.figures() if name.startswith("attention_svm_"))

# "Clearly less" as the issue and the training tests define it: the other norm's solution correlates
# at least 0.1 lower. Measured at tiny: W 0.981 (fro) vs 0.769 (nuc); (K, Q) 0.987 (nuc) vs 0.837 (fro).
CLEARLY_LESS = 0.1


@pytest.fixture
def convergence(monkeypatch):
    _, result = render_tiny("attention_svm_directional_convergence", monkeypatch)
    plt.close(result.figure)
    return result.numbers


@pytest.fixture
def spectrum(monkeypatch):
    _, result = render_tiny("attention_svm_rank_and_saturation", monkeypatch)
    plt.close(result.figure)
    return result.numbers


@pytest.mark.parametrize("par, own, other", [("W", "fro", "nuc"), ("KQ", "nuc", "fro")])
def test_each_parameterization_points_toward_its_own_svm(convergence, par, own, other):
    mean_own = convergence[f"{par}: final corr with {own} SVM (mean)"]
    mean_other = convergence[f"{par}: final corr with {other} SVM (mean)"]
    assert mean_own >= mean_other + CLEARLY_LESS
    # Not just on average: the worst seed's own correlation beats the other solution's mean
    # (measured min 0.978 for W, 0.975 for (K, Q)).
    assert convergence[f"{par}: final corr with {own} SVM (min over seeds)"] > mean_other


def test_the_svm_solutions_plotted_are_kkt_certified(convergence):
    seeds = SIZES["tiny"].seeds
    assert convergence["SVM solutions passing the KKT certificate"] == f"{2 * seeds}/{2 * seeds}"


def test_frobenius_rank_law_and_nuclear_lower(spectrum):
    """rank(W^mm) = min(d, inputs with a support token) from its KKT form Σ_i (…) z_iᵀ on generic data
    (min(n, d) is only the bound); the nuclear norm trades that for low rank (measured: 6 vs 4 and 3 on
    seeds 0, 1)."""
    tiny = SIZES["tiny"]
    assert spectrum["seeds with rank(W^fro) = min(d, inputs with a support token)"] == f"{tiny.seeds}/{tiny.seeds}"
    assert spectrum["rank of the nuc SVM solution (mean over seeds)"] < spectrum["rank of the fro SVM solution (mean over seeds)"]
    # Every gradient step adds Σ_i (…) z_iᵀ, so W(k) has rank ≤ n too, and rank n on generic data: the
    # Frobenius solution's rank, on every seed.
    assert spectrum["W: seeds whose final rank equals its SVM's"] == f"{tiny.seeds}/{tiny.seeds}"


@pytest.mark.parametrize("par", ["W", "KQ"])
def test_softmax_saturates_onto_the_selected_token(spectrum, par):
    # ‖W(k)‖ grows like η·k (normalized steps), so the softmax concentrates on the selected token;
    # 0.99 is the figure's saturation threshold. Measured at k = 300: 0.9988 (W), 1.0 (K, Q).
    steps = SIZES["tiny"].steps
    assert spectrum[f"{par}: softmax mass on selected token at k = {steps} (mean)"] >= 0.99
    assert spectrum[f"{par}: first k with mass ≥ 0.99 (median over seeds)"] <= steps


def test_every_attention_svm_figure_declares_claims():
    assert len(SVM_FIGURES) == 5
    for name in SVM_FIGURES:
        assert registry.get_figure(name).claims, name


@pytest.mark.parametrize("name", SVM_FIGURES)
def test_tiny_render_measures_every_declared_criterion(name, monkeypatch):
    """Every criterion gets a Measurement at the tiny scale (not_measured where tiny cannot decide it),
    and the ledger can judge each claim from them."""
    spec, result = render_tiny(name, monkeypatch)
    plt.close(result.figure)
    keys = {c.key for claim in spec.claims for c in claim.criteria}
    assert keys <= set(result.measured), keys - set(result.measured)
    verdicts = judge_all(spec.claims, result.measured, name)
    assert len(verdicts) == len(spec.claims)
