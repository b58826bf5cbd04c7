"""One room per family (issue 13): every family that is a package under ``theorybench/studies/`` holds its
figures in one module each, its sizes as frozen dataclasses with every scale, an ``__init__`` that only
imports, and a README that names every figure and claim.

What this catches: a figure registered from a shared module (``experiments``/``common``) or from another
family's room; sizes back to a string-keyed dict or a scale missing; an ``__init__`` growing code; a
README that drifted from the declared claims.
"""

import ast
import dataclasses
import importlib
import sys
from pathlib import Path

import pytest

from theorybench import registry

registry.load_studies()
STUDIES = Path(importlib.import_module("theorybench.studies").__file__).parent
ROOMS = [f for f in registry.FAMILIES if (STUDIES / f / "__init__.py").is_file()]
SHARED = {"__init__", "sizes", "experiments", "common"}


def _figures(family: str):
    return [spec for spec in registry.figures().values() if spec.family == family]


def test_the_moved_families_have_rooms():
    assert {"graph_search", "attention_svm", "variance"} <= set(ROOMS)


@pytest.mark.parametrize("family", ROOMS)
def test_each_figure_lives_in_its_own_module_of_its_family(family):
    modules = [spec.make.__module__ for spec in _figures(family)]
    assert modules, f"{family} registers no figure"
    for spec, module in zip(_figures(family), modules):
        package, name = module.rsplit(".", 1)
        assert package == f"theorybench.studies.{family}", (spec.name, module)
        assert name not in SHARED, f"{spec.name} is registered from the shared module {module}"


@pytest.mark.parametrize("family", ROOMS)
def test_sizes_are_frozen_dataclasses_for_every_scale(family):
    for spec in _figures(family):
        sizes = getattr(sys.modules[spec.make.__module__], "SIZES", None)
        assert isinstance(sizes, dict) and set(sizes) == set(registry.SCALES), spec.name
        kinds = {type(s) for s in sizes.values()}
        assert len(kinds) == 1, f"{spec.name}: one sizes type for every scale, got {kinds}"
        (kind,) = kinds
        assert dataclasses.is_dataclass(kind) and kind.__dataclass_params__.frozen, f"{spec.name}: {kind}"


@pytest.mark.parametrize("family", ROOMS)
def test_the_package_init_only_imports(family):
    tree = ast.parse((STUDIES / family / "__init__.py").read_text())
    body = tree.body[1:] if ast.get_docstring(tree) is not None else tree.body
    assert body and all(isinstance(node, (ast.Import, ast.ImportFrom)) for node in body)


@pytest.mark.parametrize("family", ROOMS)
def test_the_readme_names_every_figure_claim_and_module(family):
    readme = (STUDIES / family / "README.md").read_text()
    for spec in _figures(family):
        assert f"`{spec.name}`" in readme, spec.name
        assert spec.make.__module__.rsplit(".", 1)[1] in readme, spec.make.__module__
        for claim in spec.claims:
            assert f"`{claim.key}`" in readme, (spec.name, claim.key)
