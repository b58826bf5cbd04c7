"""The claims ledger: criteria, intervals, verdicts, and how figures carry them to the index and the
command line. Each interval is checked against a closed form, not against the code that computes it."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from theorybench import registry  # noqa: E402
from theorybench.claims import (  # noqa: E402
    Claim, ClaimVerdict, Criterion, LedgerError, Measurement, binomial_interval, bootstrap_interval, combine, exact,
    judge, not_measured, paired_difference, t_interval,
)
from theorybench.cli import main  # noqa: E402
from theorybench.figures import make_figures, save_figure  # noqa: E402
from theorybench.ledger import NOT_RUN, ledger_rows  # noqa: E402
from theorybench.registry import FigureResult, FigureSpec, RegistryError, isolated_registry  # noqa: E402

ERR = Criterion("err", "error/d at N = d+1", "<=", 0.02)
ACC = Criterion("acc", "held-out accuracy at L = 3", ">=", 0.9)
CLAIM = Claim("ls_level", "The learner matches least squares", "What Can Transformers Learn In-Context?, Fig. 2",
              (ERR, ACC))


# ------------------------------------------------------------------------------------ criteria
@pytest.mark.parametrize("low, high, expected", [
    (0.001, 0.019, "met"), (0.021, 0.05, "not met"), (0.01, 0.03, "undecided"),
    (0.02, 0.02, "met"),  # on the threshold: "≤" holds
    (-math.inf, math.inf, "undecided"),
])
def test_an_upper_bound_is_met_only_by_the_whole_interval(low, high, expected):
    value = min(max(0.015, low), high) if math.isfinite(low) else 0.015
    assert ERR.outcome(Measurement(value, low, high, "t")) == expected


@pytest.mark.parametrize("low, high, expected", [(0.91, 0.99, "met"), (0.5, 0.89, "not met"), (0.85, 0.95, "undecided")])
def test_a_lower_bound_is_met_only_by_the_whole_interval(low, high, expected):
    assert ACC.outcome(Measurement((low + high) / 2, low, high, "t")) == expected


def test_nothing_measured_decides_nothing():
    assert ERR.outcome(not_measured("quick scale cannot reach least squares")) == "undecided"


@pytest.mark.parametrize("outcomes, verdict", [
    (["met", "met"], "reproduced"),
    (["met", "not met"], "partly reproduced"),
    (["met", "not met", "undecided"], "partly reproduced"),
    (["not met", "not met"], "not reproduced"),
    (["not met", "undecided"], "not reproduced"),
    (["met", "undecided"], "inconclusive"),
    (["undecided"], "inconclusive"),
])
def test_the_verdict_table(outcomes, verdict):
    assert combine(outcomes) == verdict


def test_bad_claims_are_refused_with_the_field():
    with pytest.raises(LedgerError, match=r"op='<' is not allowed: one of '<=', '>='"):
        Criterion("x", "q", "<", 1.0)
    with pytest.raises(LedgerError, match="threshold=nan must be a finite number"):
        Criterion("x", "q", "<=", float("nan"))
    with pytest.raises(LedgerError, match="criterion key 'Bad-Key' is not allowed"):
        Criterion("Bad-Key", "q", "<=", 1.0)
    with pytest.raises(LedgerError, match="criterion keys repeat"):
        Claim("c", "s", "src", (ERR, ERR))
    with pytest.raises(LedgerError, match="source must be a non-empty string"):
        Claim("c", "s", " ", (ERR,))
    with pytest.raises(LedgerError, match="outside its interval"):
        Measurement(2.0, 0.0, 1.0, "t")


def test_a_figure_with_repeated_criterion_keys_is_refused_at_registration():
    other = Claim("again", "s", "src", (ERR,))
    with pytest.raises(RegistryError, match=r"criterion keys repeat: \['err'\]"):
        FigureSpec("icl_x", "icl", "caption", lambda s: None, claims=(CLAIM, other))


# ------------------------------------------------------------------------------------ intervals
def test_t_interval_matches_the_textbook_value():
    # [1, 2, 3]: mean 2, s = 1, t_{0.975, 2} = 4.302653 (tables) → half-width 4.302653 / √3 = 2.484138.
    m = t_interval([1.0, 2.0, 3.0])
    assert m.value == 2.0 and m.n == 3
    assert m.low == pytest.approx(2 - 2.484138, abs=1e-6) and m.high == pytest.approx(2 + 2.484138, abs=1e-6)


def test_one_seed_decides_nothing():
    m = t_interval([0.001])
    assert (m.low, m.high) == (-math.inf, math.inf) and ERR.outcome(m) == "undecided"


def test_paired_difference_is_the_interval_of_the_differences():
    a, b = [3.0, 4.0, 5.5], [1.0, 1.5, 2.0]
    d = paired_difference(a, b)
    ref = t_interval([2.0, 2.5, 3.5])
    assert (d.value, d.low, d.high) == pytest.approx((ref.value, ref.low, ref.high))
    with pytest.raises(LedgerError, match="one shape"):
        paired_difference([1.0], [1.0, 2.0])


@given(st.integers(1, 60))
def test_clopper_pearson_at_the_extremes_has_a_closed_form(n):
    # k = 0: upper = 1 − (α/2)^(1/n); k = n: lower = (α/2)^(1/n) (the binomial tail is a single term).
    zero, full = binomial_interval(0, n), binomial_interval(n, n)
    assert zero.low == 0.0 and zero.high == pytest.approx(1 - 0.025 ** (1 / n), rel=1e-9)
    assert full.high == 1.0 and full.low == pytest.approx(0.025 ** (1 / n), rel=1e-9)


@given(st.integers(1, 200), st.data())
def test_clopper_pearson_tails_equal_alpha_over_two(n, data):
    # The defining property: P(X ≥ k | p = low) = α/2 and P(X ≤ k | p = high) = α/2.
    from scipy import stats

    k = data.draw(st.integers(1, n - 1)) if n > 1 else 1
    if k >= n:
        return
    m = binomial_interval(k, n)
    assert stats.binom.sf(k - 1, n, m.low) == pytest.approx(0.025, rel=1e-6)
    assert stats.binom.cdf(k, n, m.high) == pytest.approx(0.025, rel=1e-6)
    assert m.low < k / n < m.high


def test_binomial_interval_refuses_impossible_counts():
    with pytest.raises(LedgerError, match="0 <= successes <= n"):
        binomial_interval(5, 3)


@given(st.lists(st.floats(-5, 5), min_size=2, max_size=30), st.integers(0, 2**16))
def test_bootstrap_is_seeded_and_brackets_the_statistic(xs, seed):
    a, b = bootstrap_interval(xs, seed=seed), bootstrap_interval(xs, seed=seed)
    assert a == b
    assert a.low <= a.value <= a.high
    assert min(xs) - 1e-12 <= a.low and a.high <= max(xs) + 1e-12  # a mean of resamples stays in the range


def test_bootstrap_of_constant_samples_is_a_point():
    m = bootstrap_interval([0.3] * 10)
    assert m.low == m.high == pytest.approx(0.3)


# ------------------------------------------------------------------------------------ judging
def test_judge_reads_each_criterion_and_roundtrips_through_json():
    v = judge(CLAIM, {"err": t_interval([0.010, 0.012, 0.011]), "acc": binomial_interval(195, 200)})
    assert [p.outcome for p in v.parts] == ["met", "met"] and v.verdict == "reproduced"
    again = ClaimVerdict.from_dict(json.loads(json.dumps(v.to_dict())))
    assert again == v


def test_a_declared_but_unmeasured_criterion_is_a_bug_in_the_figure():
    with pytest.raises(LedgerError, match="declares criterion 'acc'.*did not measure it"):
        judge(CLAIM, {"err": exact(0.01)}, figure="icl_demo")


def test_the_markdown_line_starts_with_the_verdict():
    v = judge(CLAIM, {"err": t_interval([0.05, 0.06, 0.055]), "acc": not_measured("no L = 3 at this size")})
    lines = v.markdown()
    assert lines[0].startswith("- **Verdict: not reproduced** — The learner matches least squares")
    assert "not met: error/d at N = d+1 ≤ 0.02; measured 0.055 [" in lines[1]
    assert "undecided: held-out accuracy at L = 3 ≥ 0.9; not measured (no L = 3 at this size)" in lines[2]


# ------------------------------------------------------------------------------------ the pipeline
def _maker(err_samples, measured_extra=None):
    def make(scale):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1])
        ax.set_xlabel("N")
        ax.set_ylabel("error/d")
        measured = {"err": t_interval(err_samples), "acc": binomial_interval(190, 200)}
        measured.update(measured_extra or {})
        return FigureResult(fig, {"seeds": float(len(err_samples))}, measured)
    return make


def test_save_figure_judges_and_writes_the_verdicts(tmp_path):
    spec = FigureSpec("icl_demo", "icl", "caption", _maker([0.01, 0.011, 0.012]), claims=(CLAIM,))
    entry = save_figure(spec.make("tiny"), spec, tmp_path, "tiny")
    assert [v.verdict for v in entry.claim_verdicts()] == ["reproduced"]
    stored = json.loads((tmp_path / "icl_demo.json").read_text())
    assert stored["verdicts"][0]["verdict"] == "reproduced"


def test_save_figure_refuses_a_measurement_no_criterion_reads(tmp_path):
    spec = FigureSpec("icl_demo", "icl", "caption", _maker([0.01, 0.02], {"typo": exact(1.0)}), claims=(CLAIM,))
    with pytest.raises(LedgerError, match=r"measured \['typo'\], which no declared criterion reads"):
        save_figure(spec.make("tiny"), spec, tmp_path, "tiny")
    plt.close("all")


def test_index_and_command_line_show_verdicts_and_flag_stale_results(tmp_path, capsys):
    with isolated_registry():
        registry.register_figure(FigureSpec("icl_demo", "icl", "caption", _maker([0.05, 0.06, 0.055]), claims=(CLAIM,)))
        (entry,) = make_figures(scale="tiny", out_dir=tmp_path)
        text = (tmp_path / "README.md").read_text()
        # err misses its bound over the whole interval, acc (190/200, [0.91, 0.98]) meets its own.
        assert "- **Verdict: partly reproduced** — The learner matches least squares" in text
        assert "| [icl_demo](#icl_demo) | ls_level | partly reproduced |" in text
        # the families with nothing at this scale are named, so a partial results folder does not read as whole
        assert "Not yet run here at scale `tiny`: `graph_search`, `attention_svm`, `variance`" in text
        assert entry.provenance["runs"] == [] and entry.provenance["wall_s"] >= 0
        assert entry.provenance["machine"]["cpus"] >= 1

        (row,) = ledger_rows(scale="tiny", out_dir=tmp_path)
        assert (row.verdict, row.stale) == ("partly reproduced", "")
        assert main(["claims", "icl", "--scale", "tiny", "--out", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert "PARTLY REPRODUCED" in out and "error/d at N = d+1 ≤ 0.02" in out and "STALE" not in out

        # Another scale has nothing stored yet: the claim is listed with its criterion, not judged.
        (row,) = ledger_rows(scale="quick", out_dir=tmp_path)
        assert row.verdict == NOT_RUN and "≤ 0.02" in row.criteria

        # Moving a threshold after the run makes the stored verdict stale, never silently re-judged.
        moved = Claim(CLAIM.key, CLAIM.statement, CLAIM.source, (Criterion("err", ERR.quantity, "<=", 0.1), ACC))
        registry._FIGURES["icl_demo"] = FigureSpec("icl_demo", "icl", "caption", _maker([0.05]), claims=(moved,))
        (row,) = ledger_rows(scale="tiny", out_dir=tmp_path)
        assert row.verdict == "partly reproduced" and "claims or criteria changed" in row.stale


def test_claims_refuses_an_unknown_family(capsys):
    assert main(["claims", "vision"]) == 2
    assert "family='vision' is not allowed" in capsys.readouterr().err


def test_a_run_read_by_a_figure_that_the_code_no_longer_builds_is_stale(tmp_path):
    from theorybench.ledger import stale_reasons
    from theorybench.figures import IndexEntry

    spec = FigureSpec("icl_demo", "icl", "caption", _maker([0.01]), claims=(CLAIM,))
    v = judge(CLAIM, {"err": exact(0.01), "acc": exact(0.95)}).to_dict()
    entry = IndexEntry("icl_demo", "icl", "caption", "medium", {}, [v],
                       {"runs": [{"name": "icl_garg-s0", "config_hash": "abc"}]})
    assert stale_reasons(entry, spec, "medium", {"abc"}) == []
    assert "no longer built by the code (e.g. icl_garg-s0)" in stale_reasons(entry, spec, "medium", {"def"})[0]


def test_a_figure_records_the_runs_it_reads(tmp_path):
    """get_or_train notes each run it hands out while a figure is made, so provenance lists them."""
    from _train_worker import tiny_config

    from theorybench.provenance import recording_runs
    from theorybench.runs import get_or_train

    cfg = tiny_config(steps=4)
    with recording_runs() as runs:
        get_or_train(cfg, tmp_path, progress=False)
        get_or_train(cfg, tmp_path, progress=False)  # read twice, recorded once
    assert runs == [{"name": cfg.name, "config_hash": cfg.config_hash()}]
    get_or_train(cfg, tmp_path, progress=False)  # outside a recording nothing is collected
    assert len(runs) == 1
