"""Optimizers and schedule: updates against hand-computed formulas, warm-up + cosine values."""

from __future__ import annotations

import io
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from theorybench.experiment import OptimConfig
from theorybench.optim import NormalizedGD, SignMomentum, build_optimizer, build_scheduler, lr_factor

EPS64 = torch.finfo(torch.float64).eps

# Gradients fed to the optimizers step by step (float64, hand-chosen: mixed signs, a zero entry).
GRADS = [torch.tensor([[0.5, -2.0], [0.0, 1e-3]], dtype=torch.float64),
         torch.tensor([[-1.0, -2.0], [3.0, -1e-3]], dtype=torch.float64),
         torch.tensor([[0.25, 4.0], [-3.0, 0.0]], dtype=torch.float64)]
THETA0 = torch.tensor([[1.0, -1.0], [0.5, 2.0]], dtype=torch.float64)


def run_steps(opt_cls, **kwargs) -> list[torch.Tensor]:
    p = torch.nn.Parameter(THETA0.clone())
    opt = opt_cls([p], **kwargs)
    trajectory = []
    for g in GRADS:
        p.grad = g.clone()
        opt.step()
        trajectory.append(p.detach().clone())
    return trajectory


def test_sign_momentum_matches_the_formula_and_sophia_without_hessian():
    lr, beta, wd = 0.1, 0.965, 0.2
    got = run_steps(SignMomentum, lr=lr, beta=beta, weight_decay=wd)
    theta, m = THETA0.clone(), torch.zeros_like(THETA0)
    for g, after in zip(GRADS, got):
        m = beta * m + (1 - beta) * g
        # SophiaG's step with its Hessian EMA h = 0: clamp(|m| / (ρ·bs·h + 1e-15), max=1) · sign(m),
        # which is sign(m) wherever |m| ≥ 1e-15 (here |m| ≥ 3.5e-5 or exactly 0).
        sophia_ratio = (m.abs() / (0.04 * 480 * 0.0 + 1e-15)).clamp(max=1.0)
        assert torch.equal(sophia_ratio * m.sign(), m.sign())
        theta = theta * (1 - lr * wd) - lr * m.sign()
        # Each entry of θ passes through ≤ 2 roundings per step, 3 steps: |error| ≤ 6·eps·max|θ| (m enters
        # only through its sign, which the tiny rounding of m cannot flip here: |m| ≫ eps).
        torch.testing.assert_close(after, theta, rtol=0, atol=6 * EPS64 * theta.abs().max().item())


def test_sign_momentum_moves_every_coordinate_by_exactly_lr_without_decay():
    lr = 0.125  # a power of 2, so θ ± lr is exact for these θ
    got = run_steps(SignMomentum, lr=lr, beta=0.9)
    step1 = got[0] - THETA0
    assert torch.equal(step1, -lr * GRADS[0].sign())  # m = 0.1·g: same sign as g; zero stays put


def test_normalized_gd_matches_the_formula_per_tensor():
    lr = 0.3
    a = torch.nn.Parameter(THETA0.clone())
    b = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    zero = torch.nn.Parameter(torch.tensor([5.0], dtype=torch.float64))
    opt = NormalizedGD([a, b, zero], lr=lr)
    a.grad, b.grad, zero.grad = GRADS[0].clone(), torch.tensor([0.0, 300.0, -400.0], dtype=torch.float64), \
        torch.zeros(1, dtype=torch.float64)
    opt.step()
    expected_a = THETA0 - lr * GRADS[0] / GRADS[0].norm()
    # Three roundings per entry (norm, division, subtraction) plus the norm's own sum: ≤ 8·eps·scale; and
    # the guard: g/(‖g‖ + 1e-12) differs from g/‖g‖ by |g|·1e-12/‖g‖² ≤ 1e-12/‖g‖ < 1e-12 (‖g‖ > 2) per entry.
    torch.testing.assert_close(a.detach(), expected_a, rtol=0, atol=8 * EPS64 * 2.0 + lr * 1e-12)
    # ‖(0, 300, −400)‖ = 500 exactly: b moves by lr·(0, 0.6, −0.8), whatever the gradient's scale.
    torch.testing.assert_close(b.detach(), torch.tensor([1.0, 2.0 - 0.18, 3.0 + 0.24], dtype=torch.float64),
                               rtol=0, atol=4 * EPS64 * 3.0)
    assert torch.equal(zero.detach(), torch.tensor([5.0], dtype=torch.float64))  # 0/max(0, eps) = 0: no NaN
    # Each tensor's step has norm lr, tensor by tensor (the normalization is not global).
    assert (a.detach() - THETA0).norm().item() == pytest.approx(lr, rel=8 * EPS64 + 1e-12)


