"""Every registered study figure renders, at a tiny size, with labelled axes and finite numbers.

The study modules size their work by ``SIZES[scale]``; the test shrinks "quick" so the whole file
stays fast, and leaves the claims themselves to each family's own tests.
"""

import importlib
import math

import pytest

from theorybench import registry
from theorybench.figures import save_figure

TINY = {
    "theorybench.studies.icl": dict(d=3, n_max=8, prompts=200),
    "theorybench.studies.graph_search": dict(max_input_size=32, examples=200),
}


@pytest.fixture(autouse=True)
def tiny_sizes(monkeypatch):
    for module, size in TINY.items():
        monkeypatch.setitem(importlib.import_module(module).SIZES, "quick", size)


def test_every_study_module_is_sized_here():
    registry.load_studies()
    modules = {spec.make.__module__ for spec in registry.figures().values()}
    assert modules <= set(TINY), f"add a tiny size for {sorted(modules - set(TINY))}"


@pytest.mark.parametrize("name", ["icl_estimator_errors", "graph_search_lookahead_coverage"])
def test_figure_renders_with_finite_numbers(name, tmp_path):
    registry.load_studies()
    spec = registry.get_figure(name)
    result = spec.make("quick")
    assert result.numbers
    for key, value in result.numbers.items():
        assert "|" not in key, "a '|' breaks the index's markdown table"
        if isinstance(value, float):
            assert math.isfinite(value), key
    entry = save_figure(result, spec, tmp_path)
    assert (tmp_path / f"{name}.png").stat().st_size > 0 and entry.name == name


def test_icl_monte_carlo_agrees_with_the_closed_forms():
    """At 200 prompts per N the largest of ~15 |z| scores exceeds 5 with probability < 1e-5 (Gaussian tails)."""
    registry.load_studies()
    numbers = registry.get_figure("icl_estimator_errors").make("quick").numbers
    assert numbers["points compared"] > 0
    assert numbers["largest Monte Carlo deviation from exact (in SE)"] < 5


def test_naive_graphs_rarely_need_long_searches_and_balanced_is_uniform():
    registry.load_studies()
    numbers = registry.get_figure("graph_search_lookahead_coverage").make("quick").numbers
    assert numbers["naive: fraction with L ≥ 5"] < 0.05
    assert numbers["balanced: χ² uniformity p-value"] > 1e-3  # fails by chance once in 1000
