"""The sink-task study (theorybench.studies.variance: the sink sweep in experiments, sink_statistics,
its two figures): the variants are the models they name, the sweep's snapshot members are exactly
the prefix runs the figures read, the per-model measurements give hand-computed answers on planted models,
and claims about trained models are not decided on undertrained runs."""

import dataclasses
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from test_studies import render_tiny
from theorybench.studies.variance import (experiments, sink_growth, sink_massive_activations, sink_statistics,
                                          statistics)
from theorybench.studies.variance.sizes import SINK_SIZES
from toy_models import Transformer
from toy_models.config import ConfigError

TINY = SINK_SIZES["tiny"]


def test_variants_are_the_models_they_name():
    T = TINY.seq_len
    cfgs = {v: experiments.sink_run_config(TINY, v, 0).resolved_model() for v in experiments.SINK_VARIANTS}
    assert {v: c.norm_placement for v, c in cfgs.items()} == {"pre": "pre", "peri": "peri", "mix": "mix",
                                                               "pre_clip": "pre", "pre_gate": "pre"}
    assert cfgs["pre_clip"].clip_gamma == -experiments.CLIP_ALPHA / T and cfgs["pre_clip"].clip_zeta == 1.0
    assert cfgs["pre_gate"].attn_gate and not cfgs["pre"].attn_gate and not cfgs["pre"].clipped_softmax
    assert cfgs["mix"].n_post_layers == 1  # α = 0.25 at depth 4: one Post-LN block
    assert all(c.init == "fan_in" for c in cfgs.values())
    with pytest.raises(ConfigError, match="variant='post_clip'"):
        experiments.sink_model_fields(TINY, "post_clip")


def test_snapshot_members_are_exactly_the_prefix_runs_the_figures_read():
    """model_at(cfg, s) builds the prefix config from the full run's config; if it differed from the sweep's
    member in any field (log_every, ...), the figure would train a second, unswept run."""
    members = experiments.sink_members("tiny")
    hashes = {c.config_hash() for c in members}
    assert len(hashes) == len(members) == TINY.seeds * (len(experiments.SINK_VARIANTS) + 2 * len(TINY.snapshots))
    for variant in experiments.SNAPSHOT_VARIANTS:
        full = experiments.sink_run_config(TINY, variant, 1)
        for s in TINY.snapshots:
            prefix = dataclasses.replace(full, name=f"{full.name}-t{s}", train=dataclasses.replace(
                full.train, steps=s, eval_every=s, checkpoint_every=s))
            assert prefix.config_hash() in hashes


def _model(**changes):
    cfg = experiments.sink_run_config(TINY, "pre", 0).resolved_model().replace(dtype="float64", **changes)
    return Transformer(cfg)


def test_bos_ratio_sees_a_planted_outlier_on_bos_only():
    model = _model()
    batch = sink_statistics.sink_probe_batch(TINY)
    with torch.no_grad():
        model.embed.W_E[0, 3] = 1e4  # BOS's embedding: one huge coordinate in x_0 at position 0 only
    out = sink_statistics.sink_statistics(model, batch)
    x0 = (model.embed.W_E[batch["inputs"]] + model.pos_embed.W_pos[: TINY.seq_len]).detach()
    median = float(x0.detach().abs().median())
    assert out["bos_ratio"][0] == pytest.approx(float(x0[:, 0].abs().max()) / median, rel=1e-12)
    assert out["bos_ratio"][0] > 1e3 and out["other_ratio"][0] < 100
    assert out["max_abs"][0] == pytest.approx(float(x0.abs().max()), rel=1e-12)


def test_sink_mass_of_uniform_attention_is_the_mean_of_one_over_q_plus_one():
    """W_Q = W_K = 0: every score 0, causal attention uniform over keys 0 … q, so the BOS mass of query q is
    1/(q + 1); the probe averages over queries 1 … T − 1 (query 0 sees only BOS and is left out)."""
    model = _model(attn_bias=False)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.W_Q.zero_()
            block.attn.W_K.zero_()
    T = TINY.seq_len
    out = sink_statistics.sink_statistics(model, sink_statistics.sink_probe_batch(TINY))
    want = np.mean([1 / (q + 1) for q in range(1, T)])
    np.testing.assert_allclose(out["sink_mass"], want, rtol=1e-12)
    assert out["sink_mass"].shape == out["value_ratio"].shape == out["angular"].shape == (TINY.n_layers,)


def test_growth_and_deep_half():
    # log(e) − log(1): one log, correctly rounded to within 1 ulp of 1 (2.2e-16); rtol 1e-15 leaves ~4×.
    np.testing.assert_allclose(statistics.growth_from_init([[math.e, 1.0]], [[1.0, math.e]]), [[1.0, -1.0]], rtol=1e-15)
    assert statistics.deep_half(np.array([[1.0, 2.0, 3.0, 5.0]]))[0] == 4.0  # blocks 2, 3 of 4
    assert statistics.deep_half(np.array([1.0, 2.0, 3.0]))[()] == 2.5  # blocks 1, 2 of 3
    assert statistics.log_spaced(100, (3, 10)) == (0, 3, 10, 100)


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("THEORYBENCH_RUNS", str(tmp_path_factory.mktemp("variance_sinks_runs")))
        results = {name: render_tiny(name, mp)[1] for name in ("variance_sink_growth", "variance_sink_massive_activations")}
    for result in results.values():
        plt.close(result.figure)  # no figure left open for later tests
    return results


def test_tiny_runs_are_undertrained_so_nothing_is_decided(tiny_results):
    """6 steps cannot learn the copy rule (eval copy accuracy far below 0.9): every criterion of these
    trained-model claims must be not_measured with the reason, so the ledger says inconclusive."""
    declared = {"variance_sink_growth": sink_growth.GROWTH_CLAIMS, "variance_sink_massive_activations": sink_massive_activations.MASSIVE_CLAIMS}
    for name, result in tiny_results.items():
        keys = {c.key for claim in declared[name] for c in claim.criteria}
        assert set(result.measured) == keys
        for key in keys:
            m = result.measured[key]
            assert not m.measured and "undertrained" in m.note, (key, m)
