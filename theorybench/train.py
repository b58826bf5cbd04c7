"""The trainer: seeded, checkpointed, resumable, and stopped by the first NaN or Inf.

Randomness, all derived from ``cfg.seed`` (``derive_seed``):

- model init: ``model.seed`` (set in ``ExperimentConfig.resolved``), then the named initial state
  ``train.init_state`` if any (``toy_models.initial_states``), seeded by ``derive_seed(seed, "init_state")``;
  the parameters ``train.frozen`` matches keep those values: ``requires_grad`` off, never given to the
  optimizer (``build_model``);
- training batches: one ``torch.Generator`` passed to ``task.sample``;
- evaluation batches: drawn once per run from a generator with a fixed seed, the same for every seed
  and run, so evaluation curves of different seeds are measured on the same data;
- the global torch, numpy and python generators are seeded too (for any task code that uses them)
  and restored to the caller's state afterwards.

A run also fails when it diverges without reaching Inf: at a logged row whose mean train loss
exceeds ``train.diverge_factor`` × the loss of step 1 (``DivergedError``, a ``NonFiniteError``,
recorded in failed.json with the step and the value).

NaN and Inf are found without a check on every step. A step on which a metrics row or a checkpoint
falls (and step 1) is *checked*: the loss, every gradient and every parameter after the update are
tested there, as they happen, and the first non-finite one fails the run naming the step and the
tensor. The steps between two checked steps run unchecked, and before the next checked step (or a
checkpoint) one fused test reads the state they left: the running loss sum, every parameter and every
optimizer state tensor. A NaN or Inf in a loss, a gradient or a parameter always leaves one there (a
non-finite loss makes the sum non-finite; a non-finite gradient makes its parameter or its moment
non-finite under every optimizer here, and those stay non-finite). If one is found, the trainer goes
back to the last checkpoint (or the start) and replays the steps checked, which are bit for bit the
steps it ran, so the failure names the same step and tensor as a check on every step would.

Ctrl-C (SIGINT) while training, in the main thread, does not tear the step apart: the trainer
finishes the step, writes a checkpoint and the metrics, and raises ``TrainingInterrupted`` (a
``KeyboardInterrupt``), so that the run resumes from exactly that step.

``train.snapshot_every`` k keeps the weights at step 0, every k steps and the last step as top-level
files of the run (``snapshot_path``), written before that step's checkpoint, so a resumed run writes
the same bytes; ``load_snapshot`` reads them back.

At the end, done.json records the sha256 of every file of the run and the code version
(``theorybench.code_version``); runtime.json records the code version of every start or resume.

Step s (1-based) is the s-th optimizer update. A metrics row is logged at every step divisible by
``log_every`` or ``eval_every`` and at the last step: ``train_loss`` is the mean batch loss since the
previous row, ``lr`` the learning rate of step s, and on steps divisible by ``eval_every`` (and the last)
``eval_<metric>`` is ``task.metrics`` averaged over ``eval_batches`` batches.

A checkpoint (every ``checkpoint_every`` steps and at the end) holds the model, optimizer, scheduler,
every generator state, the step, the metric rows and the running loss sum, so a run resumed from it
continues bit for bit as if never stopped (on the CPU; CUDA kernels such as the embedding
backward use atomics and are not bit-reproducible). Checkpoints are tensors and plain containers
only (numpy and python RNG states converted) and are read with ``weights_only=True``.

Device and precision (``theorybench.device``): the device is ``device``, else
``$THEORYBENCH_DEVICE``, else the CPU ("auto" takes CUDA when available). The precision is
``strict`` (the model's dtype, TF32 off), ``tf32`` (CUDA float32 matmuls with TF32 operands) or
``bf16`` (bfloat16 autocast around forward passes; the loss and the metrics are computed in float32
from its outputs). ``runtime.json`` records the precision and, for every start or resume, the step
it started from and the device, so a run is never resumed in another precision than it began in.

``train.compile = true`` runs the training forward (and its backward) through ``torch.compile``
(``toy_models.compile.compile_model``, one static graph per input shape, so a resumed run compiles
the same kernels as an uninterrupted one and resumes bit for bit); evaluation stays eager.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import os
import platform
import random
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from toy_models.compile import compile_model
from toy_models.initial_states import apply_initial_state
from toy_models.model_kinds import build_network
from toy_models.tasks.base import model_inputs

from .code_version import code_version
from .device import DEFAULT_PRECISION, autocast, check_precision, describe_device, matmul_precision, resolve_device
from .experiment import ExperimentConfig, derive_seed, frozen_parameter_names
from .optim import build_optimizer, build_scheduler
from .progress import show_progress
from .runstore import (CHECKPOINT_FILE, CONFIG_FILE, DONE_FILE, FAILED_FILE, METRICS_FILE, RUNTIME_FILE, WEIGHTS_FILE,
                       Run, RunConfigMismatchError, RunDamagedError, RunStoreError, atomic_torch_save,
                       atomic_write_json, atomic_write_metrics, check_precision_record, check_stored_config, checksums,
                       load_checkpoint, load_weights, read_json, remove_temp_files, save_weights, sealed)

EVAL_SEED = derive_seed(0, "eval")
SNAPSHOT_PREFIX = "snapshot-step"
CHECKPOINT_FORMAT = 1


class NonFiniteError(RuntimeError):
    """A loss, gradient or parameter became NaN or Inf; the message names the step and the tensor."""


class DivergedError(NonFiniteError):
    """The logged loss exceeded ``train.diverge_factor`` × its initial value; stored as a failure like a NaN."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C: the trainer stopped after a whole step and saved a checkpoint there (it resumes from it)."""


