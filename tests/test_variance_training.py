"""The machinery of the variance-growth training study (theorybench.studies.variance: experiments,
trained_runs, markov_statistics, statistics): prefix runs reproduce the start of a run, diverged runs are results, and the definitions (loss
spikes, divergence, paired intervals, the per-layer measurements) give hand-computed answers."""

import dataclasses
import math
import re

import numpy as np
import pytest
import torch

from theorybench.cli import main
from theorybench.studies.variance import experiments, markov_statistics, statistics, trained_runs
from theorybench.studies.variance.sizes import TRAINING_SIZES
from toy_models.config import ConfigError

TINY = TRAINING_SIZES["tiny"]


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("THEORYBENCH_RUNS", str(tmp_path))
    return tmp_path


# ------------------------------------------------------------------------------------------ runs
def test_a_prefix_run_is_the_start_of_the_full_run(runs):
    """Constant learning rate and a data stream fixed by the seed: the 2-step snapshot run takes the same
    steps as the 6-step run, bit for bit (each loss depends on every earlier update)."""
    full = trained_runs.fetch(experiments.training_run_config(TINY, "pre", 2, TINY.lr, 0))
    prefix = trained_runs.fetch(experiments.training_run_config(TINY, "pre", 2, TINY.lr, 0, steps=2))
    assert full.status == prefix.status == "done"
    assert prefix.config.name.endswith("-t2")
    np.testing.assert_array_equal(prefix.metrics["train_loss"].to_numpy(), full.metrics["train_loss"].to_numpy()[:2])
    # model_at finds the same run, and step 0 is the initialization the trainer starts from
    after = trained_runs.model_at(full.config, 2)
    assert all(torch.equal(a, b) for a, b in zip(after.state_dict().values(), prefix.load_model().state_dict().values()))
    init = trained_runs.model_at(full.config, 0)
    assert not torch.equal(init.blocks[0].attn.W_Q, after.blocks[0].attn.W_Q)


def test_a_run_that_hits_nan_is_returned_as_a_result(runs):
    """No norm at lr = 100: the run blows up within its 6 steps (at step 3 on one CPU, step 2 on another:
    WHICH step depends on the last bits of the updates, so the test asserts what the trainer guarantees,
    not the step); the run is recorded, not raised."""
    cfg = experiments.training_run_config(TINY, "none", 2, 100.0, 0)
    run = trained_runs.fetch(cfg)
    assert run.status == "failed"
    # the trainer's message names the step and what was non-finite (train.NonFiniteError)
    match = re.fullmatch(r"step (\d+): (loss is (nan|inf)|(gradient of|parameter) [\w.]+ contains (nan|inf)"
                         r"( after the update)?)", run.failure)
    assert match, run.failure
    step = int(match.group(1))
    assert 1 <= step <= cfg.train.steps
    out = markov_statistics.outcome(run)
    assert out["diverged"] and out["kind"] == "non-finite" and out["failed_step"] == step
    # every row kept for diagnosis is a finite one from before the failing step
    assert (run.metrics["step"] < step).all() and np.isfinite(run.metrics["train_loss"]).all()
    assert trained_runs.fetch(cfg).status == "failed"  # asked again: the stored result, not a retrain
    # a run that stops before its end leaves no final weights (checkpoint only at the end)
    assert trained_runs.model_at(cfg, cfg.train.steps) is None


def test_eval_unigram_loss_rebuilds_the_trainers_eval_batches(runs):
    """The unigram reference is computed on the trainer's own eval batches: the Bayes loss recomputed on
    the rebuilt batches equals the trainer's eval_bayes_loss (float64 means of the same numbers, so the
    only difference is summation order: ≲ 4 batches × 1e-16)."""
    run = trained_runs.fetch(experiments.training_run_config(TINY, "post", 2, TINY.lr, 1))
    cfg = run.config
    task = cfg.task.build()
    from theorybench.train import EVAL_SEED

    gen = torch.Generator().manual_seed(EVAL_SEED)
    batches = [task.sample(cfg.train.batch_size, gen) for _ in range(cfg.train.eval_batches)]
    bayes = float(np.mean([task.bayes_loss(b) for b in batches]))
    assert abs(bayes - run.metrics["eval_bayes_loss"].iloc[-1]) < 1e-12
    log_pi = np.log(task.stationary)
    want = float(np.mean([-log_pi[b["targets"].numpy()].mean() for b in batches]))
    assert abs(markov_statistics.eval_unigram_loss(run) - want) < 1e-12
    # the unigram loss lies between the Bayes loss and log n on any reasonable batch (here: 4 × 8 × 8 tokens)
    assert bayes < want < math.log(cfg.task.n_states) + 0.1


# ------------------------------------------------------------------------------------------ definitions
def test_loss_spikes_hand_computed():
    flat = [2.0] * 12
    assert markov_statistics.loss_spikes(flat) == []
    jumped = flat[:8] + [2.4, 2.5, 2.0, 2.0]  # 2.4 > 1.15 × 2 = 2.3 starts a spike; 2.5 continues it
    assert markov_statistics.loss_spikes(jumped) == [8]
    twice = flat[:8] + [2.4, 2.0, 2.0, 2.4]  # two separate spikes (the median of the window is still 2)
    assert markov_statistics.loss_spikes(twice) == [8, 11]
    assert markov_statistics.loss_spikes(flat[:8] + [2.29] + flat[:3]) == []  # below the factor
    assert markov_statistics.loss_spikes([2.0, 2.0, 9.0]) == []  # fewer than min_history earlier steps: no verdict
    assert markov_statistics.loss_spikes(np.linspace(3.0, 2.0, 50)) == []  # a decreasing loss never spikes
    with pytest.raises(ValueError, match="factor > 1"):
        markov_statistics.loss_spikes(flat, factor=1.0)


