"""The `theorybench` command line: listing, training, figures, configs, and refusal of bad input.

Bad input must be refused before any work, with a message that lists what is allowed, exit status 2
and no traceback. Most tests run `main(argv)` in-process with a tiny registered experiment (a 1-layer
model on the Markov-chain task, 20 steps); two run the real entry points as subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from theorybench import registry
from theorybench.cli import main
from theorybench.registry import ExperimentSpec, FigureResult, FigureSpec, isolated_registry

REPO = Path(__file__).resolve().parents[1]


def tiny_markov(scale: str):
    """Tiny Markov next-token run for the command-line tests."""
    from theorybench.experiment import ExperimentConfig, TrainConfig
    from toy_models.config import TransformerConfig
    from toy_models.tasks.markov import MarkovConfig

    return ExperimentConfig(
        name="cli_markov",
        task=MarkovConfig(n_states=4, seq_len=8),
        model=TransformerConfig(n_layers=1, d_model=16, n_heads=2, attn_only=True),
        train=TrainConfig(steps=20 if scale == "quick" else 40, batch_size=8, eval_every=10, eval_batches=1,
                          checkpoint_every=10, log_every=5),
    )


@pytest.fixture
def cli_registry():
    """Only the test's own experiment and figure are registered; `calls` records figure making."""
    calls: list[str] = []

    def make(scale: str) -> FigureResult:
        import matplotlib.pyplot as plt

        calls.append(scale)
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1])
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        return FigureResult(fig, {"slope": 1.0})

    with isolated_registry():
        registry.register_experiment(ExperimentSpec("cli_markov", "variance", tiny_markov))
        registry.register_figure(FigureSpec("variance_cli_demo", "variance",
                                            "A straight line has slope one (\"A Test Paper\").", make))
        yield calls


