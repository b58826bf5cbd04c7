"""Experiment configs: validation, resolution, hashing, (de)serialization and key=value overrides."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
from typing import Literal, Union, get_args, get_origin, get_type_hints

import pytest
from hypothesis import given
from hypothesis import strategies as st

from theorybench.experiment import (ExperimentConfig, OptimConfig, OverrideError, TrainConfig, apply_overrides,
                                    derive_seed, valid_keys)
from toy_models.config import ConfigError, TransformerConfig
from toy_models.initial_states import INITIAL_STATES
from toy_models.tasks.markov import MarkovConfig


def base() -> ExperimentConfig:
    # d_vocab and n_ctx are the task's values, so that one-hot embeddings (d_model ≥ d_vocab) are valid.
    model = TransformerConfig(n_layers=1, d_model=32, d_vocab=16, n_ctx=32)
    return ExperimentConfig(name="exp", task=MarkovConfig(), model=model)


# ---------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("make, field, allowed", [
    (lambda: OptimConfig(lr=-1.0), "lr", "positive"),
    (lambda: OptimConfig(name="adam"), "name", "'adamw'"),
    (lambda: OptimConfig(betas=(0.9, 1.0)), "betas", "[0, 1)"),
    (lambda: OptimConfig(momentum=0.9), "momentum", "name='sgd'"),
    (lambda: OptimConfig(name="adamw", eps=1e-8), "eps", "name='normalized_gd'"),
    (lambda: OptimConfig(name="normalized_gd", eps=0.0), "eps", "positive"),
    (lambda: OptimConfig(warmup_steps=-1), "warmup_steps", "non-negative"),
    (lambda: TrainConfig(steps=0), "steps", "positive integer"),
    (lambda: ExperimentConfig(name="a b", task=MarkovConfig()), "name", "folder-safe"),
    (lambda: ExperimentConfig(name="a", task=TransformerConfig()), "task", "registered task"),
    (lambda: ExperimentConfig(name="a", task=MarkovConfig(), seed=-1), "seed", "non-negative"),
    # The task fixes n_ctx=32; one-hot positions then need d_model ≥ 32: refused at construction.
    (lambda: ExperimentConfig(name="a", task=MarkovConfig(), model=TransformerConfig(
        d_model=16, n_heads=2, n_ctx=16, pos="onehot")),
     "model.n_ctx", "d_model=16"),
])
def test_bad_values_are_refused_with_field_value_and_rule(make, field, allowed):
    with pytest.raises(ConfigError) as err:
        make()
    assert err.value.field_name == field and allowed in str(err.value)


def test_integers_in_float_fields_are_stored_as_floats():
    assert OptimConfig(lr=1).lr == 1.0 and isinstance(OptimConfig(lr=1).lr, float)
    assert dataclasses.replace(base(), optim=OptimConfig(lr=1)).config_hash() == \
        dataclasses.replace(base(), optim=OptimConfig(lr=1.0)).config_hash()


# ---------------------------------------------------------------------------------- resolution
def test_resolved_takes_model_fields_from_the_task_and_the_seed_from_the_experiment():
    cfg = dataclasses.replace(base(), seed=7)
    model = cfg.resolved().model
    assert (model.d_vocab, model.n_ctx, model.input_kind) == (16, 32, "tokens")
    assert model.seed == derive_seed(7, "model") != derive_seed(7, "data")
    assert model.d_model == 32  # fields the task does not own are kept
    assert cfg.resolved().resolved() == cfg.resolved()


# ---------------------------------------------------------------------------------- hashing
def test_config_hash_is_sha256_of_the_sorted_canonical_json_without_the_name():
    cfg = base()
    identity = {k: v for k, v in cfg.resolved().to_dict().items() if k != "name"}
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    assert cfg.config_hash() == hashlib.sha256(text.encode()).hexdigest()[:12]
    assert re.fullmatch(r"[0-9a-f]{12}", cfg.config_hash())
    assert base().config_hash() == cfg.config_hash()  # equal configs built separately
    assert ExperimentConfig.from_dict(cfg.to_dict()).config_hash() == cfg.config_hash()
    assert cfg.resolved().config_hash() == cfg.config_hash()


def _alternatives(value, tp) -> list:
    """Candidate values different from ``value`` for a field of type ``tp`` (some may be invalid)."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return [a for a in args if a != value]
    if origin in (Union, types.UnionType):
        return [c for a in args if a is not type(None) for c in _alternatives(value, a)] + \
            ([None] if value is not None else [])
    if origin is tuple:
        return [tuple(v * 0.5 for v in value)]
    if tp is bool:
        return [not value] if value is not None else [True, False]
    if tp is int:
        return [c for c in ((value or 0) + 1, (value or 1) * 2, 1, 2, 4, 8) if c != value]
    if tp is float:
        return [c for c in ((value or 0.0) * 0.5, (value or 0.0) + 0.5, (value or 0.0) - 0.5, 0.5, 0.25, 1.0)
                if c != value]
    if tp is str:
        return [f"{value}x"]
    raise AssertionError(f"no alternatives for {tp}")


