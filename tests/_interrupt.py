"""A crash between two checkpoints, simulated in-process: the n-th batch draw of the Markov task raises.

Shared by the trainer's and the sweep's resume tests."""

from __future__ import annotations

from toy_models.tasks.markov import MarkovTask


class Interrupt(Exception):
    pass


def interrupt_at_batch(monkeypatch, n: int) -> None:
    """Make the n-th batch draw raise ``Interrupt``, like a job dying between two checkpoints."""
    original, calls = MarkovTask.sample, {"n": 0}

    def sample(self, batch_size, generator):
        calls["n"] += 1
        if calls["n"] == n:
            raise Interrupt
        return original(self, batch_size, generator)

    monkeypatch.setattr(MarkovTask, "sample", sample)