def train(cfg: ExperimentConfig, run_dir: Path, progress: bool | None = None, device: str | None = None,
          precision: str = DEFAULT_PRECISION) -> None:
    """Train ``cfg`` into ``run_dir``, resuming from its checkpoint if there is one.

    ``progress=None`` shows a tqdm bar only when stderr is a terminal. ``device`` defaults to
    ``$THEORYBENCH_DEVICE`` or "cpu"; data are always drawn on the CPU, so they do not depend on it.
    ``precision`` is "strict", "tf32" or "bf16" (module docstring); a run keeps the one it began with.
    """
    cfg = cfg.resolved()
    run_dir = Path(run_dir)
    resolved = resolve_device(device)  # refused before the folder is touched
    check_precision(precision, resolved, cfg.model.dtype)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_stored_config(cfg, run_dir)
    check_precision_record(run_dir, precision)
    remove_temp_files(run_dir)
    if not (run_dir / CONFIG_FILE).exists():
        atomic_write_json(run_dir / CONFIG_FILE, cfg.to_dict())
    with _preserve_global_rngs(), matmul_precision(precision), _compile_settings(cfg), _stop_on_sigint() as stop:
        _Trainer(cfg, run_dir, resolved, precision).run(show_progress(progress), stop)


def build_model(cfg: ExperimentConfig) -> torch.nn.Module:
    """The model a run of the resolved ``cfg`` starts from, on the CPU: its init scheme (``model.init``,
    seeded by ``model.seed``; ``toy_models.model_kinds`` for a model that is not a transformer), then the
    initial state ``train.init_state`` if one is named (seeded by ``derive_seed(seed, "init_state")``), with
    the parameters ``train.frozen`` matches set to ``requires_grad=False`` (the optimizer is built over the
    others only)."""
    model = build_network(cfg.model)
    if cfg.train.init_state is not None:
        apply_initial_state(cfg.train.init_state, model, cfg.model, derive_seed(cfg.seed, "init_state"))
    if cfg.train.frozen:
        frozen = frozen_parameter_names(cfg.train.frozen, [n for n, _ in model.named_parameters()])
        for name, p in model.named_parameters():
            if name in frozen:
                p.requires_grad_(False)
    return model