def hash_base(optimizer: str = "sgd") -> ExperimentConfig:
    # SGD, so that momentum (allowed only with SGD) can vary too.
    return dataclasses.replace(base(), optim=OptimConfig(name=optimizer))


# Fields only one optimizer reads (refused with the others): varied on a base that uses it.
OPTIMIZER_OF = {"optim.eps": "normalized_gd"}


def _every_field_variant():
    cfg = hash_base()
    fixed_by_task = set(cfg.task_fields()) | {"seed"}
    for section in ("task", "model", "optim", "train"):
        obj = getattr(cfg, section)
        for name, tp in get_type_hints(type(obj)).items():
            if section == "model" and name in fixed_by_task:
                continue
            key = f"{section}.{name}"
            candidates = SET_VALUES.get(key) or _alternatives(getattr(obj, name), tp)
            yield pytest.param(key, section, name, candidates, id=key)
    yield pytest.param("seed", None, "seed", [1, 2], id="seed")


# Fields whose values are names or patterns that must fit the model: a value that does.
SET_VALUES = {"train.init_state": ["test_no_change"], "train.frozen": [("blocks.0.attn.W_Q",)]}


@pytest.mark.parametrize("key, section, name, candidates", list(_every_field_variant()))
def test_config_hash_changes_with_every_field(key, section, name, candidates, monkeypatch):
    # A registered state that fits any model (changes nothing): the hash must still record that one was named.
    monkeypatch.setitem(INITIAL_STATES, "test_no_change", lambda model, cfg, seed: None)
    cfg = hash_base(OPTIMIZER_OF.get(key, "sgd"))
    changed = []
    for value in candidates:
        try:
            if section is None:
                variant = dataclasses.replace(cfg, **{name: value})
            else:
                variant = dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section),
                                                                                   **{name: value})})
        except ConfigError:
            continue  # e.g. n_heads=3 does not divide d_model
        changed.append(variant.config_hash())
    assert changed, f"no valid alternative value tried for {key}"
    assert cfg.config_hash() not in changed


def test_the_name_does_not_change_the_hash_and_is_derived_from_the_fields():
    cfg = hash_base()
    renamed = dataclasses.replace(cfg, name="other-L99-lr5")
    assert renamed.config_hash() == cfg.config_hash()
    # The stale "-L99-lr5" is regenerated from the fields; the stem is kept.
    assert renamed.resolved().name == f"other-pre-L{cfg.model.n_layers}-d{cfg.model.d_model}-lr0.001-s0-t{cfg.train.steps}"
    lr = apply_overrides(cfg, ["optim.lr=0.25", "seed=3"]).resolved().name
    assert lr.startswith("exp-") and lr.endswith("-lr0.25-s3-t1000")


def test_fields_the_resolution_overwrites_do_not_change_the_hash():
    # model.d_vocab is the task's n_states and model.seed is derived from seed: documented, by design.
    cfg = base()
    for change in (dict(d_vocab=5), dict(seed=99)):
        assert dataclasses.replace(cfg, model=cfg.model.replace(**change)).config_hash() == cfg.config_hash()


# ---------------------------------------------------------------------------------- (de)serialization
def test_to_dict_serializes_the_task_by_registered_name_and_is_json_safe():
    d = base().to_dict()
    assert d["task"] == {"name": "markov", "n_states": 16, "seq_len": 32, "concentration": 0.5, "chain_seed": 0}
    assert d["optim"]["betas"] == [0.9, 0.999]
    assert json.loads(json.dumps(d, allow_nan=False)) == d


@given(
    lr=st.floats(1e-6, 10.0), betas=st.tuples(st.floats(0.0, 0.999), st.floats(0.0, 0.999)),
    grad_clip=st.none() | st.floats(0.1, 10.0), steps=st.integers(1, 10_000), seed=st.integers(0, 2**31),
    d_head=st.none() | st.integers(1, 64), attn_only=st.booleans(), n_states=st.integers(2, 64),
)
def test_to_dict_from_dict_round_trip_through_json(lr, betas, grad_clip, steps, seed, d_head, attn_only, n_states):
    cfg = ExperimentConfig(
        name="rt", task=MarkovConfig(n_states=n_states), seed=seed,
        model=TransformerConfig(d_head=d_head, attn_only=attn_only),
        optim=OptimConfig(lr=lr, betas=betas, grad_clip=grad_clip), train=TrainConfig(steps=steps))
    back = ExperimentConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.config_hash() == cfg.config_hash()


