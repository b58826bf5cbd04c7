"""The trainer's fast path (issue 15): unchecked steps change no result and hide no NaN, the foreach
optimizers compute the same bits as the per-parameter loop, float32 ICL prompts are exact to one
rounding, and the fused QKV weight is rebuilt exactly when a parameter changes."""

from __future__ import annotations

import dataclasses
import re
import tempfile

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _train_worker import tiny_config
from theorybench.experiment import ExperimentConfig, OptimConfig, TrainConfig, apply_overrides
from theorybench.optim import build_optimizer
from theorybench.runs import get_or_train
from theorybench.runstore import CHECKPOINT_FILE, FAILED_FILE, load_checkpoint, load_run, read_json, run_dir
from theorybench.train import NonFiniteError
from toy_models import Transformer, TransformerConfig
from toy_models import attention as attention_module
from toy_models.config import ConfigError
from toy_models.tasks.base import register_task
from toy_models.tasks.icl_regression import ICLRegressionConfig
from toy_models.tasks.markov import MarkovConfig, MarkovTask

U32, U64 = 2.0**-24, 2.0**-53  # unit roundoffs of float32 and float64


def _cadence(cfg, **train):
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train))


# ---------------------------------------------------------------------------------- checks change nothing
def test_unchecked_steps_train_the_same_bits_as_checked_ones(tmp_path):
    """Checks only read: the weights after 30 steps are the same whichever steps were checked, and a
    row's train loss is the float64 mean of the per-step losses a row-per-step run logs."""
    every = get_or_train(_cadence(tiny_config(steps=30), log_every=1, checkpoint_every=1), tmp_path / "a",
                         progress=False)
    sparse = get_or_train(_cadence(tiny_config(steps=30), log_every=7, checkpoint_every=30), tmp_path / "b",
                          progress=False)
    a, b = every.load_model().state_dict(), sparse.load_model().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    per_step = every.metrics.set_index("step").train_loss
    for _, row in sparse.metrics.iterrows():
        window = [s for s in range(1, int(row.step) + 1) if s > _previous_row(sparse.metrics, row.step)]
        total = 0.0
        for s in window:  # the trainer sums in float64 in step order: the same additions, the same bits
            total += per_step[s]
        assert row.train_loss == total / len(window)
    evals = [c for c in every.metrics.columns if c.startswith("eval_")]
    pd.testing.assert_frame_equal(every.metrics.dropna(subset=evals)[["step", *evals]].reset_index(drop=True),
                                  sparse.metrics.dropna(subset=evals)[["step", *evals]].reset_index(drop=True),
                                  check_exact=True)


def _previous_row(metrics, step) -> int:
    earlier = metrics.step[metrics.step < step]
    return int(earlier.max()) if len(earlier) else 0


# ---------------------------------------------------------------------------------- NaN between checks
@register_task("test_step_fault_markov")
@dataclasses.dataclass(frozen=True)
class StepFaultMarkovConfig(MarkovConfig):
    """A Markov task whose loss (``fault='loss'``) or gradient (``'grad'``) is NaN on training step
    ``fault_step``, known from ``set_step``: a function of the step, so a replay meets it again."""

    fault: str = "loss"
    fault_step: int = 5

    def build(self):
        return _StepFaultTask(self)


class _PoisonGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class _StepFaultTask(MarkovTask):
    step = None

    def set_step(self, step):
        self.step = step

    def loss(self, output, batch):
        if self.step != self.cfg.fault_step:
            return super().loss(output, batch)
        if self.cfg.fault == "loss":
            return super().loss(output, batch) * float("nan")
        return super().loss(_PoisonGradient.apply(output), batch)


MESSAGES = {"loss": "step {}: loss is nan", "grad": "step {}: gradient of embed.W_E contains nan"}


@settings(max_examples=12)
@given(fault=st.sampled_from(sorted(MESSAGES)), fault_step=st.integers(1, 12), log_every=st.integers(1, 12),
       checkpoint_every=st.integers(1, 12),
       optim=st.sampled_from(["adamw", "sgd", "sign_momentum", "normalized_gd"]))
