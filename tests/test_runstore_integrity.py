"""A damaged run is never reused: every stored file cut, corrupted or edited is refused naming the file,
a retrain restores the run bit for bit, and loading a checkpoint verifies it."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import shutil

import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _train_worker import tiny_config
from theorybench import runstore
from theorybench.runs import get_or_train
from theorybench.runstore import (CHECKPOINT_FILE, CONFIG_FILE, DONE_FILE, FAILED_FILE, METRICS_FILE, RUNTIME_FILE,
                                  WEIGHTS_FILE, Run, RunConfigMismatchError, RunDamagedError, RunStoreError,
                                  StoreAccessError, load_run, run_dir)

STORED = (CONFIG_FILE, CHECKPOINT_FILE, WEIGHTS_FILE, METRICS_FILE, RUNTIME_FILE, DONE_FILE)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """One finished tiny run (20 steps), copied by each test that damages it."""
    root = tmp_path_factory.mktemp("pristine")
    cfg = tiny_config(steps=20)
    return cfg, get_or_train(cfg, root, progress=False).dir


@pytest.fixture
def stored(pristine, tmp_path):
    cfg, folder = pristine
    shutil.copytree(folder, run_dir(cfg, tmp_path))
    return cfg, tmp_path, run_dir(cfg, tmp_path)


def cut(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_middle_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_done_json_records_a_checksum_of_every_file(stored):
    _, _, folder = stored
    record = json.loads((folder / DONE_FILE).read_text())
    assert set(record["files"]) == {CONFIG_FILE, CHECKPOINT_FILE, WEIGHTS_FILE, METRICS_FILE, RUNTIME_FILE}
    for name, digest in record["files"].items():
        assert runstore.hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert set(record["code"]) == {"package", "source", "git"}
    assert record["seal"] == runstore.hashlib.sha256(json.dumps(
        {k: v for k, v in record.items() if k != "seal"}, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@pytest.mark.parametrize("damage", [cut, flip_middle_byte], ids=["cut", "corrupted"])
@pytest.mark.parametrize("name", STORED)
def test_a_damaged_file_is_refused_naming_it_and_never_reused(stored, name, damage):
    cfg, root, folder = stored
    damage(folder / name)
    # An edit that keeps valid JSON can make config.json another config: refused as such.
    with pytest.raises((RunDamagedError, RunConfigMismatchError)) as err:
        get_or_train(cfg, root, progress=False)
    message = str(err.value)
    assert str(folder / name) in message or (name == CONFIG_FILE and "different config" in message), message
    assert "--retrain" in message


def test_a_cut_metrics_file_is_refused_not_reported_as_a_shorter_run(stored):
    cfg, root, folder = stored
    lines = (folder / METRICS_FILE).read_text().splitlines()
    (folder / METRICS_FILE).write_text("\n".join(lines[: len(lines) // 2]) + "\n")  # still a valid CSV
    with pytest.raises(RunDamagedError, match=f"{folder / METRICS_FILE}: its content differs from the sha256"):
        get_or_train(cfg, root, progress=False)


def test_an_edited_precision_in_runtime_json_is_refused(stored):
    cfg, root, folder = stored
    record = json.loads((folder / RUNTIME_FILE).read_text())
    (folder / RUNTIME_FILE).write_text(json.dumps({**record, "precision": "bf16"}))
    with pytest.raises(RunDamagedError, match=str(folder / RUNTIME_FILE)):
        get_or_train(cfg, root, progress=False)


@pytest.mark.parametrize("name", [CHECKPOINT_FILE, WEIGHTS_FILE, METRICS_FILE, RUNTIME_FILE])
def test_a_missing_file_is_refused(stored, name):
    cfg, root, folder = stored
    (folder / name).unlink()
    with pytest.raises(RunDamagedError, match=f"{folder / name}: the file is missing"):
        get_or_train(cfg, root, progress=False)


def test_retrain_replaces_a_damaged_run_with_the_same_result(stored, pristine):
    cfg, root, folder = stored
    cut(folder / CHECKPOINT_FILE)
    run = get_or_train(cfg, root, progress=False, retrain=True)
    assert run.dir == folder and run.status == "done"
    run.verify()
    reference = load_run(pristine[1])
    # Training is deterministic on the CPU with the same thread count: the retrained run is the same run.
    pd.testing.assert_frame_equal(run.metrics, reference.metrics, check_exact=True)
    assert all(torch.equal(a, b) for a, b in zip(run.load_model().state_dict().values(),
                                                 reference.load_model().state_dict().values()))


def test_a_done_run_s_model_comes_from_its_safetensors_weights(stored, monkeypatch):
    _, _, folder = stored
    final = torch.load(folder / CHECKPOINT_FILE, weights_only=True)["model"]

    def no_pickle(*args, **kwargs):
        raise AssertionError("a done run's model must not be unpickled from checkpoint.pt")

    monkeypatch.setattr(runstore, "load_checkpoint", no_pickle)
    model = load_run(folder).load_model()
    assert model.state_dict().keys() == final.keys()
    assert all(torch.equal(model.state_dict()[k], final[k]) for k in final)  # the same final weights, bit for bit


def test_loading_the_model_of_a_damaged_run_is_refused(stored):
    _, _, folder = stored
    flip_middle_byte(folder / CHECKPOINT_FILE)
    with pytest.raises(RunDamagedError, match=str(folder / CHECKPOINT_FILE)):
        load_run(folder).load_model()


def test_a_cut_checkpoint_of_an_unfinished_run_is_named_and_retrain_recovers(tmp_path):
    cfg = tiny_config(steps=20)
    short = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=10))
    folder = run_dir(cfg, tmp_path)
    # An unfinished run of cfg: 10 steps trained, no done.json.
    get_or_train(short, tmp_path, progress=False)
    shutil.copytree(run_dir(short, tmp_path), folder)
    (folder / DONE_FILE).unlink()
    (folder / CONFIG_FILE).write_text(json.dumps(cfg.resolved().to_dict()))
    cut(folder / CHECKPOINT_FILE)
    with pytest.raises(RunDamagedError, match=f"{folder / CHECKPOINT_FILE}: the checkpoint cannot be read"):
        get_or_train(cfg, tmp_path, progress=False)
    assert get_or_train(cfg, tmp_path, progress=False, retrain=True).status == "done"


@pytest.mark.parametrize("name", [CONFIG_FILE, RUNTIME_FILE])
def test_cut_json_of_an_unfinished_run_is_named(tmp_path, name):
    cfg = tiny_config(steps=20)
    folder = run_dir(cfg, tmp_path)
    folder.mkdir(parents=True)
    (folder / CONFIG_FILE).write_text(json.dumps(cfg.resolved().to_dict()))
    (folder / RUNTIME_FILE).write_text(json.dumps({"precision": "strict", "segments": []}))
    cut(folder / name)
    with pytest.raises(RunDamagedError, match=f"{folder / name}: not valid JSON"):
        get_or_train(cfg, tmp_path, progress=False)


def test_an_unknown_precision_in_runtime_json_is_named(tmp_path):
    cfg = tiny_config(steps=20)
    folder = run_dir(cfg, tmp_path)
    folder.mkdir(parents=True)
    (folder / RUNTIME_FILE).write_text(json.dumps({"precision": "fp3", "segments": []}))
    with pytest.raises(RunDamagedError, match=f"{folder / RUNTIME_FILE}: precision='fp3' is not one of"):
        get_or_train(cfg, tmp_path, progress=False)


# ---------------------------------------------------------------------------------- the store itself
def test_a_done_run_is_reused_without_writing_anything(stored, monkeypatch):
    cfg, root, folder = stored

    def unwritable(*args, **kwargs):
        raise AssertionError("reusing a finished run must not lock or write (a read-only store serves it)")

    monkeypatch.setattr(runstore, "locked", unwritable)
    monkeypatch.setattr(runstore, "atomic_write_bytes", unwritable)
    assert get_or_train(cfg, root, progress=False).dir == folder


def test_an_unwritable_store_is_named(tmp_path, monkeypatch):
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(runstore.Path, "mkdir", read_only)
    cfg = tiny_config(steps=10)
    with pytest.raises(StoreAccessError, match=f"cannot write {run_dir(cfg, tmp_path) / '.lock'}: Read-only file "
                                               "system; the file system is read-only"):
        get_or_train(cfg, tmp_path, progress=False)


def test_a_full_disk_is_named(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runstore.os, "fsync", full)
    cfg = tiny_config(steps=10)
    with pytest.raises(StoreAccessError, match=f"cannot write {run_dir(cfg, tmp_path) / CONFIG_FILE}: No space left"):
        get_or_train(cfg, tmp_path, progress=False)
    assert not list(run_dir(cfg, tmp_path).glob(".*.tmp"))  # the half-written file is removed


def test_a_store_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreAccessError, match="is not a folder"):
        get_or_train(tiny_config(steps=10), tmp_path / "file", progress=False)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_follow_the_umask(tmp_path, umask):
    before = os.umask(umask)
    try:
        runstore.atomic_write_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(before)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_run_s_files_are_group_readable_under_the_usual_umask(tmp_path):
    before = os.umask(0o022)
    try:
        folder = get_or_train(tiny_config(steps=10), tmp_path, progress=False).dir
    finally:
        os.umask(before)
    for name in STORED:
        assert (folder / name).stat().st_mode & 0o777 == 0o644, name


def test_damage_is_seen_even_after_the_checksum_was_cached(stored):
    cfg, root, folder = stored
    get_or_train(cfg, root, progress=False)  # verified once: checksums cached for these files
    data = bytearray((folder / CHECKPOINT_FILE).read_bytes())
    data[-100] ^= 0xFF
    (folder / CHECKPOINT_FILE).write_bytes(bytes(data))  # same size: only the mtime tells the cache
    with pytest.raises(RunStoreError, match=str(folder / CHECKPOINT_FILE)):
        get_or_train(cfg, root, progress=False)


def test_a_done_json_without_checksums_cannot_be_verified(stored):
    cfg, root, folder = stored
    (folder / DONE_FILE).write_text(json.dumps({"steps": 20, "config_hash": cfg.config_hash()}))  # the old format
    with pytest.raises(RunDamagedError, match="records no checksums .* older theorybench"):
        get_or_train(cfg, root, progress=False)


def test_a_readable_checkpoint_missing_its_training_state_is_named(tmp_path):
    cfg = tiny_config(steps=20)
    folder = run_dir(cfg, tmp_path)
    folder.mkdir(parents=True)
    torch.save({"config_hash": cfg.config_hash(), "step": 10}, folder / CHECKPOINT_FILE)  # no weights, no RNG states
    with pytest.raises(RunDamagedError, match=f"{folder / CHECKPOINT_FILE}: not a checkpoint this run can resume"):
        get_or_train(cfg, tmp_path, progress=False, accept_stale=True)  # it records no code: stale first


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(STORED), where=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_any_single_bit_flip_anywhere_is_refused(pristine, tmp_path_factory, name, where, bit):
    cfg, folder = pristine
    root = tmp_path_factory.mktemp("flip")
    shutil.copytree(folder, run_dir(cfg, root))
    path = run_dir(cfg, root) / name
    data = bytearray(path.read_bytes())
    data[int(where * len(data))] ^= 1 << bit
    path.write_bytes(bytes(data))
    with pytest.raises(RunStoreError):  # damaged (checksum, JSON) or, for config.json, another config
        get_or_train(cfg, root, progress=False)


@pytest.mark.parametrize("record", ['{"error": "step 3: loss is nan"}', '{"error": "step 3", "step": "3"}', "[]"])
def test_a_failure_record_without_its_message_or_step_is_named(tmp_path, record):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / FAILED_FILE).write_text(record)
    run = Run(dir=folder, config=tiny_config(steps=10).resolved())
    with pytest.raises(RunDamagedError, match=f"^{re.escape(str(folder / FAILED_FILE))}: not a failure record"):
        run.stored_failure
