"""What a run is and where it lives: the hash covers what is trained, the name is derived from the
config after overrides, the code that trained a run is recorded and a run made by other code is not
reused silently, one store location for every entry point, and ``theorybench.load``."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import theorybench
from _train_worker import tiny_config
from theorybench import code_version as code_version_module
from theorybench import registry, runstore
from theorybench import train as train_module
from theorybench.code_version import code_version, source_hash
from theorybench.experiment import apply_overrides
from theorybench.runs import get_or_train
from theorybench.runstore import CHECKPOINT_FILE, RUNTIME_FILE, RunStaleError, StaleRunWarning, run_dir, store_root

NAME_CHARS = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=12)


# ---------------------------------------------------------------------------------- identity
@settings(max_examples=25, deadline=None)
@given(first=NAME_CHARS, second=NAME_CHARS, lr=st.floats(1e-6, 10), layers=st.integers(1, 4), seed=st.integers(0, 99))
def test_the_hash_ignores_the_name_and_the_name_shows_the_fields(first, second, lr, layers, seed):
    base = tiny_config(steps=10)
    a = dataclasses.replace(base, name=f"a{first}", seed=seed, optim=dataclasses.replace(base.optim, lr=lr),
                            model=base.model.replace(n_layers=layers))
    b = dataclasses.replace(a, name=f"b{second}-some-stale-suffix")
    assert a.config_hash() == b.config_hash()
    assert a.resolved().name == f"a{first}-pre-L{layers}-d16-lr{lr:g}-s{seed}-t10".replace("+", "")
    assert b.resolved().name.startswith(f"b{second}-pre-L{layers}-")  # the stale suffix is regenerated
    assert a.resolved().resolved() == a.resolved()  # idempotent


def test_overrides_show_in_the_name_and_the_sweep_member_shares_the_folder(tmp_path):
    registry.load_studies()
    single = registry.get_experiment("variance_train").build("quick")
    cli = apply_overrides(single, ["optim.lr=0.1", "model.n_layers=4"])
    assert "-L4-" in cli.resolved().name and "-lr0.1-" in cli.resolved().name
    # The learning-rate sweep's member at depth 4, lr 0.1, Pre-LN, seed 0 trains exactly this config.
    member, = [m for m in registry.get_sweep("variance_training_lr").members("quick")
               if m.seed == 0 and m.optim.lr == 0.1 and m.model.norm_placement == "pre" and m.model.n_layers == 4]
    assert member.name != cli.name and member.config_hash() == cli.config_hash()  # named differently ...
    folder = run_dir(member, tmp_path)
    folder.mkdir(parents=True)  # the sweep trained it first
    assert run_dir(cli, tmp_path) == folder  # ... one folder, found by its hash, trained once


def test_show_config_prints_the_derived_name(capsys):
    from theorybench.cli import main

    assert main(["show-config", "variance_train", "optim.lr=0.1", "model.n_layers=2"]) == 0
    name = json.loads(capsys.readouterr().out)["name"]
    assert name.startswith("variance_train-pre-L2-") and "-lr0.1-" in name


# ---------------------------------------------------------------------------------- code version
def test_the_source_hash_sees_every_change_and_is_computed_once(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    first = source_hash(tmp_path, ("pkg",))
    assert source_hash(tmp_path, ("pkg",)) == first
    (tmp_path / "pkg" / "a.py").write_text("x = 2\n")
    edited = source_hash(tmp_path, ("pkg",))
    (tmp_path / "pkg" / "b.py").write_text("")
    assert len({first, edited, source_hash(tmp_path, ("pkg",))}) == 3
    assert code_version() is code_version()  # cached: stable within a process, whatever changes on disk


def test_the_source_hash_covers_the_trainer(tmp_path):
    import shutil

    root = code_version_module.SOURCE_ROOT
    shutil.copytree(root / "theorybench", tmp_path / "theorybench", ignore=shutil.ignore_patterns("__pycache__"))
    assert source_hash(tmp_path, ("theorybench",)) == source_hash(root, ("theorybench",))
    with open(tmp_path / "theorybench" / "train.py", "a") as f:
        f.write("# a comment is a change too: the hash does not guess which edits matter\n")
    assert source_hash(tmp_path, ("theorybench",)) != source_hash(root, ("theorybench",))


def _other_code(monkeypatch):
    other = {**code_version(), "source": "0" * 16, "git": None}
    monkeypatch.setattr(train_module, "code_version", lambda: other)
    return other


def test_a_run_made_by_other_code_is_refused_accepted_on_request_or_retrained(tmp_path, monkeypatch):
    cfg = tiny_config(steps=10)
    with monkeypatch.context() as mp:
        _other_code(mp)
        folder = get_or_train(cfg, tmp_path, progress=False).dir
    assert json.loads((folder / RUNTIME_FILE).read_text())["segments"][0]["code"]["source"] == "0" * 16
    with pytest.raises(RunStaleError, match=f"{folder}: it was trained by other code .*--retrain.*--accept-stale"):
        get_or_train(cfg, tmp_path, progress=False)
    assert get_or_train(cfg, tmp_path, progress=False, accept_stale=True).dir == folder
    monkeypatch.setenv(runstore.ACCEPT_STALE_ENV, "1")
    assert get_or_train(cfg, tmp_path, progress=False).dir == folder
    monkeypatch.delenv(runstore.ACCEPT_STALE_ENV)
    run = get_or_train(cfg, tmp_path, progress=False, retrain=True)
    assert run.stale_reason() is None and run.done["code"] == code_version()


def test_an_unfinished_run_of_other_code_is_not_resumed_silently(tmp_path, monkeypatch):
    from _interrupt import Interrupt, interrupt_at_batch

    cfg = tiny_config(steps=20)
    with monkeypatch.context() as mp:
        _other_code(mp)
        interrupt_at_batch(mp, 2 + 15)  # two eval batches, then a crash at step 15 (checkpoint at 10)
        with pytest.raises(Interrupt):
            get_or_train(cfg, tmp_path, progress=False)
    with pytest.raises(RunStaleError, match="not resumed"):
        get_or_train(cfg, tmp_path, progress=False)
    run = get_or_train(cfg, tmp_path, progress=False, accept_stale=True)
    assert run.status == "done" and run.stale_reason() is not None  # a mixed run stays flagged


def test_a_run_recording_no_code_is_stale(tmp_path):
    cfg = tiny_config(steps=10)
    folder = get_or_train(cfg, tmp_path, progress=False).dir
    record = json.loads((folder / RUNTIME_FILE).read_text())
    for segment in record["segments"]:
        del segment["code"]
    run = runstore.load_run(folder)
    (folder / RUNTIME_FILE).write_text(json.dumps(record))
    assert "other code (code not recorded)" in run.stale_reason()


# ---------------------------------------------------------------------------------- the store location
def test_the_store_is_read_from_the_environment_when_asked_and_is_absolute(tmp_path, monkeypatch):
    monkeypatch.setenv(runstore.RUNS_ENV, str(tmp_path / "a"))
    assert store_root() == tmp_path / "a"
    monkeypatch.setenv(runstore.RUNS_ENV, str(tmp_path / "b"))
    assert store_root() == tmp_path / "b"  # read at call time, not at import
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(runstore.RUNS_ENV, "relative")
    assert store_root() == tmp_path / "relative" and store_root().is_absolute()
    assert store_root("given") == tmp_path / "given"


def test_the_default_store_is_the_checkout_s_runs_folder_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(runstore.RUNS_ENV, raising=False)
    checkout = Path(theorybench.__file__).resolve().parent.parent
    assert store_root() == checkout / "runs"
    monkeypatch.chdir(tmp_path)  # e.g. a Jupyter kernel started in notebooks/
    assert store_root() == checkout / "runs"


def test_get_or_train_uses_the_store_of_the_moment(tmp_path, monkeypatch):
    monkeypatch.setenv(runstore.RUNS_ENV, str(tmp_path))
    run = get_or_train(tiny_config(steps=10), progress=False)
    assert run.dir.parent == tmp_path


# ---------------------------------------------------------------------------------- theorybench.load
def test_load_gives_config_metrics_and_model_by_run_path_or_name(tmp_path, monkeypatch):
    cfg = tiny_config(steps=10)
    run = get_or_train(cfg, tmp_path, progress=False)
    monkeypatch.setenv(runstore.RUNS_ENV, str(tmp_path))
    for handle in (run, run.dir, str(run.dir), run.dir.name):
        loaded = theorybench.load(handle)
        assert loaded.config == cfg.resolved() and loaded.state == "done"
        assert list(loaded.metrics.step) == [5, 10] and not loaded.model.training
    assert loaded.model.state_dict().keys() == run.load_model().state_dict().keys()


def test_load_refuses_a_damaged_run_and_flags_a_stale_one(tmp_path, monkeypatch):
    cfg = tiny_config(steps=10)
    with monkeypatch.context() as mp:
        _other_code(mp)
        folder = get_or_train(cfg, tmp_path, progress=False).dir
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert theorybench.load(folder).state == "stale"
    assert any(issubclass(w.category, StaleRunWarning) and "other code" in str(w.message) for w in caught)
    data = (folder / CHECKPOINT_FILE).read_bytes()
    (folder / CHECKPOINT_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(runstore.RunDamagedError, match=str(folder / CHECKPOINT_FILE)):
        theorybench.load(folder)


def test_importing_theorybench_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, theorybench, theorybench.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "False"
