"""`theorybench sweep`: running, --status, exit statuses, refusal of bad input, and the full-scale
guard on a CPU-only machine (what it needs, an estimate, and confirmation or --yes).

Everything runs in-process (`main(argv)`) with tiny Markov members and `--jobs 1 --threads 1`
(members trained in this process, one after another; the pool itself is tested in test_sweep.py).
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys

import pytest

from _train_worker import tiny_config
from theorybench import registry, runstore
from theorybench.cli import main
from theorybench.registry import SweepSpec, isolated_registry
from theorybench.runs import get_or_train
from theorybench.runstore import CHECKPOINT_FILE, DONE_FILE, run_dir
from toy_models.tasks.markov import MarkovTask

LOCAL = ["--jobs", "1", "--threads", "1"]


def member(seed: int, steps: int = 10, **optim):
    return dataclasses.replace(tiny_config(steps=steps, **optim), name=f"tiny_s{seed}", seed=seed)


def build(scale: str):
    """Three seeds of the tiny Markov run (20 steps at full scale)."""
    return [member(s, steps=10 if scale == "quick" else 20) for s in range(3)]


@pytest.fixture
def sweep_registry():
    with isolated_registry():
        registry.register_sweep(SweepSpec("variance_cli_sweep", "variance", build))
        yield


@pytest.fixture
def no_terminal(monkeypatch):
    """stdin is not a terminal (as under CI or a batch job): nothing can be asked."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))


