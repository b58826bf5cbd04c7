"""An experiment: a validated, hashable config (task, model, optimizer, training) plus a seed.

A run's identity is ``config_hash()``: the first 12 hex digits of the sha256 of the canonical JSON
(sorted keys) of the *resolved* config without its display name, i.e. after the task has fixed the
model fields it owns (d_vocab, n_ctx, ...) and the model's init seed has been derived from the
experiment seed. Two configs that train the same thing therefore share a hash whatever they are
called, and any field that changes training changes it.

The display name is derived, never trusted: ``resolved()`` names a config
``<stem>-<placement>-L<n_layers>-d<d_model>-lr<lr>-s<seed>-t<steps>``, the stem being the given name up to its
first '-' (``variance_train-pre-L6-lr0.01-s0`` has the stem ``variance_train``). So a name shows
the config after overrides, and a sweep member and a command-line override that train the same thing
have the same folder (the stem is the same when both come from one experiment family).

Overrides (``apply_overrides``) are ``section.key=value`` strings, parsed by the field's declared type
and validated by the section's own ``__post_init__``; every refusal names the key or value and lists
what is allowed.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import importlib
import json
import pkgutil
import re
import types
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import torch

import toy_models.tasks as tasks_pkg
from theory.errors import is_real
from toy_models.config import ConfigError, TransformerConfig
from toy_models.initial_states import apply_initial_state, initial_state
from toy_models.model_kinds import DEFAULT_KIND, build_network, config_class, kind_of
from toy_models.tasks.base import TASKS

OptimName = Literal["adamw", "sgd", "sign_momentum", "normalized_gd"]
NGD_EPS = 1e-12  # normalized GD's default guard (OptimConfig.eps)
ScheduleKind = Literal["constant", "cosine"]
SECTIONS = ("task", "model", "optim", "train")
TOP_LEVEL_KEYS = ("name", "seed")


def derive_seed(seed: int, purpose: str) -> int:
    """An independent 32-bit seed per purpose ("model", "data", ...): sha256("purpose:seed") mod 2³².

    Hashing, rather than seed+offset, keeps the streams of seed s for one purpose and seed s+1 for
    another from coinciding.
    """
    digest = hashlib.sha256(f"theorybench:{purpose}:{seed}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


# ---------------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and learning-rate schedule (see ``theorybench.optim`` for the update rules).

    Schedule: linear warm-up lr·(t+1)/W over the first W = ``warmup_steps`` updates, then constant
    lr or a cosine decay from lr to ``min_lr_ratio``·lr at the last step. ``momentum`` is SGD's
    heavy-ball coefficient; ``betas`` are AdamW's (β₁, β₂), and sign-momentum uses β = betas[0]
    ("Transformers Struggle to Learn to Search" used 0.965). ``grad_clip`` clips the global
    gradient norm. ``eps`` is normalized GD's guard, θ ← θ − lr·g/(‖g‖ + eps): the default 1e-12 only
    keeps a zero gradient a zero step; the attention-SVM runs use float64's machine ε, as the paper's
    code does, so that a gradient at round-off gives a short step, not a full one. ``weight_decay``
    with normalized GD is coupled: g ← g + wd·θ before normalizing (the gradient of the ridge
    (wd/2)‖θ‖² added to the loss).
    """

    name: OptimName = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.0
    warmup_steps: int = 0
    schedule: ScheduleKind = "constant"
    min_lr_ratio: float = 0.0
    grad_clip: float | None = None
    eps: float = NGD_EPS

    def __post_init__(self) -> None:
        _check_literals(self)
        _as_float(self, "lr", lambda v: v > 0, "a positive finite float")
        _as_float(self, "weight_decay", lambda v: v >= 0, "a non-negative float")
        _as_float(self, "momentum", lambda v: 0 <= v < 1, "a float in [0, 1)")
        _as_float(self, "min_lr_ratio", lambda v: 0 <= v <= 1, "a fraction in [0, 1]")
        if self.grad_clip is not None:
            _as_float(self, "grad_clip", lambda v: v > 0, "a positive float, or None for no clipping")
        betas = tuple(self.betas) if isinstance(self.betas, (tuple, list)) else self.betas
        if not (isinstance(betas, tuple) and len(betas) == 2
                and all(is_real(b) and 0 <= b < 1 for b in betas)):
            raise ConfigError("betas", self.betas, "two floats in [0, 1), e.g. 0.9,0.999")
        object.__setattr__(self, "betas", tuple(float(b) for b in betas))
        _non_negative_int(self, "warmup_steps")
        if self.momentum and self.name != "sgd":
            raise ConfigError("momentum", self.momentum, f"0 unless name='sgd' (name={self.name!r} "
                              "has its own moments: betas)")
        _as_float(self, "eps", lambda v: v > 0, "a positive float (normalized GD's θ ← θ − lr·g/(‖g‖ + eps))")
        if self.eps != NGD_EPS and self.name != "normalized_gd":
            raise ConfigError("eps", self.eps, f"{NGD_EPS:g} unless name='normalized_gd' (the only optimizer that "
                                               "reads it)")


