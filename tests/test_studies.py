"""Every registered study figure renders at the ``tiny`` scale, measures every criterion it declares,
and has finite numbers.

Each study module sizes its work by ``SIZES[scale]`` for every scale in ``registry.SCALES``; the
claims' measuring functions are tested by each family's own tests (``tests/test_studies_<family>.py``).
"""

import math
import sys

import pytest

from theorybench import registry
from theorybench.figures import save_figure
from theorybench.ledger import _family_config_hashes
from theorybench.provenance import recording_runs

registry.load_studies()
FIGURES = sorted(registry.figures())


def render_tiny(name: str, monkeypatch=None):
    """The figure made at the tiny scale (``monkeypatch`` is accepted for older callers and unused)."""
    spec = registry.get_figure(name)
    return spec, spec.make("tiny")


def test_every_study_module_sizes_every_scale():
    for spec in registry.figures().values():
        sizes = getattr(sys.modules[spec.make.__module__], "SIZES", {})
        missing = set(registry.SCALES) - set(sizes)
        assert not missing, f"{spec.make.__module__} needs SIZES for {sorted(missing)}"


@pytest.mark.parametrize("name", FIGURES)
def test_figure_renders_with_finite_numbers(name, tmp_path):
    with recording_runs() as read:
        spec, result = render_tiny(name)
    # Every run a figure reads is one its family's experiments or sweeps build: the ledger would otherwise
    # call the stored result stale, and `make figures` could not train it on the pool first.
    built = _family_config_hashes("tiny").get(spec.family, set())
    assert not [r["name"] for r in read if r["config_hash"] not in built]
    assert result.numbers
    for key, value in result.numbers.items():
        assert "|" not in key, "a '|' breaks the index's markdown table"
        if isinstance(value, float):
            assert math.isfinite(value), key
    # save_figure judges every declared claim: an unmeasured criterion or an unread measurement fails here.
    entry = save_figure(result, spec, tmp_path, "tiny")
    assert (tmp_path / f"{name}.png").stat().st_size > 0 and entry.name == name
    assert len(entry.verdicts) == len(spec.claims)
