"""``run_sweep``: train a sweep's missing and partial members through one executor, and report it.

The dispatch point of sweeps. The members, their states and one member's job are in
``theorybench.sweep``; the executors, ``theorybench.sweep_local`` (a process pool on this machine)
and ``theorybench.slurm`` (array jobs through submitit), depend on those and never on each other;
this module, above all three, chooses between them. What each member came to is recorded in the
sweep's submission record (``theorybench.sweep.write_record``), so that ``--status`` can say why a
member that is not done stopped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import sweep_local
from .slurm import SlurmOptions, job_record, submit, wait_for
from .registry import EXECUTORS, SweepSpec
from .sweep import (EXTRA_STATES, STATES, UNUSABLE, Member, MemberStatus, Outcome, SweepInterrupted,
                    default_device_request, discard, expand, format_counts, statuses, to_run, write_record)


class SweepError(RuntimeError):
    """A sweep could not be run as asked (the message says why); nothing was started."""


@dataclass
class SweepResult:
    """What ``run_sweep`` did: the states before, the members started, their outcomes (empty for
    SLURM without waiting), the submitted jobs (SLURM), and the states after."""

    name: str
    scale: str
    before: list[MemberStatus]
    started: list[Member]
    outcomes: list[Outcome] = field(default_factory=list)
    jobs: list[Any] = field(default_factory=list)
    after: list[MemberStatus] = field(default_factory=list)

    @property
    def failures(self) -> list[tuple[str, str]]:
        """(member key, message) of every member that failed, before or now, or whose job errored."""
        final = {s.member.key: s for s in (self.after or self.before)}
        out = [(k, s.message or "") for k, s in final.items() if s.state in UNUSABLE]
        out += [(o.key, o.message or o.status) for o in self.outcomes
                if o.status == "error" and o.key in final and final[o.key].state not in ("done", *UNUSABLE)]
        return out


def run_sweep(spec: SweepSpec, scale: str, root: Path | str, *, executor: str = "local", jobs: int | None = None,
              precision: str | None = None, device: str | None = None, slurm: SlurmOptions | None = None,
              wait: bool = True, progress: bool | None = None, threads_per_job: int | None = None,
              mp_context: str | None = None, retrain: bool = False, accept_stale: bool = False) -> SweepResult:
    """Train the sweep's missing and partial members (``theorybench.sweep`` names the states).

    ``device`` is a device request ("cpu", "cuda", "cuda:1", "auto"; default ``$THEORYBENCH_DEVICE``,
    else "auto" at full scale and "cpu" at quick scale). ``executor="local"``: ``jobs`` processes
    (default: the cores, or the GPUs), ``threads_per_job`` torch threads each (default cores / jobs),
    ``mp_context`` the multiprocessing start method (default "forkserver"). ``executor="slurm"``:
    ``slurm`` holds the cluster options; ``wait`` blocks until every job ends. ``retrain`` discards
    and retrains the failed, damaged and stale members (here, before any job starts, so that a
    requeued job resumes rather than discards again); ``accept_stale`` reuses and resumes runs made
    by other code. Ctrl-C raises ``SweepInterrupted`` once the local workers have checkpointed.
    """
    if executor not in EXECUTORS:
        raise SweepError(f"executor={executor!r} is not allowed: one of {', '.join(map(repr, EXECUTORS))}")
    root = Path(root).resolve()  # jobs may start in another working directory
    request = default_device_request(device, scale)
    members = expand(spec, scale, root, precision)
    before = statuses(members, accept_stale)
    pending = to_run(before, retrain)
    result = SweepResult(spec.name, scale, before, pending)
    if not pending:
        result.after = before
        return result
    if retrain:
        discard([s.member for s in before if s.state in UNUSABLE])
    if executor == "local":
        _run_local(result, root, request, jobs=jobs, threads_per_job=threads_per_job, mp_context=mp_context,
                   progress=progress, accept_stale=accept_stale)
    else:
        _run_slurm(result, root, request, slurm or SlurmOptions(), wait=wait, progress=progress,
                   accept_stale=accept_stale)
    result.after = statuses(members, accept_stale)
    return result


def _run_local(result: SweepResult, root: Path, request: str, **options: Any) -> None:
    """The pending members in the local pool; raises ``SweepInterrupted`` if Ctrl-C stopped any."""
    pending = result.started
    result.outcomes = sweep_local.run_local(pending, root, device=request, desc=f"sweep {result.name}", **options)
    write_record(root, result.name, result.scale,
                 {o.key: {"executor": "local", "error": o.error} for o in result.outcomes}, merge=False)
    stopped = [o for o in result.outcomes if o.status == "interrupted"]
    # Members the pool never handed to a worker have no outcome at all: count them as not started too.
    cancelled = len(pending) - sum(1 for o in result.outcomes if o.status != "cancelled")
    if stopped or any(o.status == "cancelled" for o in result.outcomes):
        listed = ", ".join(o.message or o.key for o in stopped[:5]) + (" …" if len(stopped) > 5 else "")
        raise SweepInterrupted(
            f"sweep {result.name}: interrupted; {len(stopped)} member(s) stopped at a checkpoint"
            + (f" ({listed})" if stopped else "") + f", {cancelled} not started; "
            "run the same command again to resume them")


def _run_slurm(result: SweepResult, root: Path, request: str, options: SlurmOptions, wait: bool,
               progress: bool | None, accept_stale: bool) -> None:
    """The pending members as one array job; with ``wait``, their outcomes once every job has ended."""
    pending = result.started
    result.jobs = submit(pending, root, options, result.name, request, accept_stale=accept_stale)
    write_record(root, result.name, result.scale,
                 {m.key: {"executor": f"submitit:{options.cluster}", **job_record(j)}
                  for m, j in zip(pending, result.jobs)}, merge=False)
    if wait:
        result.outcomes = wait_for(result.jobs, pending, progress=progress)
        write_record(root, result.name, result.scale, {o.key: {"error": o.error} for o in result.outcomes})


def format_result(result: SweepResult) -> str:
    """What a finished ``run_sweep`` prints: what ran, the final counts, every failure with its message."""
    counts = Counter(s.state for s in result.after)
    lines = []
    if not result.started:
        lines.append(f"sweep {result.name}: nothing to run ({len(result.before)} members: "
                     + ", ".join(f"{counts[s]} {s}" for s in (*STATES, *EXTRA_STATES) if counts.get(s)) + ")")
    else:
        resumed = sum(1 for s in result.before if s.state == "partial")
        lines.append(f"sweep {result.name}: started {len(result.started)} of {len(result.before)} members"
                     + (f" ({resumed} resumed from their checkpoints)" if resumed else ""))
        lines.append("  now: " + format_counts(counts))
    for key, message in result.failures:
        lines.append(f"  failed: {key}: {message}")
    return "\n".join(lines)


__all__ = ["SweepError", "SweepResult", "format_result", "run_sweep"]