@dataclass(frozen=True)
class TrainConfig:
    """Steps, batch size and cadences (in optimizer steps) of logging, evaluation and checkpoints.

    ``diverge_factor`` k: the run fails, like on a NaN, at the first logged row whose mean train loss
    exceeds k × the loss of step 1 (the loss at initialization), when that is positive. The default,
    100, is far above any loss spike of a run that recovers (a loss rising a hundredfold over its
    value at initialization has left every basin the model started near) and catches an explosion
    long before it reaches Inf; None turns the rule off.

    ``compile``: train through ``torch.compile`` (``theorybench.train``); the results agree with eager
    training within floating-point reordering, not bit for bit, so it is part of the run's identity.

    ``init_state``: the name of a registered initial state (``toy_models.initial_states``) applied to
    the model after its init scheme and before step 1, e.g. a construction's fixed read-in; None: the
    init scheme alone. ``frozen``: parameter names or ``fnmatch`` patterns ("embed.*",
    "blocks.*.attn.W_K") whose parameters keep their initial values: their ``requires_grad`` is off and
    the optimizer never sees them. Each pattern must match a parameter of the model
    (``ExperimentConfig`` checks it).

    ``snapshot_every`` k: keep the weights at step 0, every k steps and at the last step, for analyses
    of the training trajectory (``theorybench.train.load_snapshot``); None keeps only the final weights.
    It changes no number of the run, but a run without snapshots cannot serve one that reads them, so
    it is part of the identity when set."""

    steps: int = 1000
    batch_size: int = 64
    eval_every: int = 100
    eval_batches: int = 4
    checkpoint_every: int = 100
    log_every: int = 10
    diverge_factor: float | None = 100.0
    compile: bool = False
    init_state: str | None = None
    frozen: tuple[str, ...] = ()
    snapshot_every: int | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "init_state":
                if value is not None:
                    initial_state(value)  # refuses an unregistered name, listing the registered ones
            elif f.name == "frozen":
                _check_frozen_patterns(self)
            elif f.name == "snapshot_every":
                if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                    raise ConfigError(f.name, value, "a positive integer (keep the weights every this many steps), "
                                                     "or None")
            elif f.name == "compile":
                if not isinstance(value, bool):
                    raise ConfigError(f.name, value, "true or false")
            elif f.name == "diverge_factor":
                if value is not None:
                    _as_float(self, f.name, lambda v: v > 1, "a float above 1 (fail once the loss exceeds this "
                              "many times its initial value), or None for no limit")
            elif not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f.name, value, "a positive integer")


