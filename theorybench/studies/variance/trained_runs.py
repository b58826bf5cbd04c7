"""Access to the variance family's trained runs: one run trained if absent, a run that hit a NaN/Inf kept
as a result, and the model after any number of steps read from prefix runs (``experiments``, "Snapshots")."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tqdm import tqdm

from theorybench.progress import show_progress
from theorybench.runs import get_or_train
from toy_models import Transformer


def fetch(cfg, root: Path | None = None):
    """The run of ``cfg`` in the run store (``root``, default ``$THEORYBENCH_RUNS`` read now), trained if
    absent. A run that hits a NaN/Inf is a result: it is returned with status "failed", its
    ``stored_failure`` the trainer's message and step."""
    return get_or_train(cfg, root, progress=False, allow_failed=True)


def fetch_all(configs: list, desc: str, root: Path | None = None) -> dict:
    """{config name: run} for every member, with a progress bar on a terminal."""
    return {c.name: fetch(c, root) for c in tqdm(configs, desc=desc, disable=not show_progress(None), unit="run")}


def model_at(cfg, step: int, root: Path | None = None):
    """The model of ``cfg`` after ``step`` updates: its initialization at 0, else the final weights of the
    run (or prefix run) of that many steps; None if that run stopped on a NaN/Inf before its end."""
    if step == 0:
        return Transformer(cfg.resolved().model).eval()
    prefix = dataclasses.replace(cfg, name=_prefix_name(cfg.name, step, cfg.train.steps),
                                 train=dataclasses.replace(cfg.train, steps=step, eval_every=step, checkpoint_every=step))
    run = fetch(prefix, root)
    return run.load_model() if run.status == "done" else None


def _prefix_name(name: str, step: int, full_steps: int) -> str:
    return name if step == full_steps else f"{name}-t{step}"
