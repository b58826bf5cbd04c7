"""The full-scale estimate: its FLOP count against torch's own counter, its bookkeeping of steps and
evaluations, its parameter count, and the estimate it reports."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import theorybench.device_estimate as estimate_module
import theorybench.train as train_module
from _train_worker import tiny_config
from theorybench.device_estimate import estimate_cpu, parameter_count, run_flops, step_flops
from theorybench.experiment import ExperimentConfig, TrainConfig
from toy_models import Transformer, TransformerConfig
from toy_models.tasks.icl_regression import ICLRegressionConfig
from toy_models.tasks.markov import MarkovConfig

CONFIGS = {
    "pre-ln": ExperimentConfig(name="x", task=MarkovConfig(n_states=6, seq_len=8),
                               model=TransformerConfig(n_layers=2, d_model=16, n_heads=2),
                               train=TrainConfig(batch_size=3)),
    "gated, d_head ≠ d/H": ExperimentConfig(
        name="x", task=MarkovConfig(n_states=6, seq_len=8),
        model=TransformerConfig(n_layers=1, d_model=12, n_heads=3, d_head=5, gated_mlp=True, d_mlp=7),
        train=TrainConfig(batch_size=3)),
    "one-hot in and out, attention only": ExperimentConfig(
        name="x", task=MarkovConfig(n_states=6, seq_len=8),
        model=TransformerConfig(n_layers=2, d_model=64, n_heads=2, attn_only=True, embed="onehot", output="onehot"),
        train=TrainConfig(batch_size=3)),
    "continuous read-in": ExperimentConfig(name="x", task=ICLRegressionConfig(d=4, n_points=5),
                                           model=TransformerConfig(n_layers=2, d_model=16, n_heads=2),
                                           train=TrainConfig(batch_size=3)),
}


def _counted(cfg: ExperimentConfig, path: str) -> int:
    """torch's count of one forward + backward (matmul-like ops only, as ours)."""
    cfg = cfg.resolved()
    model = Transformer(cfg.model)
    batch = cfg.task.build().sample(cfg.train.batch_size, torch.Generator().manual_seed(0))
    assert batch["inputs"].shape[1] == cfg.model.n_ctx  # the count takes T = n_ctx
    with FlopCounterMode(display=False) as counter:
        model(batch["inputs"], attn_path=path).sum().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("name", CONFIGS)
def test_the_flop_count_equals_torchs_counter(name):
    cfg = CONFIGS[name]
    # Reference path: every product is an einsum/matmul the counter sees. Integers: exact equality.
    assert step_flops(cfg) == _counted(cfg, "reference")
    # Kernel path: the counter has no formula for the CPU flash kernel, so it sees the weights only,
    # 12·L·B·T²·H·d_head less than ours.
    m = cfg.resolved_model()
    attention = 12 * m.n_layers * cfg.train.batch_size * m.n_ctx**2 * m.n_heads * m.head_dim
    assert step_flops(cfg) - attention == _counted(cfg, "kernel")


def test_run_flops_counts_the_remaining_steps_and_their_evaluations():
    cfg = dataclasses.replace(tiny_config(), train=TrainConfig(steps=20, batch_size=4, eval_every=8, eval_batches=3,
                                                               checkpoint_every=10))
    f = step_flops(cfg)
    # Evaluations at steps 8, 16 and the last (20); each batch is a forward pass, a third of a step.
    assert run_flops(cfg) == pytest.approx(f * (20 + 3 * 3 / 3), rel=1e-15)
    assert run_flops(cfg, from_step=10) == pytest.approx(f * (10 + 2 * 3 / 3), rel=1e-15)  # 16 and 20 remain
    assert run_flops(cfg, from_step=20) == 0


@pytest.mark.parametrize("name", ["pre-ln", "gated, d_head ≠ d/H", "continuous read-in"])
def test_parameter_count_is_every_weight_matrix_and_table(name):
    model = Transformer(CONFIGS[name].resolved_model())
    # Left out on purpose: biases (b_*, per head or not) and norm gains, O(L·d) in all.
    matrices = sum(p.numel() for n, p in model.named_parameters()
                   if p.requires_grad and n.rsplit(".", 1)[-1].startswith("W_"))
    assert parameter_count(CONFIGS[name].resolved_model()) == matrices


def test_the_estimate_is_the_measured_rate_applied_to_every_run():
    small, large = tiny_config(steps=100), dataclasses.replace(tiny_config(steps=50), model=TransformerConfig(
        n_layers=2, d_model=32, n_heads=2))
    est = estimate_cpu([(small, 0), (large, 10)], threads=1)
    assert est.largest_step_flops == step_flops(large) and est.measured_step_s > 0
    rate = step_flops(large) / est.measured_step_s
    assert est.seconds == pytest.approx((run_flops(small) + run_flops(large, 10)) / rate, rel=1e-12)
    assert est.steps == 140 and est.runs == 2 and est.threads == 1
    assert "measured" in est.message("x") and "about" in est.message("x")
    halved = dataclasses.replace(est, seconds=est.seconds / 2, parallel=2)
    assert "2 runs at a time" in halved.message("x")


def test_a_step_too_large_to_time_gives_a_lower_bound(monkeypatch):
    monkeypatch.setattr(estimate_module, "MAX_MEASURED_STEP_S", 0.0)
    cfg = tiny_config(steps=100)
    est = estimate_cpu([(cfg, 0)])
    assert est.measured_step_s is None and est.seconds == pytest.approx(run_flops(cfg) / est.peak_flops, rel=1e-12)
    assert "at least" in est.message("x") and "a lower bound" in est.message("x")


def test_the_timed_step_is_the_trainers_own(monkeypatch):
    """The estimate times ``theorybench.train``'s step, not a copy of it: every timed call (and the warm-up) runs
    the trainer's update, and the caller's random streams are left as they were."""
    calls = []
    original = train_module._Stepper._train_step

    def counted(self, checked):
        calls.append((self.step, checked))
        return original(self, checked)

    monkeypatch.setattr(train_module._Stepper, "_train_step", counted)
    before = torch.get_rng_state()
    seconds = estimate_module.measure_step_seconds(tiny_config(steps=100), budget_s=0.0, max_steps=3)
    assert seconds > 0
    assert calls == [(1, False), (2, False)]  # the warm-up, then one timed step (budget 0 stops after the first)
    assert torch.equal(torch.get_rng_state(), before)



@pytest.mark.parametrize("par", ["W", "KQ"])
def test_the_attention_svm_layer_is_counted_and_estimated(par):
    import torch.backends.opt_einsum as opt_einsum

    from _svm_runs import svm_config
    from theorybench.train import build_model

    cfg = svm_config(par, steps=5).resolved()
    model = build_model(cfg)
    batch = cfg.task.build().sample(cfg.train.batch_size, torch.Generator())
    with opt_einsum.flags(enabled=False), FlopCounterMode(display=False) as counter:
        model(batch["inputs"], queries=batch["queries"]).sum().backward()
    # Ours counts the d²-sized products only; what it leaves out is under 3/d = 30 % here (its docstring).
    counted, d = counter.get_total_flops(), cfg.model.d
    assert step_flops(cfg) <= counted <= step_flops(cfg) * (1 + 3 / d)
    assert parameter_count(cfg.model) == sum(p.numel() for p in model.parameters() if p.requires_grad)
    report = estimate_cpu([(cfg, 0)], measure=False)
    assert report.total_flops == run_flops(cfg) > 0
