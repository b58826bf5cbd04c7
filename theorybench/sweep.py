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

This module holds what every executor shares: the members, their states, ``train_member`` (one
member's job), the submission record and the reports. The executors, ``theorybench.sweep_local`` (a
process pool) and ``theorybench.slurm`` (array jobs through submitit), depend on it and never on each
other; ``theorybench.sweep_run.run_sweep`` hands the ``missing`` and ``partial`` members to one of
them. Both call ``train_member`` → ``get_or_train`` on the same run store root, and the lock makes a
member trained twice at once impossible, so re-running a sweep, or two sweeps sharing members, is
always safe. A finished sweep trains nothing.

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
import os
import sys
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from . import runstore
from .device import DEVICE_ENV
from .experiment import ExperimentConfig
from .registry import SweepSpec
from .runs import get_or_train
from .train import NonFiniteError

STATES = ("done", "running", "partial", "failed", "missing")
EXTRA_STATES = ("damaged", "stale")  # shown in the counts only when some member is in them
UNUSABLE = ("failed", "damaged", "stale")  # what --retrain trains again
RECORD_DIR = ".sweeps"


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the sweep; the message says which members stopped where (all resumable)."""


# ---------------------------------------------------------------------------------- members
@dataclass(frozen=True)
class Member:
    """One run of a sweep: its config, the precision it trains in, and its folder in the run store."""

    config: ExperimentConfig
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
    precision = precision or spec.precision
    return [Member(cfg, precision, runstore.run_dir(cfg, root, precision)) for cfg in spec.members(scale)]


def member_status(member: Member, accept_stale: bool = False) -> MemberStatus:
    """The member's state in the run store (module docstring); never blocks, creates nothing. A damaged
    file is a state of its member, never an error of the whole status."""
    folder = member.dir
    if not folder.exists():
        return MemberStatus(member, "missing")
    try:
        try:
            runstore.check_stored_config(member.config, folder)
        except runstore.RunConfigMismatchError as err:
            return MemberStatus(member, "failed", message=str(err))
        run = runstore.Run(dir=folder, config=member.config.resolved())
        status = run.status
        if status == "failed":
            return MemberStatus(member, "failed", run.last_step, run.failure)
        if status != "done" and runstore.lock_held(folder):
            return MemberStatus(member, "running", runstore.checkpoint_step(folder))
        if status == "done":
            run.verify()
        stale = run.stale_reason()
        if stale and not accept_stale:
            return MemberStatus(member, "stale", runstore.checkpoint_step(folder), f"{stale}; --retrain retrains it, "
                                "--accept-stale takes it as it is")
        if status == "done":
            return MemberStatus(member, "done", run.last_step)
        if (folder / runstore.CHECKPOINT_FILE).exists():
            return MemberStatus(member, "partial", runstore.checkpoint_step(folder))
        return MemberStatus(member, "missing")
    except runstore.RunStoreError as err:
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

    @property
    def error(self) -> str | None:
        """What the submission record keeps: None for a member now done, else the message (or the status)."""
        return None if self.status == "done" else (self.message or self.status)


def train_member(config: ExperimentConfig, root: str, precision: str, device: str | None,
                 threads: int | None = None, accept_stale: bool = False) -> Outcome:
    """Train (or resume, or reuse) one member with ``get_or_train``; every failure becomes an Outcome.

    The body of every executor's job: a worker process, a SLURM array task, or this process. A
    failure is returned, not raised, so that the other members keep running; the run store's own
    refusals (damaged, stale, unwritable) carry their message, an unexpected failure also prints its
    traceback to stderr (the job's log). Ctrl-C (``TrainingInterrupted``) is raised, not returned."""
    key = runstore.run_dir(config, root, precision).name
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        run = get_or_train(config, root, progress=False, precision=precision, device=device,
                           accept_stale=accept_stale)
        return Outcome(key, run.status)
    except (NonFiniteError, runstore.RunFailedError) as err:
        return Outcome(key, "failed", str(err))
    except runstore.RunStoreError as err:
        return Outcome(key, "error", str(err))
    except Exception as err:  # noqa: BLE001 - reported per member; the sweep goes on
        traceback.print_exc(file=sys.stderr)
        return Outcome(key, "error", f"{type(err).__name__}: {err}")
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------- retraining and device
def discard(members: Sequence[Member]) -> None:
    """Delete the runs of ``members`` (under their locks, so never one being trained) for --retrain."""
    for member in members:
        if member.dir.exists():
            with runstore.locked(member.dir):
                runstore.clear_run(member.dir)


def default_device_request(device: str | None, scale: str) -> str:
    """The explicit request, else ``$THEORYBENCH_DEVICE``, else "auto" at full scale, "cpu" at quick scale."""
    return device or os.environ.get(DEVICE_ENV) or ("auto" if scale == "full" else "cpu")


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
    path = record_path(root, name, scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    members = read_record(root, name, scale)
    for key, entry in updates.items():
        members[key] = {**members.get(key, {}), **entry} if merge else dict(entry)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    runstore.atomic_write_json(path, {"sweep": name, "scale": scale, "updated_utc": now, "members": members})


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
             "  " + format_counts(counts)]
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


def format_counts(counts: Counter) -> str:
    """``done 3 · running 0 · …``: every state, and damaged and stale where some member is in them."""
    shown = [*STATES, *(state for state in EXTRA_STATES if counts.get(state))]
    return " · ".join(f"{state} {counts.get(state, 0)}" for state in shown)


__all__ = ["EXTRA_STATES", "STATES", "UNUSABLE", "Member", "MemberStatus", "Outcome", "SweepInterrupted",
           "default_device_request", "discard", "expand", "format_counts", "format_status", "member_status",
           "read_record", "statuses", "to_run", "train_member", "write_record"]
