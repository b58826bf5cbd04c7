"""The trainer's named initial states and frozen parameters (that existing configs hash as before is
``test_config_hashes_unchanged.py``'s job; here, that the new fields at their defaults are not hashed)."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from _interrupt import Interrupt, interrupt_at_batch
from _train_worker import tiny_config
from theorybench.experiment import ExperimentConfig, OverrideError, TrainConfig, apply_overrides
from theorybench.runs import get_or_train
from theorybench.runstore import RunDamagedError, RunStoreError
from theorybench.train import build_model, load_snapshot, snapshot_path, snapshot_steps
from toy_models.config import ConfigError
from toy_models.constructions.lsa import lsa_config
from toy_models.initial_states import INITIAL_STATES
from toy_models.tasks.icl_regression import ICLRegressionConfig, ICLRegressionTask

LSA_FROZEN = ("embed.*", "unembed.W_U")


def lsa_experiment(d: int = 2, N: int = 6, steps: int = 12, seed: int = 0, **train) -> ExperimentConfig:
    """A linear-self-attention run from random Q, K, V, O under von Oswald et al.'s fixed read-in/out."""
    model = lsa_config(d, n_layers=1, n_ctx=N + 1, dtype="float32").replace(init="normal", init_std=0.3)
    train = dict(dict(steps=steps, batch_size=16, eval_every=steps, eval_batches=1, checkpoint_every=5,
                      log_every=4, init_state="lsa_gd_readout", frozen=LSA_FROZEN), **train)
    return ExperimentConfig(name="lsa", task=ICLRegressionConfig(d=d, n_points=N, tokenization="stacked",
                                                                 dtype="float32"),
                            model=model, train=TrainConfig(**train), seed=seed)


@given(steps=st.integers(1, 10_000), batch=st.integers(1, 512), seed=st.integers(0, 2**31))
def test_the_new_fields_at_their_defaults_are_not_hashed(steps, batch, seed):
    cfg = dataclasses.replace(tiny_config(steps=steps), seed=seed,
                              train=dataclasses.replace(tiny_config().train, steps=steps, batch_size=batch))
    hashed_train = json.loads(cfg.canonical_json())["train"]
    assert "init_state" not in hashed_train and "frozen" not in hashed_train
    explicit = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, init_state=None, frozen=()))
    assert explicit.config_hash() == cfg.config_hash()


def test_the_new_fields_are_hashed_when_set_and_the_pattern_order_is_not():
    plain = lsa_experiment(init_state=None, frozen=())
    with_state = lsa_experiment(frozen=())
    frozen_ab = lsa_experiment(frozen=("embed.*", "unembed.W_U"))
    frozen_ba = lsa_experiment(frozen=("unembed.W_U", "embed.*", "embed.*"))
    assert len({plain.config_hash(), with_state.config_hash(), frozen_ab.config_hash()}) == 3
    assert frozen_ab.config_hash() == frozen_ba.config_hash()
    assert ExperimentConfig.from_dict(json.loads(json.dumps(frozen_ab.to_dict()))).config_hash() == \
        frozen_ab.config_hash()


# ---------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("make, field, value, listed", [
    (lambda: lsa_experiment(init_state="no_such_state"), "init_state", "no_such_state", "lsa_gd_readout"),
    (lambda: lsa_experiment(frozen=("embed.W_X",)), "train.frozen", "embed.W_X", "blocks.0.attn.W_Q"),
    (lambda: lsa_experiment(frozen=("",)), "frozen", ("",), "fnmatch patterns"),
    (lambda: lsa_experiment(frozen="embed.W_E"), "frozen", "embed.W_E", "a tuple"),
    # A state that does not fit the model is refused at construction, before any run folder is made.
    (lambda: dataclasses.replace(tiny_config(), train=TrainConfig(init_state="lsa_gd_readout")),
     "train.init_state", "lsa_gd_readout", "square read-in"),
])
def test_unknown_states_and_patterns_are_refused_naming_field_value_and_what_is_allowed(make, field, value, listed):
    with pytest.raises(ConfigError) as err:
        make()
    assert (err.value.field_name, err.value.value) == (field, value) and listed in err.value.allowed


def test_overrides_set_and_refuse_the_new_fields():
    cfg = apply_overrides(lsa_experiment(init_state=None, frozen=()),
                          ["train.init_state=lsa_gd_readout", "train.frozen=unembed.W_U,embed.W_E"])
    assert cfg.train.init_state == "lsa_gd_readout" and cfg.train.frozen == ("embed.W_E", "unembed.W_U")
    with pytest.raises(OverrideError, match=r"train.init_state='nope' is not allowed: .*lsa_gd_readout"):
        apply_overrides(cfg, ["train.init_state=nope"])
    with pytest.raises(OverrideError, match=r"train.frozen"):
        apply_overrides(cfg, ["train.frozen=blocks.9.*"])


