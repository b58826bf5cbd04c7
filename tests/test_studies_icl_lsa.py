"""Trained linear self-attention against k-step GD, layer by layer (von Oswald et al. 2023; Zhang, Frei,
Bartlett 2024), at the tiny size.

Thresholds are the claims' (``theorybench.studies.icl.lsa_trained_vs_gd``): with ŷ_GD the optimum of the linear-moment
class, a perturbation inside the class has excess risk E[(ŷ − ŷ_GD)²] = rel_diff² · E[ŷ_GD²], so
rel_diff < 0.1 is within 1 % of E[ŷ_GD²] of the optimum; for sensitivities ŵ = ŵ_GD + δ with
‖δ_⊥‖/‖ŵ_GD‖ = r, cos = 1 − r²/2 + O(r⁴): cos > 0.99 allows the same 10 % off-direction error.

Replaces the tests that trained from ZFB-shaped starts and asserted cos > 0.99, which already holds at
step 0 there: here the start is random (cos ≈ 0, relative difference ≈ 1) and the agreement must move.
"""

import pytest
import torch

from theory.icl import predictors as P
from theory.icl.predictors import zfb_gamma
from theorybench.claims import judge_all
from theorybench.experiment import OptimConfig, derive_seed
from theorybench.optim import build_optimizer, build_scheduler
from theorybench.runs import get_or_train
from theorybench.studies.icl import lsa_trained_vs_gd as icl_lsa
from theorybench.train import _Trainer, snapshot_steps
from toy_models import ConfigError
from toy_models.constructions.lsa import gd_lsa
from toy_models.tasks.icl_regression import ICLRegressionConfig

TINY = icl_lsa.SIZES["tiny"]


@pytest.fixture(scope="module")
def runs():
    return {}


def _run(runs, init, n_layers=1, seed=0):
    key = (init, n_layers, seed)
    if key not in runs:
        runs[key] = icl_lsa.train_at(TINY, init, n_layers=n_layers, seed=seed)
    return runs[key]


def _construction_batch(d=3, N=10, B=64):
    task = ICLRegressionConfig(d=d, n_points=N, tokenization="stacked", dtype="float64").build()
    return task.sample(B, torch.Generator().manual_seed(0))


def test_layer_readouts_of_the_gd_construction_are_the_gd_steps():
    """von Oswald et al.'s 3-layer construction holds −ŷ_l in the query's y-slot after layer l, read out
    through W_U = −e_y: every layer's read-out must equal l-step GD and its sensitivity ŵ_l. A read-out off
    by one layer, with the wrong sign, or through the wrong slot fails. Float64 recursion of ≤ 3 layers of
    sums over N·d = 30 terms: rounding ~1e-14 relative, asserted 1e-9."""
    b = _construction_batch()
    eta = 0.5
    preds, grads = icl_lsa.layer_readouts(gd_lsa(3, eta, steps=3, n_ctx=11), b)
    for layer, (y_l, g_l) in enumerate(zip(preds, grads), start=1):
        ref = P.gd(b["X"], b["y"], b["x_query"], eta, layer)
        assert float((y_l - ref.y_hat).abs().max()) <= 1e-9 * float(ref.y_hat.abs().max())
        assert float((g_l - ref.w_hat).abs().max()) <= 1e-9 * float(ref.w_hat.abs().max())


def test_compare_layers_scores_the_construction_as_gd_and_a_wrong_step_as_not():
    b = _construction_batch()
    model = gd_lsa(3, 0.5, steps=2, n_ctx=11)

    def refs(eta):
        gd = [P.gd(b["X"], b["y"], b["x_query"], eta, k) for k in range(3)]
        return {"y": torch.stack([g.y_hat for g in gd]), "w": {k: gd[k].w_hat for k in (1, 2)},
                "mse": torch.zeros(3)}

    same = icl_lsa.compare_layers(model, b, refs(0.5))
    assert max(same["rel_diff_layers"]) < 1e-9 and min(same["cosine_layers"]) > 1 - 1e-9
    # Against GD with twice the step, one step differs by exactly a factor 2: relative difference 0.5.
    other = icl_lsa.compare_layers(model, b, refs(1.0))
    assert other["rel_diff_layers"][0] == pytest.approx(0.5, rel=1e-9)