def run(argv, capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code: int, err: str, *must: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    flat = " ".join(err.split())  # long messages are wrapped at 100 columns
    for text in must:
        assert text in flat, f"{text!r} missing from: {err}"


# ------------------------------------------------------------------------------------------ running
def test_sweep_runs_every_member_then_finds_nothing_to_do(sweep_registry, capsys, tmp_path):
    code, out, err = run(["sweep", "variance_cli_sweep", "--root", str(tmp_path), *LOCAL], capsys)
    assert code == 0, err
    assert "sweep variance_cli_sweep: started 3 of 3 members" in out and "done 3 ·" in out
    assert all((run_dir(m, tmp_path) / DONE_FILE).exists() for m in build("quick"))
    code, out, err = run(["sweep", "variance_cli_sweep", "--root", str(tmp_path), *LOCAL], capsys)
    assert code == 0 and out.strip() == "sweep variance_cli_sweep: nothing to run (3 members: 3 done)"
    code, out, _ = run(["sweep", "variance_cli_sweep", "--status", "--root", str(tmp_path)], capsys)
    assert code == 0 and "done 3 · running 0 · partial 0 · failed 0 · missing 0" in out and "all members done" in out


def test_status_counts_each_state_and_shows_each_failure(capsys, tmp_path, monkeypatch):
    diverging = dataclasses.replace(member(9, name="sgd", lr=1e30), name="tiny_nan")
    members = [member(0), member(1, steps=30), member(2), diverging]
    with isolated_registry():
        registry.register_sweep(SweepSpec("variance_status", "variance", lambda scale: members))
        get_or_train(members[0], tmp_path, progress=False)
        with pytest.raises(Exception, match="step"):
            get_or_train(diverging, tmp_path, progress=False)
        original, calls = MarkovTask.sample, {"n": 0}

        def crash_at_step_25(self, batch_size, generator):  # 2 eval batches come first
            calls["n"] += 1
            if calls["n"] == 2 + 25:
                raise RuntimeError("node lost")
            return original(self, batch_size, generator)

        monkeypatch.setattr(MarkovTask, "sample", crash_at_step_25)
        with pytest.raises(RuntimeError, match="node lost"):
            get_or_train(members[1], tmp_path, progress=False)
        monkeypatch.undo()
        code, out, err = run(["sweep", "variance_status", "--status", "--root", str(tmp_path)], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"sweep variance_status (scale quick, 4 members, run store {tmp_path}):"
    assert lines[1] == "  done 1 · running 0 · partial 1 · failed 1 · missing 1"
    assert f"  partial: {run_dir(members[1], tmp_path).name} (checkpoint at step 20/30: resumes from it)" in lines
    assert f"  missing: {run_dir(members[2], tmp_path).name}" in lines
    (failed,) = [line for line in lines if line.startswith("  failed: ")]
    assert failed.startswith(f"  failed: {run_dir(diverging, tmp_path).name}: step ")
    assert ("nan" in failed or "inf" in failed) and not (tmp_path / ".sweeps").exists()  # --status writes nothing


def test_a_failed_member_exits_1_after_the_others_ran(capsys, tmp_path):
    diverging = dataclasses.replace(member(9, name="sgd", lr=1e30), name="tiny_nan")
    with isolated_registry():
        registry.register_sweep(SweepSpec("variance_fails", "variance", lambda scale: [diverging, member(0)]))
        code, out, err = run(["sweep", "variance_fails", "--root", str(tmp_path), *LOCAL], capsys)
    assert code == 1 and "Traceback" not in err
    assert "done 1 ·" in out and "failed 1 ·" in out
    assert f"  failed: {run_dir(diverging, tmp_path).name}: step " in out
    assert (run_dir(member(0), tmp_path) / DONE_FILE).exists()


def test_list_shows_sweeps_with_their_summary(sweep_registry, capsys):
    code, out, _ = run(["list"], capsys)
    assert code == 0
    assert "Sweeps (theorybench sweep NAME" in out
    assert "    variance_cli_sweep  Three seeds of the tiny Markov run (20 steps at full scale)." in out


# ------------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("argv, must", [
    (["sweep", "variance_cli_swep"], ["unknown sweep 'variance_cli_swep'", "valid sweeps: variance_cli_sweep"]),
    (["sweep", "variance_cli_sweep", "--partition", "gpu"], ["--partition applies to --executor slurm only"]),
    (["sweep", "variance_cli_sweep", "--gpus", "1", "--wait"], ["--gpus, --wait apply to --executor slurm only"]),
    (["sweep", "variance_cli_sweep", "--jobs", "0"], ["--jobs=0 is not allowed: a positive number"]),
    (["sweep", "variance_cli_sweep", "--jobs", "two"], ["argument --jobs: invalid int value: 'two'"]),
    (["sweep", "variance_cli_sweep", "--scale", "huge"], ["invalid choice: 'huge'", "'quick'", "'full'"]),
    (["sweep", "variance_cli_sweep", "--executor", "pbs"], ["invalid choice: 'pbs'", "'local'", "'slurm'"]),
    (["sweep", "variance_cli_sweep", "--precision", "fp8"], ["invalid choice: 'fp8'", "'strict'", "'bf16'"]),
    (["sweep", "variance_cli_sweep", "--device", "cuda"],
     ["device='cuda' asks for a GPU", "torch.cuda.is_available()"]),
    (["sweep", "variance_cli_sweep", "--device", "tpu"], ["device='tpu' is not a device: one of 'auto', 'cpu'"]),
    (["sweep", "variance_cli_sweep", "--device", "mps"], ["device='mps' is not supported: one of 'auto', 'cpu'"]),
    (["sweep", "variance_cli_sweep", "--precision", "tf32"], ["precision='tf32' needs a CUDA device"]),
    (["sweep", "variance_cli_sweep", "--executor", "slurm", "--time", "soon"],
     ["--time='soon' is not allowed", "HH:MM:SS"]),
    (["sweep", "variance_cli_sweep", "--executor", "slurm", "--mem", "lots"], ["--mem='lots' is not allowed", "'16G'"]),
    (["sweep", "variance_cli_sweep", "--executor", "slurm", "--jobs", "2"],
     ["--jobs applies to --executor local only"]),
    (["sweep", "variance_cli_sweep", "--executor", "slurm", "--slurm-config", "/nonexistent/c.toml"],
     ["--slurm-config '/nonexistent/c.toml': no such file"]),
])
def test_bad_sweep_input_is_refused_before_any_work(sweep_registry, capsys, tmp_path, monkeypatch, argv, must):
    monkeypatch.setenv("PATH", "/nonexistent")  # no sbatch either: refusals must come before that check matters
    code, out, err = run([*argv, "--root", str(tmp_path / "runs")], capsys)
    assert_refused(code, err, *must)
    assert not (tmp_path / "runs").exists() and out == ""


