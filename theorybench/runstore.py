"""The run store: one folder per run, named ``<name>-<config hash>``, under one root for every entry point.

The root is resolved when a run is asked for (``store_root``): ``$THEORYBENCH_RUNS`` as it is then,
else ``runs/`` at the repository root when theorybench runs from a source checkout, else ``runs/``
in the working directory; always made absolute. The command line, figures, sweeps and notebooks
therefore share one store, and ``theorybench runs`` shows which.

Folder layout (every file written atomically: temp file in the same folder, flush, fsync, rename;
created with the permissions the umask allows, so a shared store is readable by the group):

    config.json      the resolved config (``ExperimentConfig.resolved().to_dict()``)
    checkpoint.pt    the latest checkpoint (model, optimizer, scheduler, RNG states, metric rows);
                     tensors and plain containers only, read with ``weights_only=True``
    model.safetensors  a finished run's final weights (safetensors: no pickle, memory-mapped); the
                     training state a resume needs (optimizer, RNG, rows) stays in checkpoint.pt, whose
                     nested containers safetensors' flat tensor map does not hold
    metrics.csv      one row per logged step (step, train_loss, lr, eval_* on evaluation steps)
    runtime.json     how it ran: its precision, and one segment per start or resume (first step,
                     device, torch version, threads, host, process id, job id, start time, code version)
    done.json        written last: the run finished; holds the sha256 of every file above, the
                     version of the code that trained it (``theorybench.code_version``), and a
                     seal (the sha256 of its own content)
    failed.json      the run stopped on a NaN/Inf or diverged (the message); checkpoint.pt is the
                     last good one
    artifacts/       whatever analyses store next to the run (not checksummed: derived, rewritable)

A run trained in a reduced precision (``theorybench.device``: ``tf32`` or ``bf16``) lives in its
own folder, ``<name>-<config hash>-<precision>``: it is another result than the ``strict`` run of the
same config. A reader trusts only these final names; ``.<name>.*.tmp`` files are half-written and
are removed when a run resumes.

This module is storage only: paths, files, locks and integrity; it knows nothing of training. The
trainer (``theorybench.train``) writes through it, and ``theorybench.runs.get_or_train``, above both,
returns a finished run only after checking it here: every file against its checksum (a mismatch
raises ``RunDamagedError`` naming the file) and the code that trained it against the code running
now (a difference raises ``RunStaleError`` unless ``accept_stale`` or ``$THEORYBENCH_ACCEPT_STALE=1``).
Every refusal is a ``RunStoreError`` whose message names the file or setting and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import safetensors.torch
import torch
from torch import nn

from toy_models.model_kinds import build_network

from .code_version import code_version, describe
from .device import DEFAULT_PRECISION, PRECISIONS, run_suffix
from .experiment import ExperimentConfig

RUNS_ENV = "THEORYBENCH_RUNS"
ACCEPT_STALE_ENV = "THEORYBENCH_ACCEPT_STALE"

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.csv"
DONE_FILE = "done.json"
FAILED_FILE = "failed.json"
RUNTIME_FILE = "runtime.json"
LOCK_FILE = ".lock"
ARTIFACTS_DIR = "artifacts"
NOT_CHECKSUMMED = (DONE_FILE, LOCK_FILE)


# ---------------------------------------------------------------------------------- the root
def default_root() -> Path:
    """Where runs go when ``$THEORYBENCH_RUNS`` is unset: ``runs/`` at the repository root for a
    source checkout (so a notebook kernel started in ``notebooks/`` uses the same store), else
    ``runs/`` in the working directory (an installed package has no repository)."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "theorybench").is_dir():
        return checkout / "runs"
    return Path.cwd() / "runs"


def store_root(root: Path | str | None = None) -> Path:
    """The run store: ``root`` if given, else ``$THEORYBENCH_RUNS`` read now, else ``default_root()``;
    absolute, so that jobs started elsewhere and notebooks agree."""
    if root is None:
        root = os.environ.get(RUNS_ENV) or default_root()
    return Path(root).expanduser().absolute()


