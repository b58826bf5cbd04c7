"""The ICL reference figure's numbers: Monte Carlo agrees with the exact finite-N errors."""

from test_studies import render_tiny


def test_icl_monte_carlo_agrees_with_the_closed_forms(monkeypatch):
    """At 200 prompts per N the largest of ~15 |z| scores exceeds 5 with probability < 1e-5 (Gaussian tails)."""
    _, result = render_tiny("icl_estimator_errors", monkeypatch)
    assert result.numbers["points compared"] > 0
    assert result.numbers["largest Monte Carlo deviation from exact (in SE)"] < 5
