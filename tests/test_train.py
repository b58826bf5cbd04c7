"""The trainer: determinism, kill-and-resume equality, NaN/Inf stop, checkpoint safety, progress bar."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import random
import re
import signal
import time

import numpy as np
import pandas as pd
import pytest
import torch

from _interrupt import Interrupt, interrupt_at_batch
from _train_worker import tiny_config, train_slowly
from theorybench.experiment import ExperimentConfig, TrainConfig
from theorybench.runs import get_or_train
from theorybench.runstore import CHECKPOINT_FILE, RunFailedError, RunFailure, load_checkpoint, load_run, run_dir
from theorybench.train import NonFiniteError, train
from toy_models.tasks.base import register_task
from toy_models.tasks.markov import MarkovConfig, MarkovTask

def assert_same_run(a, b) -> None:
    """Bit-identical metrics and final weights (check_exact: no tolerance at all)."""
    pd.testing.assert_frame_equal(a.metrics, b.metrics, check_exact=True)
    sa, sb = a.load_model().state_dict(), b.load_model().state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------------- determinism
def test_same_config_and_seed_give_bit_identical_metrics(tmp_path):
    cfg = tiny_config(steps=20)
    a = get_or_train(cfg, tmp_path / "a", progress=False)
    b = get_or_train(cfg, tmp_path / "b", progress=False)
    assert list(a.metrics.step) == [5, 10, 15, 20]
    assert_same_run(a, b)


def test_seed_changes_training_but_not_the_eval_set(tmp_path):
    a = get_or_train(tiny_config(steps=20), tmp_path, progress=False)
    b = get_or_train(dataclasses.replace(tiny_config(steps=20), seed=1), tmp_path, progress=False)
    assert not a.metrics.train_loss.equals(b.metrics.train_loss)
    # The Bayes loss depends only on the eval batches, so equality shows both seeds saw the same data.
    evals = a.metrics.eval_bayes_loss.dropna()
    assert len(evals) == 1 and evals.equals(b.metrics.eval_bayes_loss.dropna())


def test_metrics_rows_columns_and_schedule(tmp_path):
    cfg = dataclasses.replace(tiny_config(steps=20, warmup_steps=4, schedule="cosine"),
                              train=TrainConfig(steps=20, batch_size=4, eval_every=8, eval_batches=1,
                                                checkpoint_every=10, log_every=3))
    m = get_or_train(cfg, tmp_path, progress=False).metrics
    # Logged at multiples of log_every (3) or eval_every (8), and the last step.
    assert list(m.step) == [3, 6, 8, 9, 12, 15, 16, 18, 20]
    assert list(m.columns[:3]) == ["step", "train_loss", "lr"]
    assert set(m.columns[3:]) == {"eval_loss", "eval_accuracy", "eval_bayes_loss", "eval_optimal_loss"}
    assert m.eval_loss.notna().tolist() == [s in (8, 16, 20) for s in m.step]
    # lr of step s is lr·(s)/W during warm-up (update t = s−1 uses (t+1)/W): step 3 → 3e-3·3/4.
    assert m.lr.iloc[0] == pytest.approx(3e-3 * 3 / 4, rel=1e-15)


def test_training_leaves_the_callers_random_streams_alone(tmp_path):
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    train(tiny_config(steps=2), tmp_path, progress=False)
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


# ---------------------------------------------------------------------------------- resume


@pytest.mark.parametrize("optim", [
    dict(name="adamw", warmup_steps=5, schedule="cosine", min_lr_ratio=0.1, weight_decay=0.01),
    dict(name="sgd", momentum=0.9, lr=0.05),
    dict(name="sign_momentum", betas=(0.965, 0.99), weight_decay=0.1),
    dict(name="normalized_gd", lr=0.01),
])
def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, monkeypatch, optim):
    cfg = tiny_config(steps=30, **optim)
    reference = get_or_train(cfg, tmp_path / "ref", progress=False)
    # 2 eval batches are drawn first, so batch draw 2 + 17 is training step 17: after the checkpoint
    # at step 10, before the one at 20, mid-way between two logged rows (15 and 20).
    interrupt_at_batch(monkeypatch, 2 + 17)
    with pytest.raises(Interrupt):
        get_or_train(cfg, tmp_path / "crash", progress=False)
    monkeypatch.undo()
    folder = run_dir(cfg, tmp_path / "crash")
    assert load_run(folder).status == "incomplete"
    assert load_checkpoint(folder / CHECKPOINT_FILE)["step"] == 10
    assert_same_run(get_or_train(cfg, tmp_path / "crash", progress=False), reference)


def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path):
    """A separate process is SIGKILLed after its first checkpoint; the run resumes here, bit-identical."""
    cfg = tiny_config()
    folder = run_dir(cfg, tmp_path / "killed")
    # fork, not a fresh interpreter: the child inherits the imports (and the thread count) of this one.
    proc = multiprocessing.get_context("fork").Process(target=train_slowly, args=(str(tmp_path / "killed"),))
    proc.start()
    try:
        deadline = time.monotonic() + 60
        while not (folder / CHECKPOINT_FILE).exists():
            assert proc.exitcode is None, f"worker exited early with status {proc.exitcode}"
            assert time.monotonic() < deadline, "worker wrote no checkpoint within 60 s"
            time.sleep(0.005)
        # The worker sleeps 20 ms per batch: 60 steps take > 1 s after the first checkpoint (step 10),
        # so the kill lands mid-run; where exactly (between steps, inside a write) is left to chance.
        time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.join()
    assert proc.exitcode == -signal.SIGKILL
    killed = load_run(folder)
    assert killed.status == "incomplete"
    assert 10 <= load_checkpoint(folder / CHECKPOINT_FILE)["step"] < cfg.train.steps
    resumed = get_or_train(cfg, tmp_path / "killed", progress=False)
    assert resumed.status == "done"
    assert not list(folder.glob(".*.tmp"))  # a half-written temp file from the kill is cleaned up
    assert_same_run(resumed, get_or_train(cfg, tmp_path / "reference", progress=False))


# ---------------------------------------------------------------------------------- NaN / Inf
@register_task("test_faulty_markov")
@dataclasses.dataclass(frozen=True)
class FaultyMarkovConfig(MarkovConfig):
    """A Markov task whose loss turns NaN (``fault='loss'``) or whose gradient turns NaN (``'grad'``)
    at training step ``fault_step`` (eval batches are drawn before training and do not count)."""

    fault: str = "loss"
    fault_step: int = 5

    def build(self):
        return _FaultyTask(self)


class _PoisonGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class _FaultyTask(MarkovTask):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.losses = 0

    def loss(self, output, batch):
        self.losses += 1
        if self.losses == self.cfg.fault_step:
            if self.cfg.fault == "loss":
                return super().loss(output, batch) * float("nan")
            return super().loss(_PoisonGradient.apply(output), batch)
        return super().loss(output, batch)


def _faulty_config(fault: str) -> ExperimentConfig:
    base = tiny_config(steps=10)
    cfg = dataclasses.replace(base, task=FaultyMarkovConfig(n_states=6, seq_len=8, fault=fault, fault_step=5))
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, checkpoint_every=2, log_every=1))


@pytest.mark.parametrize("fault, message", [
    ("loss", "step 5: loss is nan"),
    # The poisoned gradient reaches every parameter; the first one in named_parameters() order is named.
    ("grad", "step 5: gradient of embed.W_E contains nan"),
])
def test_non_finite_value_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, fault, message):
    cfg = _faulty_config(fault)
    with pytest.raises(NonFiniteError, match=f"^{re.escape(message)}$"):
        get_or_train(cfg, tmp_path, progress=False)
    folder = run_dir(cfg, tmp_path)
    run = load_run(folder)
    assert run.status == "failed" and run.failure == message
    assert load_checkpoint(folder / CHECKPOINT_FILE)["step"] == 4  # checkpoints at 2, 4; step 5 failed
    assert list(run.metrics.step) == [1, 2, 3, 4]  # every finite row is kept for diagnosis
    assert all(torch.isfinite(p).all() for p in run.load_model().parameters())
    with pytest.raises(RunFailedError, match=re.escape(message)):
        get_or_train(cfg, tmp_path, progress=False)  # a failed run is not retrained nor returned silently
    assert get_or_train(cfg, tmp_path, progress=False, allow_failed=True).status == "failed"


def test_allow_failed_returns_a_run_that_fails_now_with_its_message_and_step(tmp_path):
    """allow_failed: the run that fails while being trained is returned, not raised, like the same run asked
    for again; its stored failure is typed (message, step), so a caller reads no failed.json by hand."""
    cfg = _faulty_config("loss")
    run = get_or_train(cfg, tmp_path, progress=False, allow_failed=True)
    assert run.status == "failed"
    assert run.stored_failure == RunFailure(message="step 5: loss is nan", step=5)
    assert get_or_train(cfg, tmp_path, progress=False, allow_failed=True).stored_failure == run.stored_failure


def test_divergent_learning_rate_is_caught(tmp_path):
    cfg = tiny_config(steps=10, name="sgd", lr=1e30)
    with pytest.raises(NonFiniteError) as err:
        get_or_train(cfg, tmp_path, progress=False)
    assert re.fullmatch(r"step \d+: (loss is (nan|inf)|(gradient of|parameter) [\w.]+ contains (nan|inf)"
                        r"( after the update)?)", str(err.value)), str(err.value)
    assert load_run(run_dir(cfg, tmp_path)).status == "failed"


# ---------------------------------------------------------------------------------- checkpoints
def test_checkpoint_holds_no_pickled_objects(tmp_path):
    cfg = tiny_config(steps=10, name="sign_momentum")
    folder = get_or_train(cfg, tmp_path, progress=False).dir
    path = folder / CHECKPOINT_FILE
    # Every global the pickle names is one the weights-only unpickler allows (tensor rebuilders).
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    state = torch.load(path, weights_only=True)
    assert state["step"] == 10
    assert set(state["rng"]) == {"data", "torch", "cuda", "numpy", "python"}


def test_a_checkpoint_from_another_config_is_refused(tmp_path):
    a, b = tiny_config(steps=10), tiny_config(steps=10, lr=1e-2)
    folder_a = get_or_train(a, tmp_path, progress=False).dir
    folder_b = run_dir(b, tmp_path)
    folder_b.mkdir()
    (folder_b / CHECKPOINT_FILE).write_bytes((folder_a / CHECKPOINT_FILE).read_bytes())
    with pytest.raises(RuntimeError, match="refusing to resume"):
        train(b, folder_b, progress=False)


# ---------------------------------------------------------------------------------- progress bar
def test_progress_bar_shows_step_loss_and_rate_only_when_asked(tmp_path, capfd):
    train(tiny_config(steps=10), tmp_path / "on", progress=True)
    shown = capfd.readouterr().err
    assert "10/10" in shown and "loss=" in shown and "step/s" in shown
    train(tiny_config(steps=10), tmp_path / "off", progress=False)
    train(tiny_config(steps=10), tmp_path / "auto", progress=None)  # stderr is captured: not a terminal
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------------------------- divergence beyond NaN
def _explode_from_step(monkeypatch, first: int, factor: float = 1000.0) -> None:
    """The Markov loss times ``factor`` from step ``first`` on: a finite explosion at a known step (the
    trainer tells the task its step through set_step, as it does for curricula)."""
    original = MarkovTask.loss

    def set_step(self, step):
        self._step = step

    def loss(self, output, batch):
        value = original(self, output, batch)
        return value * factor if getattr(self, "_step", 0) >= first else value

    monkeypatch.setattr(MarkovTask, "set_step", set_step, raising=False)
    monkeypatch.setattr(MarkovTask, "loss", loss)


def test_a_finite_explosion_fails_the_run_with_its_step_and_value(tmp_path, monkeypatch):
    _explode_from_step(monkeypatch, first=7)
    cfg = tiny_config(steps=20)  # rows every 5 steps, checkpoints every 10
    with pytest.raises(NonFiniteError, match=r"^step 10: train loss \S+ exceeds train.diverge_factor=100 x the "
                                             r"initial loss \S+: the run diverged"):
        get_or_train(cfg, tmp_path, progress=False)
    run = load_run(run_dir(cfg, tmp_path))
    assert run.status == "failed" and run.failure.startswith("step 10: ")
    rows = run.metrics
    assert list(rows.step) == [5, 10]  # the diverged row is kept for diagnosis
    # The row of step 10 averages steps 6-10, four of them ×1000: ≥ 800 × the smallest real loss, far
    # above 100 × the initial one (the tiny run's loss changes by less than a factor 2 in 10 steps).
    assert float(re.search(r"train loss (\S+)", run.failure).group(1)) == pytest.approx(rows.train_loss.iloc[1],
                                                                                        rel=1e-5)
    # The check runs before the step-10 checkpoint is written: the diverged weights are never checkpointed.
    assert not (run.dir / CHECKPOINT_FILE).exists()
    with pytest.raises(RunFailedError, match="step 10"):
        get_or_train(cfg, tmp_path, progress=False)  # a diverged run is never reused as done


def test_the_rule_can_be_turned_off(tmp_path, monkeypatch):
    _explode_from_step(monkeypatch, first=7)
    cfg = tiny_config(steps=20)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, diverge_factor=None))
    assert get_or_train(cfg, tmp_path, progress=False).status == "done"


def test_the_issue_s_exploding_learning_rate_is_a_failure(tmp_path):
    # AdamW at lr 1e3 on the tiny run: the loss reaches ~1e7 within 5 steps while staying finite.
    cfg = tiny_config(steps=30, lr=1e3)
    with pytest.raises(NonFiniteError, match=r"^step \d+: .*(the run diverged|nan|inf)"):
        get_or_train(cfg, tmp_path, progress=False)
    assert load_run(run_dir(cfg, tmp_path)).status == "failed"


def test_the_initial_loss_survives_a_resume(tmp_path, monkeypatch):
    cfg = tiny_config(steps=20)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, log_every=1))
    with monkeypatch.context() as mp:
        interrupt_at_batch(mp, 2 + 15)  # two eval batches, then a crash at step 15 (checkpoint at 10)
        with pytest.raises(Interrupt):
            get_or_train(cfg, tmp_path, progress=False)
    run = get_or_train(cfg, tmp_path, progress=False)
    step_one = run.metrics.train_loss.iloc[0]  # log_every=1: the first row is the loss of step 1
    assert load_checkpoint(run.dir / CHECKPOINT_FILE)["initial_loss"] == step_one


@pytest.mark.parametrize("value", [1.0, 0.5, -3.0, float("inf")])
def test_a_diverge_factor_not_above_one_is_refused(value):
    from toy_models.config import ConfigError

    with pytest.raises(ConfigError, match="diverge_factor"):
        TrainConfig(diverge_factor=value)
