"""Ctrl-C stops a sweep within about a step: the members in training checkpoint where they stand, no
other member starts, no traceback, and running the sweep again resumes them bit for bit."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time

import pandas as pd
import pytest
import torch

from _train_worker import tiny_config
from theorybench import registry
from theorybench.cli import main
from theorybench.registry import SweepSpec, isolated_registry
from theorybench.runs import get_or_train
from theorybench.runstore import CHECKPOINT_FILE, DONE_FILE, RUNTIME_FILE, checkpoint_step, load_run
from theorybench.sweep import SweepInterrupted, expand
from theorybench.sweep_run import run_sweep
from toy_models.tasks.markov import MarkovTask


def member(seed: int, steps: int = 20):
    return dataclasses.replace(tiny_config(steps=steps), name=f"tiny_s{seed}", seed=seed)


def sigint_at_batch(monkeypatch, n: int) -> None:
    """Ctrl-C (SIGINT to this process) during the n-th batch draw, i.e. in the middle of a step."""
    original, calls = MarkovTask.sample, {"n": 0}

    def sample(self, batch_size, generator):
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, batch_size, generator)

    monkeypatch.setattr(MarkovTask, "sample", sample)


def assert_same_run(a, b) -> None:
    pd.testing.assert_frame_equal(a.metrics, b.metrics, check_exact=True)
    sa, sb = a.load_model().state_dict(), b.load_model().state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture
def two_members():
    members = [member(0), member(1)]
    with isolated_registry():
        spec = registry.register_sweep(SweepSpec("variance_interrupt", "variance", lambda scale: members))
        yield spec, members


def test_ctrl_c_checkpoints_the_member_in_training_and_starts_no_other(two_members, tmp_path, monkeypatch):
    spec, members = two_members
    first, second = expand(spec, "quick", tmp_path)
    with monkeypatch.context() as mp:
        sigint_at_batch(mp, 2 + 7)  # two eval batches, then Ctrl-C while drawing the batch of step 7
        stopped = "1 member\\(s\\) stopped at a checkpoint .*checkpoint at step 7\\)\\), 1 not started"
        with pytest.raises(SweepInterrupted, match=stopped):
            run_sweep(spec, "quick", tmp_path, jobs=1, threads_per_job=1)
    # Checkpoints come every 10 steps; the interrupted step 7 was finished and saved, nothing was lost.
    assert checkpoint_step(first.dir) == 7 and not (first.dir / DONE_FILE).exists()
    assert not second.dir.exists()
    result = run_sweep(spec, "quick", tmp_path, jobs=1, threads_per_job=1)
    assert [s.state for s in result.after] == ["done", "done"]
    assert_same_run(load_run(first.dir), get_or_train(members[0], tmp_path / "reference", progress=False))


def test_ctrl_c_of_the_command_line_exits_130_without_a_traceback(two_members, tmp_path, monkeypatch, capsys):
    with monkeypatch.context() as mp:
        sigint_at_batch(mp, 2 + 3)
        code = main(["sweep", "variance_interrupt", "--root", str(tmp_path), "--jobs", "1", "--threads", "1"])
    out, err = capsys.readouterr()
    assert code == 130 and "Traceback" not in err
    assert "interrupted" in err and "run the same command again to resume" in err
    code = main(["sweep", "variance_interrupt", "--root", str(tmp_path), "--jobs", "1", "--threads", "1"])
    assert code == 0 and "started 2 of 2 members (1 resumed from their checkpoints)" in capsys.readouterr().out


def test_ctrl_c_of_train_saves_a_checkpoint_and_says_how_to_resume(tmp_path, monkeypatch, capsys):
    from theorybench.registry import ExperimentSpec

    cfg = member(0)
    with isolated_registry():
        registry.register_experiment(ExperimentSpec("variance_tiny", "variance", lambda scale: cfg))
        with monkeypatch.context() as mp:
            sigint_at_batch(mp, 2 + 12)
            code = main(["train", "variance_tiny", "--runs", str(tmp_path)])
        err = capsys.readouterr().err
        assert code == 130 and "Traceback" not in err
        assert "stopped after step 12 of 20" in err and "running the same command again resumes it" in err
        assert main(["train", "variance_tiny", "--runs", str(tmp_path)]) == 0
    assert_same_run(get_or_train(cfg, tmp_path, progress=False),
                    get_or_train(cfg, tmp_path / "reference", progress=False))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_stops_a_worker_pool_within_seconds(tmp_path, monkeypatch, signum):
    """Two workers (fork, so they see the slowed task); SIGINT (Ctrl-C) or SIGTERM (kill, a scheduler) to
    this process only: it relays a clean stop, and no worker is left training on, orphaned."""
    members = [member(s, steps=1500) for s in range(3)]
    original = MarkovTask.sample

    def slow_sample(self, batch_size, generator):
        time.sleep(0.01)  # 1500 steps ≥ 15 s per member: the interrupt lands mid-run
        return original(self, batch_size, generator)

    monkeypatch.setattr(MarkovTask, "sample", slow_sample)
    with isolated_registry():
        spec = registry.register_sweep(SweepSpec("variance_pool_interrupt", "variance", lambda scale: members))
        states = expand(spec, "quick", tmp_path)
        sent = {}

        def interrupt_once_both_train():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not all((m.dir / RUNTIME_FILE).exists() for m in states[:2]):
                time.sleep(0.05)
            time.sleep(0.3)
            sent["at"] = time.monotonic()
            os.kill(os.getpid(), signum)

        threading.Thread(target=interrupt_once_both_train, daemon=True).start()
        with pytest.raises(SweepInterrupted, match="2 member\\(s\\) stopped at a checkpoint .*, 1 not started"):
            run_sweep(spec, "quick", tmp_path, jobs=2, threads_per_job=1, mp_context="fork")
        stopped_after = time.monotonic() - sent["at"]
    # Each worker finishes one step (~10 ms) and writes one checkpoint of a tiny model: seconds at most,
    # even on a loaded machine, while the members themselves had ≥ 14 s left to run (1500 × 10 ms of
    # sleep alone, less the ≤ 1 s before the signal): stopping within 10 s is the relay working.
    assert stopped_after < 10.0
    for m in states[:2]:
        assert 0 < checkpoint_step(m.dir) < 1500 and not (m.dir / DONE_FILE).exists()
        assert (m.dir / CHECKPOINT_FILE).exists()
    assert not states[2].dir.exists()  # the third member never started
