"""ICL probes against constructed answers: implicit weights, model-vs-predictor agreement, linear probes."""

import pytest
import torch

from probes.icl_agreement import agreement_across, implicit_weights, model_predict, model_vs_predictors
from probes.icl_linear import linear_probe_r2, regression_targets, residual_probe_r2
from theory.icl import predictors as P
from toy_models import Transformer, TransformerConfig
from toy_models.constructions.lsa import gd_lsa
from toy_models.tasks.icl_regression import ICLRegressionConfig, interleave_tokens

F64 = torch.float64


def _prompts(B, N, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(B, N, d, generator=g, dtype=F64)
    w = torch.randn(B, d, generator=g, dtype=F64)
    return X, (X @ w[..., None])[..., 0], w, g


# ---------------------------------------------------------------------------------------- agreement
def test_implicit_weights_recover_a_linear_map_exactly():
    """ŷ_m = ŵᵀx_m exactly: the least-squares fit returns ŵ to rounding (κ of a 12×4 Gaussian ≲ 10, so
    ~κ·u ≈ 1e-15; bound 1e-12) and linearity R² = 1."""
    g = torch.Generator().manual_seed(1)
    q = torch.randn(5, 12, 4, generator=g, dtype=F64)
    w = torch.randn(5, 4, generator=g, dtype=F64)
    w_hat, r2 = implicit_weights(torch.einsum("bmd,bd->bm", q, w), q)
    assert torch.allclose(w_hat, w, rtol=0, atol=1e-12)
    assert torch.allclose(r2, torch.ones(5, dtype=F64), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="n_queries=3"):
        implicit_weights(torch.zeros(5, 3, dtype=F64), q[:, :3])


def test_gd_construction_agrees_with_the_gd_predictor():
    """The exact one-step-GD LSA (toy_models.constructions.lsa) read by the probe: prediction difference,
    weight distance ~ rounding (float64, ≤ 1e-20 squared / 1e-10) and weight cosine 1, against GD with its
    own η; against averaging (η = 1) the predictions differ by the factor η: (1 − η)² E[ŷ_avg²] exactly."""
    d, N, eta = 3, 6, 0.4
    X, y, w, g = _prompts(64, N, d)
    x_q = torch.randn(64, 2 * d, d, generator=g, dtype=F64)
    model = gd_lsa(d, eta, n_ctx=N + 1)
    preds = {"gd": lambda X, y, q: P.gd(X, y, q, eta, 1), "averaging": P.averaging}
    frame = model_vs_predictors(model, X, y, w, x_q, preds, tokenization="stacked")
    value = {(r.predictor, r.quantity): r.value for r in frame.itertuples()}
    assert value[("gd", "sq_pred_diff")] < 1e-20 and value[("gd", "weight_dist")] < 1e-10
    assert abs(value[("gd", "weight_cos")] - 1) < 1e-12
    assert abs(value[("model", "linearity_r2")] - 1) < 1e-12
    avg = P.averaging(X, y, x_q).y_hat
    want = (1 - eta) ** 2 * float(avg.pow(2).mean())
    assert abs(value[("averaging", "sq_pred_diff")] - want) <= 1e-10 * want
    assert abs(value[("averaging", "weight_cos")] - 1) < 1e-12  # same direction, another length
    assert abs(value[("model", "model_mse")] - value[("gd", "predictor_mse")]) < 1e-10


def test_interleaved_model_predict_reads_the_query_token_of_each_prompt():
    """For a causal model, predicting with M queries equals running each (context, query) prompt alone,
    and a shorter context equals reading the full prompt at that prefix (float64 sums of ≤ 20 terms: 1e-12)."""
    d, N = 2, 5
    cfg = TransformerConfig(n_layers=2, d_model=16, n_heads=2, input_kind="continuous", d_input=d, n_ctx=2 * N + 1,
                            d_vocab_out=1, dtype="float64", init="normal", init_std=0.3)
    model = Transformer(cfg)
    X, y, _, g = _prompts(3, N, d)
    q = torch.randn(3, 4, d, generator=g, dtype=F64)
    many = model_predict(model, X, y, q)
    for m in range(4):
        one = model(interleave_tokens(X, y, q[:, m]))[:, -1, 0].detach()
        assert torch.allclose(many[:, m], one, rtol=0, atol=1e-12)
    full = model(interleave_tokens(X, y, q[:, 0]))[:, :, 0].detach()
    assert torch.allclose(model_predict(model, X[:, :2], y[:, :2], X[:, 2]), full[:, 4], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="tokenization"):
        model_predict(model, X, y, q, tokenization="bogus")


def test_agreement_across_covers_every_N_and_noise_level():
    d, eta = 2, 0.5
    model = gd_lsa(d, eta, n_ctx=9)
    cfg = ICLRegressionConfig(d=d, n_points=8, tokenization="stacked")
    frame = agreement_across(model, cfg, Ns=[2, 8], noise_stds=[0.0, 0.5],
                             predictors=lambda s: {"gd": lambda X, y, q: P.gd(X, y, q, eta, 1)}, prompts=16)
    diffs = frame[(frame.predictor == "gd") & (frame.quantity == "sq_pred_diff")]
    assert sorted(zip(diffs.N, diffs.noise_std)) == [(2, 0.0), (2, 0.5), (8, 0.0), (8, 0.5)]
    assert (diffs.value < 1e-20).all()  # the construction is GD at every N and noise (rounding only)


# ---------------------------------------------------------------------------------------- linear probes
def test_regression_targets_shapes_and_values():
    X, y, w, _ = _prompts(4, 6, 3)
    t = regression_targets(X, y, w)
    assert t["w"].shape == (4, 3) and t["Xᵀy"].shape == (4, 3) and t["XᵀX"].shape == (4, 6)
    assert torch.allclose(t["Xᵀy"][1], X[1].T @ y[1], rtol=0, atol=1e-12)
    gram = X[2].T @ X[2]
    assert torch.allclose(t["XᵀX"][2], gram[torch.triu_indices(3, 3).unbind()], rtol=0, atol=1e-12)


def test_probe_r2_matches_the_population_value_and_is_near_zero_on_noise():
    """T = F a + ε, F ~ N(0, I_p), ‖a‖² = 1, ε ~ N(0, s²): population R² = 1/(1 + s²) = 0.8 for s = 0.5.
    An OLS probe fitted on n = 2000 rows loses (1 − R²)·p/(n − p − 1) ≈ 0.002 (p = 16) in expectation;
    the test-split R² has SD ≈ 2(1 − R²)·√(2/n_test)·… ≲ 0.02, so |R² − 0.8| < 0.05 is > 2.5 SD.
    On a target independent of the features the held-out R² ≈ −p/(n − p − 1) ≈ −0.008 ± 0.01: |R²| < 0.05."""
    g = torch.Generator().manual_seed(3)
    n, p = 4000, 16
    F = torch.randn(n, p, generator=g, dtype=F64)
    a = torch.randn(p, generator=g, dtype=F64)
    a = a / a.norm()
    T = F @ a + 0.5 * torch.randn(n, generator=g, dtype=F64)
    assert abs(linear_probe_r2(F, T, ridge=0.0) - 0.8) < 0.05
    assert abs(linear_probe_r2(F, torch.randn(n, 3, generator=g, dtype=F64))) < 0.05
    with pytest.raises(ValueError, match="train_fraction"):
        linear_probe_r2(F, T, train_fraction=1.0)
    with pytest.raises(ValueError, match="ridge"):
        linear_probe_r2(F, T, ridge=-1.0)


def test_residual_probe_sees_a_quantity_only_after_the_layer_that_writes_it():
    """Zero-weight blocks (identity) on stacked tokens; a hook adds Xᵀy/N into the query's x-slots at
    block 1's output. Before it the probe is at chance (|R²| < 0.05: the noise bound of the test above,
    here p = d + 1 = 4). After it the features are x_q + Xᵀy/N with x_q independent of Xᵀy, so the best
    linear probe explains R² = v/(v + 1) per coordinate, v = Var((Xᵀy)_j/N) = (N + d + 1)/N (Wishart:
    E[(XᵀX)²] = N(N + d + 1) I for x ~ N(0, I), w ~ N(0, I)), i.e. 0.625 here; measured with the sample
    variance of the planted values, within the same 0.05 (n = 1000 test rows: SD of R² ≈ 0.01)."""
    d, N, B = 3, 6, 2000
    cfg = TransformerConfig(n_layers=3, d_model=d + 1, n_heads=1, input_kind="continuous", d_input=d + 1,
                            n_ctx=N + 1, d_vocab_out=1, norm_placement="none", pos="none", init="zero",
                            attention_dir="bidirectional", dtype="float64")
    model = Transformer(cfg)
    with torch.no_grad():
        model.embed.W_E.copy_(torch.eye(d + 1, dtype=F64))
    task = ICLRegressionConfig(d=d, n_points=N, tokenization="stacked", dtype="float64").build()
    batch = task.sample(B, torch.Generator().manual_seed(0))
    targets = regression_targets(batch["X"], batch["y"], batch["w"])
    plant = targets["Xᵀy"] / N

    def write(x, hook):
        x = x.clone()
        x[:, -1, :d] = x[:, -1, :d] + plant  # the query token now carries x_q + Xᵀy/N
        return x

    model.blocks[1].hook_resid_post.add_hook(write)
    try:
        frame = residual_probe_r2(model, batch["inputs"], {"Xᵀy": targets["Xᵀy"]}, attn_mask=batch["attn_mask"],
                                  ridge=1e-6)
    finally:
        model.reset_hooks(including_permanent=True)
    r2 = dict(zip(frame.layer, frame.r2))
    assert sorted(r2) == [0, 1, 2, 3]
    assert abs(r2[0]) < 0.05 and abs(r2[1]) < 0.05
    var_plant = float(plant.var(0).mean())
    assert abs(var_plant - (N + d + 1) / N) < 0.2  # sample variance of n = 2000 heavy-ish tailed values
    expect = var_plant / (var_plant + 1)
    for layer in (2, 3):
        assert abs(r2[layer] - expect) < 0.05, (r2, expect)
