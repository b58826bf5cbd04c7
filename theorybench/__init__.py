"""theorybench: a workbench for the mechanistic theory of transformers.

``theorybench.load(run_or_path)`` returns a stored run's config, metrics frame and model
(``theorybench.runstore.load``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from .runstore import LoadedRun, Run


def load(run_or_path: "Run | Path | str", root: "Path | str | None" = None) -> "LoadedRun":
    """A stored run as ``LoadedRun(config, metrics, model, run, state)``: ``run_or_path`` is a ``Run``,
    a run folder, or a folder name in the run store (``$THEORYBENCH_RUNS``, else ``runs/`` at the
    repository root). A done run is checked against its checksums first."""
    # Imported here, not at the top: the command line imports this package and must start without torch.
    from .runstore import load as load_stored

    return load_stored(run_or_path, root)


__all__ = ["load"]
