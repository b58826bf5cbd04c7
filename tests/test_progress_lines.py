"""Progress for long work in a log file: where no bar is drawn (stderr is no terminal) and progress was
not turned off, one plain line per finished unit with the count and an estimate of the time left."""

from __future__ import annotations

import io

import pytest

from theorybench import progress
from theorybench.progress import ProgressLines, duration


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59.4, "59s"), (60, "1m 00s"), (723, "12m 03s"),
                                           (3599, "59m 59s"), (7500, "2h 05m")])
def test_duration_reads_like_a_clock(seconds, text):
    assert duration(seconds) == text


def test_a_line_per_unit_with_a_linear_estimate_only_where_no_bar_is_drawn(monkeypatch):
    clock = iter([100.0, 160.0, 220.0, 280.0])  # start, then one unit a minute
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(progress, "show_progress", lambda p: False if p is None else bool(p))  # a log file
    out = io.StringIO()
    lines = ProgressLines("sweep", 3, None, stream=out)
    for what in ("a: done", "b: failed", "c: done"):
        lines.finished(what)
    assert out.getvalue().splitlines() == [
        "sweep: 1/3 finished (a: done); 1m 00s so far, about 2m 00s left",
        "sweep: 2/3 finished (b: failed); 2m 00s so far, about 1m 00s left",
        "sweep: 3/3 finished (c: done); 3m 00s so far",
    ]


@pytest.mark.parametrize("tty, asked", [(True, None), (False, False), (True, True), (False, True)])
def test_silent_at_a_terminal_with_its_bar_or_when_progress_is_asked_for_or_turned_off(monkeypatch, tty, asked):
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: tty, raising=False)
    out = io.StringIO()
    ProgressLines("sweep", 2, asked, stream=out).finished("a")
    assert out.getvalue() == ""
