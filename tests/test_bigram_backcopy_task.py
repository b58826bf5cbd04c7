"""The Bigram-Backcopy task with BOS (Guo et al., "Active-Dormant Attention Heads"): registration, the
rules of its sequences, their bigram statistics against P, seeding, and its Bayes loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from theorybench.experiment import ExperimentConfig, TrainConfig, task_class
from toy_models.config import ConfigError
from toy_models.tasks.base import TASKS, Task
from toy_models.tasks.bigram_backcopy import BOS, BigramBackcopyConfig

CFG = BigramBackcopyConfig(n_tokens=20, n_triggers=3, seq_len=24, chain_seed=1)


def _batch(cfg=CFG, n=256, seed=0):
    task = cfg.build()
    return task, task.sample(n, torch.Generator().manual_seed(seed))


def test_registered_satisfies_the_protocol_and_builds_an_experiment():
    assert TASKS["bigram_backcopy"] is BigramBackcopyConfig and task_class("bigram_backcopy") is BigramBackcopyConfig
    task = CFG.build()
    assert isinstance(task, Task)
    assert task.model_fields() == {"d_vocab": 20, "n_ctx": 24, "input_kind": "tokens"}
    exp = ExperimentConfig(name="bb", task=CFG, train=TrainConfig(steps=2, batch_size=4))
    assert exp.resolved_model().d_vocab == 20


@pytest.mark.parametrize("kwargs, field", [
    (dict(n_triggers=0), "n_triggers"), (dict(seq_len=1), "seq_len"), (dict(n_tokens=6, n_triggers=4), "n_tokens"),
    (dict(concentration=0.0), "concentration"), (dict(concentration=True), "concentration"),
    (dict(chain_seed=-1), "chain_seed"), (dict(n_tokens=20.0), "n_tokens"),
])
def test_bad_values_are_refused_naming_the_field(kwargs, field):
    with pytest.raises(ConfigError) as err:
        BigramBackcopyConfig(**kwargs)
    assert err.value.field_name == field


@settings(max_examples=10)
@given(n_tokens=st.integers(6, 30), n_triggers=st.integers(1, 3), seq_len=st.integers(2, 20),
       chain_seed=st.integers(0, 100), seed=st.integers(0, 2**16))
def test_every_sequence_follows_the_rules(n_tokens, n_triggers, seq_len, chain_seed, seed):
    cfg = BigramBackcopyConfig(n_tokens=n_tokens, n_triggers=n_triggers, seq_len=seq_len, chain_seed=chain_seed)
    task, b = _batch(cfg, n=32, seed=seed)
    x = torch.cat([b["inputs"], b["targets"][:, -1:]], 1)  # the whole sequence x_0 … x_T
    assert torch.equal(b["inputs"][:, 1:], b["targets"][:, :-1])
    assert (x[:, 0] == BOS).all() and (x[:, 1:] != BOS).all()  # BOS first, never again
    assert (x[:, 1] > n_triggers).all()  # x_1 ordinary
    trig = (x >= 1) & (x <= n_triggers)
    assert not (trig[:, :-1] & trig[:, 1:]).any()  # no two triggers in a row
    after = trig[:, 1:-1]  # x_t a trigger, t ≥ 1 → x_{t+1} = x_{t−1}
    assert torch.equal(x[:, 2:][after], x[:, :-2][after])
    # every bigram step uses an allowed transition
    bigram = ~trig[:, 1:-1]
    prev, nxt = x[:, 1:-1][bigram], x[:, 2:][bigram]
    assert (task.transition[prev.numpy(), nxt.numpy()] > 0).all()


def test_bigram_frequencies_match_p():
    """Each row of P against the empirical next-token frequencies after that token at bigram positions:
    |f − p| ≤ 5·√(p(1−p)/n) + 1/n for every (row, column) with n ≥ 200 draws. A true P passes all ~400
    comparisons except with probability < 400 · 5.7e-7 (two-sided 5σ, normal approximation; the 1/n covers
    its error at small p); a P off by a shifted row or a transposition misses by many σ."""
    task, b = _batch(n=4000)
    x = torch.cat([b["inputs"], b["targets"][:, -1:]], 1).numpy()
    trig = (x >= 1) & (x <= CFG.n_triggers)
    counts = np.zeros((CFG.n_tokens, CFG.n_tokens))
    prev, nxt = x[:, 1:-1][~trig[:, 1:-1]], x[:, 2:][~trig[:, 1:-1]]
    np.add.at(counts, (prev, nxt), 1)
    checked = 0
    for i in range(1, CFG.n_tokens):
        n = counts[i].sum()
        if i in CFG.triggers or n < 200:
            continue
        p, f = task.transition[i], counts[i] / n
        assert (np.abs(f - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1 / n).all(), i
        checked += 1
    assert checked >= 10  # most rows are tested, not a lucky few


def test_first_token_is_uniform_over_ordinary_tokens():
    """x_1 ~ uniform over the 16 ordinary tokens: n = 4000 draws, each count within 5σ of n/16."""
    _, b = _batch(n=4000)
    counts = np.bincount(b["inputs"][:, 1].numpy(), minlength=CFG.n_tokens)[CFG.n_triggers + 1:]
    n, p = 4000, 1 / CFG.n_ordinary
    assert (np.abs(counts - n * p) <= 5 * math.sqrt(n * p * (1 - p))).all()


def test_seeds_fix_the_data_and_chain_seed_fixes_p():
    _, a = _batch(seed=3)
    _, b = _batch(seed=3)
    _, c = _batch(seed=4)
    assert torch.equal(a["inputs"], b["inputs"]) and not torch.equal(a["inputs"], c["inputs"])
    assert np.array_equal(CFG.build().transition, CFG.build().transition)
    assert not np.array_equal(CFG.build().transition, BigramBackcopyConfig(n_tokens=20, n_triggers=3).build().transition)
    assert (CFG.build().transition[:, BOS] == 0).all()


def test_the_bayes_predictor_scores_the_bayes_loss_and_copies_perfectly():
    """Logits log(uniform) at BOS, a one-hot on x_{t−1} after a trigger (logit 0 there, −1e9 elsewhere: CE
    = log(1 + (V−1)e^{−1e9}) = 0 in float64), log P elsewhere: the task's loss equals bayes_loss to
    float64 rounding of a mean of ~1e4 terms (1e-12), and copy accuracy is 1."""
    task, b = _batch(n=64)
    inputs, V = b["inputs"], CFG.n_tokens
    kinds = task.position_kinds(inputs)
    logits = torch.full((*inputs.shape, V), -1e9, dtype=torch.float64)
    logits[kinds["bos"]] = torch.where(torch.arange(V) > CFG.n_triggers, 0.0, -1e9).to(torch.float64)
    logits[kinds["bigram"]] = task._log_p[inputs[kinds["bigram"]]].clamp(min=-1e9)
    prev_prev = torch.cat([inputs[:, :1], inputs[:, :-1]], 1)
    rows = logits[kinds["copy"]]
    rows[torch.arange(len(rows)), prev_prev[kinds["copy"]]] = 0.0
    logits[kinds["copy"]] = rows
    assert abs(task.loss(logits, b).item() - task.bayes_loss(b)) < 1e-12
    m = task.metrics(logits, b)
    assert m["copy_accuracy"] == 1.0 and kinds["copy"].any()
    # and a uniform predictor does strictly worse than Bayes
    assert task.loss(torch.zeros_like(logits), b).item() > task.bayes_loss(b) + 0.5
