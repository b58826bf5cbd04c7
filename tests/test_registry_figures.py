"""The registry (experiment and figure specs) and the figure pipeline behind `make figures`."""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from theorybench import registry  # noqa: E402
from theorybench.figures import IndexEntry, make_figures, save_figure, write_index  # noqa: E402
from theorybench.registry import (  # noqa: E402
    FAMILIES, ExperimentSpec, FigureResult, FigureSpec, RegistryError, isolated_registry,
)
from theorybench.style import apply_style, band  # noqa: E402


@pytest.fixture
def empty_registry():
    with isolated_registry():
        yield


def _line_figure(calls: list | None = None, scale_seen: list | None = None):
    """A figure maker that records its calls, for checking that bad input stops before any work."""

    def make(scale: str) -> FigureResult:
        if calls is not None:
            calls.append(scale)
        fig, ax = plt.subplots()
        ax.plot([0, 1, 2], [1.0, 0.5, 0.25], label="loss")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend()
        return FigureResult(fig, {"final loss": 0.25, "solver": "exact"})

    return make


def _spec(name="icl_demo", family="icl", calls=None) -> FigureSpec:
    return FigureSpec(name, family, "A demo claim (\"Some Paper Title\").", _line_figure(calls))


# ------------------------------------------------------------------------------------ spec validation
def test_figure_name_must_start_with_its_family():
    with pytest.raises(RegistryError, match=r"must start with its family: 'variance_…'"):
        _spec(name="icl_demo", family="variance")


def test_unknown_family_is_refused_listing_the_families():
    with pytest.raises(RegistryError) as err:
        ExperimentSpec("demo", "vision", lambda scale: None)
    for family in FAMILIES:
        assert repr(family) in str(err.value)


@pytest.mark.parametrize("name", ["", "Icl_demo", "icl demo", "icl-demo", "1icl"])
def test_names_that_cannot_name_files_and_arguments_are_refused(name):
    with pytest.raises(RegistryError, match="lower-case letters"):
        ExperimentSpec(name, "icl", lambda scale: None)


def test_a_figure_must_state_its_claim():
    with pytest.raises(RegistryError, match="claim"):
        FigureSpec("icl_demo", "icl", "  ", _line_figure())


def test_duplicate_names_are_refused_but_re_registering_the_same_spec_is_not(empty_registry):
    spec = registry.register_figure(_spec())
    registry.register_figure(spec)  # a module imported twice registers the same object again
    with pytest.raises(RegistryError, match="already registered"):
        registry.register_figure(_spec())  # same name, another maker
    assert list(registry.figures()) == ["icl_demo"]


def test_listings_are_grouped_in_family_order(empty_registry):
    for name, family in [("variance_b", "variance"), ("icl_z", "icl"), ("graph_search_a", "graph_search")]:
        registry.register_figure(_spec(name, family))
    assert list(registry.figures()) == ["icl_z", "graph_search_a", "variance_b"]


def test_unknown_lookup_lists_the_valid_names(empty_registry):
    registry.register_figure(_spec())
    with pytest.raises(RegistryError, match=r"unknown figure 'icl_dmeo'; valid figures: icl_demo"):
        registry.get_figure("icl_dmeo")


def test_scale_from_environment(monkeypatch):
    monkeypatch.delenv(registry.SCALE_ENV, raising=False)
    assert registry.default_scale() == "quick"
    monkeypatch.setenv(registry.SCALE_ENV, "full")
    assert registry.default_scale() == "full"
    monkeypatch.setenv(registry.SCALE_ENV, "huge")
    with pytest.raises(RegistryError, match=r"scale='huge' is not allowed: one of 'tiny', 'quick', 'medium', 'full'"):
        registry.default_scale()


