"""``theorybench runs``: the runs of the run store, one line each, and where the store is.

Each line: the run folder, its state (``runstore.run_state``: done, failed, incomplete, running,
damaged, stale), the task and progress (last logged step / steps), the code that trained it (the
source hash, marked "current" when it is the code running now) and its size on disk. A folder whose
config cannot be read is listed as damaged. The family of a run is the family its name starts with.
"""

from __future__ import annotations

from pathlib import Path

from .code_version import code_version
from .registry import FAMILIES
from .runstore import Run, RunStoreError, folder_size, list_runs, run_state, store_root


def family_of(name: str) -> str | None:
    """The family a run name starts with (``variance_train-…`` → "variance"), or None."""
    for family in sorted(FAMILIES, key=len, reverse=True):
        if name == family or name.startswith(f"{family}_") or name.startswith(f"{family}-"):
            return family
    return None


def describe_run(run: Run | Path) -> dict[str, str]:
    """The listing's fields of one run folder."""
    if isinstance(run, Path):
        return {"folder": run.name, "state": "damaged", "family": family_of(run.name) or "-", "task": "?",
                "progress": "?", "code": "?", "size": _size(folder_size(run)),
                "why": f"{run / 'config.json'} cannot be read"}
    state, why = run_state(run)
    try:
        progress = f"{run.last_step}/{run.config.train.steps}"
    except RunStoreError:
        progress = "?"
    try:
        codes = [c for c in run.codes if c]
    except RunStoreError:
        codes = []
    source = codes[-1].get("source") if codes else None
    code = "-" if source is None else (f"{source} (current)" if source == code_version()["source"] else source)
    return {"folder": run.dir.name, "state": state, "family": family_of(run.config.name) or "-",
            "task": run.config.task.task_name, "progress": progress, "code": code,
            "size": _size(folder_size(run.dir)), "why": why or ""}


def format_runs(root: Path | str | None = None, family: str | None = None, state: str | None = None) -> str:
    """The listing: a header naming the store, then one line per run (filtered), reasons under bad ones."""
    root = store_root(root)
    rows = [describe_run(r) for r in list_runs(root)]
    rows = [r for r in rows if (family is None or r["family"] == family) and (state is None or r["state"] == state)]
    filters = ", ".join(f"{k} {v}" for k, v in (("family", family), ("status", state)) if v)
    lines = [f"run store: {root}" + (f" ({filters})" if filters else "") + f": {len(rows)} run(s)"]
    if not rows:
        return "\n".join(lines)
    columns = ("folder", "state", "task", "progress", "code", "size")
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    lines.append("  " + "  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for r in rows:
        lines.append("  " + "  ".join(r[c].ljust(widths[c]) for c in columns).rstrip())
        if r["why"] and r["state"] in ("failed", "damaged", "stale"):
            lines.append(f"      {r['why']}")
    return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


__all__ = ["describe_run", "family_of", "format_runs"]
