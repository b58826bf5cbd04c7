"""Every registered experiment and every sweep member builds at every scale, full included: a size that
no config accepts (a largest lookahead that does not fit the smallest graph of a sweep, say) is found
here, not hours into a GPU allocation. Building is cheap: nothing is trained."""

from __future__ import annotations

import pytest

from theorybench.registry import SCALES, experiments, load_studies, sweeps


@pytest.mark.parametrize("scale", SCALES)
def test_every_experiment_and_sweep_member_builds_and_hashes(scale):
    load_studies()
    assert experiments() and sweeps()
    built = [spec.build(scale) for spec in experiments().values()]
    for spec in sweeps().values():
        members = spec.members(scale)
        assert members, f"sweep {spec.name} has no members at scale {scale}"
        built += members
    hashes = [cfg.config_hash() for cfg in built]  # resolves each config: the task fixes the model's fields
    assert all(len(h) == 12 for h in hashes)
