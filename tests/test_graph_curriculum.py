"""The authors' lookahead curriculum for graph search (``GraphSearchConfig.curriculum_start``): the stage
rises by one exactly when the checked training accuracy exceeds the threshold, training batches never
exceed the stage while the evaluation batches are of the final distribution, the trainer checks every
``curriculum_every`` steps and logs the stage, a resume continues the same stage bit for bit, and
configs without a curriculum keep their hashes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from _interrupt import Interrupt, interrupt_at_batch

from theorybench.runs import get_or_train
from theorybench.runstore import CHECKPOINT_FILE, load_checkpoint, load_run, run_dir
from theorybench.studies.graph_search.experiments import searcher_config, size_sweep_configs, walkthrough_experiment
from theorybench.studies.graph_search.sizes import AUTHORS_CURRICULUM, SIZES
from theorybench.train import _Stepper
from toy_models.config import ConfigError
from toy_models.tasks.base import model_inputs
from toy_models.tasks.graph_search import GraphSearchConfig, GraphSearchTask

N = 32  # max_lookahead ((32 − 5)//3 − 1)//2 = 4


def curriculum(**kw) -> GraphSearchConfig:
    return GraphSearchConfig(max_input_size=N, **{"curriculum_start": 1, **kw})


def lookaheads(task: GraphSearchTask, n: int = 512, seed: int = 0) -> np.ndarray:
    return task.sample(n, torch.Generator().manual_seed(seed))["lookahead"].numpy()


# ---------------------------------------------------------------------------------- config
def test_without_a_curriculum_the_fields_stay_out_of_the_dict_and_the_hash():
    cfg = walkthrough_experiment("tiny")
    assert not {"curriculum_start", "curriculum_threshold", "curriculum_every"} & set(cfg.to_dict()["task"])
    on = dataclasses.replace(cfg, task=dataclasses.replace(cfg.task, curriculum_start=1))
    assert on.to_dict()["task"]["curriculum_start"] == 1 and on.config_hash() != cfg.config_hash()
    assert type(on).from_dict(on.to_dict()).config_hash() == on.config_hash()  # survives a round trip


@pytest.mark.parametrize("kw, field", [
    (dict(curriculum_start=5), "curriculum_start"),  # above max_lookahead 4
    (dict(curriculum_start=0), "curriculum_start"),
    (dict(curriculum_start=2, max_lookahead=1), "curriculum_start"),
    (dict(curriculum_start=1, curriculum_threshold=1.0), "curriculum_threshold"),
    (dict(curriculum_start=1, curriculum_threshold=0.0), "curriculum_threshold"),
    (dict(curriculum_start=1, curriculum_every=0), "curriculum_every"),
    (dict(curriculum_threshold=0.98), "curriculum_threshold"),  # no effect without curriculum_start
    (dict(curriculum_every=4), "curriculum_every"),
    (dict(curriculum_start=1, distribution="naive"), "curriculum_start"),
])
def test_bad_curriculum_settings_are_refused_naming_the_field(kw, field):
    with pytest.raises(ConfigError) as err:
        GraphSearchConfig(max_input_size=N, **kw)
    assert err.value.field_name == field


# ---------------------------------------------------------------------------------- the stage
def test_stage_rises_by_one_only_when_the_accuracy_exceeds_the_threshold():
    task = curriculum(curriculum_threshold=0.9).build()
    task.observe(1, {"accuracy": 1.0})
    assert task.stage is None  # training has not started: nothing to raise
    task.set_step(0)
    assert task.stage == 1
    task.observe(1, {"accuracy": 0.9})  # equal is not enough (the authors compare with >)
    assert task.stage == 1 and task.observed_accuracy == 0.9
    task.observe(2, {"accuracy": 0.95})
    assert task.stage == 2
    task.set_step(3)  # later steps keep the stage
    assert task.stage == 2
    for step in range(3, 10):
        task.observe(step, {"accuracy": 1.0})
    assert task.stage == 4  # capped at max_lookahead


def test_training_batches_stay_within_the_stage_and_evaluation_batches_do_not():
    task = curriculum().build()
    assert lookaheads(task).max() == 4  # before training starts: the final distribution (the eval set)
    task.set_step(0)
    for stage in (1, 2, 3, 4):
        task.stage = stage
        seen = lookaheads(task, seed=stage)
        assert seen.max() == stage  # within the stage, and the stage itself is drawn
    test = task.test_set(4, 3)  # held-out sets are at the final max_lookahead whatever the stage
    task.stage = 1
    assert [ex.lookahead for ex in task.test_set(4, 3)] == [ex.lookahead for ex in test] == [4, 4, 4]


def test_state_round_trips_and_is_empty_without_a_curriculum():
    task = curriculum().build()
    assert np.isnan(task.state_dict()["stage"])  # not started
    task.set_step(0)
    task.observe(1, {"accuracy": 1.0})
    other = curriculum().build()
    other.load_state_dict(task.state_dict())
    assert (other.stage, other.observed_accuracy) == (2, 1.0)
    assert GraphSearchConfig(max_input_size=N).build().state_dict() == {}


# ---------------------------------------------------------------------------------- in the trainer
def tiny_curriculum_run(threshold: float, every: int, steps: int = 12):
    cfg = walkthrough_experiment("tiny")
    task = dataclasses.replace(cfg.task, curriculum_start=1, curriculum_threshold=threshold, curriculum_every=every)
    train = dataclasses.replace(cfg.train, steps=steps, log_every=1, eval_every=6, checkpoint_every=6)
    return dataclasses.replace(cfg, task=task, train=train)


def test_the_trainer_checks_every_k_steps_and_logs_the_stage_it_leads_to(tmp_path):
    cfg = tiny_curriculum_run(threshold=0.25, every=3)
    rows = get_or_train(cfg, tmp_path, progress=False).metrics
    top = cfg.task.build().max_lookahead
    stage, accuracy = 1, float("nan")
    for row in rows.itertuples():
        if row.step % 3 == 0:  # a check: this step's batch after its update
            accuracy = row.task_observed_accuracy
            assert np.isfinite(accuracy)
            stage = min(top, stage + (accuracy > 0.25))
        else:  # between checks nothing is measured and the stage holds
            assert row.task_observed_accuracy == accuracy or (np.isnan(accuracy) and np.isnan(row.task_observed_accuracy))
        assert row.task_stage == stage
    assert rows["task_observed_accuracy"].dropna().nunique() > 1  # measured anew at each check


def test_the_observed_accuracy_is_the_updated_model_on_the_batch_just_trained_on(tmp_path):
    cfg = tiny_curriculum_run(threshold=0.99, every=4, steps=4)
    run = get_or_train(cfg, tmp_path, progress=False)
    # Replay the data stream (the eval batches come from their own generator): step 4's batch is the
    # data generator's fourth draw, all four at stage 1 (the first check is after step 4's update).
    stepper = _Stepper(cfg.resolved(), torch.device("cpu"))
    for step in range(1, 4):
        stepper.task.set_step(step)
        stepper.task.sample(cfg.train.batch_size, stepper.data_gen)
    stepper.task.set_step(4)
    batch = stepper.task.sample(cfg.train.batch_size, stepper.data_gen)
    model = run.load_model().eval()
    with torch.no_grad():
        want = stepper.task.metrics(model(batch["inputs"], **model_inputs(batch)), batch)["accuracy"]
    assert run.metrics["task_observed_accuracy"].iloc[-1] == want


def test_a_resume_continues_the_stage_bit_for_bit(tmp_path, monkeypatch):
    cfg = tiny_curriculum_run(threshold=0.2, every=2)
    reference = get_or_train(cfg, tmp_path / "ref", progress=False)
    assert reference.metrics["task_stage"].iloc[-1] > 1  # the stage moved, so a lost stage would show

    interrupt_at_batch(monkeypatch, cfg.train.eval_batches + 9, GraphSearchTask)  # step 9: after the checkpoint at 6
    with pytest.raises(Interrupt):
        get_or_train(cfg, tmp_path / "crash", progress=False)
    monkeypatch.undo()
    folder = run_dir(cfg, tmp_path / "crash")
    assert load_run(folder).status == "incomplete"
    saved = load_checkpoint(folder / CHECKPOINT_FILE)
    assert saved["step"] == 6 and saved["task"]["stage"] == reference.metrics.set_index("step")["task_stage"][6]
    resumed = get_or_train(cfg, tmp_path / "crash", progress=False)
    pd.testing.assert_frame_equal(resumed.metrics, reference.metrics, check_exact=True)
    a, b = resumed.load_model().state_dict(), reference.load_model().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_study_builds_the_authors_curriculum_on_request_and_no_sweep_uses_it():
    cfg = searcher_config(SIZES["tiny"], "balanced", curriculum=AUTHORS_CURRICULUM)
    assert (cfg.task.curriculum_start, cfg.task.curriculum_threshold, cfg.task.curriculum_every) == (1, 0.99, 2**18)
    for scale in ("tiny", "quick", "medium", "full"):  # the authors' size-sweep runs had none (size_sweep.py)
        assert all(c.task.curriculum_start is None for c in size_sweep_configs(SIZES[scale]))