@contextlib.contextmanager
def training_steps(cfg: ExperimentConfig, device: str | None = None, precision: str = DEFAULT_PRECISION):
    """Yields ``step()``: one training step of ``cfg`` exactly as the trainer runs it between two checked
    steps (batch draw, forward, loss, backward, clipping, optimizer and scheduler update), on a fresh
    model in memory and with nothing written; for timing it (``theorybench.device_estimate``). The
    caller's random generators are restored afterwards."""
    cfg = cfg.resolved()
    resolved = resolve_device(device)
    check_precision(precision, resolved, cfg.model.dtype)
    with _preserve_global_rngs(), matmul_precision(precision), _compile_settings(cfg):
        stepper = _Stepper(cfg, resolved, precision)

        def step() -> None:
            stepper.step += 1
            stepper._train_step(checked=False)

        yield step


class _Stepper:
    """What one optimizer update needs (task, model, optimizer, scheduler, seeded generators) and the
    update itself; ``_Trainer`` adds the evaluation, the checks between steps and the run folder."""

    def __init__(self, cfg: ExperimentConfig, device: torch.device, precision: str = DEFAULT_PRECISION):
        self.cfg, self.device, self.precision = cfg, device, precision
        self.task = cfg.task.build()
        self.has_set_step = hasattr(self.task, "set_step")
        # A task with feedback (the graph-search curriculum) is shown, every ``observe_every`` steps, the
        # metrics of the batch just trained on, after the update and in eval mode (as its authors measure it).
        self.observe_every = getattr(self.task, "observe_every", None)
        self.has_state = hasattr(self.task, "state_dict")  # kept in checkpoints, logged per row
        self.model = build_model(cfg).to(device)
        self.dtype = getattr(torch, cfg.model.dtype)
        self.optimizer = build_optimizer(self.model.parameters(), cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, cfg.train.steps)
        self.data_gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "data"))
        torch.manual_seed(derive_seed(cfg.seed, "torch"))
        np.random.seed(derive_seed(cfg.seed, "numpy"))
        random.seed(derive_seed(cfg.seed, "python"))
        self.step, self.loss_count = 0, 0
        # Summed on the device in float64, as a Python float would be: no sync per step, same bits.
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.lr = self.optimizer.param_groups[0]["lr"]
        self.steps_since_check = 0  # unchecked steps whose state has not been tested for NaN/Inf yet
        self.train_forward = compile_model(self.model, dynamic=False) if cfg.train.compile else self.model

    def _train_step(self, checked: bool) -> None:
        """One optimizer update. ``checked``: test the loss, the gradients and the parameters for
        NaN/Inf as they are made (a sync); otherwise nothing here waits for the device."""
        if self.has_set_step:  # step-dependent tasks (curricula) see the step of the batch drawn next
            self.task.set_step(self.step)
        batch = self._to_device(self.task.sample(self.cfg.train.batch_size, self.data_gen))
        self.lr = self.optimizer.param_groups[0]["lr"]
        output = self._forward(batch, self.train_forward)
        loss = self.task.loss(output, batch)
        if checked:
            loss_value = loss.item()
            if not np.isfinite(loss_value):
                raise NonFiniteError(f"step {self.step}: loss is {loss_value}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if checked:
            self._check_finite("gradient of", {n: p.grad for n, p in self.model.named_parameters()
                                               if p.grad is not None})
        if self.cfg.optim.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        if checked:
            self._check_finite("parameter", dict(self.model.named_parameters()), " after the update")
        if self.observe_every and self.step % self.observe_every == 0:
            self._observe(batch)
        self.loss_sum += loss.detach()
        self.loss_count += 1
        self.steps_since_check = 0 if checked else self.steps_since_check + 1

    @torch.no_grad()
    def _observe(self, batch: dict[str, torch.Tensor]) -> None:
        """``task.observe(step, metrics)`` with the metrics of ``batch`` under the updated weights (eval mode)."""
        self.model.eval()
        metrics = self.task.metrics(self._forward(batch), batch)
        self.model.train()
        self.task.observe(self.step, metrics)

    def _check_finite(self, what: str, tensors: dict[str, torch.Tensor], suffix: str = "") -> None:
        # One fused reduction per step; the per-tensor search runs only once something is wrong.
        name = _first_non_finite(tensors)
        if name is not None:
            kind = "nan" if tensors[name].isnan().any() else "inf"
            raise NonFiniteError(f"step {self.step}: {what} {name} contains {kind}{suffix}")

    def _forward(self, batch: dict[str, torch.Tensor], model: torch.nn.Module | None = None) -> torch.Tensor:
        """The output of ``model`` (default the eager model), under bf16 autocast if asked; lower-precision
        outputs are cast up to the model's dtype so that losses and metrics are reduced in float32."""
        with autocast(self.precision, self.device):
            output = (self.model if model is None else model)(batch["inputs"], **model_inputs(batch))
        return output.to(self.dtype) if output.is_floating_point() and output.dtype != self.dtype else output

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Move a batch to the device; floating tensors take the model's dtype (float32 or float64)."""
        return {k: v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device)
                for k, v in batch.items()}


