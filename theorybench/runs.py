"""``get_or_train``: the run of a config, from the run store if it is there, else trained into it.

This module sits above storage and training: the run store (``theorybench.runstore``: paths, files,
locks, integrity) knows nothing of training, the trainer (``theorybench.train``) writes through the
store, and this module combines them. Figure makers, sweeps, the command line and notebooks ask here.

A done run is returned only after checking it (every file against its checksum, the code that
trained it against the code running now); an interrupted run is resumed; an absent one is trained.
A run that stopped on a NaN/Inf or diverged is a stored result: it is refused (``RunFailedError``,
or the trainer's ``NonFiniteError`` when it fails now), or, with ``allow_failed``, returned, its
failure readable as ``run.stored_failure`` (message and step).
"""

from __future__ import annotations

from pathlib import Path

from . import runstore
from . import train as training
from .device import DEFAULT_PRECISION
from .experiment import ExperimentConfig
from .provenance import note_run


def get_or_train(cfg: ExperimentConfig, root: Path | str | None = None, progress: bool | None = None,
                 allow_failed: bool = False, precision: str = DEFAULT_PRECISION, device: str | None = None,
                 retrain: bool = False, accept_stale: bool | None = None) -> runstore.Run:
    """The run of ``cfg`` in the run store: returned if done (and intact), resumed if incomplete,
    trained if absent.

    ``root`` defaults to ``runstore.store_root()``. A done run is checked first
    (``runstore.check_reusable``): damaged files raise ``RunDamagedError``, a run made by other code
    ``RunStaleError`` unless ``accept_stale`` (default ``$THEORYBENCH_ACCEPT_STALE``). ``retrain=True``
    deletes whatever the folder holds and trains from scratch. A run that stops on a NaN/Inf or
    diverges raises the trainer's ``NonFiniteError`` when it happens and ``RunFailedError`` when
    asked for again (training again would fail the same way); with ``allow_failed`` either way it is
    returned, status "failed", its ``stored_failure`` the message and the step. ``precision`` picks
    the run (see ``theorybench.device``); ``device`` is where training happens if it must (default
    ``$THEORYBENCH_DEVICE``, else the CPU); a done run is returned wherever it was trained. A done run
    is read without taking the lock, so a read-only store serves its finished runs.
    """
    accept_stale = runstore.accept_stale_default() if accept_stale is None else accept_stale
    folder = runstore.run_dir(cfg, root, precision)
    run = runstore.Run(dir=folder, config=cfg.resolved())
    note_run(cfg.name, cfg.config_hash())  # the figure being made (if any) records that it read this run
    if not retrain:
        runstore.check_stored_config(cfg, folder)
        if run.status == "done":
            runstore.check_reusable(run, accept_stale)
            return run
    runstore.check_store(folder.parent)
    with runstore.locked(folder):
        if retrain:
            runstore.clear_run(folder)
        runstore.check_stored_config(cfg, folder)
        if run.status == "done":  # another process finished it while this one waited for the lock
            runstore.check_reusable(run, accept_stale)
            return run
        if run.status == "incomplete":
            runstore.check_resumable(run, accept_stale)
            try:
                training.train(cfg, folder, progress=progress, device=device, precision=precision)
            except training.NonFiniteError:
                if not (allow_failed and run.status == "failed"):  # returned only once failed.json holds it
                    raise
        if run.status == "failed" and not allow_failed:
            raise runstore.RunFailedError(f"run {folder} failed: {run.failure} (retrain with --retrain, or delete "
                                          "the folder)")
        return run


__all__ = ["get_or_train"]