def test_load_studies_imports_every_study_module(tmp_path, monkeypatch):
    """A module dropped into theorybench/studies/ registers itself when the studies are loaded."""
    import theorybench.studies as studies

    (tmp_path / "zz_test_fake_study.py").write_text(
        "from theorybench.registry import ExperimentSpec, register_experiment\n"
        "register_experiment(ExperimentSpec('zz_fake', 'variance', lambda scale: scale))\n")
    monkeypatch.setattr(studies, "__path__", [*studies.__path__, str(tmp_path)])
    saved = registry._EXPERIMENTS.copy()
    try:
        registry.load_studies()
        assert registry.get_experiment("zz_fake").family == "variance"
    finally:
        sys.modules.pop("theorybench.studies.zz_test_fake_study", None)
        registry._EXPERIMENTS.clear()
        registry._EXPERIMENTS.update(saved)


# ------------------------------------------------------------------------------------ saving and index
def test_save_figure_writes_png_pdf_and_numbers(tmp_path):
    spec = _spec()
    entry = save_figure(spec.make("quick"), spec, tmp_path)
    assert (tmp_path / "icl_demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "icl_demo.pdf").read_bytes()[:5] == b"%PDF-"
    stored = json.loads((tmp_path / "icl_demo.json").read_text())
    assert stored == {"name": "icl_demo", "family": "icl", "claim": spec.claim, "scale": "quick",
                      "numbers": {"final loss": 0.25, "solver": "exact"}, "verdicts": [], "provenance": {}}
    assert entry == IndexEntry(**stored)
    assert plt.get_fignums() == []  # saved figures are closed, so a long `make figures` does not leak them


def test_the_same_figure_gives_the_same_pdf_bytes(tmp_path):
    """No creation date in the PDF: remaking an unchanged figure does not show up as a change."""
    spec = _spec()
    save_figure(spec.make("quick"), spec, tmp_path / "a")
    save_figure(spec.make("quick"), spec, tmp_path / "b")
    assert (tmp_path / "a" / "icl_demo.pdf").read_bytes() == (tmp_path / "b" / "icl_demo.pdf").read_bytes()


def test_unlabelled_axes_are_refused(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("step")
    with pytest.raises(ValueError, match="no y axis label"):
        save_figure(FigureResult(fig, {}), _spec(), tmp_path)
    plt.close(fig)


def test_numbers_must_be_numbers_or_text(tmp_path):
    fig = _line_figure()("quick").figure
    with pytest.raises(ValueError, match=r"number 'loss'=\[1\.0\] must be a float, int or str"):
        save_figure(FigureResult(fig, {"loss": [1.0]}), _spec(), tmp_path)
    plt.close(fig)


def test_index_shows_each_figure_beside_its_claim_and_numbers(tmp_path):
    entries = [IndexEntry("variance_depth", "variance", "Pre-LN variance grows linearly (\"Peri-LN\").", "quick",
                          {"slope": 0.123456, "runs": 3.0, "note": "exact"}),
               IndexEntry("icl_gd", "icl", "One LSA layer is one GD step.", "full", {})]
    text = write_index(entries, tmp_path).read_text()
    # Families appear in FAMILIES order, each figure as an image next to its claim and its numbers.
    assert text.index("## icl") < text.index("## variance")
    assert "![variance_depth](variance_depth.png)" in text
    assert "**Claim.** Pre-LN variance grows linearly (\"Peri-LN\")." in text
    assert "| slope | 0.1235 |" in text  # 4 significant digits
    assert "| runs | 3 |" in text and "| note | exact |" in text
    assert "scale: `full`" in text
    assert "No figures yet" not in text


def test_index_with_no_figures_says_so(tmp_path):
    text = write_index([], tmp_path).read_text()
    assert "No figures yet" in text
    for family in FAMILIES:
        assert f"`{family}`" in text


def test_make_figures_checks_every_name_before_any_work(empty_registry, tmp_path):
    calls: list[str] = []
    registry.register_figure(_spec(calls=calls))
    with pytest.raises(RegistryError, match="valid figures: icl_demo"):
        make_figures(["icl_demo", "icl_nope"], out_dir=tmp_path / "out")
    assert calls == [] and not (tmp_path / "out").exists()


def test_make_figures_makes_all_and_a_partial_remake_keeps_the_index_whole(empty_registry, tmp_path):
    calls: list[str] = []
    registry.register_figure(_spec("icl_demo", "icl", calls))
    registry.register_figure(_spec("attention_svm_demo", "attention_svm", calls))
    made = make_figures(out_dir=tmp_path, scale="quick")
    assert [e.name for e in made] == ["icl_demo", "attention_svm_demo"] and calls == ["quick", "quick"]
    made = make_figures(["attention_svm_demo"], out_dir=tmp_path, scale="full")
    assert [e.name for e in made] == ["attention_svm_demo"] and calls[-1] == "full"
    text = (tmp_path / "README.md").read_text()
    assert "![icl_demo](icl_demo.png)" in text and "![attention_svm_demo](attention_svm_demo.png)" in text
    assert "scale: `full`" in text and "scale: `quick`" in text


def test_make_figures_with_nothing_registered_writes_an_index_that_says_so(empty_registry, tmp_path):
    assert make_figures(out_dir=tmp_path) == []
    assert "No figures yet" in (tmp_path / "README.md").read_text()


# ------------------------------------------------------------------------------------ style
def test_band_draws_the_mean_and_a_mean_plus_minus_std_band():
    apply_style(headless=True)
    x, mean, std = np.arange(4.0), np.array([1.0, 2.0, 1.5, 0.5]), np.array([0.1, 0.3, 0.0, 0.2])
    fig, ax = plt.subplots()
    line = band(ax, x, mean, std, label="pre-LN")
    np.testing.assert_array_equal(line.get_ydata(), mean)
    assert line.get_label() == "pre-LN"
    (poly,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    ys = poly.get_paths()[0].vertices[:, 1]
    # The band's outline is made of the points mean - std and mean + std themselves: exact equality.
    assert ys.min() == (mean - std).min() and ys.max() == (mean + std).max()
    assert poly.get_facecolor()[0][:3] == pytest.approx(matplotlib.colors.to_rgb(line.get_color()))
    plt.close(fig)


def test_band_refuses_mismatched_shapes():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="one length"):
        band(ax, [0, 1, 2], [0, 1], [0, 0], label="x")
    plt.close(fig)


# ------------------------------------------------------------------------------------------ sweeps
def _markov_config(name: str, seed: int):
    from theorybench.experiment import ExperimentConfig
    from toy_models.tasks.markov import MarkovConfig

    return ExperimentConfig(name=name, task=MarkovConfig(), seed=seed)


def test_sweep_members_are_checked_and_listed():
    from theorybench.registry import SweepSpec, get_sweep, register_sweep, sweeps

    def build(scale):
        """Two seeds of one Markov run."""
        return [_markov_config(f"m_s{s}", s) for s in range(2)]

    with isolated_registry():
        spec = register_sweep(SweepSpec("variance_demo", "variance", build))
        assert list(sweeps()) == ["variance_demo"] and get_sweep("variance_demo") is spec
        assert spec.summary == "Two seeds of one Markov run."
        assert [c.seed for c in spec.members("quick")] == [0, 1]
        with pytest.raises(RegistryError, match="scale='huge'"):
            spec.members("huge")
        with pytest.raises(RegistryError, match="unknown sweep 'nope'; valid sweeps: variance_demo"):
            get_sweep("nope")


def test_sweep_refuses_duplicate_members_and_non_configs():
    from theorybench.registry import SweepSpec

    twice = SweepSpec("variance_twice", "variance", lambda scale: [_markov_config("m", 0)] * 2)
    with pytest.raises(RegistryError, match="member 'm' appears twice"):
        twice.members("quick")
    wrong = SweepSpec("variance_wrong", "variance", lambda scale: ["not a config"])
    with pytest.raises(RegistryError, match="returned str, expected ExperimentConfig"):
        wrong.members("quick")
    with pytest.raises(RegistryError, match="family='nope'"):
        SweepSpec("x_y", "nope", lambda scale: [])
