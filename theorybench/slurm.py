"""The SLURM executor of a sweep, through submitit: one array job, one member per array task.

Options come from a config file (TOML or JSON) and the command line, the command line winning:

    cluster           "slurm" (default); "local" runs the same path through submitit's local
                      executor (processes on this machine, no cluster), "debug" in this process
    partition         SLURM partition                          (--partition)
    time              wall time per job: minutes, "HH:MM:SS", "D-HH:MM" ... (--time; default 4:00:00)
    gpus              GPUs per job                              (--gpus; default 0)
    mem               memory per job: "16G", "4000M", or GB as a number (--mem)
    cpus              CPUs per job; also the job's torch threads (--cpus)
    account, qos, constraint        the sbatch options of those names
    array_parallelism at most this many array tasks at once (default: submitit's 256)
    max_requeues      how many times a job that hits its time limit is requeued (default 10)
    log_dir           submitit's folder of job pickles and logs (default <root>/.sweeps/logs/<sweep>)
    setup             shell lines run before each job (e.g. ["module load cuda/12.4"])
    additional        extra sbatch options, {"mail-type": "END"}

**Preemption and time limits.** submitit asks SLURM to signal a job 90 s before it is killed
(USR2). Its handler calls ``TrainMember.checkpoint``, which resubmits the same call; the job is
requeued and the new start calls ``train_member`` → ``get_or_train`` again, which resumes from the
run's last checkpoint (written every ``train.checkpoint_every`` steps, so at most that many steps
are repeated), bit for bit as if never stopped (on the CPU). A preempted job is requeued without
limit; one that reached its time limit ``max_requeues`` times is not.

The run store root must be on a file system the nodes share, with working ``flock`` (NFSv4;
Lustre mounted with ``-o flock``), and the Python environment must be importable there.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import submitit
from tqdm import tqdm

from .progress import show_progress
from .sweep import Member, Outcome, train_member

CLUSTERS = ("slurm", "local", "debug")
DEFAULT_TIME_MIN = 240
DEFAULT_MAX_REQUEUES = 10


class SlurmConfigError(ValueError):
    """A bad cluster option; the message names the option, where it came from, and what is allowed."""


@dataclass(frozen=True)
class SlurmOptions:
    """Validated cluster options (see the module docstring for each)."""

    cluster: str = "slurm"
    partition: str | None = None
    time_min: int = DEFAULT_TIME_MIN
    gpus: int = 0
    mem_gb: float | None = None
    cpus: int | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    array_parallelism: int | None = None
    max_requeues: int = DEFAULT_MAX_REQUEUES
    log_dir: str | None = None
    setup: tuple[str, ...] = ()
    additional: dict[str, Any] = field(default_factory=dict)


KEYS = ("cluster", "partition", "time", "gpus", "mem", "cpus", "account", "qos", "constraint", "array_parallelism",
        "max_requeues", "log_dir", "setup", "additional")


# ---------------------------------------------------------------------------------- parsing
def parse_time(value: Any, source: str = "time") -> int:
    """Minutes (rounded up) from SLURM's time formats: "MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM",
    "D-HH:MM:SS", or a positive number of minutes."""
    allowed = "minutes, or 'MM:SS', 'HH:MM:SS', 'D-HH', 'D-HH:MM', 'D-HH:MM:SS' (SLURM's formats)"
    number = _given_number(value, source, allowed, "a positive time; ")
    if number is not None:
        return math.ceil(number)
    text = str(value).strip()
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not m:
        raise SlurmConfigError(f"{source}={text!r} is not allowed: {allowed}")
    days, a, b, c = m.groups()
    parts = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = int(days) * 86400 + parts[0] * 3600 + (parts[1] * 60 if len(parts) > 1 else 0) + (
            parts[2] if len(parts) > 2 else 0)
    elif len(parts) == 1:
        seconds = parts[0] * 60
    elif len(parts) == 2:  # MM:SS
        seconds = parts[0] * 60 + parts[1]
    else:
        seconds = parts[0] * 3600 + parts[1] * 60 + parts[2]
    if seconds <= 0:
        raise SlurmConfigError(f"{source}={text!r} is not allowed: a positive time; {allowed}")
    return math.ceil(seconds / 60)


def parse_mem(value: Any, source: str = "mem") -> float:
    """GB from "16G", "16GB", "4000M", "1T", "512K", or a positive number (GB)."""
    allowed = "a size such as '16G', '4000M', '1T', or a number of GB"
    number = _given_number(value, source, allowed)
    if number is not None:
        return float(number)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)B?", str(value).strip(), flags=re.IGNORECASE)
    if not m or float(m.group(1)) <= 0:
        raise SlurmConfigError(f"{source}={value!r} is not allowed: {allowed}")
    scale = {"K": 1 / 1024**2, "M": 1 / 1024, "G": 1.0, "": 1.0, "T": 1024.0}[m.group(2).upper()]
    return float(m.group(1)) * scale


def _given_number(value: Any, source: str, allowed: str, why: str = "") -> float | None:
    """``value`` if it was given as a positive finite number, None if given as text (parsed by the caller);
    a bool (a number to Python, not to a config file) or any other number is refused."""
    if isinstance(value, bool):
        raise SlurmConfigError(f"{source}={value!r} is not allowed: {allowed}")
    if isinstance(value, (int, float)):
        if value > 0 and math.isfinite(value):
            return value
        raise SlurmConfigError(f"{source}={value!r} is not allowed: {why}{allowed}")
    return None


def load_config_file(path: Path | str) -> dict[str, Any]:
    """The options in a TOML (``.toml``) or JSON (``.json``) file; a TOML file may put them under [slurm]."""
    path = Path(path)
    if not path.is_file():
        raise SlurmConfigError(f"--slurm-config {str(path)!r}: no such file")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise SlurmConfigError(f"--slurm-config {str(path)!r}: the name must end in .toml or .json")
    except (ValueError, TypeError) as err:
        if isinstance(err, SlurmConfigError):
            raise
        raise SlurmConfigError(f"--slurm-config {str(path)!r} is not valid {path.suffix[1:].upper()}: {err}") from None
    if not isinstance(data, dict):
        raise SlurmConfigError(f"--slurm-config {str(path)!r}: expected a table of options, got {type(data).__name__}")
    if set(data) == {"slurm"} and isinstance(data["slurm"], dict):
        data = data["slurm"]
    return data


def slurm_options(config_file: Path | str | None = None, **cli: Any) -> SlurmOptions:
    """Options from the file, then the command line (values that are None were not given)."""
    values: dict[str, tuple[Any, str]] = {}
    if config_file is not None:
        for key, value in load_config_file(config_file).items():
            values[key] = (value, f"{key} in {config_file}")
    for key, value in cli.items():
        if value is not None:
            values[key] = (value, f"--{key.replace('_', '-')}")
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise SlurmConfigError(f"{values[unknown[0]][1]}: unknown option {unknown[0]!r}; allowed: {', '.join(KEYS)}")
    out: dict[str, Any] = {}
    for key, (value, source) in values.items():
        out.update(_convert(key, value, source))
    return SlurmOptions(**out)


def _convert(key: str, value: Any, source: str) -> dict[str, Any]:
    if key == "time":
        return {"time_min": parse_time(value, source)}
    if key == "mem":
        return {"mem_gb": parse_mem(value, source)}
    if key == "cluster":
        if value not in CLUSTERS:
            raise SlurmConfigError(f"{source}={value!r} is not allowed: one of {', '.join(map(repr, CLUSTERS))}")
        return {"cluster": value}
    if key in ("gpus", "cpus", "array_parallelism", "max_requeues"):
        minimum = 0 if key in ("gpus", "max_requeues") else 1
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            kind = "a non-negative integer" if minimum == 0 else "a positive integer"
            raise SlurmConfigError(f"{source}={value!r} is not allowed: {kind}")
        return {key: value}
    if key == "setup":
        if isinstance(value, str):
            value = [value]
        if not (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)):
            raise SlurmConfigError(f"{source}={value!r} is not allowed: a list of shell lines")
        return {"setup": tuple(value)}
    if key == "additional":
        if not (isinstance(value, dict) and all(isinstance(v, (str, int, float)) for v in value.values())):
            raise SlurmConfigError(f"{source}={value!r} is not allowed: a table of sbatch options, e.g. "
                                   "{\"mail-type\" = \"END\"}")
        return {"additional": dict(value)}
    if not (isinstance(value, str) and value.strip()):
        raise SlurmConfigError(f"{source}={value!r} is not allowed: a non-empty string")
    return {key: value.strip()}


def check_cluster_available(options: SlurmOptions) -> None:
    """Refuse cluster="slurm" where there is no ``sbatch`` (submitting would fail after the work of planning)."""
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
    if options.cluster == "slurm" and missing:
        verb = "is" if len(missing) == 1 else "are"
        raise SlurmConfigError(f"--executor slurm: {' and '.join(missing)} {verb} not on PATH, so this machine "
                               "cannot submit to SLURM; run it on a login node, use --executor local, or set cluster = \"local\" in the "
                               "--slurm-config file to try the submitit path on this machine")


# ---------------------------------------------------------------------------------- the job
class TrainMember(submitit.helpers.Checkpointable):
    """The callable each array task runs: train one member (``train_member``) into the shared run store.

    Checkpointable: on preemption or time-out submitit calls ``checkpoint(config, precision)``, whose
    inherited default resubmits this same call; after the requeue ``get_or_train`` finds the run's
    last checkpoint and resumes from it. Nothing else needs saving: the run folder is the state.
    """

    def __init__(self, root: str, device: str | None, threads: int | None, accept_stale: bool = False):
        self.root, self.device, self.threads, self.accept_stale = root, device, threads, accept_stale

    def __call__(self, config, precision: str) -> Outcome:
        return train_member(config, self.root, precision, self.device, self.threads,
                            getattr(self, "accept_stale", False))  # getattr: jobs pickled before the field


def make_executor(options: SlurmOptions, log_dir: Path, name: str):
    """A submitit AutoExecutor for ``options`` (its folder holds one sub-folder per job, ``%j``)."""
    executor = submitit.AutoExecutor(folder=str(log_dir / "%j"), cluster=options.cluster,
                                     slurm_max_num_timeout=options.max_requeues,
                                     local_max_num_timeout=options.max_requeues)
    params: dict[str, Any] = {
        "name": f"tb_{name}", "timeout_min": options.time_min, "gpus_per_node": options.gpus,
        "cpus_per_task": options.cpus, "mem_gb": options.mem_gb, "slurm_partition": options.partition,
        "slurm_account": options.account, "slurm_qos": options.qos, "slurm_constraint": options.constraint,
        "slurm_array_parallelism": options.array_parallelism,
        "slurm_setup": list(options.setup) or None, "slurm_additional_parameters": options.additional or None,
    }
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return executor


def submit(members: Sequence[Member], root: Path, options: SlurmOptions, name: str, device: str | None,
           accept_stale: bool = False) -> list:
    """Submit one array job (one task per member); returns submitit's jobs, in ``members`` order.

    ``device`` is resolved on the node ("auto": its GPU if it has one); ``accept_stale`` lets the jobs
    resume runs begun by other code."""
    if not members:
        return []
    log_dir = Path(options.log_dir) if options.log_dir else Path(root) / ".sweeps" / "logs" / name
    executor = make_executor(options, log_dir.resolve(), name)
    fn = TrainMember(str(Path(root).resolve()), device, options.cpus, accept_stale)
    return executor.map_array(fn, [m.config for m in members], [m.precision for m in members])


def wait_for(jobs: Sequence, members: Sequence[Member], progress: bool | None = None) -> list[Outcome]:
    """Block until every job ends; its Outcome, or an "error" naming the job and its log."""
    by_job = {id(job): member for job, member in zip(jobs, members)}
    outcomes: list[Outcome] = []
    with tqdm(total=len(jobs), desc="jobs", unit="job", disable=not show_progress(progress), dynamic_ncols=True) as bar:
        for job in submitit.helpers.as_completed(list(jobs), poll_frequency=1):
            member = by_job[id(job)]
            try:
                outcomes.append(job.result())
            except Exception as err:  # noqa: BLE001 - killed, cancelled, node lost: reported, the rest go on
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                outcomes.append(Outcome(member.key, "error", f"job {job.job_id}: {first} (log: {job.paths.stderr})"))
            bar.update(1)
    return outcomes


def job_record(job: Any) -> dict[str, str | None]:
    """A submitted job as the sweep's submission record keeps it: its id and the paths of its logs and
    result (read as text by ``--status``, never unpickled)."""
    paths = job.paths
    return {"job_id": str(job.job_id), "stdout": str(paths.stdout), "stderr": str(paths.stderr),
            "result": str(paths.result_pickle), "error": None}


__all__ = ["CLUSTERS", "KEYS", "SlurmConfigError", "SlurmOptions", "TrainMember", "check_cluster_available",
           "job_record", "load_config_file", "make_executor", "parse_mem", "parse_time", "slurm_options", "submit",
           "wait_for"]
