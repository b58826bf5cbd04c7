"""Sweeps: run every member of a registered sweep that the run store lacks, locally or on SLURM.

A sweep (``registry.SweepSpec``) expands at a scale to a list of ``ExperimentConfig``s. Each member's
state is read from the run store, never from a scheduler, so it is the same wherever the runs were
computed:

- ``done``: done.json exists;
- ``failed``: failed.json exists (a NaN/Inf or a divergence, deterministic: it is not retried;
  ``--retrain`` retries it), or the folder holds another config;
- ``damaged``: a file of the run is unreadable or differs from its checksum (never reused;
  ``--retrain`` discards and retrains it);
- ``stale``: the run was trained by other code than the code running now (not reused; ``--retrain``
  retrains it, ``--accept-stale`` takes it as it is);
- ``running``: some process holds the run's lock (it is training it now);
- ``partial``: a checkpoint exists but nobody is training it (a killed job, a lost node): it
  resumes from that checkpoint, bit for bit as if never stopped;
- ``missing``: nothing to resume from.

``run_sweep`` trains the ``missing`` and ``partial`` members through an executor: ``local`` (a
process pool, ``theorybench.sweep_local``) or ``slurm`` (array jobs through submitit,
``theorybench.slurm``). Both call ``train_member`` → ``get_or_train`` on the same run store root, and
the lock makes a member trained twice at once impossible, so re-running a sweep, or two sweeps
sharing members, is always safe. A finished sweep trains nothing.

The last submission of each sweep is recorded in ``<root>/.sweeps/<name>-<scale>.json`` (per
member: executor, job id, log files, error), so that ``--status`` can show why a member that is not
done stopped. ``--status`` reads JSON and the text of job logs only: never a pickle whose path
comes from the run store.

Ctrl-C stops a local sweep within about a step: every member in training checkpoints where it is
(``theorybench.train``), no further member starts, and ``run_sweep`` raises ``SweepInterrupted``; the
same command resumes it.
"""

from __future__ import annotations

import datetime
import json
import sys
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .registry import SweepSpec

if TYPE_CHECKING:
    from .experiment import ExperimentConfig
    from .slurm import SlurmOptions

STATES = ("done", "running", "partial", "failed", "missing")
EXTRA_STATES = ("damaged", "stale")  # shown in the counts only when some member is in them
UNUSABLE = ("failed", "damaged", "stale")  # what --retrain trains again
RECORD_DIR = ".sweeps"
EXECUTORS = ("local", "slurm")


class SweepError(RuntimeError):
    """A sweep could not be run as asked (the message says why); nothing was started."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the sweep; the message says which members stopped where (all resumable)."""


# ---------------------------------------------------------------------------------- members
@dataclass(frozen=True)
class Member:
    """One run of a sweep: its config, the precision it trains in, and its folder in the run store."""

    config: "ExperimentConfig"
    precision: str
    dir: Path

    @property
    def key(self) -> str:
        """The run folder's name, ``<name>-<config hash>[-<precision>]``: unique in the run store."""
        return self.dir.name


@dataclass(frozen=True)
class MemberStatus:
    member: Member
    state: str
    step: int = 0  # done: the last step; running, partial: the checkpoint's step (where it would resume)
    message: str | None = None

    @property
    def steps(self) -> int:
        return self.member.config.train.steps


def expand(spec: SweepSpec, scale: str, root: Path | str, precision: str | None = None) -> list[Member]:
    """The sweep's members at ``scale`` under ``root``, in ``precision`` (default: the sweep's own)."""
    from .runstore import run_dir

    precision = precision or spec.precision
    return [Member(cfg, precision, run_dir(cfg, root, precision)) for cfg in spec.members(scale)]


def member_status(member: Member, accept_stale: bool = False) -> MemberStatus:
    """The member's state in the run store (module docstring); never blocks, creates nothing. A damaged
    file is a state of its member, never an error of the whole status."""
    from .runstore import (CHECKPOINT_FILE, Run, RunConfigMismatchError, RunStoreError, check_stored_config,
                           checkpoint_step, lock_held)

    folder = member.dir
    if not folder.exists():
        return MemberStatus(member, "missing")
    try:
        try:
            check_stored_config(member.config, folder)
        except RunConfigMismatchError as err:
            return MemberStatus(member, "failed", message=str(err))
        run = Run(dir=folder, config=member.config.resolved())
        status = run.status
        if status == "failed":
            return MemberStatus(member, "failed", run.last_step, run.failure)
        if status != "done" and lock_held(folder):
            return MemberStatus(member, "running", checkpoint_step(folder))
        if status == "done":
            run.verify()
        stale = run.stale_reason()
        if stale and not accept_stale:
            return MemberStatus(member, "stale", checkpoint_step(folder), f"{stale}; --retrain retrains it, "
                                "--accept-stale takes it as it is")
        if status == "done":
            return MemberStatus(member, "done", run.last_step)
        if (folder / CHECKPOINT_FILE).exists():
            return MemberStatus(member, "partial", checkpoint_step(folder))
        return MemberStatus(member, "missing")
    except RunStoreError as err:
        return MemberStatus(member, "damaged", message=str(err))