def run(argv, capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code: int, err: str, *must_list: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    flat = " ".join(err.split())  # long messages are wrapped at 100 columns
    for text in must_list:
        assert text in flat, f"{text!r} missing from the refusal: {err}"


# ------------------------------------------------------------------------------------------ list
def test_list_shows_families_experiments_and_claims(cli_registry, capsys):
    code, out, _ = run(["list"], capsys)
    assert code == 0
    for family in registry.FAMILIES:
        assert f"  {family}:" in out
    assert "cli_markov  Tiny Markov next-token run for the command-line tests." in out
    assert "variance_cli_demo\n      claim: A straight line has slope one (\"A Test Paper\")." in out
    # each figure names the module that measures, plots and declares it (here: this test file's fixture)
    assert f"      module: {__name__}\n" in out
    # 3 families without experiments, 3 without figures, 4 without sweeps (tests/test_sweep_cli.py lists one)
    assert out.count("(none yet)") == 10


# ------------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("command", ["train", "show-config"])
def test_unknown_experiment_is_refused_listing_the_valid_ones(cli_registry, capsys, command):
    code, _, err = run([command, "cli_markvo"], capsys)
    assert_refused(code, err, "unknown experiment 'cli_markvo'", "valid experiments: cli_markov")


@pytest.mark.parametrize("override, listed", [
    ("model.d_modle=32", "model.d_model"),            # unknown key: the valid keys are listed
    ("optimizer.lr=0.1", "optim.lr"),                  # unknown section
    ("optim.name=adam", "'adamw'"),                    # a Literal: the allowed values are listed
    ("model.n_layers=0", "a positive integer"),        # refused by the config's own validation
    ("optim.lr=fast", "expected float"),              # unparsable value
    ("model.d_vocab=9", "set by task 'markov'"),       # a field the task fixes
    ("model.d_model", "not key=value"),                # no '='
])
def test_bad_overrides_are_refused_before_training(cli_registry, capsys, tmp_path, override, listed):
    runs = tmp_path / "runs"
    code, out, err = run(["train", "cli_markov", override, "--runs", str(runs)], capsys)
    assert_refused(code, err, listed)
    assert not runs.exists() and "run:" not in out  # no work started


@pytest.mark.parametrize("command", [["train", "cli_markov"], ["figures"], ["show-config", "cli_markov"]])
def test_bad_scale_is_refused_listing_the_scales(cli_registry, capsys, command):
    code, _, err = run([*command, "--scale", "huge"], capsys)
    assert_refused(code, err, "invalid choice: 'huge'", "'quick'", "'full'")


def test_unknown_figure_is_refused_before_any_figure_is_made(cli_registry, capsys, tmp_path):
    out_dir = tmp_path / "figs"
    code, _, err = run(["figures", "variance_cli_demo", "icl_nope", "--out", str(out_dir)], capsys)
    assert_refused(code, err, "unknown figure 'icl_nope'", "valid figures: variance_cli_demo")
    assert cli_registry == [] and not out_dir.exists()


def test_unknown_option_and_missing_command_are_usage_errors(cli_registry, capsys):
    code, _, err = run(["list", "--verbose"], capsys)
    assert_refused(code, err, "unrecognized arguments: --verbose")
    code, out, _ = run([], capsys)
    assert code == 2 and "train" in out and "figures" in out  # the help, listing the commands


# ------------------------------------------------------------------------------------------ work
def test_show_config_prints_the_resolved_config_with_overrides(cli_registry, capsys):
    # An override after an option is accepted too (argparse alone would refuse it).
    code, out, err = run(["show-config", "cli_markov", "model.d_model=32", "--scale", "full", "seed=3"], capsys)
    assert code == 0, err
    cfg = json.loads(out)
    assert cfg["model"]["d_model"] == 32 and cfg["seed"] == 3 and cfg["train"]["steps"] == 40
    assert cfg["model"]["d_vocab"] == 4 and cfg["model"]["n_ctx"] == 8  # resolved: fixed by the task
    assert cfg["task"]["name"] == "markov"


def test_train_prints_the_run_and_reuses_it(cli_registry, capsys, tmp_path):
    runs = tmp_path / "runs"
    code, out, err = run(["train", "cli_markov", "optim.lr=0.01", "--runs", str(runs)], capsys)
    assert code == 0, err
    run_dir = Path(out.splitlines()[0].removeprefix("run: "))
    assert run_dir.parent == runs and (run_dir / "done.json").exists()
    assert "final metrics:" in out and "  step: 20" in out
    stored = json.loads((run_dir / "config.json").read_text())
    assert stored["optim"]["lr"] == 0.01
    metrics_mtime = (run_dir / "metrics.csv").stat().st_mtime_ns
    code, again, _ = run(["train", "cli_markov", "optim.lr=0.01", "--runs", str(runs)], capsys)
    assert code == 0 and again == out  # the same run and the same final numbers
    assert (run_dir / "metrics.csv").stat().st_mtime_ns == metrics_mtime  # reused, not retrained


def test_figures_makes_the_registered_figures_and_the_index(cli_registry, capsys, tmp_path):
    code, out, err = run(["figures", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert cli_registry == ["quick"]
    assert (tmp_path / "variance_cli_demo.png").exists() and (tmp_path / "variance_cli_demo.pdf").exists()
    assert "![variance_cli_demo](variance_cli_demo.png)" in (tmp_path / "README.md").read_text()


# ------------------------------------------------------------------------------------------ devices, full scale
def test_train_at_full_scale_on_the_cpu_needs_confirmation(cli_registry, capsys, tmp_path, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal to ask on
    runs = tmp_path / "runs"
    code, out, err = run(["train", "cli_markov", "--scale", "full", "--runs", str(runs)], capsys)
    assert_refused(code, err, "theorybench train cli_markov --scale full: 1 run(s), 40 training steps",
                   "it would take about", "This is an estimate", "Not started: add --yes")
    assert not runs.exists()
    code, out, err = run(["train", "cli_markov", "--scale", "full", "--runs", str(runs), "--yes"], capsys)
    assert code == 0 and "  step: 40" in out, err
    # Done now: asking again reuses the run and needs no confirmation.
    code, again, err = run(["train", "cli_markov", "--scale", "full", "--runs", str(runs)], capsys)
    assert code == 0 and again == out and err == ""


def test_figures_at_full_scale_on_the_cpu_need_confirmation(cli_registry, capsys, tmp_path, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = run(["figures", "--scale", "full", "--out", str(tmp_path)], capsys)
    assert_refused(code, err, "no registered sweep declares these figures' runs", "--yes")
    assert cli_registry == [] and not list(tmp_path.iterdir())
    code, _, err = run(["figures", "--scale", "full", "--out", str(tmp_path), "--yes"], capsys)
    assert code == 0 and cli_registry == ["full"], err


@pytest.mark.parametrize("argv, message", [
    (["--device", "cuda"], "device='cuda' asks for a GPU, but torch.cuda.is_available() is False"),
    (["--device", "cuda:x"], "device='cuda:x' is not a device"),
    (["--precision", "tf32"], "precision='tf32' needs a CUDA device"),
    (["--precision", "bf16", "model.dtype=float64"], "precision='bf16' is not allowed for a float64 model"),
])
def test_a_device_or_precision_this_machine_cannot_honour_is_refused(cli_registry, capsys, tmp_path, argv, message):
    runs = tmp_path / "runs"
    code, _, err = run(["train", "cli_markov", "--runs", str(runs), *argv], capsys)
    assert_refused(code, err, message)
    assert not runs.exists()


def test_a_device_from_the_environment_is_named_as_such(cli_registry, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("THEORYBENCH_DEVICE", "gpu")
    code, _, err = run(["train", "cli_markov", "--runs", str(tmp_path)], capsys)
    assert_refused(code, err, "THEORYBENCH_DEVICE='gpu' is not a device")


def test_train_in_bf16_is_a_run_of_its_own(cli_registry, capsys, tmp_path):
    code, out, err = run(["train", "cli_markov", "--precision", "bf16", "--runs", str(tmp_path)], capsys)
    assert code == 0, err
    run_dir = Path(out.splitlines()[0].removeprefix("run: "))
    assert run_dir.name.endswith("-bf16") and json.loads((run_dir / "runtime.json").read_text())["precision"] == "bf16"
    code, strict, err = run(["train", "cli_markov", "--runs", str(tmp_path)], capsys)
    assert code == 0 and Path(strict.splitlines()[0].removeprefix("run: ")) == run_dir.with_name(
        run_dir.name.removesuffix("-bf16"))


def test_figures_with_nothing_registered_still_writes_the_index(capsys, tmp_path):
    with isolated_registry():
        code, out, err = run(["figures", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert "made 0 figure(s)" in out
    assert "No figures yet" in (tmp_path / "README.md").read_text()


# ------------------------------------------------------------------------------------------ entry points
def _subprocess(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "THEORYBENCH_RUNS": str(cwd / "runs")}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_python_dash_m_lists_with_the_real_study_families(tmp_path):
    result = _subprocess([sys.executable, "-m", "theorybench", "list"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "Experiments" in result.stdout and "Figures" in result.stdout


def test_console_script_refuses_an_unknown_name_with_status_2_and_no_traceback(tmp_path):
    script = Path(sys.executable).parent / "theorybench"  # installed by `pip install -e .` from pyproject
    result = _subprocess([str(script), "train", "no_such_experiment"], tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "unknown experiment 'no_such_experiment'; valid experiments:" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_diverging_run_exits_1_with_the_step_and_no_traceback(tmp_path, capsys):
    """lr = 1e30 makes the loss non-finite within a few steps: the trainer's message, exit status 1."""
    from theorybench.experiment import ExperimentConfig, OptimConfig, TrainConfig
    from theorybench.registry import ExperimentSpec, isolated_registry, register_experiment
    from toy_models.config import TransformerConfig
    from toy_models.tasks.markov import MarkovConfig

    def build(scale):
        """A Markov run that diverges."""
        return ExperimentConfig(name="diverges", task=MarkovConfig(n_states=4, seq_len=8),
                                model=TransformerConfig(n_layers=1, d_model=8, n_heads=1),
                                optim=OptimConfig(name="sgd", lr=1e30),
                                train=TrainConfig(steps=20, batch_size=4, eval_every=10, checkpoint_every=10,
                                                  log_every=1))

    with isolated_registry():
        register_experiment(ExperimentSpec("diverges", "variance", build))
        status = main(["train", "diverges", "--runs", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 1
    assert "run failed" in err and "step" in err and "nan" in err.lower()
    assert "Traceback" not in err


def test_a_refused_section_value_names_the_section(tmp_path, capsys):
    from theorybench.experiment import ExperimentConfig, OverrideError, apply_overrides
    from toy_models.tasks.markov import MarkovConfig

    cfg = ExperimentConfig(name="x", task=MarkovConfig())
    with pytest.raises(OverrideError, match=r"model\.n_layers=0 is not allowed: a positive integer"):
        apply_overrides(cfg, ["model.n_layers=0"])


def test_a_reader_that_leaves_stops_the_command_quietly():
    """`theorybench list | head` used to end in a BrokenPipeError traceback. Here the pipe's reading end is
    closed before the command writes, so its first write fails with EPIPE (Python ignores SIGPIPE): the
    command must exit with 141 (128 + SIGPIPE) and print no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "theorybench", "list"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 141
