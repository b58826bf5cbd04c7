"""Shared tiny experiment for the trainer tests, and a script that trains it slowly (to be killed).

``train_slowly(root)`` trains ``tiny_config()`` under ROOT with ``get_or_train``, sleeping in every
batch draw so that a test can SIGKILL it mid-run. The sleep does not touch the data, so the
killed-and-resumed run must match an uninterrupted one bit for bit. The test runs it in a forked
process (a fresh interpreter spends ~8 s of CPU importing transformer_lens); ``python
tests/_train_worker.py ROOT`` runs the same thing as a script.

``SlowMarkovConfig`` (task "test_slow_markov") is the Markov task whose batch draws sleep
``$THEORYBENCH_TEST_SLEEP_PER_BATCH_S`` seconds (0 if unset): jobs started in fresh interpreters
(submitit's local executor) import it from here and train slowly enough to be interrupted, while
the same config trained in the test process, with the variable unset, is the fast reference (the
sleep is not part of the config, so both are one run).
"""

from __future__ import annotations

import os
import sys
import time

import torch

import dataclasses

from theorybench.experiment import ExperimentConfig, OptimConfig, TrainConfig
from toy_models import TransformerConfig
from toy_models.tasks.base import register_task
from toy_models.tasks.markov import MarkovConfig, MarkovTask

SLEEP_PER_BATCH_S = 0.02
SLEEP_ENV = "THEORYBENCH_TEST_SLEEP_PER_BATCH_S"


@register_task("test_slow_markov")
@dataclasses.dataclass(frozen=True)
class SlowMarkovConfig(MarkovConfig):
    """The Markov task; batch draws sleep $THEORYBENCH_TEST_SLEEP_PER_BATCH_S seconds (data unchanged)."""

    def build(self):
        return _SlowMarkovTask(self)


class _SlowMarkovTask(MarkovTask):
    def sample(self, batch_size, generator):
        time.sleep(float(os.environ.get(SLEEP_ENV, "0")))
        return super().sample(batch_size, generator)


def tiny_config(steps: int = 60, **optim) -> ExperimentConfig:
    """1 layer, d_model 16, a 6-state chain; checkpoints every 10 steps; ``optim``: OptimConfig fields."""
    return ExperimentConfig(
        name="tiny",
        task=MarkovConfig(n_states=6, seq_len=8),
        model=TransformerConfig(n_layers=1, d_model=16, n_heads=2),
        optim=OptimConfig(**{"lr": 3e-3, **optim}),
        train=TrainConfig(steps=steps, batch_size=8, eval_every=20, eval_batches=2, checkpoint_every=10,
                          log_every=5),
    )


def train_slowly(root: str) -> None:
    # The same thread count as the test process (tests/conftest.py), so float reductions match.
    torch.set_num_threads(int(os.environ.get("THEORYBENCH_TEST_THREADS", "1")))
    original = MarkovTask.sample

    def slow_sample(self, batch_size, generator):
        time.sleep(SLEEP_PER_BATCH_S)
        return original(self, batch_size, generator)

    MarkovTask.sample = slow_sample
    from theorybench.runs import get_or_train

    get_or_train(tiny_config(), root, progress=False)


if __name__ == "__main__":
    train_slowly(sys.argv[1])