def test_one_layer_from_random_qkvo_learns_the_tuned_gd_step_where_it_converges(runs):
    """From random Q, K, V, O (tiny: d = 2, N = 8, 300 steps), seeds 0–3. Measured (trained by the trainer,
    batches from derive_seed(seed, "data")): seeds 0, 1, 2 reach relative difference 0.025 / 0.055 / 0.046 and
    cosine ≥ 0.998 from ≈ 1.00 at step 0; seed 3 stays at MSE 1.23 against the GD step's 0.56 (relative
    difference 0.71), which the figure's precondition calls undertrained. Required: every seed that passes that precondition meets both claim thresholds, from a step-0
    value ≥ 0.6 (the agreement is learned, not inherited), and at least one seed passes it."""
    converged = 0
    for seed in range(4):
        run = _run(runs, "random_qkvo", seed=seed)
        assert run["start"]["rel_diff"] >= 0.6, run["start"]
        if icl_lsa.undertrained([run]):
            continue
        converged += 1
        assert run["final"]["rel_diff"] < 0.1, (seed, run["final"]["rel_diff"])
        assert run["final"]["cosine"] > 0.99, (seed, run["final"]["cosine"])
    assert converged >= 1


def test_zfb_blocks_reach_inverse_gamma(runs):
    """W^{PV}_{d+1,d+1} W^{KQ}_{11} → Γ⁻¹ (ZFB's limit) from their init σ² I/√d (relative error ≈ 0.99 at
    step 0 here, so the test fails on a model that does not move; measured 0.018 after 300 steps). A relative error ε of this matrix moves
    ŷ_GD by about ε relative, so the same 10 % as the prediction threshold applies."""
    model = _run(runs, "zfb")["model"]
    d, N = TINY.d, TINY.n_points
    g_inv = torch.linalg.inv(zfb_gamma(torch.eye(d, dtype=torch.float64), N))
    M = icl_lsa.zfb_effective_matrix(model)
    assert float((M - g_inv).norm() / g_inv.norm()) < 0.1


def test_frozen_parameters_are_not_trained(runs):
    """The ZFB parametrization keeps the identity read-in, W_K = W_V = I and the read-out fixed; the random
    start keeps its identity read-in and von Oswald's read-out −e_y."""
    model = _run(runs, "zfb")["model"]
    D = TINY.d + 1
    assert torch.equal(model.embed.W_E, torch.eye(D)) and torch.equal(model.blocks[0].attn.W_K[0], torch.eye(D))
    assert torch.equal(model.unembed.W_U[:, 0], torch.eye(D)[-1])
    rand = _run(runs, "random_qkvo")["model"]
    assert torch.equal(rand.embed.W_E, torch.eye(D)) and torch.equal(rand.unembed.W_U[:, 0], -torch.eye(D)[-1])


def _fake(mse, gd_mse, start=1.0, final=0.05, layers=1):
    return {"final": {"mse": mse, "gd_mse": gd_mse, "rel_diff": final, "cosine": 0.999,
                      "rel_diff_layers": [final] * layers},
            "start": {"rel_diff": start}}


def test_undertrained_depths_are_not_judged():
    """A 2-layer model at 0.62 MSE against 2-step GD's 0.25 (measured at the tiny size) is undertrained: its
    criteria must be not measured (inconclusive), while a converged 1-layer model's are judged."""
    runs = {1: [_fake(0.52, 0.52), _fake(0.53, 0.52)], 2: [_fake(0.62, 0.25, layers=2), _fake(0.6, 0.25, layers=2)]}
    m = icl_lsa.lsa_measurements(runs)
    verdicts = {v.claim.key: v.verdict for v in judge_all(icl_lsa.CLAIMS, m)}
    assert verdicts == {"one_layer_is_one_gd_step": "reproduced", "layers_are_gd_steps": "inconclusive"}
    assert "undertrained" in m["rel_diff_deep"].note


def test_unknown_init_and_deep_non_random_inits_are_refused():
    with pytest.raises(ConfigError, match="init"):
        icl_lsa.lsa_learner(2, 4, "xavier")
    with pytest.raises(ConfigError, match="n_layers"):
        icl_lsa.lsa_learner(2, 4, "zfb", n_layers=2)


@pytest.mark.slow
def test_quick_scale_one_layer_verdict_is_reproduced():
    """The ledger's quick-scale verdict for one layer (d = 5, N = 20, 600 steps, seeds 0–2; ~1 min on one core).
    Measured: relative difference 0.036 [0.026, 0.045], cosine 0.9997 [0.9995, 0.9999], moved 1.04 [0.83, 1.25]
    (95 % t intervals over the 3 seeds): reproduced. The 2-layer models are undertrained at 600 steps (MSE 1.65
    against 2-layer GD++'s ~0.5): that claim must come out inconclusive, never not reproduced."""
    runs = icl_lsa.lsa_runs(icl_lsa.SIZES["quick"])
    verdicts = {v.claim.key: v.verdict for v in judge_all(icl_lsa.CLAIMS, icl_lsa.lsa_measurements(runs))}
    assert verdicts["one_layer_is_one_gd_step"] == "reproduced"
    assert verdicts["layers_are_gd_steps"] != "not reproduced"


