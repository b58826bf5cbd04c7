"""``make figures`` trains the runs its figures read first, in the local process pool (``figures.pretrain``)."""

from __future__ import annotations

import dataclasses
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from _train_worker import tiny_config  # noqa: E402
from theorybench import figures, registry  # noqa: E402
from theorybench.cli import main  # noqa: E402
from theorybench.figures import make_figures, pretrain  # noqa: E402
from theorybench.registry import FigureResult, FigureSpec, SweepSpec, isolated_registry  # noqa: E402
from theorybench.runs import get_or_train  # noqa: E402
from theorybench.runstore import load_run, run_dir  # noqa: E402
from theorybench.sweep import read_record  # noqa: E402


def _members(seeds):
    def build(scale: str):
        """Tiny Markov runs."""
        return [dataclasses.replace(tiny_config(steps=10), seed=s) for s in seeds]
    return build


def _figure(name: str, family: str, read=None):
    def make(scale: str) -> FigureResult:
        if read is not None:
            read()
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        return FigureResult(fig, {})
    return FigureSpec(name, family, "A demo claim (\"Some Paper Title\").", make)


@pytest.fixture
def demo_registry():
    with isolated_registry():
        registry.register_sweep(SweepSpec("icl_demo_seeds", "icl", _members([0, 1])))
        registry.register_sweep(SweepSpec("icl_demo_more", "icl", _members([1, 2])))  # seed 1 shared
        registry.register_sweep(SweepSpec("variance_demo", "variance", _members([3])))
        yield


def test_pretrain_trains_the_sweeps_of_the_requested_families_once_each(demo_registry, tmp_path):
    lines: list[str] = []
    outcomes = pretrain([_figure("icl_demo", "icl")], "tiny", root=tmp_path, jobs=1,
                        progress=False, say=lines.append)
    configs = {s: dataclasses.replace(tiny_config(steps=10), seed=s) for s in range(4)}
    # seeds 0, 1, 2 (seed 1 belongs to both icl sweeps and trains once); the variance sweep is not asked for
    assert sorted(o.status for o in outcomes) == ["done"] * 3
    assert [load_run(run_dir(configs[s], tmp_path)).status for s in (0, 1, 2)] == ["done"] * 3
    assert not run_dir(configs[3], tmp_path).exists()
    assert lines[0].startswith("pretrain: 3 of the 4 runs of icl_demo_more, icl_demo_seeds (scale tiny) to train")
    assert lines[-1] == "pretrain: 3 of 3 runs trained"
    assert set(read_record(tmp_path, "icl_demo_seeds", "tiny")) | set(read_record(tmp_path, "icl_demo_more", "tiny")) \
        == {run_dir(configs[s], tmp_path).name for s in (0, 1, 2)}
    lines.clear()
    assert pretrain([_figure("icl_demo", "icl")], "tiny", root=tmp_path, jobs=1,
                    say=lines.append) == []
    assert lines == [f"pretrain: nothing to train for icl_demo_more, icl_demo_seeds (scale tiny): its 4 runs are "
                     f"in the run store {tmp_path.absolute()}"]


def test_progress_lines_count_the_runs_that_remain(demo_registry, tmp_path):
    lines: list[str] = []
    pretrain([_figure("variance_demo", "variance"), _figure("icl_demo", "icl")], "tiny", root=tmp_path, jobs=1,
             progress=False, say=lines.append, poll_s=0.01)
    counts = [re.fullmatch(r"pretrain: (\d) of 4 runs ended, (\d) remain(, about \d+ s left)?", line)
              for line in lines if "runs ended" in line]
    assert counts and all(counts), lines  # at least one progress line while the runs trained, all well formed
    ended = [int(m[1]) for m in counts]
    assert ended == sorted(set(ended))  # a line each time the count grows, never twice the same
    assert all(int(m[2]) == 4 - int(m[1]) and bool(m[3]) == (int(m[1]) < 4) for m in counts)


def test_make_figures_trains_first_unless_told_not_to(demo_registry, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(figures, "pretrain", lambda specs, scale: seen.append(([s.name for s in specs], scale)))
    registry.register_figure(_figure("icl_demo", "icl"))
    make_figures(out_dir=tmp_path, scale="tiny")
    assert seen == [(["icl_demo"], "tiny")]
    make_figures(out_dir=tmp_path, scale="tiny", train_first=False)
    assert len(seen) == 1


def test_the_figure_finds_its_runs_done(demo_registry, tmp_path, monkeypatch):
    """The runs the pool trained are the ones get_or_train returns to the figure maker: no training there."""
    monkeypatch.setenv("THEORYBENCH_RUNS", str(tmp_path))
    import theorybench.train

    registry.register_figure(_figure("icl_demo", "icl", read=lambda: [get_or_train(
        dataclasses.replace(tiny_config(steps=10), seed=s), progress=False) for s in (0, 1, 2)]))
    real_train, trained_by_figure = theorybench.train.train, []
    pretrain(registry.figures().values(), "tiny", jobs=1, progress=False, say=lambda line: None)

    def spy(*args, **kwargs):
        trained_by_figure.append(args[0].name)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(theorybench.train, "train", spy)
    make_figures(out_dir=tmp_path / "figs", scale="tiny", train_first=False)
    assert trained_by_figure == []


@pytest.mark.slow
def test_pretrain_uses_a_pool_of_workers(demo_registry, tmp_path):
    outcomes = pretrain([_figure("icl_demo", "icl")], "tiny", root=tmp_path, jobs=2,
                        progress=False, say=lambda line: None, mp_context="fork")
    assert sorted(o.status for o in outcomes) == ["done"] * 3


def test_the_command_line_trains_first_unless_no_pretrain(demo_registry, tmp_path, monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(figures, "pretrain", lambda specs, scale: seen.append(scale))
    registry.register_figure(_figure("icl_demo", "icl"))
    assert main(["figures", "--scale", "tiny", "--out", str(tmp_path)]) == 0
    assert main(["figures", "--scale", "tiny", "--out", str(tmp_path), "--no-pretrain"]) == 0
    assert seen == ["tiny"]