# ---------------------------------------------------------------------------------- errors
class RunStoreError(RuntimeError):
    """A run cannot be returned, resumed or written; the message names the file or setting and what to do."""


class RunConfigMismatchError(RunStoreError):
    """A run folder holds a different config than the one requested (never returned as a result)."""


class RunFailedError(RunStoreError):
    """The requested run stopped earlier on a non-finite value or diverged; its message is the stored one."""


class RunDamagedError(RunStoreError):
    """A file of the run is unreadable, missing, or differs from its recorded checksum."""


class RunStaleError(RunStoreError):
    """The run was trained by other code than the code running now."""


class StoreAccessError(RunStoreError):
    """The run store cannot be written (read-only, full, not a folder)."""


class StaleRunWarning(UserWarning):
    """A run loaded for inspection was trained by other code than the code running now."""


def _damaged(path: Path, why: str) -> RunDamagedError:
    folder = Path(path).parent
    return RunDamagedError(f"{path}: {why}. The run is damaged and is not used; train it again with --retrain "
                           f"(theorybench train/sweep), retrain=True (get_or_train), or delete {folder}")


# ---------------------------------------------------------------------------------- atomic IO
_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask (reading it means setting it: done under a lock and restored at once)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one, never a part.

    The temp file lives in the same folder (a rename across file systems is not atomic); fsync before
    the rename makes the data durable before the name points to it, fsync of the folder makes the
    rename itself durable. mkstemp creates 0600; the file gets 0666 less the umask, as ``open`` would
    give it. A failure (read-only store, full disk) raises ``StoreAccessError`` naming the file."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _access_error(path, err) from err
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise _access_error(path, err) from err
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _access_error(path: Path, err: OSError) -> StoreAccessError:
    hint = {errno.ENOSPC: "free some space or choose another run store (--runs, $THEORYBENCH_RUNS)",
            errno.EDQUOT: "free some space or choose another run store (--runs, $THEORYBENCH_RUNS)",
            errno.EROFS: "the file system is read-only: choose another run store (--runs, $THEORYBENCH_RUNS)",
            errno.EACCES: "make it writable or choose another run store (--runs, $THEORYBENCH_RUNS)",
            errno.EPERM: "make it writable or choose another run store (--runs, $THEORYBENCH_RUNS)"}
    return StoreAccessError(f"cannot write {path}: {err.strerror or err}; "
                            f"{hint.get(err.errno, 'check the run store (--runs, $THEORYBENCH_RUNS)')}")


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
    """metrics.csv as a frame; an unreadable file raises ``RunDamagedError`` naming it."""
    try:
        # Before pandas 3 the default C parser could round a decimal to a neighbouring float; round_trip
        # is exact (and is the default, with the option deprecated, from pandas 3 on).
        if int(pd.__version__.split(".")[0]) < 3:
            frame = pd.read_csv(path, float_precision="round_trip")
        else:
            frame = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise _damaged(path, f"not a readable CSV ({type(err).__name__}: {err})") from None
    if "step" not in frame.columns:
        raise _damaged(path, f"no 'step' column (columns: {', '.join(map(str, frame.columns))})")
    return frame


def read_json(path: Path) -> Any:
    """A JSON file of a run; an unreadable one raises ``RunDamagedError`` naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise _damaged(path, f"not valid JSON ({err})") from None


def remove_temp_files(folder: Path) -> None:
    """Delete half-written temp files left by a killed writer (they are never read)."""
    for tmp in Path(folder).glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def load_checkpoint(path: Path, mmap: bool = False) -> dict[str, Any]:
    """The checkpoint's contents (``mmap``: memory-mapped, so tensors are read only when touched); an
    unreadable file raises ``RunDamagedError`` naming it (a zip archive cut short has lost its
    directory, so torch refuses it)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - torch raises RuntimeError, UnpicklingError, EOFError, ...
        raise _damaged(path, f"the checkpoint cannot be read ({type(err).__name__}: {_first_line(err)})") from None


