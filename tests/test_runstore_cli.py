"""The run store from the command line, as a new user meets it: every damaged, exploded, stale or
unwritable case ends in a message naming the file or setting and exit status 1 or 2 (never a
traceback, never a reused wrong result), and ``theorybench runs`` lists what the store holds."""

from __future__ import annotations

import dataclasses
import errno
import json
import os

import pytest

from _train_worker import tiny_config
from theorybench import registry, runstore
from theorybench import train as train_module
from theorybench.cli import main
from theorybench.code_version import code_version
from theorybench.registry import ExperimentSpec, SweepSpec, isolated_registry
from theorybench.runs import get_or_train
from theorybench.runstore import CHECKPOINT_FILE, CONFIG_FILE, DONE_FILE, METRICS_FILE, RUNTIME_FILE, run_dir

CFG = dataclasses.replace(tiny_config(steps=20), name="variance_tiny")
MEMBERS = [dataclasses.replace(CFG, seed=s) for s in range(3)]
LOCAL = ["--jobs", "1", "--threads", "1"]


@pytest.fixture
def cli(capsys):
    """``run(*argv) -> (exit status, stdout, stderr)`` with a tiny experiment and sweep registered."""
    with isolated_registry():
        registry.register_experiment(ExperimentSpec("variance_tiny", "variance", lambda scale: CFG))
        registry.register_sweep(SweepSpec("variance_tiny_sweep", "variance", lambda scale: MEMBERS))

        def run(*argv):
            code = main(list(argv))
            out, err = capsys.readouterr()
            assert "Traceback" not in err
            return code, out, err

        yield run


