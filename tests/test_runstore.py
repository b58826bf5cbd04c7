"""The run store: folder identity, cache hits without training, invalidation, atomic files."""

from __future__ import annotations

import dataclasses
import json
import math
import os

import pandas as pd
import pytest
import torch

import theorybench.train
from _train_worker import tiny_config
from theorybench.runs import get_or_train
from theorybench.runstore import (CHECKPOINT_FILE, CONFIG_FILE, DONE_FILE, METRICS_FILE, Run, RunConfigMismatchError,
                                  StoreAccessError, atomic_write_bytes, atomic_write_metrics, load_run, read_metrics,
                                  run_dir)
from toy_models import Transformer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    cfg = tiny_config(steps=10)
    return cfg, root, get_or_train(cfg, root, progress=False)


def test_run_folder_is_named_by_the_derived_name_and_config_hash(trained):
    cfg, root, run = trained
    assert run.dir == root / f"tiny-pre-L1-d16-lr0.003-s0-t10-{cfg.config_hash()}" == run_dir(cfg, root)
    assert run.status == "done"
    assert {p.name for p in run.dir.iterdir()} >= {CONFIG_FILE, CHECKPOINT_FILE, METRICS_FILE, DONE_FILE}
    assert json.loads((run.dir / CONFIG_FILE).read_text()) == cfg.resolved().to_dict()


def test_an_existing_run_is_returned_without_training(trained, monkeypatch):
    cfg, root, run = trained
    before = {p.name: p.stat().st_mtime_ns for p in run.dir.iterdir()}

    def no_training(*args, **kwargs):
        raise AssertionError("a done run was trained again")

    monkeypatch.setattr(theorybench.train, "train", no_training)
    again = get_or_train(cfg, root, progress=False)
    assert again.dir == run.dir and again.config == cfg.resolved()
    assert {p.name: p.stat().st_mtime_ns for p in run.dir.iterdir()} == before
    pd.testing.assert_frame_equal(again.metrics, run.metrics, check_exact=True)


def test_a_changed_config_never_returns_the_stale_run(trained):
    cfg, root, run = trained
    changed = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, lr=1e-2))
    other = get_or_train(changed, root, progress=False)
    assert other.dir != run.dir and other.config == changed.resolved()
    assert not other.metrics.train_loss.equals(run.metrics.train_loss)


def test_a_folder_holding_another_config_is_refused(trained, tmp_path):
    cfg, _, run = trained
    changed = dataclasses.replace(cfg, seed=5)
    folder = run_dir(changed, tmp_path)
    folder.mkdir(parents=True)
    # As if the hash collided or the folder was copied by hand: its config is not the requested one.
    (folder / CONFIG_FILE).write_text((run.dir / CONFIG_FILE).read_text())
    (folder / DONE_FILE).write_text("{}")
    with pytest.raises(RunConfigMismatchError, match="differs in: model, seed"):
        get_or_train(changed, tmp_path, progress=False)


def test_load_run_gives_config_metrics_and_model(trained):
    cfg, _, run = trained
    loaded = load_run(run.dir)
    assert loaded.config == cfg.resolved() and loaded.status == "done"
    m = loaded.metrics
    assert list(m.step) == [5, 10] and m.train_loss.notna().all()
    model = loaded.load_model()
    assert isinstance(model, Transformer) and not model.training
    saved = torch.load(run.dir / CHECKPOINT_FILE, weights_only=True)["model"]
    assert all(torch.equal(model.state_dict()[k], saved[k]) for k in saved)
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        load_run(run.dir / "artifacts")


def test_artifact_paths_stay_inside_the_artifacts_folder(trained):
    _, _, run = trained
    path = run.artifact_path("probes/attention.pt")
    assert path == (run.dir / "artifacts" / "probes" / "attention.pt").resolve() and path.parent.is_dir()
    for bad in ("../config.json", "/etc/passwd"):
        with pytest.raises(ValueError, match="inside"):
            run.artifact_path(bad)


def test_status_of_an_incomplete_run(tmp_path):
    cfg = tiny_config(steps=10)
    folder = run_dir(cfg, tmp_path)
    folder.mkdir(parents=True)
    (folder / CONFIG_FILE).write_text(json.dumps(cfg.resolved().to_dict()))
    assert Run(dir=folder, config=cfg.resolved()).status == "incomplete"
    assert list(load_run(folder).metrics.columns) == ["step", "train_loss", "lr"]


def test_lock_held_sees_a_training_process_and_creates_nothing(trained, tmp_path):
    import multiprocessing

    from theorybench.runstore import lock_held, locked

    _, _, run = trained
    assert not lock_held(run.dir) and not lock_held(tmp_path / "absent")
    assert not (tmp_path / "absent").exists()
    with locked(run.dir):  # another open file of the lock, as another process would have
        assert lock_held(run.dir)
        # A separate process sees it too (flock locks are shared by all processes on the file).
        probe = multiprocessing.get_context("fork").Process(target=lambda: os._exit(3 if lock_held(run.dir) else 4))
        probe.start()
        probe.join()
        assert probe.exitcode == 3
    assert not lock_held(run.dir)


def test_checkpoint_step_reads_where_a_run_would_resume(trained, tmp_path):
    from theorybench.runstore import checkpoint_step

    _, _, run = trained
    assert checkpoint_step(run.dir) == 10 == torch.load(run.dir / CHECKPOINT_FILE, weights_only=True)["step"]
    assert checkpoint_step(tmp_path) == 0


# ---------------------------------------------------------------------------------- atomic files
def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "file.json"
    atomic_write_bytes(path, b"old")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StoreAccessError, match=f"cannot write {path}: disk full"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]


def test_a_leftover_temp_file_is_never_read_and_is_removed_on_resume(tmp_path):
    cfg = tiny_config(steps=10)
    folder = run_dir(cfg, tmp_path)
    folder.mkdir(parents=True)
    # What a writer killed mid-write leaves: a truncated temp file next to where the checkpoint goes.
    (folder / f".{CHECKPOINT_FILE}.abc123.tmp").write_bytes(b"PK\x03\x04 truncated")
    run = get_or_train(cfg, tmp_path, progress=False)
    assert run.status == "done" and not list(folder.glob(".*.tmp"))
    assert load_run(folder).metrics.step.tolist() == [5, 10]


def test_metrics_csv_round_trips_floats_bit_for_bit(tmp_path):
    awkward = [0.1 + 0.2, 1 / 3, math.pi * 1e-300, 2.0**-1074, 1.7976931348623157e308, -0.0, 123456789.123456789]
    rows = [{"step": i + 1, "train_loss": x, "lr": x / 7, "eval_loss": (x if i % 2 else math.nan)}
            for i, x in enumerate(awkward)]
    atomic_write_metrics(tmp_path / "m.csv", rows)
    back = read_metrics(tmp_path / "m.csv")
    assert back.step.tolist() == list(range(1, len(awkward) + 1))
    for column in ("train_loss", "lr", "eval_loss"):
        for got, row in zip(back[column], rows):
            want = row[column]
            assert (math.isnan(got) and math.isnan(want)) or (got == want and math.copysign(1, got) ==
                                                               math.copysign(1, want)), (column, got, want)
