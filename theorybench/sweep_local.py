"""The local executor of a sweep: a pool of worker processes on this machine.

``jobs`` workers (default: one per usable core on the CPU, one per GPU on CUDA), each with
``threads_per_job`` torch threads (default cores / jobs, so the pool does not oversubscribe the
cores; the threads fix the float reductions, so a member trained here matches a serial run with the
same thread count bit for bit). On CUDA each worker takes one GPU. With ``jobs == 1`` the members
run in this process, one after another, with no worker start-up. Ctrl-C stops the pool cleanly
(``run_local``): the interrupted members are checkpointed where they stood.

Workers start by "forkserver" by default: a server process imports the trainer once and forks a
fresh worker from it, so workers neither pay the import (seconds: torch and TransformerLens) nor
inherit this process's thread pools or CUDA state, which "fork" would copy unsafely.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from .device import resolve_device
from .progress import ProgressLines, show_progress
from .runstore import checkpoint_step
from .sweep import Member, Outcome, train_member
from .train import TrainingInterrupted

_WORKER: dict[str, object] = {}


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which a SLURM allocation or taskset narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_devices(device: str) -> list[str]:
    """The devices the workers use: one per visible GPU for "cuda", the one named for "cuda:N", else cpu."""
    resolved = resolve_device(device)
    if resolved.type != "cuda" or resolved.index is not None:
        return [str(resolved)]
    return [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def run_local(members: Sequence[Member], root: Path | str, *, jobs: int | None = None, device: str = "cpu",
              threads_per_job: int | None = None, mp_context: str | None = None, progress: bool | None = None,
              desc: str = "sweep", accept_stale: bool = False) -> list[Outcome]:
    """Train ``members`` in a process pool; an Outcome per member, in the order they finish.

    Ctrl-C: the workers ignore SIGINT themselves; this process relays one SIGINT to each, which the
    trainer turns into "checkpoint after this step and stop", sets the stop event so that no worker
    starts another member, and waits for them (seconds: one step and a checkpoint). The members that
    stopped come back as Outcomes with status "interrupted" (those that never began: "cancelled"); a
    second Ctrl-C terminates the workers (their runs keep their last checkpoint) and raises
    KeyboardInterrupt."""
    devices = worker_devices(device)
    on_gpu = devices[0].startswith("cuda")
    jobs = jobs or (len(devices) if on_gpu else usable_cores())
    jobs = max(1, min(jobs, len(members)))
    threads = threads_per_job or max(1, usable_cores() // jobs)
    show = show_progress(progress)
    bar = tqdm(total=len(members), desc=desc, unit="run", disable=not show, dynamic_ncols=True)
    lines = ProgressLines(desc, len(members), progress)  # where no bar is drawn (a log file)
    outcomes: list[Outcome] = []
    try:
        if jobs == 1:
            for i, m in enumerate(members):
                try:
                    outcomes.append(train_member(m.config, str(root), m.precision, devices[0], threads, accept_stale))
                except KeyboardInterrupt as err:  # the trainer checkpointed (TrainingInterrupted) or never began
                    outcomes.append(_interrupted(m, err))
                    outcomes += [Outcome(r.key, "cancelled", f"{r.key} (not started)") for r in members[i + 1:]]
                    break
                _advance(bar, lines, outcomes)
            return outcomes
        ctx = multiprocessing.get_context(mp_context or "forkserver")
        if (mp_context or "forkserver") == "forkserver":
            ctx.set_forkserver_preload(["theorybench.train", "theorybench.sweep"])
        queue, stop = ctx.Queue(), ctx.Event()
        for i in range(jobs):
            queue.put(devices[i % len(devices)])
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                                 initargs=(queue, threads, stop)) as pool, _term_as_interrupt():
            futures = {pool.submit(_work, m.config, str(root), m.precision, accept_stale): m for m in members}
            try:
                _collect(futures, outcomes, bar, lines)
            except KeyboardInterrupt:
                stop.set()
                for future in futures:
                    future.cancel()
                _signal_workers(pool)
                try:
                    _collect({f: m for f, m in futures.items() if not f.cancelled()
                              and all(o.key != m.key for o in outcomes)}, outcomes, bar, lines)
                except KeyboardInterrupt:  # a second Ctrl-C: stop waiting; the runs keep their last checkpoint
                    for process in list(getattr(pool, "_processes", {}).values()):
                        process.terminate()
                    raise
        return outcomes
    finally:
        bar.close()


def _collect(futures: dict, outcomes: list[Outcome], bar, lines: ProgressLines) -> None:
    for future in as_completed(futures):
        member = futures[future]
        try:
            outcomes.append(future.result())
        except BrokenProcessPool:
            outcomes.append(Outcome(member.key, "error", "its worker process died (killed, or out of "
                                    "memory); run the sweep again to resume it"))
        except KeyboardInterrupt as err:  # the worker's trainer stopped on the relayed SIGINT
            outcomes.append(_interrupted(member, err))
        except Exception as err:  # noqa: BLE001 - e.g. an unpicklable config
            outcomes.append(Outcome(member.key, "error", f"{type(err).__name__}: {err}"))
        _advance(bar, lines, outcomes)


def _interrupted(member: Member, err: BaseException) -> Outcome:
    try:
        step = checkpoint_step(member.dir)
    except Exception:  # noqa: BLE001 - only for the message
        step = None
    if not step:
        return Outcome(member.key, "cancelled", f"{member.key} (not started)")
    return Outcome(member.key, "interrupted", f"{member.key} (checkpoint at step {step})")


@contextlib.contextmanager
def _term_as_interrupt():
    """SIGTERM (``kill``, a scheduler ending the job) stops the pool like Ctrl-C: without this the parent
    would die at once and leave its workers training on, orphaned. Only the main thread can set handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _signal_workers(pool) -> None:
    """Relay Ctrl-C to the workers (a signal sent to this process alone would not reach them). The pool
    keeps its processes in ``_processes``; if a future Python hides them, the stop event still keeps
    new members from starting."""
    for pid in list(getattr(pool, "_processes", {}) or {}):
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            pass


def _init_worker(queue, threads: int, stop) -> None:
    # Ctrl-C at a terminal reaches every process of the group: the worker itself ignores it, and only
    # the trainer (which installs its own handler while training) turns it into a clean stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER["device"] = queue.get()
    _WORKER["threads"] = threads
    _WORKER["stop"] = stop


def _work(config, root: str, precision: str, accept_stale: bool = False) -> Outcome:
    if _WORKER["stop"].is_set():  # the sweep was interrupted before this member began
        raise TrainingInterrupted("not started")
    return train_member(config, root, precision, _WORKER["device"], _WORKER["threads"], accept_stale)


def _advance(bar, lines: ProgressLines, outcomes: list[Outcome]) -> None:
    bad = sum(1 for o in outcomes if o.status != "done")
    if bad:
        bar.set_postfix(failed=bad, refresh=False)
    bar.update(1)
    lines.finished(f"{outcomes[-1].key}: {outcomes[-1].status}")


__all__ = ["run_local", "usable_cores", "worker_devices"]