# ---------------------------------------------------------------------------------- through the trainer
SHORT = dict(d=2, N=6, batch=16, steps=20, lr=1e-2, eval_every=10)


@pytest.mark.parametrize("init, n_layers", [("random_qkvo", 2), ("zfb", 1), ("toy_fixed_io", 1),
                                            ("toy_zfb_shaped", 1), ("toy_normal", 1)])
def test_the_trainer_runs_exactly_the_lsa_training_loop(tmp_path, init, n_layers):
    """The run of ``lsa_experiment`` equals, bit for bit, the loop the figure used to run by hand: AdamW over
    the trainable parameters (lr cosine-decayed to 0), fresh batches from the run's data generator, the squared
    error of the query's read-out. A trainer that trained a frozen weight, skipped the schedule, drew other
    batches or applied the initial state after step 1 gives other weights."""
    cfg = icl_lsa.lsa_experiment(SHORT, init, n_layers, seed=3)
    trained = get_or_train(cfg, tmp_path, progress=False).load_model().state_dict()
    model = icl_lsa.lsa_learner(SHORT["d"], SHORT["N"], init, seed=3, n_layers=n_layers)
    optim = OptimConfig(name="adamw", lr=SHORT["lr"], schedule="cosine")
    optimizer = build_optimizer(model.parameters(), optim)
    scheduler = build_scheduler(optimizer, optim, SHORT["steps"])
    task = cfg.task.build()
    data = torch.Generator().manual_seed(derive_seed(3, "data"))
    for _ in range(SHORT["steps"]):
        b = task.sample(SHORT["batch"], data)
        loss = ((model(b["inputs"], attn_mask=b["attn_mask"])[:, -1, 0] - b["y_query"]) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    by_hand = model.state_dict()
    assert trained.keys() == by_hand.keys()
    assert all(torch.equal(trained[k], by_hand[k]) for k in trained)


def test_the_zfb_state_starts_as_a_scaled_gd_step():
    """At ZFB's init the model computes ŷ = σ² x_qᵀ (1/√d) (1/N) Σ y_i x_i (their W^{KQ}(0), W^{PV}(0) in the
    toy's weights). Float32 sums of N·d = 18 products of O(1) numbers: relative rounding ≲ 1e-6, asserted 1e-5."""
    d, N = 3, 6
    model = icl_lsa.lsa_learner(d, N, "zfb")
    b = ICLRegressionConfig(d=d, n_points=N, tokenization="stacked", dtype="float32").build().sample(
        32, torch.Generator().manual_seed(0))
    y_hat = model(b["inputs"], attn_mask=b["attn_mask"])[:, -1, 0].detach().double()
    s = icl_lsa.ZFB_INIT_SCALE
    expected = s**2 / d**0.5 * torch.einsum("bn,bnd,bd->b", b["y"].double(), b["X"].double(),
                                              b["x_query"].double()) / N
    assert float((y_hat - expected).abs().max()) <= 1e-5 * float(expected.abs().max())


def test_the_figure_measures_every_snapshot_and_reuses_the_stored_run(tmp_path, monkeypatch):
    """Snapshots at 0, every eval_every steps and the last; a second request trains nothing (the trainer
    refuses to start) and measures the same trajectory."""
    monkeypatch.setenv("THEORYBENCH_RUNS", str(tmp_path))
    first = icl_lsa.train_lsa(init="random_qkvo", seed=1, eval_prompts=64, **SHORT)
    assert first["trace"]["step"] == [0, 10, 20]
    run = get_or_train(icl_lsa.lsa_experiment(SHORT, "random_qkvo", 1, 1), progress=False)
    assert snapshot_steps(run.dir) == [0, 10, 20]

    def refuse(*args, **kwargs):
        raise AssertionError("trained again instead of reusing the stored run")

    monkeypatch.setattr(_Trainer, "run", refuse)
    again = icl_lsa.train_lsa(init="random_qkvo", seed=1, eval_prompts=64, **SHORT)
    assert again["trace"] == first["trace"]


def test_the_sweep_holds_every_depth_and_seed_of_the_figure():
    members = icl_lsa.LSA_SWEEP.members("tiny")
    assert sorted((c.model.n_layers, c.seed) for c in members) == [
        (L, s) for L in TINY.depths for s in range(TINY.seeds)]
    assert len({c.config_hash() for c in members}) == len(members)
    assert icl_lsa.lsa_one_layer("tiny").config_hash() in {c.config_hash() for c in members}
