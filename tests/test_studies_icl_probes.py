"""Probe figure (Akyürek et al. 2023) at the tiny size: the probes read the query token, and before any
layer has mixed in the context nothing about the context is decodable there."""

from test_studies import render_tiny

from probes.icl_agreement import agreement_across
from theory.icl.references import reference_predictors
from theorybench.studies import icl_probes


def test_embedding_layer_holds_nothing_about_the_context(monkeypatch):
    """x_0 at the query token is the read-in of x_q plus its position: independent of w, Xᵀy and XᵀX (every
    target depends only on the context). A held-out R² on independent features has mean ≈ −p/(n − p − 1)
    (p = width = 16 features, n = 300 training prompts: −0.06) and SD ≈ √(2/n_test)(1 + p/n) ≈ 0.09; the
    bound |R²| < 0.4 is > 3.5 SD from that mean. A probe that read the wrong token (one that has seen the
    context) would pass it only by chance."""
    monkeypatch.setitem(icl_probes.SIZES, "quick", icl_probes.SIZES["tiny"])
    run, model, _ = icl_probes.probe_model("quick")
    frame = icl_probes.probe_r2_frame(model, run.config.task, icl_probes.SIZES["tiny"]["probe_prompts"])
    first = frame[frame.layer == 0]
    assert set(first.target) == {"w", "Xᵀy", "XᵀX"}
    assert (first.r2.abs() < 0.4).all(), first


def test_probe_figure_names_the_predictor_its_own_agreement_puts_closest(monkeypatch):
    """The figure's "closest predictor at N = 2d, noiseless" is the argmin of the squared prediction
    difference between the model and each reference, at that N on noiseless prompts. Recomputed here for
    that one point (agreement_across draws each N's prompts from its own seed, so the prompts are the
    figure's): the name must be the argmin and the reported value its difference / d (printed to 5
    decimals, so within 5e-6)."""
    _, result = render_tiny("icl_probe_r2", monkeypatch)
    for target in ("w", "Xᵀy", "XᵀX"):
        assert f"probe R² for {target}: best value (trained)" in result.numbers
    size = icl_probes.SIZES["tiny"]
    garg = size["garg"]
    d, N = garg["d"], garg["N"]
    point = 2 * d if 2 * d <= N else N
    run, model, _ = icl_probes.probe_model("tiny")  # the run the tiny figure read
    frame = agreement_across(model, run.config.task, [point], [0.0],
                             lambda s: reference_predictors(s, ridge_lam=garg["ridge_lam"]),
                             prompts=size["agree_prompts"])
    diffs = frame[frame.quantity == "sq_pred_diff"].set_index("predictor")["value"]
    assert len(diffs) >= 4  # least squares, ridge, one GD step, averaging, k-NN: a choice among several
    assert result.numbers["closest predictor at N = 2d, noiseless"] == diffs.idxmin(), diffs
    assert abs(result.numbers["its squared prediction difference / d"] - diffs.min() / d) <= 5e-6
