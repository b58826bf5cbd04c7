"""The registry: where study families declare their experiments and figures.

A study family is one package, ``theorybench/studies/<family>/``, whose import calls
``register_experiment``, ``register_sweep`` and ``register_figure``: ``sizes.py`` (one frozen sizes
dataclass per scale), ``experiments.py`` (config builders, experiments and sweeps), one module per
figure (``measure`` → data, ``plot``, the claims and the registration), ``common.py`` for what several
figures share, and a README (claim → figure → function → test). The command line (``theorybench list /
train / figures / show-config``; ``list`` names each figure's module) and ``make figures`` find
everything through ``load_studies()``; nothing else needs to change when a family is added.

- An ``ExperimentSpec`` names a config builder: ``build(scale)`` returns an ``ExperimentConfig``
  (``scale`` is "quick", CPU-sized, or "full", the paper's size on a GPU).
- A ``SweepSpec`` names a grid of runs: ``build(scale)`` returns the list of ``ExperimentConfig``s
  (configs × seeds) that a figure trains; ``theorybench sweep NAME`` runs the members the run store
  lacks, locally or on a cluster, and the figure maker then finds them all with ``get_or_train``.
  Declare it in the same study module as the figure that reads it, and let the figure build its
  configs from the sweep (one source of truth for what the figure needs).
- A ``FigureSpec`` names a figure maker: ``make(scale)`` trains or reuses the runs it needs and
  returns a ``FigureResult``, the matplotlib figure plus the measured numbers shown beside the
  paper ``claim`` it reproduces. Its name starts with its family (``icl_…``, ``graph_search_…``,
  ``attention_svm_…``, ``variance_…``), and so do its files under ``figures/``.

Bad names are refused with a message that lists what is allowed.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from .claims import Claim, LedgerError, Measurement, check_claims
from .device import PRECISIONS

if TYPE_CHECKING:  # keep the command line's start-up free of torch and matplotlib
    from matplotlib.figure import Figure

    from theorybench.experiment import ExperimentConfig

FAMILIES = ("icl", "graph_search", "attention_svm", "variance")
# tiny: the test suite's renders, seconds; quick: `make figures`, ≤ 30 min on 2 cores; medium: where the
# CPU-feasible claims are decided, ≤ 3 h on 2 cores; full: the papers' sizes, for a GPU.
SCALES = ("tiny", "quick", "medium", "full")
SCALE_ENV = "THEORYBENCH_SCALE"

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class RegistryError(ValueError):
    """A spec is malformed, a name is taken, or a looked-up name or scale does not exist."""


@dataclass(frozen=True)
class ExperimentSpec:
    """A named experiment of one family. ``build(scale)`` returns its ``ExperimentConfig``; the first
    line of ``build``'s docstring is what ``theorybench list`` shows."""

    name: str
    family: str
    build: Callable[[str], "ExperimentConfig"]

    def __post_init__(self) -> None:
        _check_name_and_family("experiment", self.name, self.family)
        if not callable(self.build):
            raise RegistryError(f"experiment {self.name!r}: build must be callable as build(scale)")

    @property
    def summary(self) -> str:
        return _first_line(self.build.__doc__)


@dataclass(frozen=True)
class FigureSpec:
    """A named figure: ``make(scale)`` returns a ``FigureResult``; ``claim`` is the caption, the paper
    claim it tests, citing the paper by title. ``claims`` are the claims it decides, each with its
    criteria fixed here, before any run (``theorybench.claims``); the maker returns a ``Measurement``
    for every criterion, and the ledger gives the verdicts."""

    name: str
    family: str
    claim: str
    make: Callable[[str], "FigureResult"]
    claims: tuple[Claim, ...] = ()

    def __post_init__(self) -> None:
        _check_name_and_family("figure", self.name, self.family)
        if not self.name.startswith(f"{self.family}_"):
            raise RegistryError(f"figure name {self.name!r} must start with its family: '{self.family}_…'")
        if not (isinstance(self.claim, str) and self.claim.strip()):
            raise RegistryError(f"figure {self.name!r}: claim must state the paper claim it reproduces")
        if not callable(self.make):
            raise RegistryError(f"figure {self.name!r}: make must be callable as make(scale)")
        try:
            object.__setattr__(self, "claims", check_claims(self.claims, self.name))
        except LedgerError as err:
            raise RegistryError(str(err)) from None