def save_weights(path: Path, state_dict: dict[str, torch.Tensor]) -> None:
    """The weights as safetensors, atomically. Each tensor is copied: safetensors refuses tensors that
    share memory (tied or frozen views), and a copy per name stores each under its own name."""
    tensors = {name: t.detach().to("cpu").clone().contiguous() for name, t in state_dict.items()}
    atomic_write_bytes(path, safetensors.torch.save(tensors))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """model.safetensors; an unreadable file raises ``RunDamagedError`` naming it."""
    try:
        return safetensors.torch.load(Path(path).read_bytes())
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - safetensors raises its own SafetensorError, ValueError, ...
        raise _damaged(path, f"the weights cannot be read ({type(err).__name__}: {_first_line(err)})") from None


def checkpoint_step(folder: Path | str) -> int:
    """The step of the run's checkpoint (0 if none): where it would resume. Memory-mapped, so only the
    small pickled header is read, not the weights."""
    try:
        return int(load_checkpoint(Path(folder) / CHECKPOINT_FILE, mmap=True)["step"])
    except FileNotFoundError:
        return 0


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# ---------------------------------------------------------------------------------- checksums
_CHECKSUM_CACHE: dict[tuple, str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered per (path, inode, size, mtime) so a figure that reuses a run many
    times reads its checkpoint once; any write changes the size or the mtime and so is re-read."""
    st = os.stat(path)
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _CHECKSUM_CACHE.get(key)
    if cached is None:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        cached = _CHECKSUM_CACHE[key] = digest.hexdigest()
    return cached


def run_files(folder: Path) -> list[str]:
    """The files a finished run's integrity covers: every plain file of the folder but done.json, the
    lock and temp files (artifacts/ is derived and may be rewritten by analyses)."""
    return sorted(p.name for p in Path(folder).iterdir()
                  if p.is_file() and p.name not in NOT_CHECKSUMMED and not p.name.endswith(".tmp"))


def checksums(folder: Path) -> dict[str, str]:
    return {name: file_sha256(Path(folder) / name) for name in run_files(folder)}


def sealed(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` plus ``seal``: the sha256 of its own canonical JSON, so that an edit of done.json
    itself (a changed checksum still being valid JSON) is named as such, not blamed on another file."""
    return {**record, "seal": _seal_of(record)}


def _seal_of(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "seal"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# ---------------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class RunFailure:
    """What failed.json records of a run that stopped on a NaN/Inf or diverged: the trainer's message
    and the step it stopped at (its checkpoint is the last good one, at or before that step)."""

    message: str
    step: int


@dataclass(frozen=True)
class Run:
    """A run folder and its config; metrics and weights are read from disk on demand."""

    dir: Path
    config: ExperimentConfig

    @property
    def status(self) -> str:
        """"done" (done.json), "failed" (failed.json) or "incomplete" (anything else); see ``check``."""
        if (self.dir / DONE_FILE).exists():
            return "done"
        if (self.dir / FAILED_FILE).exists():
            return "failed"
        return "incomplete"

    @property
    def stored_failure(self) -> RunFailure | None:
        """failed.json as a ``RunFailure`` (the trainer's message and the step it stopped at), or None."""
        path = self.dir / FAILED_FILE
        if not path.exists():
            return None
        record = read_json(path)
        if not (isinstance(record, dict) and isinstance(record.get("error"), str)
                and isinstance(record.get("step"), int)):
            raise _damaged(path, 'not a failure record ({"error": message, "step": step})')
        return RunFailure(message=record["error"], step=record["step"])

    @property
    def failure(self) -> str | None:
        """The stored failure's message (``stored_failure``), or None."""
        failure = self.stored_failure
        return failure.message if failure else None

    @property
    def runtime(self) -> dict[str, Any]:
        """runtime.json: ``precision`` and ``segments`` (one per start or resume); {} before training."""
        path = self.dir / RUNTIME_FILE
        return read_json(path) if path.exists() else {}

    @property
    def done(self) -> dict[str, Any]:
        """done.json: steps, config hash, code version and per-file checksums; {} before the end."""
        path = self.dir / DONE_FILE
        return read_json(path) if path.exists() else {}

    @property
    def codes(self) -> list[dict]:
        """The code version of every start or resume (``runtime.json``; None where not recorded)."""
        return [s.get("code") for s in self.runtime.get("segments", [])]

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

    def verify(self) -> None:
        """A done run: every file checksummed in done.json is present and unchanged, else
        ``RunDamagedError`` naming the first bad file. Other runs: nothing to compare with."""
        if not (self.dir / DONE_FILE).exists():
            return
        record = self.done
        if isinstance(record, dict) and "seal" not in record and "files" not in record:
            raise _damaged(self.dir / DONE_FILE, "it records no checksums of the run's files (written by an older "
                                                 "theorybench), so the run cannot be verified")
        if not isinstance(record, dict) or record.get("seal") != _seal_of(record):
            raise _damaged(self.dir / DONE_FILE, "its content differs from its own recorded sha256 (cut, edited or "
                                                 "corrupted)")
        files = record.get("files")
        if not isinstance(files, dict) or CHECKPOINT_FILE not in files:
            raise _damaged(self.dir / DONE_FILE, "it records no checksums of the run's files (written by "
                                                 "an older theorybench, or edited)")
        for name, want in sorted(files.items()):
            path = self.dir / name
            if not path.is_file():
                raise _damaged(path, "the file is missing (done.json records its checksum)")
            if file_sha256(path) != want:
                raise _damaged(path, "its content differs from the sha256 recorded in done.json when the run "
                                     "finished (cut, edited or corrupted)")

    def stale_reason(self) -> str | None:
        """Why the run is not the product of the code running now, or None if it is: every start or
        resume recorded in runtime.json must carry this process's source hash."""
        current = code_version()
        codes = self.codes
        if not codes:
            return "it records no code version (trained by an older theorybench)" if self._trained() else None
        other = [c for c in codes if not c or c.get("source") != current["source"]]
        if not other:
            return None
        return (f"it was trained by other code ({describe(other[0])}) than the code running now "
                f"({describe(current)})")

    def _trained(self) -> bool:
        return any((self.dir / f).exists() for f in (CHECKPOINT_FILE, DONE_FILE, FAILED_FILE))

    def load_model(self, verify: bool = True) -> nn.Module:
        """The model with the final weights of a done run (model.safetensors; its files verified
        against done.json first unless ``verify=False``), else those of the latest checkpoint."""
        if verify:
            self.verify()
        weights = self.dir / WEIGHTS_FILE
        if self.status == "done" and weights.exists():
            state = load_weights(weights)
        else:
            state = load_checkpoint(self.dir / CHECKPOINT_FILE)["model"]
        model = build_network(self.config.resolved().model)
        model.load_state_dict(state)
        return model.eval()

    def artifact_path(self, name: str) -> Path:
        """``dir/artifacts/name`` (folders created); ``name`` must stay inside the artifacts folder."""
        base = (self.dir / ARTIFACTS_DIR).resolve()
        path = (base / name).resolve()
        if base not in path.parents:
            raise ValueError(f"artifact name {name!r} is not allowed: a relative path inside {base}")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def run_dir(cfg: ExperimentConfig, root: Path | str | None = None, precision: str = DEFAULT_PRECISION) -> Path:
    """``root/<name>-<config hash>``, with ``-<precision>`` appended for a reduced precision; the name
    is the derived one (``ExperimentConfig.resolved``). A run is identified by its hash alone: where a
    folder of that hash already exists under another name (two studies naming one config differently),
    that folder is the run, so the same training is never done twice."""
    root = store_root(root)
    tail = f"-{cfg.config_hash()}{run_suffix(precision)}"
    existing = sorted(p for p in root.glob(f"*{tail}") if p.is_dir()) if root.is_dir() else []
    return existing[0] if existing else root / f"{cfg.resolved().name}{tail}"


def load_run(path: Path | str) -> Run:
    path = Path(path)
    config_path = path / CONFIG_FILE
    if not config_path.exists():
        raise FileNotFoundError(f"{path} is not a run folder: it has no {CONFIG_FILE}")
    try:
        config = ExperimentConfig.from_dict(read_json(config_path))
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        if isinstance(err, RunDamagedError):
            raise
        raise _damaged(config_path, f"not a valid config ({err})") from None
    return Run(dir=path, config=config)


def check_stored_config(cfg: ExperimentConfig, folder: Path) -> None:
    """Refuse a folder whose config.json is not ``cfg`` resolved (the display name aside: it is not part of
    what is trained, and another study may name the same config differently)."""
    path = Path(folder) / CONFIG_FILE
    if path.exists():
        stored = read_json(path)
        wanted = cfg.resolved().to_dict()
        if isinstance(stored, dict):
            stored = {**stored, "name": wanted.get("name")}
        if stored != wanted:
            changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k)) \
                if isinstance(stored, dict) else ["(not a config)"]
            raise RunConfigMismatchError(
                f"{folder} holds a different config than requested (differs in: {', '.join(changed)}); "
                "refusing to return or resume it. Move the folder away, choose another root, or retrain it "
                "with --retrain.")


