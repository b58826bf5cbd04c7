"""The trainer: seeded, checkpointed, resumable, and stopped by the first NaN or Inf.

Randomness, all derived from ``cfg.seed`` (``derive_seed``):

- model init: ``model.seed`` (set in ``ExperimentConfig.resolved``);
- training batches: one ``torch.Generator`` passed to ``task.sample``;
- evaluation batches: drawn once per run from a generator with a fixed seed, the same for every seed
  and run, so evaluation curves of different seeds are measured on the same data;
- the global torch, numpy and python generators are seeded too (for any task code that uses them)
  and restored to the caller's state afterwards.

A run also fails when it diverges without reaching Inf: at a logged row whose mean train loss
exceeds ``train.diverge_factor`` × the loss of step 1 (``DivergedError``, a ``NonFiniteError``,
recorded in failed.json with the step and the value).

Ctrl-C (SIGINT) while training, in the main thread, does not tear the step apart: the trainer
finishes the step, writes a checkpoint and the metrics, and raises ``TrainingInterrupted`` (a
``KeyboardInterrupt``), so that the run resumes from exactly that step.

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
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import random
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from toy_models import Transformer
from toy_models.tasks.base import model_inputs

from .code_version import code_version
from .device import DEFAULT_PRECISION, autocast, check_precision, describe_device, matmul_precision, resolve_device
from .experiment import ExperimentConfig, derive_seed
from .optim import build_optimizer, build_scheduler
from .runstore import (CHECKPOINT_FILE, CONFIG_FILE, DONE_FILE, FAILED_FILE, METRICS_FILE, RUNTIME_FILE, WEIGHTS_FILE,
                       RunConfigMismatchError, RunDamagedError, RunStoreError, atomic_torch_save, atomic_write_json,
                       atomic_write_metrics, check_precision_record, check_stored_config, checksums, load_checkpoint,
                       read_json, remove_temp_files, save_weights, sealed)

EVAL_SEED = derive_seed(0, "eval")
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
    with _preserve_global_rngs(), matmul_precision(precision), _stop_on_sigint() as stop:
        _Trainer(cfg, run_dir, resolved, precision).run(_show_progress(progress), stop)


class _Trainer:
    def __init__(self, cfg: ExperimentConfig, run_dir: Path, device: torch.device,
                 precision: str = DEFAULT_PRECISION):
        self.cfg, self.dir, self.device, self.precision = cfg, run_dir, device, precision
        self.task = cfg.task.build()
        self.model = Transformer(cfg.model).to(device)
        self.dtype = getattr(torch, cfg.model.dtype)
        self.optimizer = build_optimizer(self.model.parameters(), cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, cfg.train.steps)
        self.data_gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "data"))
        torch.manual_seed(derive_seed(cfg.seed, "torch"))
        np.random.seed(derive_seed(cfg.seed, "numpy"))
        random.seed(derive_seed(cfg.seed, "python"))
        eval_gen = torch.Generator().manual_seed(EVAL_SEED)
        self.eval_set = [self.task.sample(cfg.train.batch_size, eval_gen) for _ in range(cfg.train.eval_batches)]
        self.step, self.rows, self.loss_sum, self.loss_count = 0, [], 0.0, 0
        self.initial_loss: float | None = None  # the loss of step 1, the reference of diverge_factor
        if (run_dir / CHECKPOINT_FILE).exists():
            state = load_checkpoint(run_dir / CHECKPOINT_FILE)
            try:
                self._restore(state)
            except RunStoreError:
                raise
            except (KeyError, TypeError, ValueError, RuntimeError) as err:  # readable, but not a checkpoint of this run
                raise RunDamagedError(f"{run_dir / CHECKPOINT_FILE}: not a checkpoint this run can resume from "
                                      f"({type(err).__name__}: {err}); retrain it with --retrain") from None
        _record_segment(run_dir, precision, self.step, device)

    # ------------------------------------------------------------------ loop
    def run(self, show_progress: bool, stop: dict | None = None) -> None:
        tc = self.cfg.train
        stop = {} if stop is None else stop
        bar = tqdm(total=tc.steps, initial=self.step, desc=self.cfg.name, disable=not show_progress,
                   dynamic_ncols=True, unit="step")
        try:
            while self.step < tc.steps:
                self.step += 1
                self._train_step()
                if self.initial_loss is None:
                    self.initial_loss = self.loss_sum / self.loss_count
                s = self.step
                last = s == tc.steps
                if s % tc.log_every == 0 or s % tc.eval_every == 0 or last:
                    self._log_row(evaluate=s % tc.eval_every == 0 or last)
                    bar.set_postfix(loss=f"{self.rows[-1]['train_loss']:.4f}", refresh=False)
                if s % tc.checkpoint_every == 0 or last or stop.get("requested"):
                    self._save_checkpoint()
                    atomic_write_metrics(self.dir / METRICS_FILE, self.rows)
                bar.update(1)
                if stop.get("requested") and not last:
                    raise TrainingInterrupted(f"{self.dir}: interrupted; stopped after step {s} of {tc.steps} and "
                                              "saved a checkpoint there: running the same command again resumes it")
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

    def _train_step(self) -> None:
        self.model.train()
        if hasattr(self.task, "set_step"):  # step-dependent tasks (curricula) see the step of the batch drawn next
            self.task.set_step(self.step)
        batch = self._to_device(self.task.sample(self.cfg.train.batch_size, self.data_gen))
        self.lr = self.optimizer.param_groups[0]["lr"]
        output = self._forward(batch)
        loss = self.task.loss(output, batch)
        loss_value = loss.item()
        if not np.isfinite(loss_value):
            raise NonFiniteError(f"step {self.step}: loss is {loss_value}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._check_finite("gradient of", {n: p.grad for n, p in self.model.named_parameters() if p.grad is not None})
        if self.cfg.optim.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self._check_finite("parameter", dict(self.model.named_parameters()), " after the update")
        self.loss_sum += loss_value
        self.loss_count += 1

    def _check_finite(self, what: str, tensors: dict[str, torch.Tensor], suffix: str = "") -> None:
        # One fused reduction per step; the per-tensor search runs only once something is wrong.
        if not tensors or torch.stack([t.isfinite().all() for t in tensors.values()]).all():
            return
        for name, t in tensors.items():
            if not t.isfinite().all():
                kind = "nan" if t.isnan().any() else "inf"
                raise NonFiniteError(f"step {self.step}: {what} {name} contains {kind}{suffix}")

    def _log_row(self, evaluate: bool) -> None:
        row: dict[str, Any] = {"step": self.step, "train_loss": self.loss_sum / self.loss_count, "lr": self.lr}
        self.loss_sum, self.loss_count = 0.0, 0
        if evaluate:
            row.update({f"eval_{k}": v for k, v in self._evaluate().items()})
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

    def _forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The model's output, under bf16 autocast if asked; lower-precision outputs are cast up to the
        model's dtype so that losses and metrics are reduced in float32."""
        with autocast(self.precision, self.device):
            output = self.model(batch["inputs"], **model_inputs(batch))
        return output.to(self.dtype) if output.is_floating_point() and output.dtype != self.dtype else output

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Move a batch to the device; floating tensors take the model's dtype (float32 or float64)."""
        return {k: v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device)
                for k, v in batch.items()}

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self) -> None:
        state = {
            "format": CHECKPOINT_FORMAT,
            "config_hash": self.cfg.config_hash(),
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rows": self.rows,
            "loss_sum": self.loss_sum,
            "loss_count": self.loss_count,
            "initial_loss": self.initial_loss,
            "rng": {
                "data": self.data_gen.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
                "numpy": numpy_state_to_tensors(np.random.get_state()),
                "python": python_state_to_tensors(random.getstate()),
            },
        }
        atomic_torch_save(self.dir / CHECKPOINT_FILE, state)

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("config_hash") != self.cfg.config_hash():
            raise RunConfigMismatchError(f"{self.dir / CHECKPOINT_FILE} belongs to config {state.get('config_hash')}, "
                                         f"not {self.cfg.config_hash()}; refusing to resume from it (retrain with "
                                         "--retrain)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.rows = state["step"], list(state["rows"])
        self.loss_sum, self.loss_count = state["loss_sum"], state["loss_count"]
        # A checkpoint from before the divergence rule: the first logged row stands in for step 1.
        self.initial_loss = state.get("initial_loss", self.rows[0]["train_loss"] if self.rows else None)
        rng = state["rng"]
        self.data_gen.set_state(rng["data"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(rng["cuda"])
        np.random.set_state(numpy_state_from_tensors(rng["numpy"]))
        random.setstate(python_state_from_tensors(rng["python"]))


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


def _show_progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else bool(progress)


__all__ = ["DivergedError", "NonFiniteError", "TrainingInterrupted", "train"]