@dataclass(frozen=True)
class SweepSpec:
    """A named set of runs: ``build(scale)`` returns the ``ExperimentConfig``s (every config × seed)
    that the figures of its family read; the first line of ``build``'s docstring is its summary.

    ``precision`` is the arithmetic its runs train in (``theorybench.device``): "strict" (the
    default: the model's dtype, TF32 off), or "tf32"/"bf16" where the claim's tolerance is well above
    their rounding. Runs in a reduced precision live in their own folders, so a figure reading them
    asks for the same: ``get_or_train(cfg, precision=spec.precision)``."""

    name: str
    family: str
    build: Callable[[str], "list[ExperimentConfig]"]
    precision: str = "strict"

    def __post_init__(self) -> None:
        _check_name_and_family("sweep", self.name, self.family)
        if not callable(self.build):
            raise RegistryError(f"sweep {self.name!r}: build must be callable as build(scale)")
        if self.precision not in PRECISIONS:
            raise RegistryError(f"sweep {self.name!r}: precision={self.precision!r} is not allowed: one of "
                                f"{', '.join(map(repr, PRECISIONS))}")

    @property
    def summary(self) -> str:
        return _first_line(self.build.__doc__)

    def members(self, scale: str) -> "list[ExperimentConfig]":
        """The sweep's configs at ``scale``, checked: a list of ExperimentConfig with distinct names.

        Distinct names matter because a run is found by (name, config hash): two members with one
        name would be reported as one."""
        configs = list(self.build(check_scale(scale)))
        from theorybench.experiment import ExperimentConfig  # lazy: keeps the CLI start-up light

        for c in configs:
            if not isinstance(c, ExperimentConfig):
                raise RegistryError(f"sweep {self.name!r}: build({scale!r}) returned {type(c).__name__}, "
                                    "expected ExperimentConfig")
        seen: set[tuple[str, str]] = set()
        for c in configs:
            key = (c.name, c.config_hash())
            if key in seen:
                raise RegistryError(f"sweep {self.name!r}: member {c.name!r} appears twice at scale {scale!r}")
            seen.add(key)
        return configs


# Where a sweep's members can train (``theorybench.sweep_run.run_sweep``): a process pool on this machine
# (``theorybench.sweep_local``) or SLURM array jobs (``theorybench.slurm``). Named here, beside the other
# words of the command line, so that ``theorybench sweep --help`` lists them without importing torch.
EXECUTORS = ("local", "slurm")


@dataclass
class FigureResult:
    """What a figure maker returns: the figure, the numbers shown beside its caption, and a
    ``Measurement`` (value and interval) for every criterion of the figure's declared claims."""

    figure: "Figure"
    numbers: dict[str, float | str] = field(default_factory=dict)
    measured: dict[str, Measurement] = field(default_factory=dict)


_EXPERIMENTS: dict[str, ExperimentSpec] = {}
_FIGURES: dict[str, FigureSpec] = {}
_SWEEPS: dict[str, SweepSpec] = {}
_LOAD_STUDIES = True


def register_experiment(spec: ExperimentSpec) -> ExperimentSpec:
    return _register(_EXPERIMENTS, "experiment", spec)


def register_figure(spec: FigureSpec) -> FigureSpec:
    return _register(_FIGURES, "figure", spec)


def register_sweep(spec: SweepSpec) -> SweepSpec:
    return _register(_SWEEPS, "sweep", spec)