def check_precision_record(folder: Path, precision: str) -> None:
    """Refuse to continue a run in another precision than it began in (a run folder holds one result),
    or one whose runtime.json names no precision there is.

    A folder without runtime.json began before the record existed, in the only precision there was."""
    path = Path(folder) / RUNTIME_FILE
    stored = read_json(path).get("precision", DEFAULT_PRECISION) if path.exists() else None
    if stored is None and (Path(folder) / CHECKPOINT_FILE).exists():
        stored = DEFAULT_PRECISION
    if stored is not None and stored not in PRECISIONS:
        raise _damaged(path, f"precision={stored!r} is not one of {', '.join(map(repr, PRECISIONS))}")
    if stored is not None and stored != precision:
        raise RunConfigMismatchError(f"{path}: the run was trained with precision={stored!r}, not {precision!r}; "
                                     "refusing to resume it in another precision (ask for --precision "
                                     f"{stored}, or retrain it with --retrain)")


def lock_held(folder: Path | str) -> bool:
    """Whether some process holds the run's lock now, i.e. is training it (never blocks, creates nothing).

    flock locks belong to an open file, so this sees a lock held by another process and by another
    open file of this one. On a network file system it needs working flock (NFSv4 and Lustre's
    ``-o flock`` mount have it)."""
    path = Path(folder) / LOCK_FILE
    try:
        f = open(path, "r")  # noqa: SIM115 - "r": probing must not create the file
    except (FileNotFoundError, PermissionError):
        return False
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


