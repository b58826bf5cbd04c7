"""The comparison behind scripts/compare_tiny_figures.py (the before/after guard of issue 13), on
hand-made figure JSON: it must report a changed number, verdict or run hash, a figure made on one side
only or failing on one, and nothing for the provenance that names the revision and the machine."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from compare_tiny_figures import compare_sides  # noqa: E402 — scripts/ is not a package


def _entry(value=0.25, verdict="reproduced", run_hash="abc123", commit="1111", wall=3.0):
    return {"name": "fig", "numbers": {"slope": value, "label": "L1 0.50"},
            "verdicts": [{"verdict": verdict, "parts": [{"measurement": {"value": value, "low": 0.1, "high": 0.4}}]}],
            "provenance": {"commit": commit, "dirty": False, "machine": {"cpus": 2}, "wall_s": wall,
                           "runs": [{"name": "run", "config_hash": run_hash}], "sizes_hash": "s1"}}


def test_identical_figures_on_other_commits_and_machines_do_not_differ():
    assert compare_sides({"fig": _entry()}, {"fig": _entry(commit="2222", wall=9.0)}, rel=1e-9) == []


def test_a_changed_number_verdict_or_run_is_reported():
    changed = compare_sides({"fig": _entry()}, {"fig": _entry(value=0.26)}, rel=1e-9)
    assert [line.split(":")[1].strip() for line in changed] == ["/numbers/slope", "/verdicts[0]/parts[0]/measurement/value"]
    assert compare_sides({"fig": _entry()}, {"fig": _entry(verdict="failed")}, rel=1e-9)
    assert compare_sides({"fig": _entry()}, {"fig": _entry(run_hash="def456")}, rel=1e-9)


def test_floats_agree_to_the_relative_tolerance_only():
    close = _entry(value=0.25 * (1 + 1e-12))
    assert compare_sides({"fig": _entry()}, {"fig": close}, rel=1e-9) == []
    assert compare_sides({"fig": _entry()}, {"fig": close}, rel=1e-15)


def test_a_figure_on_one_side_only_or_failing_is_reported():
    assert compare_sides({"fig": _entry()}, {}, rel=1e-9) == ["fig: made only before"]
    assert compare_sides({"fig": _entry()}, {"fig": "failed: ValueError"}, rel=1e-9)


def test_an_ignored_leaf_is_left_out_and_nothing_else():
    renamed = _entry()
    renamed["provenance"]["sizes_hash"] = "s2"
    assert compare_sides({"fig": _entry()}, {"fig": renamed}, 1e-9, ignore=("/provenance/sizes_hash",)) == []
    assert compare_sides({"fig": _entry()}, {"fig": renamed}, 1e-9)


def test_an_ignored_prefix_leaves_out_the_leaves_under_it_only():
    changed = _entry()
    changed["numbers"] = {**changed["numbers"], "KQ: corr": 0.5}
    before = _entry()
    before["numbers"] = {**before["numbers"], "KQ: corr": 0.4}
    assert compare_sides({"fig": before}, {"fig": changed}, 1e-9, ignore=("/numbers/KQ:*",)) == []
    # The prefix covers no other leaf: a change beside it is still reported.
    changed["numbers"]["W: corr"] = 1.0
    before["numbers"]["W: corr"] = 0.9
    assert compare_sides({"fig": before}, {"fig": changed}, 1e-9, ignore=("/numbers/KQ:*",)) == [
        "fig: /numbers/W: corr: before 0.9, after 1.0"]