def experiments() -> dict[str, ExperimentSpec]:
    """Registered experiments by name, grouped by family in ``FAMILIES`` order."""
    return _ordered(_EXPERIMENTS)


def figures() -> dict[str, FigureSpec]:
    """Registered figures by name, grouped by family in ``FAMILIES`` order."""
    return _ordered(_FIGURES)


def sweeps() -> dict[str, SweepSpec]:
    """Registered sweeps by name, grouped by family in ``FAMILIES`` order."""
    return _ordered(_SWEEPS)


def get_sweep(name: str) -> SweepSpec:
    return _lookup(_SWEEPS, "sweep", name)


def get_experiment(name: str) -> ExperimentSpec:
    return _lookup(_EXPERIMENTS, "experiment", name)


def get_figure(name: str) -> FigureSpec:
    return _lookup(_FIGURES, "figure", name)


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise RegistryError(f"scale={scale!r} is not allowed: one of {', '.join(map(repr, SCALES))}")
    return scale


def default_scale() -> str:
    """The scale named by the THEORYBENCH_SCALE environment variable (notebooks read it), else "quick"."""
    return check_scale(os.environ.get(SCALE_ENV, "quick"))


def load_studies() -> None:
    """Import every module and family package of ``theorybench.studies`` (a package imports its figure
    modules) so that their ``register_*`` calls run.

    Idempotent: Python imports each module once."""
    if not _LOAD_STUDIES:
        return
    studies = importlib.import_module("theorybench.studies")
    for module in pkgutil.iter_modules(studies.__path__):
        importlib.import_module(f"{studies.__name__}.{module.name}")


@contextlib.contextmanager
def isolated_registry():
    """Empty registries, and ``load_studies()`` doing nothing, for the duration of the block.

    For tests: they register their own specs without seeing the study families' or leaking theirs."""
    global _EXPERIMENTS, _FIGURES, _SWEEPS, _LOAD_STUDIES
    saved = _EXPERIMENTS, _FIGURES, _SWEEPS, _LOAD_STUDIES
    _EXPERIMENTS, _FIGURES, _SWEEPS, _LOAD_STUDIES = {}, {}, {}, False
    try:
        yield
    finally:
        _EXPERIMENTS, _FIGURES, _SWEEPS, _LOAD_STUDIES = saved


# ---------------------------------------------------------------------------------------- helpers
def _check_name_and_family(kind: str, name: str, family: str) -> None:
    if family not in FAMILIES:
        raise RegistryError(f"{kind} {name!r}: family={family!r} is not allowed: one of {', '.join(map(repr, FAMILIES))}")
    if not (isinstance(name, str) and _NAME.match(name)):
        raise RegistryError(f"{kind} name {name!r} is not allowed: lower-case letters, digits and '_', "
                            f"starting with a letter (it names files and command-line arguments)")


def _register(table: dict, kind: str, spec):
    existing = table.get(spec.name)
    if existing is not None and existing != spec:
        raise RegistryError(f"{kind} name {spec.name!r} is already registered by family {existing.family!r}")
    table[spec.name] = spec
    return spec


def _ordered(table: dict) -> dict:
    return dict(sorted(table.items(), key=lambda item: (FAMILIES.index(item[1].family), item[0])))


def _lookup(table: dict, kind: str, name: str):
    if name in table:
        return table[name]
    valid = ", ".join(_ordered(table)) or "none (no study family has registered one yet)"
    raise RegistryError(f"unknown {kind} {name!r}; valid {kind}s: {valid}")


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


__all__ = [
    "EXECUTORS", "FAMILIES", "SCALES", "SCALE_ENV", "ExperimentSpec", "FigureResult", "FigureSpec", "RegistryError",
    "SweepSpec",
    "check_scale", "default_scale", "experiments", "figures", "get_experiment", "get_figure", "get_sweep",
    "isolated_registry", "load_studies",
    "register_experiment", "register_figure", "register_sweep", "sweeps",
]
