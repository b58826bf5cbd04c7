"""Every registered experiment and every sweep member builds at every scale, full included: a size that
no config accepts (a largest lookahead that does not fit the smallest graph of a sweep, say) is found
here, not hours into a GPU allocation. ``config_hashes`` (the hash guard's builder) records a refusal as
its error text; here none may be one. Building is cheap: nothing is trained."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from theorybench.registry import SCALES

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from record_config_hashes import config_hashes  # noqa: E402 — scripts/ is not a package


@pytest.mark.parametrize("scale", SCALES)
def test_every_experiment_and_sweep_member_builds_and_hashes(scale):
    table = config_hashes(scales=(scale,))
    assert table
    refused = {name: by_scale[scale] for name, by_scale in table.items()
               if isinstance(by_scale[scale], str) and by_scale[scale].startswith("error:")}
    assert not refused