# ---------------------------------------------------------------------------------- experiment
@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that determines a run: name, task config, model, optimizer, training, seed.

    ``model.seed`` and the model fields the task fixes are not free: ``resolved()`` sets them (the
    init seed is ``derive_seed(seed, "model")``), so they are refused as overrides. ``model`` is a
    ``TransformerConfig`` or another registered model kind's config (``toy_models.model_kinds``).
    """

    name: str
    task: Any
    model: Any = field(default_factory=TransformerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name)):
            raise ConfigError("name", self.name, "a non-empty folder-safe name: letters, digits, '_', '-', '.'")
        if not getattr(type(self.task), "task_name", None) or TASKS.get(type(self.task).task_name) is not type(self.task):
            raise ConfigError("task", self.task, f"an instance of a registered task config ({', '.join(sorted(TASKS))})")
        kind_of(self.model)  # a model config of a registered kind
        for name, cls in (("optim", OptimConfig), ("train", TrainConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(name, getattr(self, name), f"a {cls.__name__}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError("seed", self.seed, "a non-negative integer")
        self.resolved_model()  # a task incompatible with the model is refused here, before any work
        if self.train.init_state is not None or self.train.frozen:
            self.frozen_parameters()  # likewise an initial state or a frozen pattern that does not fit the model

    # ------------------------------------------------------------------ resolution and identity
    def task_fields(self) -> dict[str, Any]:
        """The model fields the task fixes (``task.build().model_fields()``), computed once."""
        cached = self.__dict__.get("_task_fields")
        if cached is None:
            cached = dict(self.task.build().model_fields())
            object.__setattr__(self, "_task_fields", cached)
        return dict(cached)

    def resolved_model(self) -> Any:
        try:
            return self.model.replace(**self.task_fields(), seed=derive_seed(self.seed, "model"))
        except ConfigError as err:
            raise ConfigError(f"model.{err.field_name}", err.value,
                              f"{err.allowed} (with the fields task {self.task.task_name!r} sets: "
                              f"{self.task_fields()})") from None

    def frozen_parameters(self) -> set[str]:
        """The names of the parameters ``train.frozen`` freezes. Checked on a model without storage (the
        meta device): each pattern must match a parameter, and ``train.init_state`` must fit the model."""
        with torch.device("meta"):
            model = build_network(self.resolved_model())
        if self.train.init_state is not None:
            try:
                apply_initial_state(self.train.init_state, model, model.cfg, 0)
            except ConfigError as err:
                raise ConfigError(f"train.{err.field_name}", err.value, err.allowed) from None
        return frozen_parameter_names(self.train.frozen, [n for n, _ in model.named_parameters()])

    def resolved(self) -> "ExperimentConfig":
        """The config the trainer uses: model fields from the task, model seed from ``seed``, the name
        derived from the fields (``display_name``). Idempotent."""
        model = self.resolved_model()
        return dataclasses.replace(self, model=model,
                                   name=display_name(self.name, model, self.optim, self.train, self.seed))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; the task is ``{"name": <registered name>, **fields}``."""
        return {
            "name": self.name,
            "task": {"name": type(self.task).task_name, **_task_dict(self.task)},
            "model": _model_dict(self.model),
            "optim": _optim_dict(self.optim),
            "train": _train_dict(self.train),
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ExperimentConfig":
        _refuse_unknown("", data, ("name", *SECTIONS, "seed"))
        if "name" not in data or "task" not in data:
            raise ConfigError("name" if "name" not in data else "task", None, "required")
        task_data = dict(data["task"])
        task_cls = task_class(task_data.pop("name", None))
        kwargs: dict[str, Any] = {"name": data["name"], "task": _from_fields(task_cls, task_data, "task")}
        if "model" in data:
            model_data = dict(data["model"])
            kwargs["model"] = _from_fields(config_class(model_data.pop("kind", DEFAULT_KIND)), model_data, "model")
        for section, section_cls in (("optim", OptimConfig), ("train", TrainConfig)):
            if section in data:
                kwargs[section] = _from_fields(section_cls, dict(data[section]), section)
        if "seed" in data:
            kwargs["seed"] = data["seed"]
        return cls(**kwargs)

    def canonical_json(self) -> str:
        """What is trained, as compact sorted JSON: ``resolved().to_dict()`` without the display name."""
        identity = {k: v for k, v in self.resolved().to_dict().items() if k != "name"}
        return json.dumps(identity, sort_keys=True, separators=(",", ":"), allow_nan=False)

    def config_hash(self) -> str:
        """sha256 of ``canonical_json()`` (the resolved config, name left out), first 12 hex digits."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:12]


def name_stem(name: str) -> str:
    """The part of a name a derived name keeps: up to the first '-' (the rest is regenerated)."""
    return name.split("-", 1)[0]


def _number(x: float) -> str:
    """``%g`` without the '+' of a positive exponent (1e+30 → 1e30): names are folder-safe."""
    return f"{x:g}".replace("+", "")


def display_name(name: str, model: Any, optim: "OptimConfig", train: "TrainConfig", seed: int) -> str:
    """``<stem>-<model label>-lr<lr>-s<seed>-t<steps>``: what a run folder is called; a transformer's
    label is ``<norm placement>-L<layers>-d<d_model>`` (the model config's ``label()``).

    Only a label: the hash, not the name, says what is trained, so fields outside the name (task
    fields, batch size, ...) still separate runs, by their hash."""
    return f"{name_stem(name)}-{model.label()}-lr{_number(optim.lr)}-s{seed}-t{train.steps}"


def task_class(name: Any) -> type:
    """The registered task-config class called ``name``, importing ``toy_models.tasks.*`` if needed."""
    if name not in TASKS:
        for module in pkgutil.iter_modules(tasks_pkg.__path__):
            importlib.import_module(f"toy_models.tasks.{module.name}")
    if name not in TASKS:
        raise ConfigError("task.name", name, f"a registered task: {', '.join(sorted(TASKS)) or '(none)'}")
    return TASKS[name]


# ---------------------------------------------------------------------------------- overrides
class OverrideError(ValueError):
    """A ``key=value`` override that names no field, or a value the field does not allow."""

    def __init__(self, key: str, value: Any, message: str):
        self.key, self.value = key, value
        super().__init__(message)


def valid_keys(cfg: ExperimentConfig) -> list[str]:
    """Every key an override may name: ``name``, ``seed`` and ``section.field``."""
    keys = list(TOP_LEVEL_KEYS)
    for section in SECTIONS:
        keys += [f"{section}.{k}" for k in _settable_fields(cfg, section)]
    return keys


def apply_overrides(cfg: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    """Apply ``key=value`` strings, e.g. "model.d_model=64", "optim.betas=0.9,0.99", "seed=2".

    Values are parsed by the field's type: int, float, bool (true/false), None (none/null), a Literal's
    string, a tuple as comma-separated items. All overrides of one section are applied together, so
    fields that constrain each other (optim.name and optim.momentum) may change in one call.
    """
    changes: dict[str, dict[str, Any]] = {s: {} for s in ("", *SECTIONS)}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise OverrideError(key, None, f"override {item!r} is not key=value; valid keys: {', '.join(valid_keys(cfg))}")
        section, _, name = key.rpartition(".")
        if section == "" and name in TOP_LEVEL_KEYS:
            changes[""][name] = _parse(key, text, get_type_hints(ExperimentConfig)[name])
            continue
        if section not in SECTIONS:
            raise OverrideError(key, text, f"unknown key {key!r}; valid keys: {', '.join(valid_keys(cfg))}")
        obj = getattr(cfg, section)
        settable = _settable_fields(cfg, section)
        if name not in settable:
            why = _why_not_settable(cfg, section, name)
            raise OverrideError(key, text, f"{why}; valid {section} keys: {', '.join(f'{section}.{k}' for k in settable)}")
        changes[section][name] = _parse(key, text, get_type_hints(type(obj))[name])
    sections: dict[str, Any] = {}
    for section in SECTIONS:
        if changes[section]:
            try:
                sections[section] = dataclasses.replace(getattr(cfg, section), **changes[section])
            except ConfigError as err:  # the section's own check: name the key as the user wrote it
                key = f"{section}.{err.field_name}"
                raise OverrideError(key, err.value, f"{key}={err.value!r} is not allowed: {err.allowed}") from None
    try:
        return dataclasses.replace(cfg, **changes[""], **sections)
    except ConfigError as err:
        raise OverrideError(err.field_name, err.value, str(err)) from None


def _settable_fields(cfg: ExperimentConfig, section: str) -> list[str]:
    names = [f.name for f in dataclasses.fields(getattr(cfg, section))]
    if section == "model":
        fixed = set(cfg.task_fields()) | {"seed"}
        names = [n for n in names if n not in fixed]
    return names


def _why_not_settable(cfg: ExperimentConfig, section: str, name: str) -> str:
    if section == "model" and name == "seed":
        return "model.seed is derived from the experiment seed; override seed=... instead"
    if section == "model" and name in cfg.task_fields():
        return (f"model.{name} is set by task {cfg.task.task_name!r} ({name}={cfg.task_fields()[name]!r}); "
                "override the task's fields instead")
    return f"unknown key '{section}.{name}'"


def _parse(key: str, text: str, tp: Any) -> Any:
    """Parse ``text`` as a value of type ``tp``; refuse with the expected form."""
    text = text.strip()
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        for a in args:
            if text == str(a):
                return a
        raise OverrideError(key, text, f"{key}={text!r} is not allowed: one of {', '.join(map(repr, args))}")
    if origin in (Union, types.UnionType):
        if type(None) in args and text.lower() in ("none", "null"):
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _parse(key, text, a)
            except OverrideError:
                pass
        raise OverrideError(key, text, f"{key}={text!r} is not allowed: expected "
                            f"{' or '.join(_type_name(a) for a in args)}")
    if origin is tuple:
        parts = text.split(",")
        elem_types = [args[0]] * len(parts) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(parts) != len(elem_types):
            raise OverrideError(key, text, f"{key}={text!r} is not allowed: expected {len(elem_types)} "
                                "comma-separated values")
        return tuple(_parse(key, p, t) for p, t in zip(parts, elem_types))
    try:
        if tp is bool:
            if text.lower() in ("true", "false"):
                return text.lower() == "true"
            raise ValueError
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
        if tp is str:
            return text
    except ValueError:
        pass
    raise OverrideError(key, text, f"{key}={text!r} is not allowed: expected {_type_name(tp)}")


def _type_name(tp: Any) -> str:
    if tp is bool:
        return "true or false"
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


# ---------------------------------------------------------------------------------- helpers
def _fields_to_dict(obj: Any) -> dict[str, Any]:
    """Fields as JSON-safe values: tuples become lists, ints in float fields become floats.

    The float normalization makes ``lr=1`` and ``lr=1.0`` hash the same.
    """
    hints = get_type_hints(type(obj))
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, int) and not isinstance(value, bool) and _allows_float_not_int(hints[f.name]):
            value = float(value)
        if isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def _model_dict(model: Any) -> dict[str, Any]:
    """The model's fields, with its ``kind`` unless it is a transformer (whose dicts predate model
    kinds: without the key they keep their hashes)."""
    kind = kind_of(model)
    return _fields_to_dict(model) if kind == DEFAULT_KIND else {"kind": kind, **_fields_to_dict(model)}


def _task_dict(task: Any) -> dict[str, Any]:
    """The task's fields, less those its ``omitted_fields()`` names (fields that came after runs had been
    stored and that, while unused, leave what a config trains unchanged, so its hash too)."""
    out = _fields_to_dict(task)
    for key in getattr(task, "omitted_fields", tuple)():
        del out[key]
    return out


def _optim_dict(optim: OptimConfig) -> dict[str, Any]:
    """``optim``'s fields; ``eps`` only when not the default: it came after runs had been stored, and at
    its default a config trains what it did before, so it keeps its hash."""
    out = _fields_to_dict(optim)
    if out["eps"] == NGD_EPS:
        del out["eps"]
    return out


def _train_dict(train: TrainConfig) -> dict[str, Any]:
    """``train``'s fields; ``compile`` only when true, ``init_state`` and ``snapshot_every`` only when set
    and ``frozen`` only when not empty. They came after runs had been stored, and at their defaults
    (eager, the init scheme alone, nothing frozen, no snapshots) a config trains and stores what it did
    before, so it keeps the hash it had."""
    out = _fields_to_dict(train)
    for key, default in (("compile", False), ("init_state", None), ("frozen", []), ("snapshot_every", None)):
        if out[key] == default:
            del out[key]
    return out


def _check_frozen_patterns(train: TrainConfig) -> None:
    """``frozen``: a tuple of non-empty strings, stored sorted and without repeats (the order of the
    patterns freezes nothing different, so it must not change the hash)."""
    value = train.frozen
    items = tuple(value) if isinstance(value, (tuple, list)) else None
    if items is None or not all(isinstance(p, str) and p.strip() for p in items):
        raise ConfigError("frozen", value, "a tuple of parameter names or fnmatch patterns, e.g. embed.W_E,unembed.*")
    object.__setattr__(train, "frozen", tuple(sorted(set(p.strip() for p in items))))


def frozen_parameter_names(patterns: tuple[str, ...], names: list[str], field_name: str = "train.frozen") -> set[str]:
    """The names among ``names`` that match one of ``patterns`` (``fnmatch``, case-sensitive); a
    ConfigError naming the first pattern that matches none, with the names allowed."""
    matched: set[str] = set()
    for pattern in patterns:
        hits = {n for n in names if fnmatch.fnmatchcase(n, pattern)}
        if not hits:
            raise ConfigError(field_name, pattern, f"a parameter name or fnmatch pattern matching at least one of the "
                                                   f"model's parameters: {', '.join(names)}")
        matched |= hits
    return matched


def _allows_float_not_int(tp: Any) -> bool:
    members = get_args(tp) if get_origin(tp) in (Union, types.UnionType) else (tp,)
    return float in members and int not in members


def _from_fields(cls: type, data: dict[str, Any], section: str) -> Any:
    _refuse_unknown(section, data, [f.name for f in dataclasses.fields(cls)])
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _refuse_unknown(section: str, data: dict[str, Any], known) -> None:
    unknown = sorted(set(data) - set(known) - ({"name"} if section == "task" else set()))
    if unknown:
        prefix = f"{section}." if section else ""
        raise ConfigError(prefix + unknown[0], data[unknown[0]],
                          f"unknown field; valid fields: {', '.join(prefix + k for k in known)}")


def _check_literals(obj: Any) -> None:
    for name, tp in get_type_hints(type(obj)).items():
        if get_origin(tp) is Literal and getattr(obj, name) not in get_args(tp):
            raise ConfigError(name, getattr(obj, name), f"one of {', '.join(map(repr, get_args(tp)))}")


def _as_float(obj: Any, name: str, ok, allowed: str) -> None:
    value = getattr(obj, name)
    if not (is_real(value) and ok(value)):
        raise ConfigError(name, value, allowed)
    object.__setattr__(obj, name, float(value))


def _non_negative_int(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(name, value, "a non-negative integer")


__all__ = ["OptimConfig", "TrainConfig", "ExperimentConfig", "OverrideError", "apply_overrides", "derive_seed",
           "display_name", "name_stem", "task_class", "valid_keys"]
