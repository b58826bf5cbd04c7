"""Whether to draw a progress bar: the one rule every bar of theorybench follows."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def show_progress(progress: bool | None) -> bool:
    """``progress`` if given, else whether stderr (where tqdm draws) is a terminal: a bar in a log file or
    a notebook's captured output is noise, one line per update."""
    return sys.stderr.isatty() if progress is None else bool(progress)


class ProgressLines:
    """Plain progress lines for long work whose bar is not drawn because stderr is no terminal (a log
    file, a batch job) and progress was not turned off (``progress=None``): one line per finished unit,
    "DESC: k/n finished (WHAT); 12m 03s so far, about 20m left", the estimate linear in the units done."""

    def __init__(self, desc: str, total: int, progress: bool | None, stream: TextIO | None = None):
        self.desc, self.total, self.done = desc, total, 0
        self.on = progress is None and not show_progress(None)
        self.stream = stream
        self.started = time.monotonic()

    def finished(self, what: str) -> None:
        self.done += 1
        if not self.on:
            return
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done)
        tail = f", about {duration(left)} left" if self.done < self.total else ""
        print(f"{self.desc}: {self.done}/{self.total} finished ({what}); {duration(elapsed)} so far{tail}",
              file=self.stream or sys.stderr, flush=True)


def duration(seconds: float) -> str:
    """"45s", "12m 03s" or "2h 05m"."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


__all__ = ["ProgressLines", "duration", "show_progress"]
