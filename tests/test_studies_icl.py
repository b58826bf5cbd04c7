"""The ICL reference figure at the tiny size: Monte Carlo agrees with the exact finite-N errors, and every
declared criterion gets a measurement (the tiny Garg model is not sized to decide its claim: inconclusive)."""

from test_studies import render_tiny

from theorybench.claims import judge_all


def test_icl_monte_carlo_agrees_with_the_closed_forms():
    """At 200 prompts per N the largest of ~15 |z| scores exceeds 5 with probability < 1e-5 (Gaussian tails)."""
    spec, result = render_tiny("icl_estimator_errors")
    assert result.numbers["points compared"] > 0
    assert result.numbers["largest Monte Carlo deviation from exact (in SE)"] < 5
    verdicts = {v.claim.key: v.verdict for v in judge_all(spec.claims, result.measured, spec.name)}
    assert verdicts == {"references_exact": "reproduced", "least_squares_level": "inconclusive"}