def test_a_nan_on_an_unchecked_step_is_named_like_a_check_on_every_step(fault, fault_step, log_every,
                                                                      checkpoint_every, optim):
    """Whatever the cadence, the error, failed.json, the checkpoint left and the rows kept are those of
    a trainer that checks every step: the failing step and tensor, the last checkpoint before it, every
    row before it."""
    cfg = dataclasses.replace(tiny_config(steps=12, name=optim, **({"lr": 0.01} if optim == "normalized_gd" else {})),
                              task=StepFaultMarkovConfig(n_states=6, seq_len=8, fault=fault, fault_step=fault_step))
    cfg = _cadence(cfg, log_every=log_every, checkpoint_every=checkpoint_every, eval_every=100)
    message = MESSAGES[fault].format(fault_step)
    with tempfile.TemporaryDirectory() as root:
        with pytest.raises(NonFiniteError, match=f"^{re.escape(message)}$"):
            get_or_train(cfg, root, progress=False)
        folder = run_dir(cfg, root)
        run = load_run(folder)
        assert run.status == "failed" and run.failure == message
        assert read_json(folder / FAILED_FILE)["step"] == fault_step
        saved = (fault_step - 1) // checkpoint_every * checkpoint_every  # the last checkpoint before the NaN
        if saved:
            state = load_checkpoint(folder / CHECKPOINT_FILE)
            assert state["step"] == saved
            assert all(torch.isfinite(t).all() for t in state["model"].values())
        else:
            assert not (folder / CHECKPOINT_FILE).exists()
        assert list(run.metrics.step) == [s for s in range(1, fault_step) if s % log_every == 0]


@register_task("test_call_fault_markov")
@dataclasses.dataclass(frozen=True)
class CallFaultMarkovConfig(MarkovConfig):
    """A Markov task whose loss is NaN on its ``fault_call``-th call, whatever the step: a fault that
    a replay does not meet again (as on a device that does not repeat its arithmetic)."""

    fault_call: int = 5

    def build(self):
        return _CallFaultTask(self)


class _CallFaultTask(MarkovTask):
    calls = 0

    def loss(self, output, batch):
        self.calls += 1
        return super().loss(output, batch) * (float("nan") if self.calls == self.cfg.fault_call else 1.0)


def test_a_nan_the_replay_does_not_meet_again_is_reported_with_its_range_of_steps(tmp_path):
    """The honest fallback: the range of unchecked steps and where the NaN was found, not a made-up step."""
    cfg = dataclasses.replace(tiny_config(steps=12), task=CallFaultMarkovConfig(n_states=6, seq_len=8, fault_call=5))
    cfg = _cadence(cfg, log_every=10, checkpoint_every=10, eval_every=100)
    message = ("steps 2-9: train loss sum is not finite after step 9; replaying the steps from 0 checked did not "
               "meet it again (the device does not repeat its arithmetic bit for bit)")
    with pytest.raises(NonFiniteError, match=f"^{re.escape(message)}$"):  # step 1 is checked, steps 2-9 are not
        get_or_train(cfg, tmp_path, progress=False)
    folder = run_dir(cfg, tmp_path)
    assert read_json(folder / FAILED_FILE) == {"error": message, "step": 9}
    assert not (folder / CHECKPOINT_FILE).exists()  # nothing untested was saved


# ---------------------------------------------------------------------------------- foreach optimizers
@settings(max_examples=10)
@given(shapes=st.lists(st.lists(st.integers(1, 5), min_size=1, max_size=3), min_size=1, max_size=4),
       name=st.sampled_from(["adamw", "sgd"]), weight_decay=st.sampled_from([0.0, 0.1]), seed=st.integers(0, 99))
def test_foreach_optimizers_compute_the_same_bits_as_the_loop_over_parameters(shapes, name, weight_decay, seed):
    """build_optimizer picks torch's multi-tensor implementation for speed; a torch where it rounds
    differently from the per-parameter loop would change every stored result, and fails here."""
    gen = torch.Generator().manual_seed(seed)
    cfg = OptimConfig(name=name, lr=0.03, weight_decay=weight_decay, **({"momentum": 0.9} if name == "sgd" else {}))
    start = [torch.randn(s, generator=gen) for s in shapes]
    fast = [p.clone().requires_grad_() for p in start]
    loop = [p.clone().requires_grad_() for p in start]
    opt_fast = build_optimizer(fast, cfg)
    kwargs = dict(lr=cfg.lr, weight_decay=weight_decay, foreach=False)
    opt_loop = (torch.optim.AdamW(loop, betas=cfg.betas, **kwargs) if name == "adamw"
                else torch.optim.SGD(loop, momentum=0.9, **kwargs))
    assert opt_fast.defaults["foreach"] is True
    for step in range(6):
        for a, b in zip(fast, loop):  # gradients across many magnitudes, as in training
            a.grad = torch.randn(a.shape, generator=gen) * 10.0 ** (step - 3)
            b.grad = a.grad.clone()
        opt_fast.step()
        opt_loop.step()
    assert all(torch.equal(a, b) for a, b in zip(fast, loop))


