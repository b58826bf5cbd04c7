"""Sweeps on the local executor: member states, resume of a killed member, equality with serial runs.

Workers are forked here ("fork": they inherit this process's imports, so a worker costs no ~8 s
TransformerLens import); the default start method, "forkserver", runs in a slow test. Every worker
uses this process's torch thread count, so float reductions, and therefore every metric, match a
serial run bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import time

import pandas as pd
import pytest
import torch

import theorybench.sweep_local
from _interrupt import Interrupt, interrupt_at_batch
from _train_worker import tiny_config, train_slowly
from theorybench import runstore
from theorybench.registry import SweepSpec, isolated_registry, register_sweep
from theorybench.runs import get_or_train
from theorybench.runstore import CHECKPOINT_FILE, CONFIG_FILE, RUNTIME_FILE, load_checkpoint, run_dir
from theorybench.sweep import expand, member_status, statuses
from theorybench.sweep_run import run_sweep
from theorybench.train import NonFiniteError

THREADS = torch.get_num_threads()


def assert_same_run(a, b) -> None:
    """Bit-identical metrics and final weights (check_exact: no tolerance at all)."""
    pd.testing.assert_frame_equal(a.metrics, b.metrics, check_exact=True)
    sa, sb = a.load_model().state_dict(), b.load_model().state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def seeds(n: int, steps: int = 20):
    """``n`` seeds of the tiny run, named per seed."""
    return [dataclasses.replace(tiny_config(steps=steps), name=f"tiny_s{s}", seed=s) for s in range(n)]


@pytest.fixture
def sweep_registry():
    with isolated_registry():
        yield


def _register(build, name="variance_test_sweep"):
    return register_sweep(SweepSpec(name, "variance", build))




# ---------------------------------------------------------------------------------- states
def test_member_states_come_from_the_run_store(sweep_registry, tmp_path, monkeypatch):
    done, partial, running, missing = seeds(4)
    diverging = dataclasses.replace(tiny_config(steps=10, name="sgd", lr=1e30), name="tiny_nan")
    spec = _register(lambda scale: [done, partial, running, missing, diverging])
    get_or_train(done, tmp_path, progress=False)
    with pytest.raises(NonFiniteError):
        get_or_train(diverging, tmp_path, progress=False)
    # 2 eval batches are drawn first: batch 2 + 15 is step 15, after the checkpoint at step 10.
    interrupt_at_batch(monkeypatch, 2 + 15)
    with pytest.raises(Interrupt):
        get_or_train(partial, tmp_path, progress=False)
    monkeypatch.undo()
    members = expand(spec, "quick", tmp_path)
    with runstore.locked(run_dir(running, tmp_path)):  # as a process training it holds the lock
        got = {s.member.config.name: s for s in statuses(members)}
    assert {k: s.state for k, s in got.items()} == {
        "tiny_s0": "done", "tiny_s1": "partial", "tiny_s2": "running", "tiny_s3": "missing", "tiny_nan": "failed"}
    assert got["tiny_s1"].step == 10 == load_checkpoint(run_dir(partial, tmp_path) / CHECKPOINT_FILE)["step"]
    assert got["tiny_s0"].step == 20 and got["tiny_nan"].message.startswith("step ")
    # Once the lock is released (the trainer died), a folder with no checkpoint is simply missing.
    assert member_status(members[2]).state == "missing"


def test_a_folder_holding_another_config_is_a_failed_member(sweep_registry, tmp_path):
    cfg, other = seeds(2)
    spec = _register(lambda scale: [cfg])
    folder = run_dir(cfg, tmp_path)
    folder.mkdir(parents=True)
    (folder / CONFIG_FILE).write_text(json.dumps(other.resolved().to_dict()))
    (state,) = statuses(expand(spec, "quick", tmp_path))
    assert state.state == "failed" and "holds a different config" in state.message


# ---------------------------------------------------------------------------------- running
def test_sweep_equals_serial_runs_and_a_finished_sweep_trains_nothing(sweep_registry, tmp_path, monkeypatch):
    configs = seeds(3)
    spec = _register(lambda scale: configs)
    result = run_sweep(spec, "quick", tmp_path / "sweep", jobs=2, mp_context="fork", threads_per_job=THREADS,
                       progress=False)
    assert [s.state for s in result.before] == ["missing"] * 3 and len(result.started) == 3
    assert [s.state for s in result.after] == ["done"] * 3 and result.failures == []
    assert sorted(o.status for o in result.outcomes) == ["done"] * 3
    for cfg in configs:  # the same runs, one after another in this process
        serial = get_or_train(cfg, tmp_path / "serial", progress=False)
        assert_same_run(runstore.load_run(run_dir(cfg, tmp_path / "sweep")), serial)

    folders = [run_dir(c, tmp_path / "sweep") for c in configs]
    before = {p: p.stat().st_mtime_ns for f in folders for p in f.iterdir()}

    def no_training(*args, **kwargs):
        raise AssertionError("a finished sweep started workers")

    monkeypatch.setattr(theorybench.sweep_local, "run_local", no_training)
    again = run_sweep(spec, "quick", tmp_path / "sweep", jobs=2, mp_context="fork", progress=False)
    assert again.started == [] and [s.state for s in again.after] == ["done"] * 3
    assert {p: p.stat().st_mtime_ns for f in folders for p in f.iterdir()} == before


def test_a_member_killed_mid_run_resumes_from_its_checkpoint(sweep_registry, tmp_path):
    """A process training one member is SIGKILLed after its first checkpoint; the sweep resumes it."""
    killed_cfg = tiny_config()  # what train_slowly trains: 60 steps, a checkpoint every 10
    other = seeds(1)[0]
    spec = _register(lambda scale: [killed_cfg, other])
    root = tmp_path / "sweep"
    folder = run_dir(killed_cfg, root)
    proc = multiprocessing.get_context("fork").Process(target=train_slowly, args=(str(root),))
    proc.start()
    try:
        deadline = time.monotonic() + 60
        while not (folder / CHECKPOINT_FILE).exists():
            assert proc.exitcode is None, f"worker exited early with status {proc.exitcode}"
            assert time.monotonic() < deadline, "worker wrote no checkpoint within 60 s"
            time.sleep(0.005)
        time.sleep(0.1)  # 20 ms per batch: 50 steps (> 1 s) remain, so the kill lands mid-run
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.join()
    assert proc.exitcode == -signal.SIGKILL
    checkpoint_step = load_checkpoint(folder / CHECKPOINT_FILE)["step"]
    assert 10 <= checkpoint_step < killed_cfg.train.steps

    result = run_sweep(spec, "quick", root, jobs=2, mp_context="fork", threads_per_job=THREADS, progress=False)
    assert [s.state for s in result.before] == ["partial", "missing"]
    assert [s.state for s in result.after] == ["done", "done"]
    segments = json.loads((folder / RUNTIME_FILE).read_text())["segments"]
    # Resumed, not restarted: the sweep's segment starts where the killed one's last checkpoint was.
    assert [s["from_step"] for s in segments] == [0, checkpoint_step]
    assert segments[0]["pid"] != segments[1]["pid"] != os.getpid()
    assert not list(folder.glob(".*.tmp"))
    assert_same_run(runstore.load_run(folder), get_or_train(killed_cfg, tmp_path / "reference", progress=False))


def test_failed_members_are_reported_after_the_others_ran(sweep_registry, tmp_path):
    good = seeds(1, steps=10)[0]
    diverging = dataclasses.replace(tiny_config(steps=10, name="sgd", lr=1e30), name="tiny_nan")
    spec = _register(lambda scale: [diverging, good])
    result = run_sweep(spec, "quick", tmp_path, jobs=1, threads_per_job=THREADS, progress=False)  # in this process
    assert [s.state for s in result.after] == ["failed", "done"]
    ((key, message),) = result.failures
    assert key == run_dir(diverging, tmp_path).name and message.startswith("step ")
    again = run_sweep(spec, "quick", tmp_path, jobs=1, threads_per_job=THREADS, progress=False)
    assert again.started == [] and again.failures == result.failures  # a NaN is not retried


@pytest.mark.slow
def test_the_default_forkserver_pool_gives_the_serial_results(sweep_registry, tmp_path):
    """The start method the command line uses (each worker forked from a server that imported the trainer)."""
    configs = seeds(2)
    spec = _register(lambda scale: configs)
    result = run_sweep(spec, "quick", tmp_path / "sweep", jobs=2, threads_per_job=THREADS, progress=False)
    assert [s.state for s in result.after] == ["done", "done"]
    for cfg in configs:
        assert_same_run(runstore.load_run(run_dir(cfg, tmp_path / "sweep")),
                        get_or_train(cfg, tmp_path / "serial", progress=False))
