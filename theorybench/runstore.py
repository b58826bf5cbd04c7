"""The run store: one folder per run, named ``<name>-<config hash>``, under ``runs/`` by default.

Folder layout (every file written atomically: temp file in the same folder, flush, fsync, rename):

    config.json      the resolved config (``ExperimentConfig.resolved().to_dict()``)
    checkpoint.pt    the latest checkpoint (model, optimizer, scheduler, RNG states, metric rows);
                     tensors and plain containers only, read with ``weights_only=True``
    metrics.csv      one row per logged step (step, train_loss, lr, eval_* on evaluation steps)
    done.json        written last: the run finished
    failed.json      the run stopped on a NaN/Inf (the message); checkpoint.pt is the last good one
    runtime.json     how it ran: its precision, and one segment per start or resume (first step,
                     device, torch version, threads, host, process id, job id, start time)
    artifacts/       whatever analyses store next to the run

A run trained in a reduced precision (``theorybench.device``: ``tf32`` or ``bf16``) lives in its
own folder, ``<name>-<config hash>-<precision>``: it is another result than the ``strict`` run of the
same config. A reader trusts only these final names; ``.<name>.*.tmp`` files are half-written and are removed when
a run resumes. ``get_or_train`` returns a finished run as is, resumes an interrupted one, trains an
absent one, and refuses a folder whose stored config differs from the one requested.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from toy_models import Transformer

from .device import DEFAULT_PRECISION, run_suffix
from .experiment import ExperimentConfig
from .provenance import note_run

DEFAULT_ROOT = Path(os.environ.get("THEORYBENCH_RUNS", "runs"))

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.csv"
DONE_FILE = "done.json"
FAILED_FILE = "failed.json"
RUNTIME_FILE = "runtime.json"
LOCK_FILE = ".lock"
ARTIFACTS_DIR = "artifacts"


class RunConfigMismatchError(RuntimeError):
    """A run folder holds a different config than the one requested (never returned as a result)."""


class RunFailedError(RuntimeError):
    """The requested run stopped earlier on a non-finite value; its message is the stored one."""


# ---------------------------------------------------------------------------------- atomic IO
def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one, never a part.

    The temp file lives in the same folder (a rename across file systems is not atomic); fsync before
    the rename makes the data durable before the name points to it, fsync of the folder makes the
    rename itself durable.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n").encode())


def atomic_torch_save(path: Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_write_metrics(path: Path, rows: list[dict[str, float]]) -> None:
    """Rows as CSV; floats are written with ``repr`` so that they read back bit for bit."""
    atomic_write_bytes(path, metrics_frame(rows).to_csv(index=False).encode())


def metrics_frame(rows: list[dict[str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=_metric_columns(rows))
    return frame.astype({"step": "int64"}) if len(frame) else frame


def _metric_columns(rows: list[dict[str, float]]) -> list[str]:
    columns = ["step", "train_loss", "lr"]
    for row in rows:
        columns += [k for k in row if k not in columns]
    return columns


def read_metrics(path: Path) -> pd.DataFrame:
    # Before pandas 3 the default C parser could round a decimal to a neighbouring float; round_trip
    # is exact (and is the default, with the option deprecated, from pandas 3 on).
    if int(pd.__version__.split(".")[0]) < 3:
        return pd.read_csv(path, float_precision="round_trip")
    return pd.read_csv(path)


def remove_temp_files(folder: Path) -> None:
    """Delete half-written temp files left by a killed writer (they are never read)."""
    for tmp in Path(folder).glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def checkpoint_step(folder: Path | str) -> int:
    """The step of the run's checkpoint (0 if none): where it would resume. Memory-mapped, so only the
    small pickled header is read, not the weights."""
    path = Path(folder) / CHECKPOINT_FILE
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["step"])
    except FileNotFoundError:
        return 0


# ---------------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class Run:
    """A run folder and its config; metrics and weights are read from disk on demand."""

    dir: Path
    config: ExperimentConfig

    @property
    def status(self) -> str:
        """"done" (done.json), "failed" (failed.json) or "incomplete" (anything else)."""
        if (self.dir / DONE_FILE).exists():
            return "done"
        if (self.dir / FAILED_FILE).exists():
            return "failed"
        return "incomplete"

    @property
    def failure(self) -> str | None:
        path = self.dir / FAILED_FILE
        return json.loads(path.read_text())["error"] if path.exists() else None

    @property
    def runtime(self) -> dict[str, Any]:
        """runtime.json: ``precision`` and ``segments`` (one per start or resume); {} before training."""
        path = self.dir / RUNTIME_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    @property
    def last_step(self) -> int:
        """The last step with a logged metrics row (0 before the first): how far training has come."""
        metrics = self.metrics
        return int(metrics.step.iloc[-1]) if len(metrics) else 0

    @property
    def metrics(self) -> pd.DataFrame:
        """One row per logged step: step, train_loss, lr, and eval_<metric> on evaluation steps."""
        path = self.dir / METRICS_FILE
        return read_metrics(path) if path.exists() else metrics_frame([])

    def load_model(self) -> Transformer:
        """The model with the weights of the latest checkpoint (the final ones for a done run)."""
        state = load_checkpoint(self.dir / CHECKPOINT_FILE)
        model = Transformer(self.config.resolved().model)
        model.load_state_dict(state["model"])
        return model.eval()

    def artifact_path(self, name: str) -> Path:
        """``dir/artifacts/name`` (folders created); ``name`` must stay inside the artifacts folder."""
        base = (self.dir / ARTIFACTS_DIR).resolve()
        path = (base / name).resolve()
        if base not in path.parents:
            raise ValueError(f"artifact name {name!r} is not allowed: a relative path inside {base}")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def run_dir(cfg: ExperimentConfig, root: Path | str = DEFAULT_ROOT, precision: str = DEFAULT_PRECISION) -> Path:
    """``root/<name>-<config hash>``, with ``-<precision>`` appended for a reduced precision."""
    return Path(root) / f"{cfg.name}-{cfg.config_hash()}{run_suffix(precision)}"


def load_run(path: Path | str) -> Run:
    path = Path(path)
    config_path = path / CONFIG_FILE
    if not config_path.exists():
        raise FileNotFoundError(f"{path} is not a run folder: it has no {CONFIG_FILE}")
    return Run(dir=path, config=ExperimentConfig.from_dict(json.loads(config_path.read_text())))


def check_stored_config(cfg: ExperimentConfig, folder: Path) -> None:
    """Refuse a folder whose config.json is not exactly ``cfg`` resolved."""
    path = Path(folder) / CONFIG_FILE
    if path.exists():
        stored = json.loads(path.read_text())
        wanted = cfg.resolved().to_dict()
        if stored != wanted:
            changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
            raise RunConfigMismatchError(
                f"{folder} holds a different config than requested (differs in: {', '.join(changed)}); "
                "refusing to return or resume it. Move the folder away or choose another root.")


def lock_held(folder: Path | str) -> bool:
    """Whether some process holds the run's lock now, i.e. is training it (never blocks, creates nothing).

    flock locks belong to an open file, so this sees a lock held by another process and by another
    open file of this one. On a network file system it needs working flock (NFSv4 and Lustre's
    ``-o flock`` mount have it)."""
    path = Path(folder) / LOCK_FILE
    try:
        f = open(path, "r")  # noqa: SIM115 - "r": probing must not create the file
    except FileNotFoundError:
        return False
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


@contextlib.contextmanager
def _locked(folder: Path):
    """An exclusive lock on the run folder, so two processes never train the same run at once."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a") as f:  # "a": taking the lock does not touch the file
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def get_or_train(cfg: ExperimentConfig, root: Path | str = DEFAULT_ROOT, progress: bool | None = None,
                 allow_failed: bool = False, precision: str = DEFAULT_PRECISION, device: str | None = None) -> Run:
    """The run of ``cfg`` under ``root``: returned if done, resumed if incomplete, trained if absent.

    A run that stopped on a NaN/Inf raises ``RunFailedError`` (training again would fail the same
    way) unless ``allow_failed``, which returns it for inspection. ``precision`` picks the run (see
    ``theorybench.device``); ``device`` is where training happens if it must (default
    ``$THEORYBENCH_DEVICE``, else the CPU); a done run is returned wherever it was trained.
    """
    from .train import train  # the trainer writes through this module's helpers

    folder = run_dir(cfg, root, precision)
    check_stored_config(cfg, folder)
    note_run(cfg.name, cfg.config_hash())  # the figure being made (if any) records that it read this run
    with _locked(folder):
        run = Run(dir=folder, config=cfg.resolved())
        if run.status == "incomplete":
            train(cfg, folder, progress=progress, device=device, precision=precision)
        if run.status == "failed" and not allow_failed:
            raise RunFailedError(f"run {folder} failed: {run.failure} (delete the folder to retry)")
        return run


__all__ = ["DEFAULT_ROOT", "Run", "run_dir", "get_or_train", "load_run", "lock_held", "RunConfigMismatchError",
           "RunFailedError", "atomic_write_bytes", "atomic_write_json", "atomic_torch_save"]
