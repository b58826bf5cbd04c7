"""A crash between two checkpoints, simulated in-process: the n-th batch draw of the Markov task raises.

Shared by the trainer's and the sweep's resume tests."""

from __future__ import annotations

from toy_models.tasks.markov import MarkovTask


class Interrupt(Exception):
    pass


def interrupt_at_batch(monkeypatch, n: int, task_class: type = MarkovTask) -> None:
    """Make the n-th batch draw of ``task_class`` raise ``Interrupt``, like a job dying between two
    checkpoints (the trainer draws its eval batches first, then one batch per step)."""
    original, calls = task_class.sample, {"n": 0}

    def sample(self, batch_size, generator):
        calls["n"] += 1
        if calls["n"] == n:
            raise Interrupt
        return original(self, batch_size, generator)

    monkeypatch.setattr(task_class, "sample", sample)