# ---------------------------------------------------------------------------------- training
def test_the_initial_state_is_applied_after_the_init_scheme_and_frozen_parameters_are_left_out():
    cfg = lsa_experiment().resolved()
    model = build_model(cfg)
    reference = build_model(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, init_state=None,
                                                                               frozen=())))
    d = cfg.task.d
    assert torch.equal(model.embed.W_E, torch.eye(d + 1)) and torch.equal(model.embed.b_E, torch.zeros(d + 1))
    expected_out = torch.zeros(d + 1, 1)
    expected_out[d, 0] = -1.0
    assert torch.equal(model.unembed.W_U, expected_out)
    # The attention weights are the init scheme's draws, untouched by the state.
    for name, p in reference.named_parameters():
        if name.startswith("blocks."):
            assert torch.equal(p, dict(model.named_parameters())[name])
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == {"embed.W_E", "embed.b_E", "unembed.W_U"}


def test_frozen_parameters_keep_their_initial_values_while_the_others_train(tmp_path):
    cfg = lsa_experiment(steps=12)
    start = build_model(cfg.resolved()).state_dict()
    run = get_or_train(cfg, tmp_path, progress=False)
    end = run.load_model().state_dict()
    for name in ("embed.W_E", "embed.b_E", "unembed.W_U"):
        assert torch.equal(end[name], start[name]), name
    for name in ("blocks.0.attn.W_Q", "blocks.0.attn.W_K", "blocks.0.attn.W_V", "blocks.0.attn.W_O"):
        assert not torch.equal(end[name], start[name]), name
    assert run.metrics["train_loss"].notna().all()


def test_a_run_with_frozen_parameters_resumes_bit_for_bit(tmp_path, monkeypatch):
    """A resume rebuilds the model through the state and the freeze before loading the checkpoint; a
    trainer that froze nothing on resume would hand the optimizer's moments to the wrong tensors (or
    refuse the state dict) and the runs would part."""
    cfg = lsa_experiment(steps=12, snapshot_every=4)
    reference = get_or_train(cfg, tmp_path / "ref", progress=False)
    # one eval batch first: step 9, after the checkpoint at 5 and the snapshot at 8
    interrupt_at_batch(monkeypatch, 1 + 9, ICLRegressionTask)
    with pytest.raises(Interrupt):
        get_or_train(cfg, tmp_path / "crash", progress=False)
    monkeypatch.undo()
    resumed = get_or_train(cfg, tmp_path / "crash", progress=False)
    pd.testing.assert_frame_equal(resumed.metrics, reference.metrics, check_exact=True)
    a, b = resumed.load_model().state_dict(), reference.load_model().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Snapshots 0, 4, 8 (written again by the resume from step 5), 12: the same bytes as uninterrupted.
    assert snapshot_steps(resumed.dir) == snapshot_steps(reference.dir) == [0, 4, 8, 12]
    for step in snapshot_steps(reference.dir):
        assert snapshot_path(resumed.dir, step).read_bytes() == snapshot_path(reference.dir, step).read_bytes()


@pytest.mark.parametrize("name", sorted(INITIAL_STATES))
def test_every_registered_state_is_deterministic(name):
    cfg = lsa_experiment(frozen=(), init_state=name).resolved()
    a, b = build_model(cfg).state_dict(), build_model(cfg).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------- snapshots
def test_snapshots_hold_the_weights_at_their_steps_and_are_checksummed(tmp_path):
    """Snapshot 0 is the initial state; the last is the final weights; done.json covers every snapshot, so an
    edited one is refused; a step without a snapshot is refused naming the steps held."""
    cfg = lsa_experiment(steps=10, snapshot_every=3)
    run = get_or_train(cfg, tmp_path, progress=False)
    assert snapshot_steps(run.dir) == [0, 3, 6, 9, 10]
    start, final = build_model(cfg.resolved()).state_dict(), run.load_model().state_dict()
    at0, at10 = load_snapshot(run, 0).state_dict(), load_snapshot(run, 10).state_dict()
    assert all(torch.equal(at0[k], start[k]) and torch.equal(at10[k], final[k]) for k in final)
    assert not torch.equal(load_snapshot(run, 3).blocks[0].attn.W_Q, start["blocks.0.attn.W_Q"])
    with pytest.raises(RunStoreError, match=r"no snapshot of step 4; snapshots held: \[0, 3, 6, 9, 10\]"):
        load_snapshot(run, 4)
    path = snapshot_path(run.dir, 6)
    path.write_bytes(path.read_bytes()[:-1] + bytes([path.read_bytes()[-1] ^ 1]))
    with pytest.raises(RunDamagedError, match=path.name):
        load_snapshot(run, 3)


def test_snapshot_every_is_refused_unless_a_positive_integer():
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError) as err:
            TrainConfig(snapshot_every=bad)
        assert err.value.field_name == "snapshot_every" and "positive integer" in err.value.allowed
