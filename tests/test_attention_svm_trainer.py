"""The attention-SVM layer trains through the trainer and the run store (issue 13), as it trained before.

What would fail here: a trainer step that is not the paper's normalized GD (the guard ε, the (K, Q)
ε-ridge, per-factor normalization), a forward through the wrong path or queries, a W(k) trajectory read
back out of order, a run that is trained again instead of reused, a model config that loses a field on
its way through JSON, or a bad value taken silently.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from _svm_reference import reference_train
from _svm_runs import svm_config, svm_trajectory
from hypothesis import given, settings
from hypothesis import strategies as st

from theorybench import train as training
from theorybench.experiment import ExperimentConfig, OverrideError, apply_overrides
from theorybench.runs import get_or_train
from toy_models.config import ConfigError
from toy_models.single_attention import SingleAttention
from toy_models.single_attention_config import SingleAttentionConfig


def _reference(cfg: ExperimentConfig) -> np.ndarray:
    """The former loop on the same instance, from the same K(0) (the run's model seed)."""
    model_cfg = cfg.resolved().model
    inst = cfg.task.generate()
    m = SingleAttention(torch.tensor(inst.v), model_cfg.parameterization, cross_attn=model_cfg.cross_attn)
    m.initialize_factors(model_cfg.seed, model_cfg.init_scale)
    return reference_train(m, inst.X, inst.Z if model_cfg.cross_attn else None, inst.Y, cfg.train.steps,
                           lr=cfg.optim.lr, path=model_cfg.path)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**16), par=st.sampled_from(["W", "KQ"]), cross_attn=st.booleans(),
       n=st.integers(2, 6), T=st.integers(2, 6), d=st.integers(2, 6))
def test_the_trainer_reproduces_the_former_loop_bit_for_bit(tmp_path_factory, seed, par, cross_attn, n, T, d):
    # Same instance, same K(0), same arithmetic in the same order (the ridge's gradient 2ρθ added to
    # the loss's, the step lr·g/(‖g‖ + ε)): every W(k) equal, not close. 150 steps take (K, Q) past
    # the point where the softmax saturates and the ridge starts to matter (‖W‖ ≈ 15).
    cfg = svm_config(par, seed=seed, steps=150, n=n, T=T, d=d, cross_attn=cross_attn)
    W = svm_trajectory(tmp_path_factory.mktemp("svm"), par, seed=seed, steps=150, n=n, T=T, d=d,
                       cross_attn=cross_attn)
    np.testing.assert_array_equal(W, _reference(cfg))


def test_a_stored_run_is_reused_not_trained_again(tmp_path, monkeypatch):
    first = svm_trajectory(tmp_path, "KQ", steps=20)

    def refuse(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(training, "train", refuse)
    np.testing.assert_array_equal(svm_trajectory(tmp_path, "KQ", steps=20), first)


def test_the_trajectory_holds_every_step_in_order(tmp_path):
    # W(0) = 0 and each normalized W step has length η = 0.1: a missing or shuffled snapshot breaks both.
    W = svm_trajectory(tmp_path, "W", steps=12)
    assert W.shape == (13, 10, 10) and not W[0].any()
    # A step is η·g/(‖g‖ + ε): shorter than η by ε/‖g‖ (≈ 2e-14 here: ‖g‖ ≥ 0.010 over these 12 steps), and its
    # length is read back as a difference of entries of W(k) (‖W‖ ≤ 1.2), off by ~10 roundings of ε·1.2:
    # both far below 1e-12, which a skipped step (length 0.2) or a reordered one (0 or 0.2) misses by 1e11.
    np.testing.assert_allclose(np.linalg.norm(np.diff(W, axis=0), axis=(1, 2)), 0.1, rtol=1e-12)


def test_the_config_round_trips_through_its_dict_with_its_hash():
    cfg = svm_config("KQ", seed=3)
    back = ExperimentConfig.from_dict(cfg.resolved().to_dict())
    assert back.config_hash() == cfg.config_hash()
    assert back.resolved().model == cfg.resolved().model
    assert cfg.resolved().to_dict()["model"]["kind"] == "single_attention"
    assert cfg.resolved().name == "attention_svm_seed-KQ-d10-lr0.1-s3-t1000"
    # The task fixes the head: another data seed is another v, hence another run.
    assert svm_config("KQ", seed=4).config_hash() != cfg.config_hash()


def test_the_task_fixes_the_head_and_refuses_a_batch_that_is_not_full(tmp_path):
    cfg = svm_config("W", steps=5)
    with pytest.raises(OverrideError, match=r"model\.v is set by task 'attention_svm'"):
        apply_overrides(cfg, ["model.v=1,0"])
    partial = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=4))
    with pytest.raises(ConfigError, match=r"train\.batch_size=4 is not allowed: 6, the task's n"):
        get_or_train(partial, root=tmp_path, progress=False)


@pytest.mark.parametrize("make, field", [
    (lambda: SingleAttentionConfig(d=3, v=(1.0, 0.0)), "v"),
    (lambda: SingleAttentionConfig(parameterization="QK"), "parameterization"),
    (lambda: SingleAttentionConfig(path="fast"), "path"),
    (lambda: SingleAttentionConfig(m=4), "m"),
    (lambda: SingleAttentionConfig(init_scale=0.0), "init_scale"),
    (lambda: ExperimentConfig.from_dict({"name": "a", "task": {"name": "attention_svm"},
                                         "model": {"kind": "mlp"}}), "model.kind"),
])
def test_bad_model_values_are_refused_naming_the_field(make, field):
    with pytest.raises(ConfigError) as err:
        make()
    assert err.value.field_name == field
