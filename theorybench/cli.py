"""The ``theorybench`` command line (also ``python -m theorybench``).

    theorybench list                                   experiments and figures, by family
    theorybench train NAME [key=value ...]             train (or reuse) a registered experiment
    theorybench figures [NAME ...]                     make figures (all by default) and their index
    theorybench show-config NAME [key=value ...]       the resolved config as JSON; nothing is trained

Every input (names, ``key=value`` overrides, scale) is checked before any work. A bad one is refused
with one paragraph that lists what is allowed, exit status 2 and no traceback. Heavy modules (torch,
the trainer) are imported only by the subcommands that need them, so ``--help`` and argument errors
are fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from . import registry
from .registry import FAMILIES, SCALES, RegistryError

USAGE_ERROR = 2
RUN_FAILED = 1


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


class RunError(Exception):
    """A run diverged, failed before, or its folder holds another config: exit status 1, no traceback."""


# ---------------------------------------------------------------------------------------- commands
def _list(args: argparse.Namespace) -> int:
    registry.load_studies()
    print("Experiments (theorybench train NAME [key=value ...]; theorybench show-config NAME):")
    _print_by_family(registry.experiments().values(),
                     lambda spec: f"    {spec.name}" + (f"  {spec.summary}" if spec.summary else ""))
    print("\nFigures (theorybench figures [NAME ...]):")
    _print_by_family(registry.figures().values(), lambda spec: f"    {spec.name}\n      claim: {spec.claim}")
    return 0


def _print_by_family(specs, describe) -> None:
    specs = list(specs)
    for family in FAMILIES:
        print(f"  {family}:")
        lines = [describe(spec) for spec in specs if spec.family == family]
        print("\n".join(lines) if lines else "    (none yet)")


def _train(args: argparse.Namespace) -> int:
    cfg = _resolve_config(args)
    from .runstore import DEFAULT_ROOT, get_or_train

    from .runstore import RunConfigMismatchError, RunFailedError
    from .train import NonFiniteError

    try:
        run = get_or_train(cfg, root=Path(args.runs) if args.runs else DEFAULT_ROOT)
    except (NonFiniteError, RunFailedError, RunConfigMismatchError) as err:
        raise RunError(err) from None
    print(f"run: {run.dir}")
    metrics = run.metrics
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
    from .figures import make_figures

    entries = make_figures(args.names or None, scale=args.scale, out_dir=Path(args.out))
    index = Path(args.out) / "README.md"
    print(f"made {len(entries)} figure(s) under {args.out}/; index: {index}")
    return 0


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
    from toy_models.config import ConfigError

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

    p = sub.add_parser("list", help="list experiments and figures by family")
    p.set_defaults(run=_list)

    scale_help = f"quick (CPU-sized, default) or full (the papers' sizes, for a GPU); one of {', '.join(SCALES)}"
    overrides_help = "config overrides such as model.d_model=64 optim.lr=3e-4 seed=2"

    p = sub.add_parser("train", help="train a registered experiment, or reuse its run if it exists")
    p.add_argument("name", metavar="NAME", help="experiment name (see `theorybench list`)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help=overrides_help)
    p.add_argument("--scale", choices=SCALES, default="quick", help=scale_help)
    p.add_argument("--runs", metavar="DIR", default=None, help="run store folder (default: runs/)")
    p.set_defaults(run=_train)

    p = sub.add_parser("figures", help="make figures (all by default) and figures/README.md")
    p.add_argument("names", nargs="*", metavar="NAME", help="figure names (see `theorybench list`)")
    p.add_argument("--scale", choices=SCALES, default="quick", help=scale_help)
    p.add_argument("--out", metavar="DIR", default="figures", help="output folder (default: figures/)")
    p.set_defaults(run=_figures)

    p = sub.add_parser("show-config", help="print an experiment's resolved config as JSON (no training)")
    p.add_argument("name", metavar="NAME", help="experiment name (see `theorybench list`)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help=overrides_help)
    p.add_argument("--scale", choices=SCALES, default="quick", help=scale_help)
    p.set_defaults(run=_show_config)
    return parser


if __name__ == "__main__":
    sys.exit(main())
