"""The contract between a study family's data and the experiment machinery.

A task config is a frozen dataclass (hashable, serializable to a dict) registered under a name with
``register_task``; ``build()`` turns it into a ``Task``. The trainer only ever calls the four members
of ``Task`` below, so a new family adds a task without touching the trainer.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

import torch

Batch = dict[str, torch.Tensor]
"""A batch: at least ``inputs`` (what the model's forward takes first) and ``targets``; optionally
``padding_mask`` / ``attn_mask`` / ``queries`` (passed to the model by name) and anything the task's loss needs."""

MODEL_INPUT_KEYS = ("padding_mask", "attn_mask", "queries")


@runtime_checkable
class Task(Protocol):
    def model_fields(self) -> dict[str, Any]:
        """TransformerConfig fields this task fixes (d_vocab, n_ctx, input_kind, d_input, d_vocab_out, ...)."""

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """A fresh batch drawn only from ``generator`` (so a seed fixes the data stream)."""

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Scalar training loss from the model output [batch, pos, d_vocab_out]."""

    def metrics(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        """Evaluation numbers (floats) for one batch; the trainer averages them over eval batches."""

    # Optional: ``set_step(step)``. A task that has it (a curriculum) is told the optimizer step
    # before each training batch is drawn; the evaluation set is drawn once, before step 1.
    # Optional, for a curriculum driven by the model's progress: ``observe_every`` (int or None) and
    # ``observe(step, metrics)``, called every ``observe_every`` steps with ``metrics`` of the batch just
    # trained on, after its update, in eval mode; ``state_dict()`` / ``load_state_dict(state)``: the
    # task's mutable state (a dict of floats), kept in checkpoints and logged per row as ``task_<key>``.


TASKS: dict[str, type] = {}


def register_task(name: str):
    """Class decorator: register a frozen task-config dataclass under ``name``."""

    def wrap(cls):
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass to be registered as a task config")
        if name in TASKS and TASKS[name] is not cls:
            raise ValueError(f"task name {name!r} is already registered by {TASKS[name].__name__}")
        TASKS[name] = cls
        cls.task_name = name
        return cls

    return wrap


def model_inputs(batch: Batch) -> dict[str, torch.Tensor]:
    """The keyword arguments of the model's forward that a batch carries."""
    return {k: batch[k] for k in MODEL_INPUT_KEYS if k in batch}