@contextlib.contextmanager
def locked(folder: Path):
    """An exclusive lock on the run folder (created if absent), so two processes never train the same
    run at once; blocks until the lock is free."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        f = open(folder / LOCK_FILE, "a")  # noqa: SIM115 - "a": taking the lock does not touch the file
    except OSError as err:
        raise _access_error(folder / LOCK_FILE, err) from err
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def clear_run(folder: Path) -> None:
    """Remove a run's files before it is trained again; the caller holds its lock (``locked``), which
    is kept."""
    for p in folder.iterdir():
        if p.name == LOCK_FILE:
            continue
        try:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        except OSError as err:
            raise _access_error(p, err) from err


def check_store(root: Path) -> None:
    """Refuse a run store path that is not a folder (``--runs /dev/null``) before any work."""
    root = Path(root)
    for p in (root, *root.parents):
        if p.exists():
            if not p.is_dir():
                raise StoreAccessError(f"run store {root}: {p} is not a folder; choose a folder with --runs or "
                                       f"${RUNS_ENV}")
            return


# ---------------------------------------------------------------------------------- reuse
def accept_stale_default() -> bool:
    """``$THEORYBENCH_ACCEPT_STALE`` read now: "1"/"true"/"yes" accept runs made by other code."""
    return os.environ.get(ACCEPT_STALE_ENV, "").strip().lower() in ("1", "true", "yes")


def check_reusable(run: Run, accept_stale: bool) -> None:
    """Refuse a done run that is damaged (``RunDamagedError``) or, unless accepted, stale (``RunStaleError``)."""
    run.verify()
    _refuse_stale(run, accept_stale, "It is not reused: retrain it with --retrain, or accept it as it is with "
                                     f"--accept-stale (${ACCEPT_STALE_ENV}=1; get_or_train(accept_stale=True))")


def check_resumable(run: Run, accept_stale: bool) -> None:
    """Refuse, unless accepted, to resume an unfinished run that other code began (``RunStaleError``):
    its remaining steps would come from another trainer than its first ones."""
    _refuse_stale(run, accept_stale, "It is not resumed: retrain it with --retrain, or resume it anyway with "
                                     f"--accept-stale (${ACCEPT_STALE_ENV}=1)")


def _refuse_stale(run: Run, accept_stale: bool, remedy: str) -> None:
    reason = run.stale_reason()
    if reason and not accept_stale:
        raise RunStaleError(f"{run.dir}: {reason}. {remedy}")


# ---------------------------------------------------------------------------------- listing and loading
def run_state(run: Run) -> tuple[str, str | None]:
    """(state, why) for listings: done, failed, running, incomplete, damaged or stale."""
    try:
        if lock_held(run.dir) and run.status != "done":
            return "running", None
        status = run.status
        if status == "done":
            run.verify()
        if status == "failed":
            return "failed", run.failure
        reason = run.stale_reason()
        if reason:
            return "stale", reason
        return status, None
    except RunDamagedError as err:
        return "damaged", str(err)


def list_runs(root: Path | str | None = None) -> list[Run | Path]:
    """Every run folder under the store (a Run), or the folder's path where its config is unreadable."""
    root = store_root(root)
    if not root.is_dir():
        return []
    out: list[Run | Path] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (folder / CONFIG_FILE).exists():
            continue
        try:
            out.append(load_run(folder))
        except RunStoreError:
            out.append(folder)
    return out


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


