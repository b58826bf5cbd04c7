"""The ``theorybench`` command line (also ``python -m theorybench``).

    theorybench list                                   experiments, figures and sweeps, by family
    theorybench train NAME [key=value ...]             train (or reuse) a registered experiment
    theorybench figures [NAME ...]                     make figures (all by default) and their index
    theorybench sweep NAME [--executor local|slurm]    train a sweep's missing runs (--status: progress)
    theorybench show-config NAME [key=value ...]       the resolved config as JSON; nothing is trained
    theorybench claims [FAMILY] [--scale S]            every claim's verdict, criterion and measured interval
    theorybench runs [--family F] [--status S]         the runs in the run store, and where the store is

Every input (names, ``key=value`` overrides, scale, cluster options) is checked before any work. A
bad one is refused with one paragraph that lists what is allowed, exit status 2 and no traceback.
A run or sweep member that fails gives exit status 1 (a sweep runs all its other members first), and
so does a run the store refuses to reuse (a damaged file, code that changed: the message names the
file and the remedy, ``--retrain`` or ``--accept-stale``) or cannot write (read-only, disk full).
Ctrl-C stops training after the current step with a checkpoint, prints how to resume and exits 130
(128 + SIGINT, the shell's convention), without a traceback.
Heavy modules (torch, the trainer) are imported only by the subcommands that need them, so
``--help`` and argument errors are fast: every import inside a function below is there for that
start-up time (``tests/test_runstore_identity.py`` checks that the command line starts without torch).

``--scale full`` uses a CUDA GPU when one is present (unless ``--device`` or ``$THEORYBENCH_DEVICE``
says otherwise). Where it would train on the CPU, it first prints what it needs and an estimate of
how long it would take (``theorybench.device_estimate``) and asks for confirmation; ``--yes``
starts it without asking, and with no terminal to ask on it is refused (exit status 2).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Sequence

from . import registry
from .device import DEVICE_ENV, PRECISIONS, DeviceError, check_precision, device_env, resolve_device, scoped_env
from .figures import default_out, make_figures
from .ledger import format_rows, ledger_rows
from .registry import EXECUTORS, FAMILIES, SCALES, RegistryError

RUN_STATES = ("done", "failed", "incomplete", "running", "damaged", "stale")  # theorybench.runstore.run_state

USAGE_ERROR = 2
RUN_FAILED = 1
INTERRUPTED = 130
BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left


class InputError(Exception):
    """Bad command-line input, already phrased for the user."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 a run failed, 2 bad input)."""
    parser = _parser()
    try:
        args, extra = parser.parse_known_args(argv)
        # argparse cannot put `key=value` items after an option (`train x --scale quick a=1`) into the
        # positional list; they arrive here, and anything else left over is an error.
        if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides += extra
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exit_:  # argparse already printed usage and the message
        return int(exit_.code or 0)
    if args.command is None:
        parser.print_help()
        return USAGE_ERROR
    try:
        return args.run(args)
    except InputError as err:
        print(f"theorybench {args.command}: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except RunError as err:  # the input was fine but the run failed: its message says where and why
        print(f"theorybench {args.command}: run failed: {err}", file=sys.stderr)
        return RUN_FAILED
    except KeyboardInterrupt as err:  # the trainer checkpointed first (theorybench.train)
        print(f"theorybench {args.command}: {str(err) or 'interrupted'}", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # the reader of stdout left (`theorybench list | head`): stop quietly
        _silence_stdout()
        return BROKEN_PIPE
    except Exception as err:
        if _is_run_failure(err):  # raised from inside figure makers or the store: already a message
            print(f"theorybench {args.command}: run failed: {err}", file=sys.stderr)
            return RUN_FAILED
        raise


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of what the closed pipe did not take
    raises no second BrokenPipeError at exit (the recipe of Python's `signal` documentation)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass  # stdout is not a file descriptor (captured in tests): nothing is left to flush to the pipe


def _is_run_failure(err: Exception) -> bool:
    """A run store refusal or a failed run. Looked up in sys.modules: if those modules were never
    imported, nothing of theirs was raised (and the CLI's start-up stays free of torch)."""
    store, train = sys.modules.get("theorybench.runstore"), sys.modules.get("theorybench.train")
    return bool((store and isinstance(err, store.RunStoreError)) or (train and isinstance(err, train.NonFiniteError)))


class RunError(Exception):
    """A run diverged, failed before, or its folder holds another config: exit status 1, no traceback."""


# ---------------------------------------------------------------------------------------- commands
def _list(args: argparse.Namespace) -> int:
    registry.load_studies()
    print("Experiments (theorybench train NAME [key=value ...]; theorybench show-config NAME):")
    _print_by_family(registry.experiments().values(),
                     lambda spec: f"    {spec.name}" + (f"  {spec.summary}" if spec.summary else ""))
    print("\nFigures (theorybench figures [NAME ...]):")
    # The module: where a reader finds the figure's measure, plot and claims (theorybench/studies/<family>/).
    _print_by_family(registry.figures().values(),
                     lambda spec: f"    {spec.name}\n      claim: {spec.claim}\n      module: {spec.make.__module__}")
    print("\nSweeps (theorybench sweep NAME [--scale full] [--executor slurm]; theorybench sweep NAME --status):")
    _print_by_family(registry.sweeps().values(),
                     lambda spec: f"    {spec.name}" + (f"  {spec.summary}" if spec.summary else "")
                     + (f"  [precision {spec.precision}]" if spec.precision != "strict" else ""))
    return 0


def _print_by_family(specs, describe) -> None:
    specs = list(specs)
    for family in FAMILIES:
        print(f"  {family}:")
        lines = [describe(spec) for spec in specs if spec.family == family]
        print("\n".join(lines) if lines else "    (none yet)")


def _train(args: argparse.Namespace) -> int:
    cfg = _resolve_config(args)
    from .runs import get_or_train  # start-up time (module docstring), as every import inside a function here
    from .runstore import Run, RunStoreError, checkpoint_step, run_dir
    from .train import NonFiniteError

    root = _store(args.runs, "--runs")
    precision = args.precision or "strict"
    request = _device_request(args)
    device = _resolve_device(request)
    _check_precision(precision, device, cfg.resolved_model().dtype)
    if args.scale == "full" and device.type == "cpu":
        existing = Run(run_dir(cfg, root, precision), cfg.resolved())
        if existing.status == "incomplete" or args.retrain:
            try:
                step = 0 if args.retrain else checkpoint_step(existing.dir)
            except RunStoreError as err:
                raise RunError(err) from None
            _confirm_full_scale([(cfg, step)], f"theorybench train {args.name} --scale full", args.yes)
    try:
        run = get_or_train(cfg, root=root, precision=precision, device=request, retrain=args.retrain,
                           accept_stale=args.accept_stale or None)
        metrics = run.metrics
    except (NonFiniteError, RunStoreError) as err:
        raise RunError(err) from None
    print(f"run: {run.dir}")
    if len(metrics) == 0:
        print("no metrics logged")
        return 0
    print("final metrics:")
    for key, value in metrics.iloc[-1].dropna().items():
        print(f"  {key}: {value:.6g}" if isinstance(value, float) else f"  {key}: {value}")
    return 0


def _figures(args: argparse.Namespace) -> int:
    registry.load_studies()
    try:
        for name in args.names:
            registry.get_figure(name)
    except RegistryError as err:
        raise InputError(err) from None
    request = _device_request(args)
    if args.scale == "full" and _resolve_device(request).type == "cpu":
        _guard_full_scale_figures(args.names, args.yes)
    out = Path(args.out) if args.out else default_out(args.scale)
    # The figure makers' get_or_train calls train where this resolved, and read the stale-run choice.
    with device_env(request), _accept_stale_env(args.accept_stale):
        entries = make_figures(args.names or None, scale=args.scale, out_dir=out, train_first=not args.no_pretrain)
    print(f"made {len(entries)} figure(s) under {out}/; index: {out / 'README.md'}")
    return 0


def _claims(args: argparse.Namespace) -> int:
    try:
        rows = ledger_rows(args.family, args.scale, Path(args.out) if args.out else None)
    except RegistryError as err:
        raise InputError(err) from None
    print(format_rows(rows, args.scale))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    registry.load_studies()
    try:
        spec = registry.get_sweep(args.name)
    except RegistryError as err:
        raise InputError(err) from None
    options = _slurm_options(args)
    if args.jobs is not None and args.jobs < 1:
        raise InputError(f"--jobs={args.jobs} is not allowed: a positive number of worker processes")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads={args.threads} is not allowed: a positive number of torch threads")
    from toy_models.config import ConfigError  # start-up time: this and the sweep modules import torch

    from .sweep import default_device_request, expand, format_status, statuses
    from .sweep_run import format_result, run_sweep

    root = _store(args.root, "--root")
    try:
        members = expand(spec, args.scale, root, args.precision)
    except (RegistryError, ConfigError) as err:
        raise InputError(f"sweep {spec.name!r} at scale {args.scale!r}: {err}") from None
    except KeyError as err:
        raise InputError(err.args[0] if err.args else err) from None
    if args.status:
        print(format_status(spec.name, args.scale, root, statuses(members, args.accept_stale)))
        return 0
    request = default_device_request(args.device, args.scale)
    on_cpu = _check_sweep_device(request, args.device is None and bool(os.environ.get(DEVICE_ENV)), members, options)
    pending = [s for s in statuses(members, args.accept_stale)
               if s.state in ("missing", "partial", *(("failed", "damaged", "stale") if args.retrain else ()))]
    if pending and args.scale == "full" and on_cpu:
        if options is None:  # the local pool's shape, as run_local will choose it
            from .sweep_local import usable_cores  # start-up time

            parallel = max(1, min(args.jobs or usable_cores(), len(pending)))
            threads = args.threads or max(1, usable_cores() // parallel)
        else:  # CPU-only array tasks, timed here as a proxy for the nodes
            parallel = min(options.array_parallelism or len(pending), len(pending))
            threads = options.cpus or 1
        _confirm_full_scale([(s.member.config, s.step) for s in pending],
                            f"theorybench sweep {spec.name} --scale full", args.yes, threads, parallel)
    wait = args.wait or (options is not None and options.cluster != "slurm")
    try:
        with device_env(request):
            result = run_sweep(spec, args.scale, root, executor=args.executor, jobs=args.jobs,
                               precision=args.precision, device=request, slurm=options, wait=wait,
                               threads_per_job=args.threads, retrain=args.retrain, accept_stale=args.accept_stale)
    except KeyboardInterrupt as err:
        if options is not None and options.cluster == "slurm":
            follow = f"theorybench sweep {spec.name} --scale {args.scale} --status --root {root}"
            raise KeyboardInterrupt(f"stopped waiting; the submitted jobs go on on the cluster: follow them with "
                                    f"{follow}") from None
        raise KeyboardInterrupt(str(err) or f"sweep {spec.name} interrupted; run the same command again to resume "
                                "it") from None
    if result.jobs and not wait:
        job_ids = sorted({str(j.job_id).split("_")[0] for j in result.jobs})
        print(f"sweep {spec.name}: submitted {len(result.jobs)} of {len(members)} members as array job "
              f"{', '.join(job_ids)} ({options.cluster}); logs: {Path(result.jobs[0].paths.folder).parent}\n"
              f"follow with: theorybench sweep {spec.name} --scale {args.scale} --status --root {root}")
        for key, message in result.failures:
            print(f"  failed: {key}: {message}")
    else:
        print(format_result(result))
    failed = bool(result.failures)
    result.jobs.clear()  # drop submitit's job handles now, not at interpreter shutdown (noisy there)
    return RUN_FAILED if failed else 0


def _slurm_options(args: argparse.Namespace):
    """Validated cluster options for --executor slurm; refuse cluster flags with the local executor."""
    given = {key: getattr(args, key) for key in ("partition", "time", "gpus", "mem", "cpus")}
    if args.executor != "slurm":
        stray = [f"--{k}" for k, v in given.items() if v is not None]
        stray += ["--slurm-config"] if args.slurm_config else []
        stray += ["--wait"] if args.wait else []
        if stray:
            raise InputError(f"{', '.join(stray)} appl{'y' if len(stray) > 1 else 'ies'} to --executor slurm only "
                             "(the local executor's options are --jobs and --threads)")
        return None
    if args.jobs is not None or args.threads is not None:
        raise InputError(f"{'--jobs' if args.jobs is not None else '--threads'} applies to --executor local only; on "
                         "SLURM every member is one array task (limit how many run at once with array_parallelism "
                         "in --slurm-config; --cpus sets each job's threads)")
    from .slurm import SlurmConfigError, check_cluster_available, slurm_options  # start-up time: torch, submitit

    try:
        options = slurm_options(args.slurm_config, **given)
        if not args.status:
            check_cluster_available(options)
    except SlurmConfigError as err:
        raise InputError(err) from None
    return options


def _check_sweep_device(request: str, from_env: bool, members, options) -> bool:
    """Refuse a device or precision the executor cannot honour; whether the runs would train on a CPU."""
    precisions = {m.precision for m in members}
    dtypes = {m.config.resolved_model().dtype for m in members}
    if options is None:  # local: the devices are this machine's
        device = _resolve_device(None if from_env else request)
        for precision in precisions:
            for dtype in dtypes:
                _check_precision(precision, device, dtype)
        return device.type == "cpu"
    import torch  # start-up time

    if request != "auto":
        try:
            kind = torch.device(request).type
        except (RuntimeError, ValueError):
            source = f"{DEVICE_ENV}={request!r}" if from_env else f"device={request!r}"
            raise InputError(f"{source} is not a device: one of 'auto', 'cpu', 'cuda', 'cuda:N'") from None
    else:
        kind = "cuda" if options.gpus else "cpu"
    if kind not in ("cpu", "cuda"):
        raise InputError(f"device={request!r} is not supported: one of 'auto', 'cpu', 'cuda', 'cuda:N'")
    if kind == "cuda" and not options.gpus and options.cluster != "debug":  # without --gpus a job sees no GPU
        raise InputError(f"device {request!r} needs a GPU on the nodes: add --gpus 1 (or gpus in --slurm-config)")
    if "tf32" in precisions and kind != "cuda":
        raise InputError("precision='tf32' needs a CUDA device: add --gpus 1 (TF32 is a tensor-core matmul mode)")
    for precision in precisions - {"strict"}:
        if dtypes - {"float32"}:
            raise InputError(f"precision={precision!r} is not allowed for float64 members: use 'strict'")
    return kind == "cpu"


# ---------------------------------------------------------------------------------------- device helpers
def _device_request(args: argparse.Namespace) -> str | None:
    """--device, else None when $THEORYBENCH_DEVICE is set (the trainer reads it), else "auto" at full
    scale; None: the default (the environment's device, or the CPU)."""
    if args.device or os.environ.get(DEVICE_ENV):
        return args.device
    return "auto" if args.scale == "full" else None


def _resolve_device(request: str | None):
    """The device a request resolves to here; a refusal names --device or $THEORYBENCH_DEVICE."""
    try:
        return resolve_device(request)
    except DeviceError as err:
        raise InputError(err) from None


def _check_precision(precision: str, device, dtype: str) -> None:
    try:
        check_precision(precision, device, dtype)
    except DeviceError as err:
        raise InputError(err) from None


def _confirm_full_scale(runs, what: str, yes: bool, threads: int | None = None, parallel: int = 1) -> None:
    """Say what a full-scale CPU request needs and how long it would take; go on only if confirmed."""
    from .device_estimate import estimate_cpu  # start-up time: it times the model

    _confirm(estimate_cpu(runs, threads=threads, parallel=parallel).message(what), yes)


def _guard_full_scale_figures(names: list[str], yes: bool) -> None:
    """Full-scale figures on the CPU: estimate from the sweeps of their families, then confirm."""
    from .sweep import expand, member_status  # start-up time

    specs = [registry.get_figure(n) for n in names] if names else list(registry.figures().values())
    families = {spec.family for spec in specs}
    sweeps = [s for s in registry.sweeps().values() if s.family in families]
    runs = []
    for spec in sweeps:
        for member in expand(spec, "full", _store(None, "$THEORYBENCH_RUNS")):
            status = member_status(member)
            if status.state in ("missing", "partial"):
                runs.append((member.config, status.step))
    uncovered = sorted(families - {s.family for s in sweeps})
    note = (f" Families without a registered sweep ({', '.join(uncovered)}) train inside their figure makers: "
            "their time is not in this estimate." if uncovered else "")
    if runs:
        from .device_estimate import estimate_cpu  # start-up time

        # Figure makers train on one thread (theorybench.threads.single_thread), one run after another.
        _confirm(estimate_cpu(runs, threads=1).message("theorybench figures --scale full") + note, yes)
    elif uncovered:
        _confirm("theorybench figures --scale full would train at the papers' sizes on the CPU (no CUDA GPU is in "
                 "use), and no registered sweep declares these figures' runs, so there is no estimate of how long "
                 f"it would take: full scale is sized for a GPU.{note}", yes)


def _confirm(message: str, yes: bool) -> None:
    text = textwrap.fill(message, width=100)
    if yes:
        print(f"{text}\n--yes: starting it anyway.", file=sys.stderr)
        return
    if sys.stdin is not None and sys.stdin.isatty():
        print(text, file=sys.stderr)
        if input("Start it on the CPU anyway? [y/N] ").strip().lower() in ("y", "yes"):
            return
        raise InputError("not started")
    raise InputError(f"{text}\nNot started: add --yes to start it anyway (there is no terminal to ask on).")


def _runs(args: argparse.Namespace) -> int:
    """The runs in the store: folder, state, progress, code, size; filtered by family and state."""
    from .runs_listing import format_runs  # start-up time

    root = _store(args.runs, "--runs")
    print(format_runs(root, family=args.family, state=args.status))
    return 0


def _store(given: str | None, flag: str) -> Path:
    """The run store (``given``, else $THEORYBENCH_RUNS, else the default), absolute; a path that is not
    a folder is refused before any work."""
    from .runstore import RunStoreError, check_store, store_root  # start-up time

    root = store_root(given)
    try:
        check_store(root)
    except RunStoreError as err:
        source = flag if given else "$THEORYBENCH_RUNS"
        raise InputError(f"{source}: {err}") from None
    return root


def _accept_stale_env(accept: bool) -> contextlib.AbstractContextManager[None]:
    """$THEORYBENCH_ACCEPT_STALE=1 for the duration if ``accept`` (figure makers call get_or_train without it)."""
    from .runstore import ACCEPT_STALE_ENV  # start-up time

    return scoped_env(ACCEPT_STALE_ENV, "1" if accept else None)


def _show_config(args: argparse.Namespace) -> int:
    cfg = _resolve_config(args)
    print(json.dumps(cfg.resolved().to_dict(), indent=2))
    return 0


def _resolve_config(args: argparse.Namespace):
    """Look up the experiment, build it at the scale, apply the overrides; refuse bad input."""
    registry.load_studies()
    try:
        spec = registry.get_experiment(args.name)  # before importing torch: an unknown name is refused at once
    except RegistryError as err:
        raise InputError(err) from None
    from toy_models.config import ConfigError  # start-up time: both import torch

    from .experiment import OverrideError, apply_overrides

    try:
        return apply_overrides(spec.build(args.scale), list(args.overrides))
    except (OverrideError, ConfigError) as err:
        raise InputError(err) from None
    except KeyError as err:  # a study's build(scale) looking up a user-given name; str(KeyError) quotes, so use args[0]
        raise InputError(err.args[0] if err.args else err) from None


# ---------------------------------------------------------------------------------------- parser
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="theorybench",
        description="Workbench for the mechanistic theory of transformers: train registered experiments "
                    "and make the figures that reproduce the papers' claims.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("list", help="list experiments, figures and sweeps by family")
    p.set_defaults(run=_list)

    scale_help = ("tiny (seconds, a smoke test), quick (CPU-sized, default), medium (where the CPU-feasible claims "
                  f"are decided, hours) or full (the papers' sizes, for a GPU); one of {', '.join(SCALES)}")
    overrides_help = "config overrides such as model.d_model=64 optim.lr=3e-4 seed=2"
    runs_help = "run store folder (default: $THEORYBENCH_RUNS, else runs/ at the repository root)"

    p = sub.add_parser("train", help="train a registered experiment, or reuse its run if it exists")
    p.add_argument("name", metavar="NAME", help="experiment name (see `theorybench list`)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help=overrides_help)
    p.add_argument("--scale", choices=SCALES, default="quick", help=scale_help)
    p.add_argument("--runs", metavar="DIR", default=None, help=runs_help)
    _add_store_options(p, retrain_help="discard the stored run (damaged, stale, failed or fine) and train it again")
    _add_device_options(p, precision=True)
    p.set_defaults(run=_train)

    p = sub.add_parser("figures", help="make figures (all by default) and figures/README.md")
    p.add_argument("names", nargs="*", metavar="NAME", help="figure names (see `theorybench list`)")
    p.add_argument("--scale", choices=SCALES, default="quick", help=scale_help)
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default: results/medium/ at --scale medium, else figures/)")
    p.add_argument("--accept-stale", action="store_true",
                   help="reuse runs trained by other code than the code running now (refused by default)")
    p.add_argument("--no-pretrain", action="store_true",
                   help="do not train the figures' sweeps in a process pool first; each figure trains what it "
                        "lacks itself, in this process")
    _add_device_options(p, precision=False)
    p.set_defaults(run=_figures)

    p = sub.add_parser("claims", help="every figure's claims with verdict, criterion and measured interval "
                                      "(read from the figures made; nothing is trained)")
    p.add_argument("family", nargs="?", default=None, metavar="FAMILY",
                   help=f"only this family: one of {', '.join(FAMILIES)}")
    p.add_argument("--scale", choices=SCALES, default="quick", help=scale_help)
    p.add_argument("--out", metavar="DIR", default=None,
                   help="where the figures were made (default: results/medium/ at --scale medium, else figures/)")
    p.set_defaults(run=_claims)

    p = sub.add_parser("sweep", help="train a registered sweep's missing runs, locally or on SLURM (--status: "
                                     "progress)")
    p.add_argument("name", metavar="NAME", help="sweep name (see `theorybench list`)")
    p.add_argument("--scale", choices=SCALES, default="quick", help=scale_help)
    p.add_argument("--status", action="store_true",
                   help="only report how many members are done, running, partial, failed, missing, damaged or stale "
                        "(and why)")
    p.add_argument("--root", "--runs", dest="root", metavar="DIR", default=None,
                   help="run store folder, on a file system the nodes share for SLURM (default: $THEORYBENCH_RUNS, "
                        "else runs/ at the repository root)")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: a process pool on this machine (default); slurm: array jobs through submitit")
    p.add_argument("--jobs", type=int, metavar="K", default=None,
                   help="local: worker processes (default: one per core, or per GPU)")
    p.add_argument("--threads", type=int, metavar="N", default=None,
                   help="local: torch threads per worker (default: cores / jobs)")
    _add_store_options(p, retrain_help="discard the failed, damaged and stale members and train them again")
    slurm = p.add_argument_group("SLURM (--executor slurm; these override --slurm-config)")
    slurm.add_argument("--slurm-config", metavar="FILE", default=None,
                       help="TOML or JSON file of cluster options (partition, time, gpus, mem, cpus, account, qos, "
                            "constraint, array_parallelism, max_requeues, log_dir, setup, additional, cluster)")
    slurm.add_argument("--partition", default=None)
    slurm.add_argument("--time", default=None, help="per job: minutes, HH:MM:SS or D-HH:MM (default 4:00:00); "
                                                    "a job that hits it is requeued and resumes")
    slurm.add_argument("--gpus", default=None, help="GPUs per job (default 0)")
    slurm.add_argument("--mem", default=None, help="memory per job, e.g. 16G")
    slurm.add_argument("--cpus", default=None, help="CPUs per job (also the job's torch threads)")
    slurm.add_argument("--wait", action="store_true", help="wait for the jobs and report their outcome "
                                                           "(default: submit and return)")
    _add_device_options(p, precision=True)
    p.set_defaults(run=_sweep)

    p = sub.add_parser("show-config", help="print an experiment's resolved config as JSON (no training)")
    p.add_argument("name", metavar="NAME", help="experiment name (see `theorybench list`)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help=overrides_help)
    p.add_argument("--scale", choices=SCALES, default="quick", help=scale_help)
    p.set_defaults(run=_show_config)

    p = sub.add_parser("runs", help="list the runs in the run store (config, state, code version, size)")
    p.add_argument("--family", choices=FAMILIES, default=None, help="only this family's runs")
    p.add_argument("--status", choices=RUN_STATES, default=None, help="only runs in this state")
    p.add_argument("--runs", metavar="DIR", default=None, help=runs_help)
    p.set_defaults(run=_runs)
    return parser


def _add_store_options(p: argparse.ArgumentParser, retrain_help: str) -> None:
    p.add_argument("--retrain", action="store_true", help=retrain_help)
    p.add_argument("--accept-stale", action="store_true",
                   help="reuse or resume runs trained by other code than the code running now (refused by default)")


def _add_device_options(p: argparse.ArgumentParser, precision: bool) -> None:
    p.add_argument("--device", default=None,
                   help=f"cpu, cuda, cuda:N or auto (default: ${DEVICE_ENV}, else auto at --scale full, cpu at quick)")
    if precision:
        p.add_argument("--precision", choices=PRECISIONS, default=None,
                       help="strict (default: the model's dtype, TF32 off), tf32 (CUDA) or bf16 (autocast); "
                            "reduced-precision runs are stored apart")
    p.add_argument("--yes", "-y", action="store_true",
                   help="at --scale full on a CPU, start without asking (the estimate is still printed)")


if __name__ == "__main__":
    sys.exit(main())
