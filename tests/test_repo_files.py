"""The repository's entry points agree with each other: the README's commands, the Makefile's targets
and what CI runs (`.ci/run` runs exactly the README's test command, then the same suite under another
CPU dispatch)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TARGETS = ("install", "test", "test-slow", "figures", "bench", "clean")


def test_readme_opens_with_the_two_commands():
    top = "\n".join((REPO / "README.md").read_text().splitlines()[:15])  # "at the top": before any section
    assert "make figures" in top and "make test" in top


def test_readme_status_comes_from_the_ledger():
    """The status section points at the ledger and the committed medium results instead of holding
    hand-written verdicts that could drift from what the code measures."""
    text = (REPO / "README.md").read_text()
    status = text.split("## Status: what this reproduces", 1)[1].split("\n## ", 1)[0]
    assert "theorybench claims" in status and "results/medium/README.md" in status
    assert "Verdict:" not in status


def test_ci_runs_make_test_then_the_same_suite_under_another_cpu_dispatch():
    script = REPO / ".ci" / "run"
    assert os.access(script, os.X_OK), ".ci/run must be executable"
    lines = [ln.strip() for ln in script.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert lines[0] == "set -euo pipefail"  # a failing test (either pass) fails CI
    commands = [ln for ln in lines if not ln.startswith(("echo ", "other=", "if ", "cd ", "export "))]
    # the second pass runs make test's own command (test_make_targets_run_the_documented_commands), with an
    # inductor cache of its own: code compiled in pass 1 for the native ISA does not build under another one
    assert commands[1:] == ["make test",
                            'TORCHINDUCTOR_CACHE_DIR="$(mktemp -d)" ATEN_CPU_CAPABILITY=default '
                            "OPENBLAS_CORETYPE=$other .venv/bin/python -m pytest -q"]
    assert "CI=true" in script.read_text() and "HF_HUB_OFFLINE=1" in script.read_text()


def _make_rules() -> dict[str, str]:
    text = (REPO / "Makefile").read_text()
    return {m.group(1): m.group(2) for m in re.finditer(r"^([^\s:#=]+):(?!=)(.*)$", text, re.M)}


def test_makefile_has_the_targets_and_each_installs_first():
    rules = _make_rules()
    for target in TARGETS:
        assert target in rules, f"Makefile has no {target!r} target"
    for target in ("install", "test", "test-slow", "figures", "bench"):
        assert "$(STAMP)" in rules[target].split(), f"{target!r} must depend on the install stamp"
    assert "pyproject.toml" in rules["$(STAMP)"].split()  # a dependency change reinstalls


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
@pytest.mark.parametrize("target, command", [
    ("test", ".venv/bin/python -m pytest -q"),
    ("test-slow", ".venv/bin/python -m pytest -q -m slow"),
    ("figures", ".venv/bin/theorybench figures --scale quick"),
])
def test_make_targets_run_the_documented_commands(target, command):
    # -n prints the commands without running them. When the install stamp is out of date the install
    # commands come first, so the target's own command is the last line.
    # Under `make test` this runs inside make: drop the inherited MAKE* variables, which add
    # "make[1]: Entering directory" lines, so the target prints what a user's `make -n` prints.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    out = subprocess.run(["make", "--no-print-directory", "-n", target], cwd=REPO, capture_output=True, text=True,
                         check=True, env=env).stdout
    assert out.strip().splitlines()[-1] == command


def test_every_xfail_is_strict():
    """pyproject.toml sets xfail_strict, and no test opts out: an expected failure that starts passing
    (or depends on rounding) shows up as a failure instead of going unnoticed."""
    assert re.search(r"^xfail_strict = true$", (REPO / "pyproject.toml").read_text(), re.M)
    offenders = [p.name for p in sorted((REPO / "tests").glob("*.py")) if re.search(r"xfail\((?:[^()]|\([^()]*\))*?strict\s*=\s*False", p.read_text())]
    assert offenders == []