@dataclass(frozen=True)
class LoadedRun:
    """What ``load`` returns: the resolved config, the metrics frame, the model (eval mode), the Run,
    and its state ("done", "failed", "incomplete", "stale"; a damaged run is refused)."""

    config: ExperimentConfig
    metrics: pd.DataFrame
    model: nn.Module
    run: Run
    state: str


def load(run_or_path: Run | Path | str, root: Path | str | None = None) -> LoadedRun:
    """Config, metrics and model of a stored run: a ``Run``, a run folder path, or a folder name in
    the run store (``store_root(root)``). A done run is verified against its checksums first
    (``RunDamagedError`` if a file differs); a run made by other code is loaded with a
    ``StaleRunWarning``; an unfinished or failed one gives its latest checkpoint."""
    if isinstance(run_or_path, Run):
        run = run_or_path
    else:
        path = Path(run_or_path).expanduser()
        if not (path / CONFIG_FILE).exists() and not path.is_absolute() and (store_root(root) / path).is_dir():
            path = store_root(root) / path
        run = load_run(path)
    run.verify()
    state = run.status
    reason = run.stale_reason()
    if reason:
        warnings.warn(f"{run.dir}: {reason}", StaleRunWarning, stacklevel=2)
        state = "stale"
    return LoadedRun(run.config, run.metrics, run.load_model(verify=False), run, state)


__all__ = ["WEIGHTS_FILE", "LoadedRun", "Run", "RunConfigMismatchError", "RunDamagedError", "RunFailedError",
           "RunFailure", "RunStaleError", "RunStoreError", "StaleRunWarning", "StoreAccessError",
           "accept_stale_default", "atomic_torch_save", "atomic_write_bytes", "atomic_write_json", "check_resumable",
           "check_reusable", "check_store", "clear_run", "default_root", "list_runs", "load", "load_run",
           "load_weights", "lock_held", "locked", "run_dir", "run_state", "save_weights", "store_root"]
