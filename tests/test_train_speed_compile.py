"""``train.compile = true``: the trainer runs the kernel path through torch.compile, agrees with eager
training within floating-point reordering, and resumes bit for bit. Each test compiles (seconds to a
minute on 2 cores), so all are slow.

Tolerance (as in tests/test_compile.py): inductor reorders and fuses the same float32 sums, so a
compiled value differs from the eager one by at most c·√K·ε·scale, c = √(2n) with n the number of
chained accumulations (6L + 2 forward, twice that for gradients) and K the longest one (a weight
gradient sums over every position of the batch).
"""

from __future__ import annotations

import dataclasses
import math
import os

os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = "1"  # before inductor starts: a worker pool slows eager code on 2 cores

import pytest  # noqa: E402
import torch  # noqa: E402
from torch._dynamo.utils import counters  # noqa: E402

from _interrupt import Interrupt, interrupt_at_batch  # noqa: E402
from _train_worker import tiny_config  # noqa: E402
from test_train import assert_same_run  # noqa: E402
from theorybench.experiment import derive_seed  # noqa: E402
from theorybench.runs import get_or_train  # noqa: E402
from toy_models import Transformer  # noqa: E402

pytestmark = pytest.mark.slow
EPS32 = torch.finfo(torch.float32).eps


def _config(compile: bool, steps: int, **train):
    cfg = tiny_config(steps=steps, name="sgd", lr=0.05)
    return dataclasses.replace(cfg, model=cfg.model.replace(attn_path="kernel"),
                               train=dataclasses.replace(cfg.train, compile=compile, **train))


def _first_step_reference(cfg):
    """The eager model at init, its logits and gradients on the batch of step 1 (the trainer's first
    draw from the data generator; evaluation batches come from another generator)."""
    resolved = cfg.resolved()
    model = Transformer(resolved.model)
    task = resolved.task.build()
    batch = task.sample(resolved.train.batch_size, torch.Generator().manual_seed(derive_seed(resolved.seed, "data")))
    logits = model(batch["inputs"])
    task.loss(logits, batch).backward()
    return model, logits.detach(), batch


def test_compiled_training_agrees_with_eager_within_reordering(tmp_path):
    torch._dynamo.reset()
    graphs = counters["stats"]["unique_graphs"]
    eager = get_or_train(_config(False, 1, log_every=1), tmp_path / "eager", progress=False)
    compiled = get_or_train(_config(True, 1, log_every=1), tmp_path / "compiled", progress=False)
    assert counters["stats"]["unique_graphs"] > graphs  # it went through torch.compile
    model, logits, batch = _first_step_reference(_config(False, 1))
    cfg = model.cfg
    n = 6 * cfg.n_layers + 2
    B, T = batch["inputs"].shape
    K_forward, K_backward = max(cfg.d_model, cfg.mlp_dim, T), max(cfg.d_model, cfg.mlp_dim, B * T)
    # Step 1's loss: cross-entropy moves by at most 2·max|Δlogit| (its gradient in the logits has ℓ1
    # norm ≤ 2), plus each run's own rounding of log-softmax and mean, ≤ 4ε(max|z| + ln V) per run.
    scale = logits.abs().max().item()
    tol_logits = math.sqrt(2 * n) * math.sqrt(K_forward) * EPS32 * scale
    tol_loss = 2 * tol_logits + 8 * EPS32 * (scale + math.log(cfg.vocab_out))
    le, lc = eager.metrics.train_loss.iloc[0], compiled.metrics.train_loss.iloc[0]
    assert abs(lc - le) <= tol_loss, (lc, le, tol_loss)
    # After one SGD step p − lr·g: |Δp| ≤ lr·|Δg| + the two runs' roundings of the update (ε·|p| each).
    lr = _config(False, 1).optim.lr
    after_e, after_c = eager.load_model().state_dict(), compiled.load_model().state_dict()
    module_scale: dict[str, float] = {}
    for name, p in model.named_parameters():
        module = name.rsplit(".", 1)[0]
        module_scale[module] = max(module_scale.get(module, 0.0), p.grad.abs().max().item())
    for name, p in model.named_parameters():
        tol_grad = math.sqrt(2 * 2 * n) * math.sqrt(K_backward) * EPS32 * module_scale[name.rsplit(".", 1)[0]]
        err = (after_c[name] - after_e[name]).abs()
        bound = lr * tol_grad + 2 * EPS32 * after_e[name].abs()
        assert (err <= bound).all(), f"{name}: {err.max().item():.3g}"


def test_a_compiled_run_resumes_bit_for_bit(tmp_path, monkeypatch):
    cfg = _config(True, 30)
    reference = get_or_train(cfg, tmp_path / "ref", progress=False)
    interrupt_at_batch(monkeypatch, 2 + 17)  # 2 eval batches first; step 17: after the checkpoint at 10
    with pytest.raises(Interrupt):
        get_or_train(cfg, tmp_path / "crash", progress=False)
    monkeypatch.undo()
    torch._dynamo.reset()  # the resumed run compiles afresh, as a new process would
    assert_same_run(get_or_train(cfg, tmp_path / "crash", progress=False), reference)
