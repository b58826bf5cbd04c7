"""Every registered experiment and sweep member hashes at every scale as it did before the study
families moved into packages (issue 13).

The run store and the committed ``results/`` are found by these hashes: a refactor that changes one
(a renamed field, a default that moved, a float written differently) makes every stored run of that
config silently stale. The fixture was written by ``scripts/record_config_hashes.py`` on the commit it
names; a change here that is meant must regenerate it in the same commit and say why.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from theorybench.registry import SCALES

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from record_config_hashes import config_hashes  # noqa: E402 — scripts/ is not a package

FIXTURE = Path(__file__).parent / "data" / "config_hashes.json"


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads(FIXTURE.read_text())["hashes"]


# The full scale's sweeps are the largest (≈ 1000 members to build and hash, ≈ 6 s here): slow.
@pytest.mark.parametrize("scale", [*(s for s in SCALES if s != "full"), pytest.param("full", marks=pytest.mark.slow)])
def test_every_config_hashes_as_before(recorded, scale):
    current = config_hashes(scales=(scale,))
    assert sorted(current) == sorted(recorded), "the registered experiments and sweeps changed"
    changed = [f"{name}: {recorded[name][scale]!r} -> {by_scale[scale]!r}"
               for name, by_scale in current.items() if recorded[name].get(scale) != by_scale[scale]]
    assert not changed, f"config hashes changed at scale {scale!r} (stored runs would be stale):\n" + "\n".join(changed[:20])