def statuses(members: Sequence[Member], accept_stale: bool = False) -> list[MemberStatus]:
    return [member_status(m, accept_stale) for m in members]


def to_run(states: Sequence[MemberStatus], retrain: bool = False) -> list[Member]:
    """The members a sweep trains: missing ones, and partial ones (resumed from their checkpoint);
    with ``retrain`` also the failed, damaged and stale ones (discarded first, see ``run_sweep``)."""
    wanted = ("missing", "partial", *(UNUSABLE if retrain else ()))
    return [s.member for s in states if s.state in wanted]


# ---------------------------------------------------------------------------------- one member
@dataclass(frozen=True)
class Outcome:
    """What training one member came to: "done", "failed" (NaN/Inf or divergence, stored), "error"
    (anything else), or after Ctrl-C "interrupted" (checkpointed) or "cancelled" (never began)."""

    key: str
    status: str
    message: str | None = None


def train_member(config: "ExperimentConfig", root: str, precision: str, device: str | None,
                 threads: int | None = None, accept_stale: bool = False) -> Outcome:
    """Train (or resume, or reuse) one member with ``get_or_train``; every failure becomes an Outcome.

    The body of every executor's job: a worker process, a SLURM array task, or this process. A
    failure is returned, not raised, so that the other members keep running; the run store's own
    refusals (damaged, stale, unwritable) carry their message, an unexpected failure also prints its
    traceback to stderr (the job's log). Ctrl-C (``TrainingInterrupted``) is raised, not returned."""
    import torch

    from .runstore import RunConfigMismatchError, RunFailedError, RunStoreError, get_or_train, run_dir
    from .train import NonFiniteError

    key = run_dir(config, root, precision).name
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        run = get_or_train(config, root, progress=False, precision=precision, device=device,
                           accept_stale=accept_stale)
        return Outcome(key, run.status)
    except (NonFiniteError, RunFailedError) as err:
        return Outcome(key, "failed", str(err))
    except (RunConfigMismatchError, RunStoreError) as err:
        return Outcome(key, "error", str(err))
    except Exception as err:  # noqa: BLE001 - reported per member; the sweep goes on
        traceback.print_exc(file=sys.stderr)
        return Outcome(key, "error", f"{type(err).__name__}: {err}")
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------- a whole sweep
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
              precision: str | None = None, device: str | None = None, slurm: "SlurmOptions | None" = None,
              wait: bool = True, progress: bool | None = None, threads_per_job: int | None = None,
              mp_context: str | None = None, retrain: bool = False, accept_stale: bool = False) -> SweepResult:
    """Train the sweep's missing and partial members; see the module docstring.

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
        from .sweep_local import run_local

        result.outcomes = run_local(pending, root, jobs=jobs, device=request, threads_per_job=threads_per_job,
                                    mp_context=mp_context, progress=progress, desc=f"sweep {spec.name}",
                                    accept_stale=accept_stale)
        entries = {o.key: {"executor": "local", "error": _error(o)} for o in result.outcomes}
        write_record(root, spec.name, scale, entries, merge=False)
        stopped = [o for o in result.outcomes if o.status == "interrupted"]
        # Members the pool never handed to a worker have no outcome at all: count them as not started too.
        cancelled = len(pending) - sum(1 for o in result.outcomes if o.status != "cancelled")
        if stopped or any(o.status == "cancelled" for o in result.outcomes):
            listed = ", ".join(o.message or o.key for o in stopped[:5]) + (" …" if len(stopped) > 5 else "")
            raise SweepInterrupted(
                f"sweep {spec.name}: interrupted; {len(stopped)} member(s) stopped at a checkpoint"
                + (f" ({listed})" if stopped else "") + f", {cancelled} not started; "
                "run the same command again to resume them")
    else:
        from .slurm import SlurmOptions, submit, wait_for

        options = slurm or SlurmOptions()
        result.jobs = submit(pending, root, options, spec.name, request, accept_stale=accept_stale)
        write_record(root, spec.name, scale, {m.key: {"executor": f"submitit:{options.cluster}", **_job_paths(j)}
                                              for m, j in zip(pending, result.jobs)}, merge=False)
        if wait:
            result.outcomes = wait_for(result.jobs, pending, progress=progress)
            write_record(root, spec.name, scale, {o.key: {"error": _error(o)} for o in result.outcomes})
    result.after = statuses(members, accept_stale)
    return result


def discard(members: Sequence[Member]) -> None:
    """Delete the runs of ``members`` (under their locks, so never one being trained) for --retrain."""
    from .runstore import _clear, _locked

    for member in members:
        if member.dir.exists():
            with _locked(member.dir):
                _clear(member.dir)


def default_device_request(device: str | None, scale: str) -> str:
    """The explicit request, else ``$THEORYBENCH_DEVICE``, else "auto" at full scale, "cpu" at quick scale."""
    import os

    from .device import DEVICE_ENV

    return device or os.environ.get(DEVICE_ENV) or ("auto" if scale == "full" else "cpu")


def _error(outcome: Outcome) -> str | None:
    return None if outcome.status == "done" else (outcome.message or outcome.status)


def _job_paths(job: Any) -> dict[str, str]:
    paths = job.paths
    return {"job_id": str(job.job_id), "stdout": str(paths.stdout), "stderr": str(paths.stderr),
            "result": str(paths.result_pickle), "error": None}


# ---------------------------------------------------------------------------------- submission record
def record_path(root: Path | str, name: str, scale: str) -> Path:
    return Path(root) / RECORD_DIR / f"{name}-{scale}.json"


def read_record(root: Path | str, name: str, scale: str) -> dict[str, dict[str, Any]]:
    path = record_path(root, name, scale)
    return json.loads(path.read_text())["members"] if path.exists() else {}


def write_record(root: Path | str, name: str, scale: str, updates: dict[str, dict[str, Any]],
                 merge: bool = True) -> None:
    """Put per-member entries into the sweep's record: a new submission replaces a member's entry
    (``merge=False``), what its jobs came to is merged into it."""
    from .runstore import atomic_write_json

    path = record_path(root, name, scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    members = read_record(root, name, scale)
    for key, entry in updates.items():
        members[key] = {**members.get(key, {}), **entry} if merge else dict(entry)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    atomic_write_json(path, {"sweep": name, "scale": scale, "updated_utc": now, "members": members})


def job_error(entry: dict[str, Any]) -> str | None:
    """The error a member's last job ended with: the one recorded when the sweep waited for it, else the
    last line of the job's stderr log when it names an error. Text only: a pickle (submitit's result
    file) whose path comes from the run store is never loaded, since loading it could run any code."""
    if entry.get("error"):
        return entry["error"]
    last = _last_log_line(entry.get("stderr"))
    if last and ("Error" in last or "Exception" in last or "Killed" in last):
        return f"job {entry.get('job_id')}: {last} (log: {entry.get('stderr')})"
    return None


def _last_log_line(path: str | None, tail: int = 4096) -> str | None:
    """The last non-empty line of a log (a progress bar's carriage-return updates collapsed)."""
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - tail))
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    lines = [line.split("\r")[-1].strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else None


# ---------------------------------------------------------------------------------- reporting
def format_status(name: str, scale: str, root: Path | str, states: Sequence[MemberStatus], limit: int = 20) -> str:
    """The ``--status`` report: counts per state, then the members that are not done, failures with messages."""
    counts = Counter(s.state for s in states)
    record = read_record(root, name, scale)
    lines = [f"sweep {name} (scale {scale}, {len(states)} members, run store {root}):",
             "  " + _counts(counts)]
    for state in ("running", "partial", "failed", "damaged", "stale", "missing"):
        group = [s for s in states if s.state == state]
        for s in group[:limit] if state not in UNUSABLE else group:  # every unusable member is shown
            lines.append(f"  {state}: {_describe(s, record.get(s.member.key, {}))}")
        if state not in UNUSABLE and len(group) > limit:
            lines.append(f"  {state}: … and {len(group) - limit} more")
    if states and counts.get("done", 0) == len(states):
        lines.append("  all members done")
    return "\n".join(lines)


def _describe(s: MemberStatus, entry: dict[str, Any]) -> str:
    text = s.member.key
    if s.state in ("running", "partial"):
        text += f" (checkpoint at step {s.step}/{s.steps}" + (": resumes from it)" if s.state == "partial" else ")")
    if s.state in UNUSABLE:
        text += f": {s.message}"
        return text
    error = job_error(entry) if entry else None
    if error and s.state in ("partial", "missing"):
        text += f"; last job: {error}"
    elif entry.get("job_id") and s.state in ("partial", "missing"):
        text += f"; last job {entry['job_id']} (log: {entry.get('stderr')})"
    return text


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
        lines.append("  now: " + _counts(counts))
    for key, message in result.failures:
        lines.append(f"  failed: {key}: {message}")
    return "\n".join(lines)


def _counts(counts: Counter) -> str:
    shown = [*STATES, *(state for state in EXTRA_STATES if counts.get(state))]
    return " · ".join(f"{state} {counts.get(state, 0)}" for state in shown)


__all__ = ["EXECUTORS", "STATES", "SweepInterrupted", "discard", "Member", "MemberStatus", "Outcome", "SweepError",
           "SweepResult",
           "default_device_request", "expand", "format_result", "format_status", "member_status", "read_record",
           "run_sweep", "statuses", "to_run", "train_member"]