class _Trainer(_Stepper):
    def __init__(self, cfg: ExperimentConfig, run_dir: Path, device: torch.device,
                 precision: str = DEFAULT_PRECISION):
        super().__init__(cfg, device, precision)
        self.dir = run_dir
        eval_gen = torch.Generator().manual_seed(EVAL_SEED)
        self.eval_set = [self.task.sample(cfg.train.batch_size, eval_gen) for _ in range(cfg.train.eval_batches)]
        self.rows: list[dict[str, Any]] = []
        self.initial_loss: float | None = None  # the loss of step 1, the reference of diverge_factor
        # Where a replay starts while no checkpoint exists: a copy of the start (one model's worth of memory).
        self.origin: dict[str, Any] | None = None
        if (run_dir / CHECKPOINT_FILE).exists():
            state = load_checkpoint(run_dir / CHECKPOINT_FILE)
            try:
                self._restore(state)
            except RunStoreError:
                raise
            except (KeyError, TypeError, ValueError, RuntimeError) as err:  # readable, but not a checkpoint of this run
                raise RunDamagedError(f"{run_dir / CHECKPOINT_FILE}: not a checkpoint this run can resume from "
                                      f"({type(err).__name__}: {err}); retrain it with --retrain") from None
        else:
            self.origin = copy.deepcopy(self._state())
        _record_segment(run_dir, precision, self.step, device)

    # ------------------------------------------------------------------ loop
    def run(self, show_progress: bool, stop: dict | None = None) -> None:
        tc = self.cfg.train
        stop = {} if stop is None else stop
        bar = tqdm(total=tc.steps, initial=self.step, desc=self.cfg.name, disable=not show_progress,
                   dynamic_ncols=True, unit="step")
        self.model.train()
        if self.step == 0 and tc.snapshot_every is not None:
            save_weights(snapshot_path(self.dir, 0), self.model.state_dict())
        try:
            while self.step < tc.steps:
                if self._advance(stop):
                    bar.set_postfix(loss=f"{self.rows[-1]['train_loss']:.4f}", refresh=False)
                bar.update(1)
                if stop.get("requested") and self.step < tc.steps:
                    raise TrainingInterrupted(f"{self.dir}: interrupted; stopped after step {self.step} of "
                                              f"{tc.steps} and saved a checkpoint there: running the same "
                                              "command again resumes it")
        except NonFiniteError as err:
            # The checkpoint on disk is the last good one; metrics keep every finite row for diagnosis.
            atomic_write_metrics(self.dir / METRICS_FILE, self.rows)
            atomic_write_json(self.dir / FAILED_FILE, {"error": str(err), "step": self.step})
            raise
        finally:
            bar.close()
        # Also after a kill between the final checkpoint and here, which resumes with no step left.
        atomic_write_metrics(self.dir / METRICS_FILE, self.rows)
        save_weights(self.dir / WEIGHTS_FILE, self.model.state_dict())
        atomic_write_json(self.dir / DONE_FILE, sealed({"steps": tc.steps, "config_hash": self.cfg.config_hash(),
                                                        "code": code_version(), "files": checksums(self.dir)}))

    def _advance(self, stop: dict, replaying: bool = False) -> bool:
        """Step ``self.step + 1`` and what falls on it (a row, an evaluation, a checkpoint); True if a
        row was logged. ``replaying``: every step checked, nothing written (``_replay_to_failure``)."""
        tc = self.cfg.train
        s = self.step + 1
        last = s == tc.steps
        row = s % tc.log_every == 0 or s % tc.eval_every == 0 or last
        save = (s % tc.checkpoint_every == 0 or last) and not replaying
        checked = replaying or row or save or self.initial_loss is None
        if checked:
            self._verify_unchecked_steps()
        self.step = s
        self._train_step(checked)
        if self.initial_loss is None:  # the run's first step is checked: a finite number
            self.initial_loss = float(self.loss_sum) / self.loss_count
        if row:
            self._log_row(evaluate=s % tc.eval_every == 0 or last)
        if tc.snapshot_every is not None and (s % tc.snapshot_every == 0 or last) and not replaying:
            # Before the checkpoint of this step: a resume from an earlier one writes the same bits again.
            save_weights(snapshot_path(self.dir, s), self.model.state_dict())
        if save or (stop.get("requested") and not replaying):
            self._verify_unchecked_steps()  # a checkpoint holds only tested state
            self._save_checkpoint()
            atomic_write_metrics(self.dir / METRICS_FILE, self.rows)
        return row

    # ------------------------------------------------------------------ NaN/Inf between checked steps
    def _verify_unchecked_steps(self) -> None:
        """Test what the unchecked steps since the last checked one left behind (module docstring); on
        a NaN/Inf, replay them checked to name the step and the tensor."""
        if not self.steps_since_check:
            return
        name = _first_non_finite(self._state_tensors())
        if name is None:
            self.steps_since_check = 0
            return
        self._replay_to_failure(first=self.step - self.steps_since_check + 1, until=self.step, found=name)

    def _state_tensors(self) -> dict[str, torch.Tensor]:
        """Where a NaN/Inf of an unchecked step persists: the loss sum, the parameters, the optimizer state."""
        tensors = {"train loss sum": self.loss_sum}
        tensors.update((f"parameter {n}", p) for n, p in self.model.named_parameters())
        names = {p: n for n, p in self.model.named_parameters()}
        for p, state in self.optimizer.state.items():
            # On the parameter's device (one fused test); AdamW's step counter stays on the CPU for CUDA
            # parameters, and a count is finite anyway.
            tensors.update((f"optimizer state {k} of {names.get(p, '?')}", t) for k, t in state.items()
                           if isinstance(t, torch.Tensor) and t.is_floating_point() and t.device == p.device)
        return tensors

    def _replay_to_failure(self, first: int, until: int, found: str) -> None:
        """Go back to the last checkpoint (or the start) and run the steps up to ``until`` again, each
        checked: the failing one raises the NonFiniteError that a check on every step would have
        raised. Every step is a function of the restored state (seeded data, CPU arithmetic), so the
        replay meets the same NaN; a device that does not repeat its arithmetic bit for bit may not,
        and then the error names the range of steps and the tensor found."""
        state = load_checkpoint(self.dir / CHECKPOINT_FILE) if (self.dir / CHECKPOINT_FILE).exists() else self.origin
        self._restore(copy.deepcopy(state) if state is self.origin else state)
        start = self.step
        self.model.train()
        while self.step < until:
            self._advance({}, replaying=True)
        raise NonFiniteError(f"steps {first}-{until}: {found} is not finite after step {until}; replaying the "
                             f"steps from {start} checked did not meet it again (the device does not repeat "
                             "its arithmetic bit for bit)")

    def _log_row(self, evaluate: bool) -> None:
        row: dict[str, Any] = {"step": self.step, "train_loss": float(self.loss_sum) / self.loss_count,
                               "lr": self.lr}
        if self.has_state:  # a stateful task's state after this step (the curriculum's stage)
            row.update({f"task_{k}": v for k, v in self.task.state_dict().items()})
        self.loss_sum.zero_()
        self.loss_count = 0
        if evaluate:
            row.update({f"eval_{k}": v for k, v in self._evaluate().items()})
            self.model.train()
        self.rows.append(row)
        self._check_divergence(row["train_loss"])

    def _check_divergence(self, loss: float) -> None:
        """``train.diverge_factor`` k: fail once the logged loss exceeds k × the loss of step 1 (when positive)."""
        k, reference = self.cfg.train.diverge_factor, self.initial_loss
        if k is not None and reference is not None and reference > 0 and loss > k * reference:
            raise DivergedError(f"step {self.step}: train loss {loss:.6g} exceeds train.diverge_factor={k:g} x the "
                                f"initial loss {reference:.6g}: the run diverged (train.diverge_factor=none "
                                "turns the rule off)")

    @torch.no_grad()
    def _evaluate(self) -> dict[str, float]:
        self.model.eval()
        totals: dict[str, float] = {}
        for batch in self.eval_set:
            batch = self._to_device(batch)
            output = self._forward(batch)
            for k, v in self.task.metrics(output, batch).items():
                totals[k] = totals.get(k, 0.0) + float(v)
        return {k: v / len(self.eval_set) for k, v in totals.items()}

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self) -> None:
        atomic_torch_save(self.dir / CHECKPOINT_FILE, self._state())
        self.origin = None  # replays start from the checkpoint from now on

    def _state(self) -> dict[str, Any]:
        """Everything a resume needs (live tensors: copy before keeping it past the next step)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config_hash": self.cfg.config_hash(),
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rows": self.rows,
            "loss_sum": float(self.loss_sum),
            "loss_count": self.loss_count,
            "initial_loss": self.initial_loss,
            "task": dict(self.task.state_dict()) if self.has_state else {},
            "rng": {
                "data": self.data_gen.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
                "numpy": numpy_state_to_tensors(np.random.get_state()),
                "python": python_state_to_tensors(random.getstate()),
            },
        }

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("config_hash") != self.cfg.config_hash():
            raise RunConfigMismatchError(f"{self.dir / CHECKPOINT_FILE} belongs to config {state.get('config_hash')}, "
                                         f"not {self.cfg.config_hash()}; refusing to resume from it (retrain with "
                                         "--retrain)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.rows = state["step"], list(state["rows"])
        self.loss_sum.fill_(state["loss_sum"])
        self.loss_count = state["loss_count"]
        self.steps_since_check = 0
        # A checkpoint from before the divergence rule: the first logged row stands in for step 1.
        self.initial_loss = state.get("initial_loss", self.rows[0]["train_loss"] if self.rows else None)
        if self.has_state and state.get("task"):
            self.task.load_state_dict(state["task"])
        rng = state["rng"]
        self.data_gen.set_state(rng["data"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(rng["cuda"])
        np.random.set_state(numpy_state_from_tensors(rng["numpy"]))
        random.setstate(python_state_from_tensors(rng["python"]))


def snapshot_path(run_dir: Path, step: int) -> Path:
    """Where ``train.snapshot_every`` keeps the weights after ``step`` (0: the start): a top-level file of
    the run, so done.json checksums it like the final weights."""
    return Path(run_dir) / f"{SNAPSHOT_PREFIX}{step:09d}.safetensors"


def snapshot_steps(run_dir: Path) -> list[int]:
    """The steps whose snapshot the run holds, ascending."""
    return sorted(int(p.name[len(SNAPSHOT_PREFIX):-len(".safetensors")])
                  for p in Path(run_dir).glob(f"{SNAPSHOT_PREFIX}*.safetensors"))


def load_snapshot(run: Run, step: int) -> torch.nn.Module:
    """The model of ``run`` (a done or incomplete run of the store) with its weights after ``step``,
    in eval mode; the run's files are verified against done.json first. A step the run has no snapshot
    of is refused, naming the steps it has."""
    run.verify()
    model = build_network(run.config.resolved().model)
    model.load_state_dict(_snapshot_weights(run, step))
    return model.eval()


def load_snapshot_weights(run: Run) -> dict[int, dict[str, torch.Tensor]]:
    """The weights (state dicts) of ``run`` after every step it holds a snapshot of, the run verified
    once: a whole trajectory without rebuilding a model or re-reading the run per step."""
    run.verify()
    return {step: _snapshot_weights(run, step) for step in snapshot_steps(run.dir)}


def _snapshot_weights(run: Run, step: int) -> dict[str, torch.Tensor]:
    path = snapshot_path(run.dir, step)
    if not path.exists():
        raise RunStoreError(f"{run.dir}: no snapshot of step {step}; snapshots held: {snapshot_steps(run.dir)} "
                            f"(train.snapshot_every={run.config.train.snapshot_every})")
    return load_weights(path)


def _first_non_finite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The name of the first tensor holding a NaN or Inf, or None: one fused test (one sync), then a
    per-tensor search only when something is wrong."""
    if not tensors or torch.stack([t.isfinite().all() for t in tensors.values()]).all():
        return None
    return next(name for name, t in tensors.items() if not t.isfinite().all())


