"""Every registered study figure renders, at its module's ``SIZES["tiny"]``, with finite numbers.

Each study module sizes its work by ``SIZES[scale]`` and declares a "tiny" size for this test; the
claims themselves are asserted by each family's own tests (``tests/test_studies_<family>.py``).
"""

import importlib
import math
import sys

import pytest

from theorybench import registry
from theorybench.figures import save_figure

registry.load_studies()
FIGURES = sorted(registry.figures())


def render_tiny(name: str, monkeypatch):
    spec = registry.get_figure(name)
    module = importlib.import_module(spec.make.__module__)
    monkeypatch.setitem(module.SIZES, "quick", module.SIZES["tiny"])
    return spec, spec.make("quick")


def test_every_study_module_declares_a_tiny_size():
    for spec in registry.figures().values():
        sizes = getattr(sys.modules[spec.make.__module__], "SIZES", {})
        assert {"quick", "full", "tiny"} <= set(sizes), f"{spec.make.__module__} needs SIZES quick/full/tiny"


@pytest.mark.parametrize("name", FIGURES)
def test_figure_renders_with_finite_numbers(name, tmp_path, monkeypatch):
    spec, result = render_tiny(name, monkeypatch)
    assert result.numbers
    for key, value in result.numbers.items():
        assert "|" not in key, "a '|' breaks the index's markdown table"
        if isinstance(value, float):
            assert math.isfinite(value), key
    entry = save_figure(result, spec, tmp_path)
    assert (tmp_path / f"{name}.png").stat().st_size > 0 and entry.name == name
