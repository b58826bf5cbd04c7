"""The graph-search coverage figure's numbers: naive DAGs need short searches, balanced is uniform in L."""

from test_studies import render_tiny


def test_naive_graphs_rarely_need_long_searches_and_balanced_is_uniform(monkeypatch):
    _, result = render_tiny("graph_search_lookahead_coverage", monkeypatch)
    assert result.numbers["naive: fraction with L ≥ 5"] < 0.05
    assert result.numbers["balanced: χ² uniformity p-value"] > 1e-3  # fails by chance once in 1000