def cut(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("name", [METRICS_FILE, CHECKPOINT_FILE, CONFIG_FILE, RUNTIME_FILE, DONE_FILE])
def test_train_refuses_a_cut_file_and_retrain_repairs_it(cli, tmp_path, name):
    assert cli("train", "variance_tiny", "--runs", str(tmp_path))[0] == 0
    folder = run_dir(CFG, tmp_path)
    cut(folder / name)
    code, out, err = cli("train", "variance_tiny", "--runs", str(tmp_path))
    assert code == 1 and out == ""
    assert str(folder / name) in err and "--retrain" in err
    code, out, err = cli("train", "variance_tiny", "--runs", str(tmp_path), "--retrain")
    assert code == 0 and "step: 20" in out and "train_loss" in out and "eval_loss" in out


def test_an_edited_precision_of_an_unfinished_run_is_named(cli, tmp_path):
    folder = run_dir(CFG, tmp_path)
    folder.mkdir(parents=True)
    (folder / RUNTIME_FILE).write_text(json.dumps({"precision": "half", "segments": []}))
    code, _, err = cli("train", "variance_tiny", "--runs", str(tmp_path))
    assert code == 1 and f"{folder / RUNTIME_FILE}: precision='half' is not one of" in err


def test_an_exploding_run_fails_with_exit_1(cli, tmp_path):
    code, out, err = cli("train", "variance_tiny", "optim.lr=1e3", "--runs", str(tmp_path))
    assert code == 1 and "run failed: step " in err and ("diverged" in err or "nan" in err or "inf" in err)
    assert json.loads((run_dir(CFG, tmp_path).parent.glob("*lr1000*").__next__() / "failed.json").read_text())


def test_a_run_of_other_code_is_refused_until_accepted(cli, tmp_path, monkeypatch):
    with monkeypatch.context() as mp:
        mp.setattr(train_module, "code_version", lambda: {**code_version(), "source": "f" * 16})
        assert cli("train", "variance_tiny", "--runs", str(tmp_path))[0] == 0
    code, _, err = cli("train", "variance_tiny", "--runs", str(tmp_path))
    assert code == 1 and "trained by other code (theorybench" in err and "--accept-stale" in err
    assert cli("train", "variance_tiny", "--runs", str(tmp_path), "--accept-stale")[0] == 0
    code, out, _ = cli("sweep", "variance_tiny_sweep", "--status", "--root", str(tmp_path))
    assert code == 0 and "stale 1" in out and "stale: " in out
    code, out, _ = cli("sweep", "variance_tiny_sweep", "--status", "--root", str(tmp_path), "--accept-stale")
    assert code == 0 and "done 1 ·" in out and "stale" not in out


@pytest.mark.parametrize("argv", [("train", "variance_tiny", "--runs", "/dev/null"),
                                  ("sweep", "variance_tiny_sweep", "--root", "/dev/null", *LOCAL),
                                  ("runs", "--runs", "/dev/null")])
def test_a_store_that_is_not_a_folder_is_refused_with_exit_2(cli, argv):
    code, _, err = cli(*argv)
    assert code == 2 and "/dev/null is not a folder" in err and ("--runs" in err or "--root" in err)


def test_a_store_from_the_environment_that_is_not_a_folder_names_the_variable(cli, monkeypatch):
    monkeypatch.setenv("THEORYBENCH_RUNS", "/dev/null")
    code, _, err = cli("train", "variance_tiny")
    assert code == 2 and "$THEORYBENCH_RUNS" in err


def test_a_full_disk_and_a_read_only_store_exit_1_naming_the_file(cli, tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as mp:
        mp.setattr(runstore.os, "fsync", full)
        code, _, err = cli("train", "variance_tiny", "--runs", str(tmp_path / "full"))
    assert code == 1 and f"cannot write {run_dir(CFG, tmp_path / 'full') / CONFIG_FILE}: No space left" in err

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    with monkeypatch.context() as mp:
        mp.setattr(runstore.Path, "mkdir", read_only)
        code, _, err = cli("train", "variance_tiny", "--runs", str(tmp_path / "ro"))
    assert code == 1 and "Read-only file system" in err and ".lock" in err


def test_a_finished_run_is_served_by_a_read_only_store(cli, tmp_path, monkeypatch):
    assert cli("train", "variance_tiny", "--runs", str(tmp_path))[0] == 0

    def no_lock(folder):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(runstore, "locked", no_lock)
    code, out, _ = cli("train", "variance_tiny", "--runs", str(tmp_path))
    assert code == 0 and "step: 20" in out


# ---------------------------------------------------------------------------------- sweeps
def test_one_damaged_member_is_reported_not_crashing_status_and_retrain_repairs_it(cli, tmp_path):
    assert cli("sweep", "variance_tiny_sweep", "--root", str(tmp_path), *LOCAL)[0] == 0
    bad = run_dir(MEMBERS[1], tmp_path)
    (bad / CONFIG_FILE).write_text('{"name": ')  # cut JSON
    code, out, _ = cli("sweep", "variance_tiny_sweep", "--status", "--root", str(tmp_path))
    assert code == 0 and "done 2 · running 0 · partial 0 · failed 0 · missing 0 · damaged 1" in out
    assert f"damaged: {bad.name}: {bad / CONFIG_FILE}: not valid JSON" in out
    code, out, _ = cli("sweep", "variance_tiny_sweep", "--root", str(tmp_path), *LOCAL)
    assert code == 1 and "nothing to run" in out and f"failed: {bad.name}" in out  # never reused, never trained over
    code, out, _ = cli("sweep", "variance_tiny_sweep", "--root", str(tmp_path), "--retrain", *LOCAL)
    assert code == 0 and "started 1 of 3 members" in out and "done 3 ·" in out
    assert (bad / DONE_FILE).exists()


def test_a_cut_checkpoint_is_not_done_in_the_status(cli, tmp_path):
    assert cli("sweep", "variance_tiny_sweep", "--root", str(tmp_path), *LOCAL)[0] == 0
    cut(run_dir(MEMBERS[0], tmp_path) / CHECKPOINT_FILE)
    code, out, _ = cli("sweep", "variance_tiny_sweep", "--status", "--root", str(tmp_path))
    assert code == 0 and "done 2 ·" in out and "damaged 1" in out and CHECKPOINT_FILE in out


def test_status_reads_no_pickle_from_the_store(cli, tmp_path):
    """A record entry pointing at a pickle that would run code when loaded: --status reads only text."""
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "result.pkl").write_bytes(pickle.dumps(Payload()))
    (tmp_path / "job.err").write_text("training...\nRuntimeError: node lost\n")
    key = run_dir(MEMBERS[0], tmp_path).name
    records = tmp_path / ".sweeps"
    records.mkdir()
    (records / "variance_tiny_sweep-quick.json").write_text(json.dumps({"sweep": "variance_tiny_sweep", "members": {
        key: {"executor": "submitit:slurm", "job_id": "42_0", "result": str(tmp_path / "result.pkl"),
              "stderr": str(tmp_path / "job.err"), "error": None}}}))
    code, out, _ = cli("sweep", "variance_tiny_sweep", "--status", "--root", str(tmp_path))
    assert code == 0 and not marker.exists()
    assert f"missing: {key}; last job: job 42_0: RuntimeError: node lost (log: {tmp_path / 'job.err'})" in out


# ---------------------------------------------------------------------------------- theorybench runs
def test_runs_lists_the_store_with_state_code_and_size(cli, tmp_path, monkeypatch):
    assert cli("sweep", "variance_tiny_sweep", "--root", str(tmp_path), *LOCAL)[0] == 0
    cut(run_dir(MEMBERS[2], tmp_path) / METRICS_FILE)
    monkeypatch.setenv("THEORYBENCH_RUNS", str(tmp_path))
    code, out, _ = cli("runs")
    lines = out.splitlines()
    assert code == 0 and lines[0] == f"run store: {tmp_path}: 3 run(s)"
    assert lines[1].split() == ["folder", "state", "task", "progress", "code", "size"]
    current = code_version()["source"]
    for m in MEMBERS[:2]:
        (row,) = [line for line in lines if line.strip().startswith(run_dir(m, tmp_path).name)]
        assert row.split()[1:6] == ["done", "markov", "20/20", current, "(current)"] and "KB" in row
    code, out, _ = cli("runs", "--status", "damaged")
    assert code == 0 and "(status damaged): 1 run(s)" in out and run_dir(MEMBERS[2], tmp_path).name in out
    assert f"{run_dir(MEMBERS[2], tmp_path) / METRICS_FILE}: its content differs" in out
    assert "3 run(s)" in cli("runs", "--family", "variance")[1]
    assert "0 run(s)" in cli("runs", "--family", "icl")[1]


def test_runs_shows_an_empty_or_absent_store(cli, tmp_path):
    code, out, _ = cli("runs", "--runs", str(tmp_path / "absent"))
    assert code == 0 and out.strip() == f"run store: {tmp_path / 'absent'}: 0 run(s)"


def test_a_differently_named_config_that_trains_the_same_thing_reuses_the_cli_run(cli, tmp_path, monkeypatch):
    assert cli("train", "variance_tiny", "optim.lr=0.01", "--runs", str(tmp_path))[0] == 0
    renamed = dataclasses.replace(CFG, name="variance_tiny-lr0.003-stale-label",
                                  optim=dataclasses.replace(CFG.optim, lr=0.01))

    def no_training(*args, **kwargs):
        raise AssertionError("the same config under another name was trained again")

    monkeypatch.setattr(train_module, "train", no_training)
    run = get_or_train(renamed, tmp_path, progress=False)
    assert run.status == "done" and "-lr0.01-" in run.dir.name and len(list(tmp_path.iterdir())) == 1


def test_figures_refuse_a_stale_run_and_accept_it_when_asked(tmp_path, monkeypatch, capsys):
    import matplotlib.pyplot as plt

    from theorybench.registry import FigureResult, FigureSpec

    def make(scale):
        run = get_or_train(CFG, progress=False)  # as figure makers do: the store of the moment
        fig, ax = plt.subplots()
        ax.plot(run.metrics.step, run.metrics.train_loss, label="train")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend()
        return FigureResult(fig, {"final loss": float(run.metrics.train_loss.iloc[-1])})

    monkeypatch.setenv("THEORYBENCH_RUNS", str(tmp_path / "runs"))
    with monkeypatch.context() as mp:
        mp.setattr(train_module, "code_version", lambda: {**code_version(), "source": "e" * 16})
        get_or_train(CFG, progress=False)
    with isolated_registry():
        registry.register_figure(FigureSpec("variance_tiny_loss", "variance", 'A claim ("Some Paper").', make))
        code = main(["figures", "variance_tiny_loss", "--out", str(tmp_path / "figs")])
        err = capsys.readouterr().err
        assert code == 1 and "Traceback" not in err and "trained by other code" in err and "--accept-stale" in err
        assert main(["figures", "variance_tiny_loss", "--out", str(tmp_path / "figs"), "--accept-stale"]) == 0
    assert (tmp_path / "figs" / "variance_tiny_loss.png").exists()
    assert runstore.ACCEPT_STALE_ENV not in os.environ  # the flag lasts for the command only