def test_paired_difference_ci_hand_computed():
    # differences 1, 2, 3: mean 2, sd 1, t_{0.975, 2} = 4.302653 → half-width 4.302653/√3 = 2.484138
    mean, lo, hi = statistics.paired_difference_ci([3.0, 5.0, 7.0], [2.0, 3.0, 4.0])
    assert mean == pytest.approx(2.0, abs=1e-12)
    assert lo == pytest.approx(2.0 - 2.484138, abs=1e-6) and hi == pytest.approx(2.0 + 2.484138, abs=1e-6)
    # a diverged seed (NaN) drops out of the pairs
    assert statistics.paired_difference_ci([3.0, np.nan, 5.0, 7.0], [2.0, 1.0, 3.0, 4.0])[0] == pytest.approx(2.0)


def test_measure_block_gradient_is_the_norm_over_the_blocks_parameters():
    from toy_models import Transformer

    cfg = experiments.training_run_config(TINY, "peri", 2, TINY.lr, 0).resolved().model.replace(dtype="float64")
    model = Transformer(cfg)
    batch = markov_statistics.training_probe_batch(TINY)
    stats = markov_statistics.training_statistics(model, batch, gradients=True)
    logits = model(batch["inputs"])
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten()).backward()
    for layer, block in enumerate(model.blocks):
        want = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in block.parameters() if p.grad is not None))
        assert abs(stats["block_grad_norm"][layer] - want) <= 1e-12 * want  # float64, same sums re-ordered
    assert stats["variance"].shape == (3,) and stats["angular"].shape == (2,) and stats["sink_mass"].shape == (2,)
    # Peri-LN's embedding norm: x_0 = LayerNorm(e) has per-token variance s²/(s² + ε), s² = Var(e) over d_model
    e = (model.embed.W_E[batch["inputs"]] + model.pos_embed.W_pos[: batch["inputs"].shape[1]]).detach()
    s2 = e.var(-1, unbiased=False)
    assert abs(stats["variance"][0] - float((s2 / (s2 + cfg.norm_eps)).mean())) < 1e-12


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("change, field", [
    (dict(n_layers=(0,)), "n_layers"),
    (dict(n_layers=()), "n_layers"),
    (dict(seeds=0), "seeds"),
    (dict(snapshots=(6,)), "snapshots"),
    (dict(lr_seeds=0), "lr_seeds"),
    (dict(lr_steps=-1), "lr_steps"),
])
def test_bad_sizes_are_refused_naming_the_field(change, field):
    with pytest.raises(ConfigError) as err:
        dataclasses.replace(TINY, **change)
    assert err.value.field_name == field


def test_depth_zero_and_mix_fraction_outside_the_unit_interval_are_refused():
    with pytest.raises(ConfigError, match=r"n_layers=0 is not allowed: a positive integer"):
        experiments.training_run_config(TINY, "pre", 0, 1e-2, 0)
    with pytest.raises(ConfigError, match=r"mix_alpha=1.5 is not allowed: a finite fraction in \[0, 1\]"):
        experiments.training_run_config(TINY, "mix", 2, 1e-2, 0).model.replace(mix_alpha=1.5)


@pytest.mark.parametrize("override, shown", [
    ("model.n_layers=0", "model.n_layers=0 is not allowed: a positive integer"),
    ("model.mix_alpha=-0.5", "model.mix_alpha=-0.5 is not allowed: a finite fraction in [0, 1]"),
    ("model.norm_placement=middle", "one of 'none', 'post', 'pre', 'peri', 'mix'"),
])
def test_the_command_line_refuses_bad_depth_and_mix_fraction(override, shown, capsys):
    assert main(["show-config", "variance_train", override]) == 2
    err = capsys.readouterr().err
    assert shown in err and "Traceback" not in err


def test_sweeps_list_distinct_members_with_snapshots_at_the_largest_depth():
    depth = experiments.DEPTH_SWEEP.members("tiny")
    # 5 placements × 2 seeds × (final + 1 snapshot) at the one tiny depth
    assert len(depth) == 5 * 2 * 2 and sum(c.name.endswith("-t2") for c in depth) == 10
    lr = experiments.LR_SWEEP.members("tiny")
    # Post/Pre/Peri-LN × the tiny lrs × lr_seeds, under their own names (lr_steps may differ from steps)
    tiny = TINY
    assert len(lr) == len({c.config_hash() for c in lr}) == 3 * len(tiny.lrs) * tiny.lr_seeds
    assert {c.model.norm_placement for c in lr} == set(experiments.LR_PLACEMENTS)
    assert all(c.name.startswith("variance_train_lr-") and c.train.steps == tiny.lr_steps for c in lr)
    assert all(c.optim.schedule == "constant" for c in depth + lr)  # what makes prefix runs exact
    assert all(c.model.init == "fan_in" for c in depth + lr)  # out of Peri-LN's ε regime

