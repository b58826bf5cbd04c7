"""Trained linear self-attention vs one tuned GD step / the Zhang–Frei–Bartlett optimum, at the tiny size.

Claim ("Transformers learn in-context by gradient descent", von Oswald et al. 2023; "Trained
Transformers Learn Linear Models In-Context", Zhang, Frei, Bartlett 2024): one LSA layer trained on
stacked tokens converges to ŷ = x_qᵀ Γ⁻¹ (1/N) Σ y_i x_i, which for x ~ N(0, I) is one GD step with the
risk-minimizing η = N/(N + d + 1).

Thresholds (the claim's, not numerical tolerances). With ŷ_GD the optimum of the linear-moment class,
first-order optimality kills the cross term for a perturbation inside that class, so the excess risk is
E[(ŷ − ŷ_GD)²] = rel_diff² · E[ŷ_GD²]: rel_diff < 0.1 means within 1 % of E[ŷ_GD²] of the optimum.
For sensitivities ŵ = ŵ_GD + δ with ‖δ_⊥‖/‖ŵ_GD‖ = r, cos = 1 − r²/2 + O(r⁴): r = 0.1 gives 0.995, so
cos > 0.99 allows the same 10 % off-direction error (mean over prompts).
"""

import math

import pytest
import torch

from theory.icl import predictors as P
from theory.icl.predictors import zfb_gamma
from theorybench.experiment import derive_seed
from theorybench.studies import icl
from toy_models.tasks.icl_regression import ICLRegressionConfig

TINY = icl.SIZES["tiny"]["lsa"]


@pytest.fixture(scope="module")
def runs():
    return {}


def _run(runs, init):
    if init not in runs:
        runs[init] = icl.train_lsa(init=init, **TINY)
    return runs[init]


@pytest.mark.parametrize("init", ["zfb", "toy_zfb_shaped"])
def test_trained_lsa_matches_the_tuned_gd_step(runs, init):
    """Both inits are already a (tiny) GD step: the sensitivity cosine is 1 at step 0, so the cosine alone
    would pass untrained. What training must find is the scale: at step 0 ŷ = σ²·(…) ≈ 0, so the relative
    prediction difference is ≈ 1 (measured 0.99) and must fall below the claim's 0.1 (measured 0.038 /
    0.044 at step 300); the cosine, which dips on the way (0.72 / 0.84 at step 30), must be back above
    0.99 at the end (measured 0.999 / 0.997)."""
    trace, final = _run(runs, init)["trace"], _run(runs, init)["final"]
    assert trace["rel_diff"][0] > 0.9, trace["rel_diff"][0]  # the start is far from GD: 1 − O(σ²)
    assert final["rel_diff"] < 0.1, final["rel_diff"]  # excess risk < 1 % of E[ŷ_GD²] (module docstring)
    assert final["cosine"] > 0.99, final["cosine"]  # ≤ 10 % off-direction sensitivity (module docstring)


@pytest.mark.xfail(strict=True, reason=(
    "Measured (tiny: d=2, N=8, 300 steps; the same on native and ATEN_CPU_CAPABILITY=default dispatch): "
    "relative prediction difference 0.67, cosine 0.68 (from −0.11 at step 0), MSE 1.12 vs the GD step's "
    "0.53. The same init at quick (d=5, N=20, 600 steps) converges (0.021 / 0.9998): from a generic random "
    "start convergence to GD is not robust across sizes/seeds, unlike from ZFB's structured init."))
def test_generic_init_learns_the_direction(runs):
    """The toy's factored Q, K, V, O from a random start are NOT aligned at step 0 (unlike ZFB's init,
    which is already a scaled GD step): here alignment would have to be learned, not inherited."""
    trace = _run(runs, "toy_fixed_io")["trace"]
    assert trace["cosine"][0] < 0.9
    assert trace["cosine"][-1] > 0.99 and trace["rel_diff"][-1] < 0.1  # same thresholds as above


def test_zfb_blocks_reach_inverse_gamma(runs):
    """W^{PV}_{d+1,d+1} W^{KQ}_{11} → Γ⁻¹ (ZFB's limit). A relative error ε of this matrix moves ŷ_GD by
    about ε relative, so the same 10 % as the prediction threshold applies."""
    model = _run(runs, "zfb")["model"]
    d, N = TINY["d"], TINY["N"]
    g_inv = torch.linalg.inv(zfb_gamma(torch.eye(d, dtype=torch.float64), N))
    M = icl.zfb_effective_matrix(model)
    assert float((M - g_inv).norm() / g_inv.norm()) < 0.1