@contextlib.contextmanager
def _compile_settings(cfg: ExperimentConfig):
    """For ``train.compile``: room for one static graph per input shape (a curriculum has one per
    stage), and an error, never a silent fall-back to eager, if even that is exceeded."""
    if not cfg.train.compile:
        yield
        return
    with torch._dynamo.config.patch(recompile_limit=max(64, torch._dynamo.config.recompile_limit),
                                    fail_on_recompile_limit_hit=True):
        yield


# ---------------------------------------------------------------------------------- runtime record
def _record_segment(run_dir: Path, precision: str, step: int, device: torch.device) -> None:
    """Append this start (or resume) to runtime.json: from which step, where, with what."""
    path = run_dir / RUNTIME_FILE
    record = read_json(path) if path.exists() else {"precision": precision, "segments": []}
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{job}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if job else os.environ.get("SLURM_JOB_ID")
    record["segments"].append({
        "from_step": step,
        "device": describe_device(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "host": platform.node(),
        "pid": os.getpid(),
        "job": job or os.environ.get("SUBMITIT_LOCAL_JOB_ID"),
        "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "code": code_version(),
    })
    atomic_write_json(path, record)


# ---------------------------------------------------------------------------------- RNG states
def numpy_state_to_tensors(state: tuple) -> dict[str, Any]:
    """np.random.get_state() = ('MT19937', uint32[624] keys, pos, has_gauss, cached_gaussian)."""
    name, keys, pos, has_gauss, cached = state
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def numpy_state_from_tensors(d: dict[str, Any]) -> tuple:
    return (d["name"], d["keys"].numpy().astype(np.uint32), d["pos"], d["has_gauss"], d["cached_gaussian"])


def python_state_to_tensors(state: tuple) -> dict[str, Any]:
    """random.getstate() = (version, 625 ints < 2³² (Mersenne Twister words and index), gauss_next)."""
    version, words, gauss_next = state
    return {"version": version, "words": torch.tensor(words, dtype=torch.int64), "gauss_next": gauss_next}


def python_state_from_tensors(d: dict[str, Any]) -> tuple:
    return (d["version"], tuple(int(w) for w in d["words"].tolist()), d["gauss_next"])


@contextlib.contextmanager
def _preserve_global_rngs():
    """Seeding the global generators inside ``train`` must not change the caller's random streams."""
    torch_state, np_state, py_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        torch.set_rng_state(torch_state)
        np.random.set_state(np_state)
        random.setstate(py_state)


@contextlib.contextmanager
def _stop_on_sigint():
    """While training in the main thread, SIGINT asks for a stop after the current step (the dict's
    "requested"); the previous handler is restored afterwards. A stop asked for during the last step
    is honoured once the run is done, by raising TrainingInterrupted then."""
    stop: dict[str, bool] = {}
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request(signum, frame):
        stop["requested"] = True

    previous = signal.signal(signal.SIGINT, request)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
    if stop.get("requested"):
        raise TrainingInterrupted("interrupted after the run finished")


__all__ = ["DivergedError", "NonFiniteError", "TrainingInterrupted", "build_model", "load_snapshot",
           "load_snapshot_weights", "snapshot_path",
           "snapshot_steps", "train", "training_steps"]
