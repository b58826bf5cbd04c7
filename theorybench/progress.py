"""Whether to draw a progress bar: the one rule every bar of theorybench follows."""

from __future__ import annotations

import sys


def show_progress(progress: bool | None) -> bool:
    """``progress`` if given, else whether stderr (where tqdm draws) is a terminal: a bar in a log file or
    a notebook's captured output is noise, one line per update."""
    return sys.stderr.isatty() if progress is None else bool(progress)


__all__ = ["show_progress"]
