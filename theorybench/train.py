"""The trainer: seeded, checkpointed, resumable, and stopped by the first NaN or Inf.

Randomness, all derived from ``cfg.seed`` (``derive_seed``):

- model init: ``model.seed`` (set in ``ExperimentConfig.resolved``);
- training batches: one ``torch.Generator`` passed to ``task.sample``;
- evaluation batches: drawn once per run from a generator with a fixed seed, the same for every seed
  and run, so evaluation curves of different seeds are measured on the same data;
- the global torch, numpy and python generators are seeded too (for any task code that uses them)
  and restored to the caller's state afterwards.

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
import json
import os
import platform
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from toy_models import Transformer
from toy_models.tasks.base import model_inputs

from .device import DEFAULT_PRECISION, autocast, check_precision, describe_device, matmul_precision, resolve_device
from .experiment import ExperimentConfig, derive_seed
from .optim import build_optimizer, build_scheduler
from .runstore import (CHECKPOINT_FILE, CONFIG_FILE, DONE_FILE, FAILED_FILE, METRICS_FILE, RUNTIME_FILE,
                       atomic_torch_save, atomic_write_json, atomic_write_metrics, check_stored_config,
                       load_checkpoint, remove_temp_files)

EVAL_SEED = derive_seed(0, "eval")
CHECKPOINT_FORMAT = 1


class NonFiniteError(RuntimeError):
    """A loss, gradient or parameter became NaN or Inf; the message names the step and the tensor."""


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
    _check_stored_precision(run_dir, precision)
    remove_temp_files(run_dir)
    if not (run_dir / CONFIG_FILE).exists():
        atomic_write_json(run_dir / CONFIG_FILE, cfg.to_dict())
    with _preserve_global_rngs(), matmul_precision(precision):
        _Trainer(cfg, run_dir, resolved, precision).run(_show_progress(progress))


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
        if (run_dir / CHECKPOINT_FILE).exists():
            self._restore(load_checkpoint(run_dir / CHECKPOINT_FILE))
        _record_segment(run_dir, precision, self.step, device)

    # ------------------------------------------------------------------ loop
    def run(self, show_progress: bool) -> None:
        tc = self.cfg.train
        bar = tqdm(total=tc.steps, initial=self.step, desc=self.cfg.name, disable=not show_progress,
                   dynamic_ncols=True, unit="step")
        try:
            while self.step < tc.steps:
                self.step += 1
                self._train_step()
                s = self.step
                last = s == tc.steps
                if s % tc.log_every == 0 or s % tc.eval_every == 0 or last:
                    self._log_row(evaluate=s % tc.eval_every == 0 or last)
                    bar.set_postfix(loss=f"{self.rows[-1]['train_loss']:.4f}", refresh=False)
                if s % tc.checkpoint_every == 0 or last:
                    self._save_checkpoint()
                    atomic_write_metrics(self.dir / METRICS_FILE, self.rows)
                bar.update(1)
        except NonFiniteError as err:
            # The checkpoint on disk is the last good one; metrics keep every finite row for diagnosis.
            atomic_write_metrics(self.dir / METRICS_FILE, self.rows)
            atomic_write_json(self.dir / FAILED_FILE, {"error": str(err), "step": self.step})
            raise
        finally:
            bar.close()
        # Also after a kill between the final checkpoint and here, which resumes with no step left.
        atomic_write_metrics(self.dir / METRICS_FILE, self.rows)
        atomic_write_json(self.dir / DONE_FILE, {"steps": tc.steps, "config_hash": self.cfg.config_hash()})

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
            raise RuntimeError(f"{self.dir / CHECKPOINT_FILE} belongs to config {state.get('config_hash')}, "
                               f"not {self.cfg.config_hash()}; refusing to resume from it")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.rows = state["step"], list(state["rows"])
        self.loss_sum, self.loss_count = state["loss_sum"], state["loss_count"]
        rng = state["rng"]
        self.data_gen.set_state(rng["data"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(rng["cuda"])
        np.random.set_state(numpy_state_from_tensors(rng["numpy"]))
        random.setstate(python_state_from_tensors(rng["python"]))


# ---------------------------------------------------------------------------------- runtime record
def _check_stored_precision(run_dir: Path, precision: str) -> None:
    """Refuse to continue a run in another precision than it began in (a run folder holds one result).

    A folder without runtime.json began before the record existed, in the only precision there was."""
    path = run_dir / RUNTIME_FILE
    stored = json.loads(path.read_text()).get("precision", DEFAULT_PRECISION) if path.exists() else None
    if stored is None and (run_dir / CHECKPOINT_FILE).exists():
        stored = DEFAULT_PRECISION
    if stored is not None and stored != precision:
        raise RuntimeError(f"{run_dir} was trained with precision={stored!r}, not {precision!r}; "
                           "refusing to resume it in another precision")


def _record_segment(run_dir: Path, precision: str, step: int, device: torch.device) -> None:
    """Append this start (or resume) to runtime.json: from which step, where, with what."""
    path = run_dir / RUNTIME_FILE
    record = json.loads(path.read_text()) if path.exists() else {"precision": precision, "segments": []}
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


def _show_progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else bool(progress)


__all__ = ["NonFiniteError", "train"]