def test_frozen_parameters_are_not_trained(runs):
    """The ZFB parametrization keeps the identity read-in, W_K = W_V = I and the read-out fixed."""
    model = _run(runs, "zfb")["model"]
    D = TINY["d"] + 1
    assert torch.equal(model.embed.W_E, torch.eye(D)) and torch.equal(model.blocks[0].attn.W_K[0], torch.eye(D))
    assert torch.equal(model.unembed.W_U[:, 0], torch.eye(D)[-1])


@pytest.mark.xfail(strict=True, reason=(
    "Measured (tiny, 300 steps; the same on native and ATEN_CPU_CAPABILITY=default dispatch): relative "
    "prediction difference 0.84, cosine 0.48, MSE 1.51 vs the GD step's 0.53 (quick: 0.60 / 0.74, "
    "MSE 2.49 vs optimum 1.15). With the trainable read-in W_E and read-out W_U and the generic "
    "init='normal' (σ = 0.1; also σ = 0.3 and fan_in at quick) training settles at MSE ≈ 1.9–2.5, away "
    "from GD; fixing W_E = I and W_U = e_{d+1} (toy_fixed_io) or starting ZFB-shaped converges."))
def test_toy_with_generic_init_and_trainable_read_in_out_matches_gd(runs):
    final = _run(runs, "toy_normal")["final"]
    assert final["rel_diff"] < 0.1, final["rel_diff"]  # same claim threshold as above


def test_tiny_figure_reports_its_runs_and_the_exact_gd_references(runs, monkeypatch):
    """The figure at the tiny size (d = 2, N = 8, noiseless, x ~ N(0, I)):

    - references against their isotropic closed forms: η* = N/(N + d + 1) (= 8/11), and the one-step
      risk d(1 − 2η + η²(N + d + 1)/N) at η*, = d(d + 1)/(N + d + 1) (= 6/11), reported as both "exact"
      numbers (4 decimals);
    - the tuned GD step's held-out MSE is the mean of (ŷ_GD − y_q)² over the figure's held-out prompts
      (recomputed from their seed), within 4 standard errors of that exact risk (measured 0.5258 vs
      0.5455, 0.8 SE);
    - each init's numbers are those of the same training run made here (train_lsa is seeded: the same
      process computes the same bits), so no init's result is reported under another's name."""
    monkeypatch.setitem(icl.SIZES, "quick", icl.SIZES["tiny"])
    numbers = icl.lsa_trained_vs_gd("quick").numbers
    d, N = TINY["d"], TINY["N"]
    eta = N / (N + d + 1)
    exact = d * (1 - 2 * eta + eta**2 * (N + d + 1) / N)
    assert numbers["tuned GD step size"] == pytest.approx(eta, abs=5e-6)
    assert exact == pytest.approx(d * (d + 1) / (N + d + 1), rel=1e-12)
    assert numbers["tuned GD = ZFB optimum: exact expected MSE"] == pytest.approx(exact, abs=5e-5)
    assert numbers["exact GD error check (equals ZFB optimum for isotropic x)"] == pytest.approx(exact, abs=5e-5)

    task = ICLRegressionConfig(d=d, n_points=N, tokenization="stacked", dtype="float32").build()
    held_out = task.sample(TINY["eval_prompts"], torch.Generator().manual_seed(derive_seed(0, "icl_lsa_eval")))
    gd = P.gd(held_out["X"], held_out["y"], held_out["x_query"], eta, 1)
    err = (gd.y_hat.reshape(-1) - held_out["y_query"].double()) ** 2
    assert numbers["tuned GD: held-out MSE (same prompts)"] == pytest.approx(float(err.mean()), abs=5e-5)
    assert abs(float(err.mean()) - exact) < 4 * float(err.std() / math.sqrt(len(err)))

    for init, label in (("zfb", "ZFB init"), ("toy_fixed_io", "toy Q,K,V,O random, fixed read-in/out"),
                        ("toy_zfb_shaped", "toy all-trained, ZFB-shaped init"),
                        ("toy_normal", "toy all-trained, normal(0.1) init")):
        final = _run(runs, init)["final"]
        assert numbers[f"{label}: relative prediction difference" if init != "zfb" else
                       "ZFB init: relative prediction difference to tuned GD"] == round(final["rel_diff"], 4), init


def test_unknown_init_is_refused():
    from toy_models import ConfigError

    with pytest.raises(ConfigError, match="init"):
        icl.lsa_learner(2, 4, "xavier")