def test_slurm_without_a_cluster_is_refused_with_the_way_out(sweep_registry, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    code, _, err = run(["sweep", "variance_cli_sweep", "--executor", "slurm", "--root", str(tmp_path)], capsys)
    assert_refused(code, err, "sbatch and srun are not on PATH", "--executor local", 'cluster = "local"')
    # --status needs no cluster: it reads the run store only.
    code, out, err = run(["sweep", "variance_cli_sweep", "--executor", "slurm", "--status", "--root", str(tmp_path)],
                         capsys)
    assert code == 0 and "missing 3" in out, err


def test_a_gpu_device_on_cpu_nodes_is_refused(sweep_registry, capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('cluster = "local"\n')
    code, _, err = run(["sweep", "variance_cli_sweep", "--executor", "slurm", "--slurm-config", str(cfg),
                        "--device", "cuda", "--root", str(tmp_path)], capsys)
    assert_refused(code, err, "device 'cuda' needs a GPU on the nodes: add --gpus 1")


# ------------------------------------------------------------------------------------------ full scale on a CPU
def test_full_scale_on_the_cpu_says_what_it_needs_and_how_long_and_waits_for_yes(sweep_registry, capsys, tmp_path,
                                                                                   no_terminal):
    argv = ["sweep", "variance_cli_sweep", "--scale", "full", "--root", str(tmp_path), *LOCAL]
    code, out, err = run(argv, capsys)
    assert_refused(code, err, "theorybench sweep variance_cli_sweep --scale full: 3 run(s), 60 training steps",
                   "no CUDA GPU is in use", "it would take about", "This is an estimate", "s/step here",
                   "of GPU memory", "--executor slurm --gpus 1", "Not started: add --yes")
    assert not list(tmp_path.iterdir())  # nothing trained
    code, out, err = run([*argv, "--yes"], capsys)
    assert code == 0, err
    assert "--yes: starting it anyway." in err and "started 3 of 3 members" in out
    segments = json.loads((run_dir(build("full")[0], tmp_path) / "runtime.json").read_text())["segments"]
    assert segments[0]["device"].startswith("cpu")  # "auto" at full scale: no GPU here, so the CPU


def test_full_scale_asks_on_a_terminal(sweep_registry, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    answers = iter(["n", "y"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    argv = ["sweep", "variance_cli_sweep", "--scale", "full", "--root", str(tmp_path), *LOCAL]
    code, _, err = run(argv, capsys)
    assert_refused(code, err, "it would take about", "not started")
    assert not list(tmp_path.iterdir())
    code, out, err = run(argv, capsys)
    assert code == 0 and "started 3 of 3 members" in out, err


def test_full_scale_with_nothing_left_to_train_asks_nothing(sweep_registry, capsys, tmp_path, no_terminal):
    for cfg in build("full"):
        get_or_train(cfg, tmp_path, progress=False)
    code, out, err = run(["sweep", "variance_cli_sweep", "--scale", "full", "--root", str(tmp_path), *LOCAL], capsys)
    assert code == 0 and "nothing to run" in out and "estimate" not in err, err


def test_a_partial_member_is_estimated_from_its_checkpoint(sweep_registry, capsys, tmp_path, no_terminal, monkeypatch):
    original, calls = MarkovTask.sample, {"n": 0}

    def crash_after_the_first_checkpoint(self, batch_size, generator):
        calls["n"] += 1
        if calls["n"] == 2 + 15:
            raise RuntimeError("preempted")
        return original(self, batch_size, generator)

    monkeypatch.setattr(MarkovTask, "sample", crash_after_the_first_checkpoint)
    with pytest.raises(RuntimeError):
        get_or_train(build("full")[0], tmp_path, progress=False)
    monkeypatch.undo()
    assert runstore.checkpoint_step(run_dir(build("full")[0], tmp_path)) == 10
    code, _, err = run(["sweep", "variance_cli_sweep", "--scale", "full", "--root", str(tmp_path), *LOCAL], capsys)
    # 20 steps for each of the 3 members, less the 10 the partial one has behind it.
    assert_refused(code, err, "3 run(s), 50 training steps")
    assert (run_dir(build("full")[0], tmp_path) / CHECKPOINT_FILE).exists()
