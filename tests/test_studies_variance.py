"""The variance-growth figures' numbers at tiny size: Monte Carlo over seeds agrees with the analytic
recursion for every placement, Peri-LN adds one unit per sublayer, and the last-layer gradient
shrinks with depth in Pre-LN and not in Post-LN (the theory itself is tested in test_variance_theory.py)."""

import matplotlib.pyplot as plt
import pytest

from test_studies import render_tiny

# The tiny size runs 24 seeds per point (32 for gradients), so a gap in standard errors is a Student t
# with ≥ 23 degrees of freedom: P(|t₂₃| > 5) ≈ 5e-5, and over ≤ 5 compared points × 5 placements the
# union bound leaves a false alarm near 1e-3 (the seeds are fixed, so the outcome is deterministic;
# this is the margin against a change of seeds).
Z = 5.0


@pytest.fixture(scope="module")
def rendered():
    with pytest.MonkeyPatch.context() as mp:
        out = {name: render_tiny(name, mp) for name in ("variance_residual_growth_at_init",
                                                        "variance_gradient_scale_at_init")}
    for _, result in out.values():
        plt.close(result.figure)  # no figure left open for later tests
    return out


@pytest.fixture(scope="module")
def residual(rendered):
    return rendered["variance_residual_growth_at_init"][1].numbers


@pytest.fixture(scope="module")
def gradient(rendered):
    return rendered["variance_gradient_scale_at_init"][1].numbers


@pytest.mark.parametrize("label", ["no norm", "Post-LN", "Pre-LN", "Peri-LN", "Mix-LN (α = 0.25)"])
def test_monte_carlo_matches_the_recursion_at_every_layer(residual, label):
    # Post-LN's unit also holds the theory's own O(ε/d) finite-width term (its seed spread is ~1e-9).
    assert residual[f"{label}: largest MC−theory gap (SE)"] < Z


def test_peri_ln_grows_by_one_per_sublayer_and_pre_ln_at_its_predicted_slope(residual):
    # Peri-LN: each of a block's two updates is a norm's output with mean square 1 − ε/s² (ε = 1e-5, s² ≈ 1):
    # the theory's slope is 2 up to 2ε per block.
    assert abs(residual["Peri-LN growth per block, theory"] - 2.0) < 1e-3
    for name in ("Peri-LN", "Pre-LN"):
        gap = abs(residual[f"{name} growth per block, MC"] - residual[f"{name} growth per block, theory"])
        assert gap < Z * residual[f"{name} growth per block, MC SE"], name


def test_default_score_scale_shows_the_uniform_attention_gap(residual):
    """fan_in with 1/√d_head draws scores of variance 1: attention is not uniform and the stream ends up
    larger than the uniform-attention theory. Paired over the same weights, the gap is resolved (6.8 SE,
    +5.7% at tiny size; test_variance_theory.py measures +5% to +8% at d = 32)."""
    key = "Pre-LN, default 1/√d_head scores vs uniform"
    assert residual[f"{key}: largest paired gap (SE)"] > Z
    assert residual[f"{key}: relative gap at that layer"] > 0  # non-uniform attention concentrates: Σ_k A² grows


def test_pre_ln_last_layer_gradient_shrinks_post_ln_does_not(gradient):
    for name in ("Pre-LN", "Post-LN"):
        assert gradient[f"{name}: largest MC−theory gap over depths (SE)"] < Z
    # Measured, independently of the theory: Pre-LN's ratio L=4 : L=1 is below 1 by many SE (theory 0.70),
    # Post-LN's is 1 within Z SE.
    pre, pre_se = gradient["Pre-LN: ratio L=4 to L=1, MC"], gradient["Pre-LN: ratio L=4 to L=1, MC SE"]
    post, post_se = gradient["Post-LN: ratio L=4 to L=1, MC"], gradient["Post-LN: ratio L=4 to L=1, MC SE"]
    assert 1.0 - pre > Z * pre_se
    assert abs(post - 1.0) < Z * post_se


def test_depth_slope_is_the_log_log_slope_with_a_delta_method_interval():
    """‖∇‖² samples with means 1 and 4 at depths 2 and 8: ‖∇‖ ratio 2 over a depth ratio 4, slope 1/2.
    Constant samples have no spread: a zero-width interval; spread widens it symmetrically."""
    import numpy as np

    from theorybench.studies.variance.gradient_scale_at_init import depth_slope

    flat = depth_slope(np.ones(8), np.full(8, 4.0), 2, 8)
    assert flat.value == pytest.approx(0.5, rel=1e-14) and flat.low == flat.high == flat.value
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.5, 1.5, 40), rng.uniform(2.0, 6.0, 40)
    noisy = depth_slope(a, b, 2, 8)
    assert noisy.value == pytest.approx(np.log(np.sqrt(b.mean() / a.mean())) / np.log(4), rel=1e-14)
    assert noisy.low < noisy.value < noisy.high
    assert noisy.high - noisy.value == pytest.approx(noisy.value - noisy.low, rel=1e-12)


def test_init_figures_measure_every_declared_criterion_and_decide_the_init_claims(rendered):
    """At tiny size (24 seeds) the recursion's gap is < 4 SE (as test_monte_carlo_matches_… checks per
    placement) and Peri-LN's slope (≈ 2) exceeds Pre-LN's (theory ≈ 1.1 here) by far more than the paired
    interval's half-width: both init claims are reproduced, a statement about initialization only."""
    from theorybench.claims import judge_all

    for name, (spec, result) in rendered.items():
        assert set(result.measured) == {c.key for claim in spec.claims for c in claim.criteria}
    spec, result = rendered["variance_residual_growth_at_init"]
    assert [v.verdict for v in judge_all(spec.claims, result.measured, spec.name)] == ["reproduced", "reproduced"]