# ---------------------------------------------------------------------------------- float32 prompts
@settings(max_examples=10)
@given(d=st.integers(1, 8), n_points=st.integers(1, 12), tokenization=st.sampled_from(["interleaved", "stacked"]),
       x_dist=st.sampled_from(["gaussian", "uniform"]), pool=st.sampled_from([None, 3]),
       diag=st.booleans(), seed=st.integers(0, 999))
def test_float32_prompts_carry_labels_exact_to_one_rounding(d, n_points, tokenization, x_dist, pool, diag, seed):
    """Drawn in float32, each noiseless label is its own prompt's wᵀx rounded once: within half an ulp
    (2⁻²⁴ relative) of the exact sum of the float32 products, up to the float64 sum's d·2⁻⁵³·Σ|xᵢwᵢ|.
    Labels summed in float32 err by up to d·2⁻²⁴·Σ|xᵢwᵢ| and break the bound on some of these
    hundreds of labels."""
    cov = tuple(float(i + 1) for i in range(d)) if diag and x_dist == "gaussian" else None
    task = ICLRegressionConfig(d=d, n_points=n_points, tokenization=tokenization, x_dist=x_dist, x_cov=cov,
                               n_tasks=pool).build()
    batch = task.sample(256, torch.Generator().manual_seed(seed))
    assert all(v.dtype == torch.float32 for k, v in batch.items() if v.is_floating_point())
    X = torch.cat([batch["X"], batch["x_query"][:, None]], 1).double()
    y = torch.cat([batch["y"], batch["y_query"][:, None]], 1).double()
    products = X * batch["w"].double()[:, None]  # products of two float32 numbers are exact in float64
    exact = products.sum(-1)
    bound = U32 * exact.abs() + 2 * d * U64 * products.abs().sum(-1)
    assert ((y - exact).abs() <= bound).all()
    if x_dist == "uniform":
        assert X.abs().max() <= 1
    if pool:
        assert all(any(torch.equal(w, m) for m in task.pool.float()) for w in batch["w"])


# ---------------------------------------------------------------------------------- fused QKV cache
@pytest.fixture
def counted_builds(monkeypatch):
    calls = []
    original = attention_module._build_fused_qkv

    def counting(parts):
        calls.append(1)
        return original(parts)

    monkeypatch.setattr(attention_module, "_build_fused_qkv", counting)
    return calls


CACHE_CFG = TransformerConfig(n_layers=2, d_model=16, n_heads=2, n_ctx=8, d_vocab=11, attn_path="kernel")


def test_the_fused_qkv_weight_is_built_once_per_parameter_update(counted_builds):
    model = Transformer(CACHE_CFG)
    tokens = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        first = model(tokens)
        for _ in range(3):
            assert torch.equal(model(tokens), first)
    assert len(counted_builds) == CACHE_CFG.n_layers  # once per layer for four forwards
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(tokens).square().mean().backward()
    assert len(counted_builds) == 2 * CACHE_CFG.n_layers  # a forward autograd sees builds its own
    optimizer.step()
    with torch.no_grad():
        after = model(tokens)
        model(tokens)
    assert len(counted_builds) == 3 * CACHE_CFG.n_layers  # the update invalidated the kept weight once
    fresh = Transformer(CACHE_CFG)
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(after, fresh(tokens))  # not the weight from before the update


def test_loading_other_weights_or_editing_one_in_place_is_seen(counted_builds):
    model, other = Transformer(CACHE_CFG), Transformer(CACHE_CFG.replace(seed=1))
    tokens = torch.randint(0, 11, (2, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model(tokens)
        model.load_state_dict(other.state_dict())
        assert torch.equal(model(tokens), other(tokens))
        model.blocks[1].attn.W_V.mul_(2.0)
        other.blocks[1].attn.W_V.mul_(2.0)
        assert torch.equal(model(tokens), other(tokens))


# ---------------------------------------------------------------------------------- train.compile config
def test_train_compile_is_part_of_the_identity_only_when_on():
    """Eager configs keep the hash they had before the field existed; a compiled run is another run."""
    cfg = tiny_config()
    assert "compile" not in cfg.to_dict()["train"]
    on = apply_overrides(cfg, ["train.compile=true"])
    assert on.train.compile is True and on.to_dict()["train"]["compile"] is True
    assert on.config_hash() != cfg.config_hash()
    assert ExperimentConfig.from_dict(on.to_dict()) == on and ExperimentConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("value", [1, "yes", None])
def test_a_train_compile_that_is_not_a_bool_is_refused(value):
    with pytest.raises(ConfigError, match=r"compile.*true or false"):
        TrainConfig(compile=value)
