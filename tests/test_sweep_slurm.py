"""The SLURM executor: options, the sbatch script submitit writes, and the real submission path
through submitit's local executor (fresh interpreters, signals, requeue), with no cluster.

The end-to-end test sends the two signals a cluster sends: USR2 (preemption; submitit checkpoints and
requeues the job, which resumes the run from its last checkpoint) and SIGKILL (a lost node; the job
dies, and running the sweep again resumes the member). Each job is a fresh interpreter that spends
~8 s of CPU importing TransformerLens, so the test costs two rounds of that.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from _train_worker import SLEEP_ENV, SlowMarkovConfig, tiny_config
from theorybench import runstore
from theorybench.cli import main
from theorybench.registry import SweepSpec, isolated_registry, register_sweep
from theorybench.runs import get_or_train
from theorybench.runstore import CHECKPOINT_FILE, RUNTIME_FILE, load_checkpoint, run_dir
from theorybench.slurm import (SlurmConfigError, check_cluster_available, load_config_file, make_executor,
                               parse_mem, parse_time, slurm_options)
from theorybench.sweep import read_record
from theorybench.sweep_run import run_sweep

TESTS = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------------- options
@pytest.mark.parametrize("text, minutes", [
    ("90", 90), ("30:00", 30), ("30:01", 31), ("1:00:00", 60), ("2-0", 2880), ("1-02:30", 1590),
    ("0-00:00:59", 1), (45, 45), (0.5, 1),
])
def test_time_accepts_slurms_formats(text, minutes):
    assert parse_time(text) == minutes


@pytest.mark.parametrize("bad", ["1h", "", "-5", "1:2:3:4", 0, -1, True, "0:00"])
def test_a_bad_time_is_refused_listing_the_formats(bad):
    with pytest.raises(SlurmConfigError, match="HH:MM:SS"):
        parse_time(bad)


@pytest.mark.parametrize("text, gb", [("16G", 16.0), ("16GB", 16.0), ("4096M", 4.0), ("1T", 1024.0), (32, 32.0),
                                      ("512k", 512 / 1024**2)])
def test_memory_sizes(text, gb):
    assert parse_mem(text) == pytest.approx(gb, rel=1e-15)


@pytest.mark.parametrize("bad", ["lots", "16Q", "0G", -4, False])
def test_a_bad_memory_size_is_refused(bad):
    with pytest.raises(SlurmConfigError, match="'16G'"):
        parse_mem(bad)


def test_config_files_toml_and_json_with_the_command_line_winning(tmp_path):
    toml = tmp_path / "cluster.toml"
    toml.write_text('[slurm]\npartition = "gpu"\ntime = "1-00:00"\ngpus = 1\nmem = "32G"\ncpus = 8\n'
                    'account = "lab"\nsetup = ["module load cuda"]\nmax_requeues = 50\n'
                    '[slurm.additional]\n"mail-type" = "END"\n')
    opts = slurm_options(toml, partition="debug", time="30", gpus=None, mem=None, cpus="4")
    assert (opts.partition, opts.time_min, opts.gpus, opts.mem_gb, opts.cpus) == ("debug", 30, 1, 32.0, 4)
    assert opts.account == "lab" and opts.setup == ("module load cuda",) and opts.max_requeues == 50
    assert opts.additional == {"mail-type": "END"} and opts.cluster == "slurm"
    js = tmp_path / "cluster.json"
    js.write_text(json.dumps({"partition": "cpu", "cluster": "local"}))
    assert load_config_file(js) == {"partition": "cpu", "cluster": "local"}
    assert slurm_options(js).cluster == "local" and slurm_options(js).time_min == 240  # the default 4 h


@pytest.mark.parametrize("content, suffix, message", [
    ('partitoin = "gpu"\n', ".toml", "unknown option 'partitoin'; allowed: cluster, partition"),
    ('gpus = -1\n', ".toml", "gpus in .* is not allowed: a non-negative integer"),
    ('cluster = "pbs"\n', ".toml", "cluster.*is not allowed: one of 'slurm', 'local', 'debug'"),
    ('partition = \n', ".toml", "is not valid TOML"),
    ('{"time": "soon"}', ".json", "time in .*'soon' is not allowed"),
    ('partition: gpu', ".yaml", "must end in .toml or .json"),
])
def test_a_bad_config_file_names_the_option_and_the_file(tmp_path, content, suffix, message):
    path = tmp_path / f"cluster{suffix}"
    path.write_text(content)
    with pytest.raises(SlurmConfigError, match=message):
        slurm_options(path)


def test_submitting_needs_sbatch_unless_the_cluster_is_local(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SlurmConfigError, match="sbatch and srun are not on PATH.*cluster = \"local\""):
        check_cluster_available(slurm_options(None))
    check_cluster_available(slurm_options(None, cluster="local"))


def test_the_sbatch_script_carries_the_options(tmp_path, monkeypatch):
    """What submitit would hand to sbatch (srun is faked present: there is no cluster here)."""
    import submitit.slurm.slurm as submitit_slurm

    monkeypatch.setattr(submitit_slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 1))
    opts = slurm_options(None, partition="gpu", time="1-02:00", gpus="2", mem="16G", cpus="8")
    opts = dataclasses.replace(opts, account="lab", qos="high", setup=("module load cuda",),
                               additional={"mail-type": "END"})
    executor = make_executor(opts, tmp_path, "variance_demo")
    script = executor._executor._make_submission_file_text("python -m x", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=1560", "#SBATCH --gpus-per-node=2", "#SBATCH --mem=16GB",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --account=lab", "#SBATCH --qos=high",
                 "#SBATCH --job-name=tb_variance_demo", "#SBATCH --mail-type=END",
                 # the preemption / time-limit signal submitit turns into checkpoint + requeue:
                 "#SBATCH --signal=USR2@90", "module load cuda"):
        assert line in script, f"{line!r} missing from:\n{script}"
    assert executor._executor.max_num_timeout == 10


# ---------------------------------------------------------------------------------- end to end
def _wait_for(predicate, what: str, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _segments(folder: Path) -> list[dict]:
    path = folder / RUNTIME_FILE
    try:
        return json.loads(path.read_text())["segments"] if path.exists() else []
    except json.JSONDecodeError:  # never half-written (atomic), but be safe while polling
        return []


def _same(a, b) -> None:
    pd.testing.assert_frame_equal(a.metrics, b.metrics, check_exact=True)
    sa, sb = a.load_model().state_dict(), b.load_model().state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_slurm_path_preempted_and_killed_jobs_resume_from_their_checkpoints(tmp_path, monkeypatch, capsys):
    """Two members as an array job through submitit's local executor. Member A's job gets USR2 (a
    preemption) after its first checkpoint: submitit requeues it and the new start resumes the run.
    Member B's job is SIGKILLed: it dies, `--status` shows B partial, and `theorybench sweep` again
    resumes it. Both end bit-identical to the same runs trained serially here."""
    base = tiny_config()  # 60 steps, a checkpoint every 10
    configs = [dataclasses.replace(base, name=f"slow_{k}", seed=seed, task=SlowMarkovConfig(n_states=6, seq_len=8))
               for seed, k in enumerate("ab")]
    references = [get_or_train(c, tmp_path / "serial", progress=False) for c in configs]  # no sleep here

    root = tmp_path / "sweep"
    cluster = tmp_path / "cluster.toml"  # the SLURM path, run by submitit on this machine
    # 60 min: submitit calls a USR2 in the first 48 min (0.8 of it) a preemption, later a time-out.
    cluster.write_text(f'cluster = "local"\ncpus = {torch.get_num_threads()}\ntime = 60\n')
    # The jobs import the slow task from tests/ and sleep 0.1 s per batch: 5 s between a job's first
    # checkpoint (step 10) and its end (step 60), the window in which the test signals it.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv(SLEEP_ENV, "0.1")
    with isolated_registry():
        spec = register_sweep(SweepSpec("variance_slurm_test", "variance", lambda scale: configs))
        result = run_sweep(spec, "quick", root, executor="slurm", slurm=slurm_options(cluster), wait=False,
                           progress=False)
        job_a, job_b = result.jobs
        folder_a, folder_b = (run_dir(c, root) for c in configs)
        for folder in (folder_a, folder_b):
            _wait_for(lambda: (folder / CHECKPOINT_FILE).exists(), f"{folder.name}'s first checkpoint")
            assert not (folder / "done.json").exists(), "a job ended before it could be signalled"
        assert main(["sweep", spec.name, "--status", "--root", str(root)]) == 0
        assert "running 2" in capsys.readouterr().out  # both mid-run, each holding its run's lock
        os.kill(_segments(folder_a)[0]["pid"], signal.SIGUSR2)  # what SLURM sends 90 s before preempting a job
        os.kill(_segments(folder_b)[0]["pid"], signal.SIGKILL)  # a lost node
        with pytest.raises(Exception, match="has not produced any output"):
            job_b.result()
        step_b = load_checkpoint(folder_b / CHECKPOINT_FILE)["step"]
        assert 10 <= step_b < 60
        # A's requeued start holds its lock from its second segment on, so it is not submitted again.
        _wait_for(lambda: len(_segments(folder_a)) == 2, "the requeued job to resume")
        assert main(["sweep", spec.name, "--status", "--root", str(root)]) == 0
        status = capsys.readouterr().out
        assert "partial 1" in status and f"{folder_b.name} (checkpoint at step {step_b}/60: resumes" in status
        assert f"last job {job_b.job_id}" in status
        code = main(["sweep", spec.name, "--executor", "slurm", "--slurm-config", str(cluster), "--root", str(root)])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "started 1 of 2 members (1 resumed from their checkpoints)" in out
        assert job_a.result().status == "done"

    segments_a, segments_b = _segments(folder_a), _segments(folder_b)
    assert segments_a[0]["from_step"] == 0 and 10 <= segments_a[1]["from_step"] < 60
    assert segments_a[0]["pid"] != segments_a[1]["pid"]
    assert [s["from_step"] for s in segments_b] == [0, step_b]
    log_a = job_a.stdout()
    assert "this job is preempted" in log_a and "Requeued job" in log_a
    for folder, reference in zip((folder_a, folder_b), references):
        _same(runstore.load_run(folder), reference)
    record = read_record(root, spec.name, "quick")
    assert record[folder_b.name]["error"] is None and record[folder_b.name]["executor"] == "submitit:local"
