"""Where a figure's numbers came from: the code commit, the machine, the wall time and the runs it read.

``make_figures`` records one ``provenance`` block per figure in its JSON, so a committed result
(``results/medium/``) can be traced to the code and the run configs that made it, and
``theorybench claims --scale medium`` can flag a result whose configs the code no longer builds.
Runs are noted by ``get_or_train`` (``note_run``) while a figure is being made (``recording_runs``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent

_RUNS: list[dict] | None = None


@contextlib.contextmanager
def recording_runs() -> Iterator[list[dict]]:
    """Collect the runs that ``get_or_train`` hands out inside the block (name and config hash)."""
    global _RUNS
    saved, _RUNS = _RUNS, []
    try:
        yield _RUNS
    finally:
        _RUNS = saved


def note_run(name: str, config_hash: str) -> None:
    """Record that the figure being made read this run (no-op outside ``recording_runs``)."""
    if _RUNS is not None:
        entry = {"name": name, "config_hash": config_hash}
        if entry not in _RUNS:
            _RUNS.append(entry)


def code_commit() -> dict:
    """The git commit of the source checkout and whether tracked files differ from it; "unknown" where
    the package is not a git checkout (an installed wheel)."""
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=REPO_ROOT, capture_output=True, text=True,  # noqa: E731
                                        timeout=10, check=True).stdout.strip()
        commit = run("rev-parse", "HEAD")
        dirty = bool(run("status", "--porcelain", "--untracked-files=no"))
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


def machine() -> dict:
    """The machine the numbers were measured on (the CPU model where the OS says it)."""
    import torch  # here: the command line reads provenance without importing torch

    return {"platform": platform.platform(), "processor": _cpu_model(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}


def sizes_hash(sizes) -> str:
    """A short, stable hash of a study's sizes at one scale (a dict or dataclass of plain values).

    A dataclass hashes as the dict of its fields, so sizes that moved from a dict to a dataclass with the
    same keys and values keep their hash (and the results made with them stay current)."""
    payload = json.dumps(sizes, sort_keys=True, default=_plain)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _plain(value):
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else repr(value)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


__all__ = ["REPO_ROOT", "code_commit", "machine", "note_run", "recording_runs", "sizes_hash"]