@pytest.mark.parametrize("change, field, listed", [
    (lambda d: d["optim"].update(learning_rate=1), "optim.learning_rate", "optim.lr"),
    (lambda d: d["task"].update(name="nope"), "task.name", "markov"),
    (lambda d: d.update(extra=1), "extra", "optim"),
])
def test_from_dict_refuses_unknown_fields_and_tasks(change, field, listed):
    d = base().to_dict()
    change(d)
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.from_dict(d)
    assert err.value.field_name == field and listed in str(err.value)


# ---------------------------------------------------------------------------------- overrides
def test_overrides_parse_every_field_type():
    cfg = apply_overrides(base(), [
        "model.d_model=64",          # int
        "optim.lr=3e-4",             # float
        "model.attn_only=true",      # bool
        "optim.grad_clip=none",      # None (already None: stays None)
        "model.d_head=8",            # int | None, as int
        "optim.schedule=cosine",     # Literal
        "optim.betas=0.9,0.99",      # tuple
        "name=renamed", "seed=2",    # top level
        "task.n_states=8", "train.steps=50",
    ])
    assert (cfg.model.d_model, cfg.model.attn_only, cfg.model.d_head) == (64, True, 8)
    assert (cfg.optim.lr, cfg.optim.schedule, cfg.optim.betas) == (3e-4, "cosine", (0.9, 0.99))
    assert (cfg.name, cfg.seed, cfg.task.n_states, cfg.train.steps) == ("renamed", 2, 8, 50)
    assert apply_overrides(cfg, ["model.d_head=None", "optim.grad_clip=1"]).model.d_head is None
    assert apply_overrides(cfg, ["optim.grad_clip=1"]).optim.grad_clip == 1.0
    assert apply_overrides(cfg, ["model.attn_only=False"]).model.attn_only is False


def test_fields_that_constrain_each_other_change_together():
    cfg = apply_overrides(base(), ["optim.name=sgd", "optim.momentum=0.9"])
    assert (cfg.optim.name, cfg.optim.momentum) == ("sgd", 0.9)


@pytest.mark.parametrize("override, expected", [
    # unknown key / section: the valid keys are listed
    ("model.d_modl=3", r"unknown key 'model\.d_modl'.*valid model keys: .*model\.d_model"),
    ("modle.d_model=3", r"unknown key 'modle\.d_model'.*valid keys: name, seed, task\.n_states"),
    ("lr=3", r"unknown key 'lr'.*optim\.lr"),
    ("optim.lr", r"not key=value.*valid keys"),
    # fields the task or the seed own
    ("model.d_vocab=5", r"model\.d_vocab is set by task 'markov' \(d_vocab=16\).*valid model keys"),
    ("model.seed=3", r"derived from the experiment seed; override seed="),
    # values: the allowed ones are listed
    ("optim.name=adam", r"optim\.name='adam' is not allowed: one of 'adamw', 'sgd', 'sign_momentum', "
                        r"'normalized_gd'"),
    ("train.steps=ten", r"train\.steps='ten' is not allowed: expected int"),
    ("train.steps=2.5", r"train\.steps='2\.5' is not allowed: expected int"),
    ("model.attn_only=yes", r"model\.attn_only='yes' is not allowed: expected true or false"),
    ("optim.betas=0.9", r"optim\.betas='0\.9' is not allowed: expected 2 comma-separated values"),
    ("model.d_head=big", r"model\.d_head='big' is not allowed: expected int or none"),
    # parsed, then refused by the section's own validation (the ConfigError message)
    ("train.steps=0", r"steps=0 is not allowed: a positive integer"),
    ("optim.momentum=0.9", r"momentum=0\.9 is not allowed: 0 unless name='sgd'"),
    ("model.n_heads=3", r"n_heads=3 is not allowed: must divide d_model=32"),
])
def test_bad_overrides_are_refused_with_the_valid_keys_or_values(override, expected):
    with pytest.raises(OverrideError, match=expected):
        apply_overrides(base(), [override])


def test_valid_keys_cover_every_settable_field():
    keys = valid_keys(base())
    assert {"name", "seed", "optim.lr", "train.steps", "task.n_states", "model.d_model"} <= set(keys)
    assert not {"model.d_vocab", "model.n_ctx", "model.input_kind", "model.seed"} & set(keys)