def test_normalized_gd_guard_and_coupled_decay_follow_the_formula():
    # θ ← θ − lr·g/(‖g‖ + eps), g = ∇ + wd·θ: the attention-SVM runs' rule (eps = float64's ε, the ridge).
    lr, eps, wd = 0.1, 1e-3, 0.5
    p = torch.nn.Parameter(torch.tensor([3.0, -4.0], dtype=torch.float64))
    p.grad = torch.tensor([0.0, 0.0], dtype=torch.float64)
    NormalizedGD([p], lr=lr, eps=eps, weight_decay=wd).step()
    # g = wd·θ = (1.5, −2), ‖g‖ = 2.5: θ − 0.1·(1.5, −2)/2.501. Each entry goes through at most 8 roundings
    # (the products wd·θ, the squares and sum, the root, +eps, lr·g, the division, the subtraction) of
    # numbers ≤ 4, so it is within 8·ε·4 of the exact value, as the expected entries are.
    expected = torch.tensor([3.0 - 0.1 * 1.5 / 2.501, -4.0 + 0.1 * 2.0 / 2.501], dtype=torch.float64)
    torch.testing.assert_close(p.detach(), expected, rtol=0, atol=8 * EPS64 * 4.0)
    # A gradient far below eps gives a step far below lr (not a full-length step along round-off).
    q = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    q.grad = torch.tensor([1e-20, 0.0], dtype=torch.float64)
    NormalizedGD([q], lr=lr, eps=EPS64).step()
    assert 0 < 1.0 - q.detach()[0].item() < lr * 1e-20 / EPS64 * (1 + 1e-9)


@pytest.mark.parametrize("cfg, cls, hyper", [
    (OptimConfig(name="adamw", lr=0.01, betas=(0.8, 0.9), weight_decay=0.1), torch.optim.AdamW,
     dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1)),
    (OptimConfig(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.01), torch.optim.SGD,
     dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    (OptimConfig(name="sign_momentum", lr=1e-5, betas=(0.965, 0.99), weight_decay=0.1), SignMomentum,
     dict(lr=1e-5, beta=0.965, weight_decay=0.1)),
    (OptimConfig(name="normalized_gd", lr=0.5), NormalizedGD, dict(lr=0.5)),
])
def test_build_optimizer_passes_the_config_and_skips_frozen_parameters(cfg, cls, hyper):
    trainable, frozen = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2), requires_grad=False)
    opt = build_optimizer([trainable, frozen], cfg)
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["params"] == [trainable]
    assert {k: group[k] for k in hyper} == hyper


def scheduled_lrs(cfg: OptimConfig, total: int) -> list[float]:
    """The lr each of ``total`` optimizer updates uses, read from a real optimizer + scheduler."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = build_scheduler(opt, cfg, total)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_warmup_then_cosine_values():
    cfg = OptimConfig(name="sgd", lr=2.0, warmup_steps=3, schedule="cosine", min_lr_ratio=0.1)
    T, W, r = 10, 3, 0.1
    hand = [2.0 * (t + 1) / W for t in range(W)]
    hand += [2.0 * (r + (1 - r) * 0.5 * (1 + math.cos(math.pi * (t - W) / (T - W)))) for t in range(W, T)]
    # Same formula, different association of a few float64 operations: ≤ 4 roundings of values ≤ 2.
    assert scheduled_lrs(cfg, T) == pytest.approx(hand, rel=0, abs=8 * EPS64)
    assert hand[:4] == pytest.approx([2 / 3, 4 / 3, 2.0, 2.0])  # warm-up reaches lr, cosine starts at lr
    assert lr_factor(T, cfg, T) == pytest.approx(r, abs=2 * EPS64)  # and ends at min_lr_ratio·lr


def test_constant_schedule_with_and_without_warmup():
    assert scheduled_lrs(OptimConfig(lr=1.0), 4) == [1.0] * 4
    assert scheduled_lrs(OptimConfig(lr=1.0, warmup_steps=4), 6) == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


@given(w=st.integers(0, 50), extra=st.integers(1, 200), r=st.floats(0.0, 1.0))
def test_cosine_factor_is_monotone_and_between_min_ratio_and_one(w, extra, r):
    cfg = OptimConfig(warmup_steps=w, schedule="cosine", min_lr_ratio=r)
    total = w + extra
    f = [lr_factor(t, cfg, total) for t in range(total + 1)]
    assert all(0 < x <= 1 for x in f[:w])
    after = f[w:]
    assert after[0] == 1.0
    # cos is monotone on [0, π]; a float64 evaluation may wobble by ~1 ulp of values ≤ 1.
    assert all(b <= a + 2 * EPS64 for a, b in zip(after, after[1:]))
    assert all(r - 2 * EPS64 <= x <= 1.0 for x in after)


def test_scheduler_state_survives_a_weights_only_round_trip():
    cfg = OptimConfig(lr=1.0, warmup_steps=2, schedule="cosine")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = build_scheduler(opt, cfg, 10)
    for _ in range(4):
        opt.step(), sched.step()
    buffer = io.BytesIO()
    torch.save(sched.state_dict(), buffer)
    buffer.seek(0)
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched2 = build_scheduler(opt2, cfg, 10)
    sched2.load_state_dict(torch.load(buffer, weights_only=True))
    opt2.load_state_dict(opt.state_dict())
    for _ in range(3):
        opt.step(), sched.step(), opt2.step(), sched2.step()
        assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"]
