"""Attention-SVM runs through the trainer, for the tests: the study's experiment config
(``theorybench.studies.attention_svm.experiments.seed_run_config``) with the test's steps, trained into a
run store of the test's own, and the W(k) trajectory read back from the run's snapshots."""

from __future__ import annotations

import dataclasses

import numpy as np

from theorybench.experiment import ExperimentConfig, OptimConfig
from theorybench.runs import get_or_train
from theorybench.studies.attention_svm.common import trajectory
from theorybench.studies.attention_svm.experiments import seed_run_config
from theorybench.studies.attention_svm.sizes import SeedRunSizes
from toy_models.tasks.attention_svm_data import AttentionSVMData


def svm_config(par: str, seed: int = 0, steps: int = 1000, method: str = "normalized", path: str = "direct",
               **data) -> ExperimentConfig:
    """The study's run of ``par`` on ``AttentionSVMData(seed=seed, **data)``; ``method='gd'`` trains by
    plain GD (SGD without momentum) at the same η, ``path`` picks the layer's forward."""
    task = AttentionSVMData(seed=seed, **data)
    cfg = seed_run_config(SeedRunSizes(n=task.n, T=task.T, d=task.d, steps=steps, seeds=1), par, seed)
    cfg = dataclasses.replace(cfg, task=task, model=cfg.model.replace(path=path))
    if method == "gd":
        cfg = dataclasses.replace(cfg, optim=OptimConfig(name="sgd", lr=cfg.optim.lr))
    return cfg


def svm_trajectory(root, par: str, **kwargs) -> np.ndarray:
    """W(0) … W(steps) of ``svm_config(par, **kwargs)``, trained into (or read from) the run store ``root``."""
    return trajectory(get_or_train(svm_config(par, **kwargs), root=root, progress=False))
