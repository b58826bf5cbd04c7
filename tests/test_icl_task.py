"""The in-context regression task: data law, both tokenizations, pools, loss and config errors."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from toy_models import Transformer, TransformerConfig
from toy_models.tasks.base import TASKS, Task, model_inputs
from toy_models.tasks.icl_regression import ICLRegressionConfig

F64 = torch.float64


def _batch(B=4, seed=0, **kw):
    task = ICLRegressionConfig(**kw).build()
    return task, task.sample(B, torch.Generator().manual_seed(seed))


def test_registered_and_implements_the_protocol():
    assert TASKS["icl_regression"] is ICLRegressionConfig
    assert isinstance(ICLRegressionConfig().build(), Task)


@pytest.mark.parametrize("tok", ["interleaved", "stacked"])
def test_labels_are_the_linear_function_of_the_inputs(tok):
    """Noiseless, float64: y = Xw up to the d-term dot product's rounding (~d·u); bound 1e-13."""
    _, b = _batch(d=3, n_points=6, tokenization=tok, dtype="float64")
    assert torch.allclose(b["y"], torch.einsum("bnd,bd->bn", b["X"], b["w"]), rtol=0, atol=1e-13)
    assert torch.allclose(b["y_query"], (b["x_query"] * b["w"]).sum(-1), rtol=0, atol=1e-13)


def test_interleaved_tokens_layout_and_model_fields():
    task, b = _batch(d=3, n_points=4, tokenization="interleaved")
    assert task.model_fields() == {"input_kind": "continuous", "d_input": 3, "n_ctx": 9, "d_vocab_out": 1}
    inp = b["inputs"]
    assert inp.shape == (4, 9, 3)
    assert torch.equal(inp[:, 0:8:2], b["X"]) and torch.equal(inp[:, 8], b["x_query"])
    assert torch.equal(inp[:, 1:8:2, 0], b["y"]) and (inp[:, 1:8:2, 1:] == 0).all()
    assert torch.equal(b["targets"], torch.cat([b["y"], b["y_query"][:, None]], 1))
    assert "attn_mask" not in b


def test_stacked_tokens_layout_and_context_only_mask():
    task, b = _batch(d=3, n_points=4, tokenization="stacked")
    assert task.model_fields() == {"input_kind": "continuous", "d_input": 4, "n_ctx": 5, "d_vocab_out": 1}
    inp = b["inputs"]
    assert torch.equal(inp[:, :4, :3], b["X"]) and torch.equal(inp[:, :4, 3], b["y"])
    assert torch.equal(inp[:, 4, :3], b["x_query"]) and (inp[:, 4, 3] == 0).all()
    mask = b["attn_mask"]
    assert mask.shape == (4, 5, 5) and mask[:, :, :4].all() and not mask[:, :, 4].any()
    assert torch.equal(b["targets"], b["y_query"])


def test_same_generator_seed_same_batch_and_dtype():
    _, a = _batch(seed=3, noise_std=0.2)
    _, b = _batch(seed=3, noise_std=0.2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["inputs"].dtype == torch.float32


def test_noise_has_the_configured_variance():
    """Residuals y − Xw ~ N(0, σ²): the sample variance of n = 8000·11 values has relative SE √(2/n) ≈
    0.005; 4·SE bound."""
    _, b = _batch(B=8000, d=2, n_points=10, noise_std=0.5, dtype="float64")
    r = torch.cat([b["y"] - torch.einsum("bnd,bd->bn", b["X"], b["w"]),
                   (b["y_query"] - (b["x_query"] * b["w"]).sum(-1))[:, None]], 1)
    n = r.numel()
    assert abs(float(r.var()) / 0.25 - 1) <= 4 * math.sqrt(2 / n)


@pytest.mark.parametrize("cov", [(0.5, 2.0, 1.0), ((2.0, 0.6, 0.0), (0.6, 1.0, 0.3), (0.0, 0.3, 0.5))])
def test_inputs_have_the_configured_covariance(cov):
    """Entry (i, j) of the sample covariance of n Gaussian vectors has SE √((Σ_ii Σ_jj + Σ_ij²)/n); 4·SE."""
    task, b = _batch(B=4000, d=3, n_points=4, x_cov=cov, dtype="float64")
    x = b["X"].reshape(-1, 3)
    S, C, n = x.T @ x / len(x), task.cov, len(x)
    se = ((torch.diag(C)[:, None] * torch.diag(C)[None, :] + C**2) / n).sqrt()
    assert (torch.abs(S - C) <= 4 * se).all()


def test_uniform_inputs_lie_in_the_cube_with_covariance_a_third():
    task, b = _batch(B=2000, d=3, n_points=5, x_dist="uniform", dtype="float64")
    assert (b["X"].abs() <= 1).all()
    assert torch.equal(task.cov, torch.eye(3, dtype=F64) / 3)
    # Var(x²) for U(−1,1) is 1/5 − 1/9 = 4/45: SE of the mean of n squares is √(4/45/n); 4·SE.
    x2 = (b["X"] ** 2).reshape(-1)
    assert abs(float(x2.mean()) - 1 / 3) <= 4 * math.sqrt(4 / 45 / len(x2))


def test_task_pool_is_fixed_by_its_seed_and_tasks_come_from_it():
    task, b = _batch(B=64, d=4, n_tasks=3, pool_seed=7, dtype="float64")
    again = ICLRegressionConfig(d=4, n_tasks=3, pool_seed=7).build()
    other = ICLRegressionConfig(d=4, n_tasks=3, pool_seed=8).build()
    assert torch.equal(task.pool, again.pool) and not torch.equal(task.pool, other.pool)
    dist = torch.cdist(b["w"], task.pool)
    assert (dist.min(-1).values == 0).all()
    assert len(dist.argmin(-1).unique()) == 3  # 64 uniform draws from 3 miss one with prob 3·(2/3)^64 ≈ 2e-11


@pytest.mark.parametrize("tok", ["interleaved", "stacked"])
def test_loss_is_zero_for_exact_predictions_and_metrics_are_normalized(tok):
    task, b = _batch(d=4, n_points=5, tokenization=tok)
    T = b["inputs"].shape[1]
    out = torch.zeros(4, T, 1)
    if tok == "interleaved":
        out[:, 0::2, 0] = b["targets"]
    else:
        out[:, -1, 0] = b["targets"]
    assert float(task.loss(out, b)) == 0.0
    zero = torch.zeros(4, T, 1)
    m = task.metrics(zero, b)
    assert m["nse"] == pytest.approx(m["mse"] / 4, rel=1e-12)
    assert m["mse"] == pytest.approx(float((b["y_query"] ** 2).mean()), rel=1e-6)


@pytest.mark.parametrize("tok,attention_dir", [("interleaved", "causal"), ("stacked", "bidirectional")])
def test_a_model_built_from_the_task_fields_runs_on_its_batches(tok, attention_dir):
    task, b = _batch(d=3, n_points=5, tokenization=tok)
    cfg = TransformerConfig(n_layers=1, d_model=16, n_heads=2, attention_dir=attention_dir, **task.model_fields())
    out = Transformer(cfg)(b["inputs"], **model_inputs(b))
    assert out.shape == (4, b["inputs"].shape[1], 1)
    assert torch.isfinite(task.loss(out, b))


def test_config_round_trips_through_a_json_like_dict():
    cfg = ICLRegressionConfig(d=2, x_cov=((1.0, 0.2), (0.2, 1.0)), n_tasks=4)
    d = cfg.to_dict()
    d["x_cov"] = [list(r) for r in d["x_cov"]]  # what JSON gives back
    assert ICLRegressionConfig(**d) == cfg and hash(ICLRegressionConfig(**d)) == hash(cfg)


@pytest.mark.parametrize("kw,field", [
    ({"n_points": 0}, "n_points=0"), ({"n_tasks": 0}, "n_tasks=0"), ({"noise_std": -1.0}, "noise_std"),
    ({"tokenization": "bogus"}, "tokenization"), ({"d": 2, "x_cov": (1.0, -1.0)}, "positive definite"),
    ({"d": 2, "x_cov": (1.0, 1.0, 1.0)}, "x_cov"), ({"x_dist": "uniform", "x_cov": (1.0,) * 5}, "x_cov"),
])
def test_bad_config_is_refused_with_the_field_named(kw, field):
    with pytest.raises(ValueError, match=field):
        ICLRegressionConfig(**kw)


# ---------------------------------------------------------------------------------------- curriculum
def _curriculum(**kw):
    base = dict(d=5, n_points=11, curriculum_every=100, curriculum_d_start=2, curriculum_n_start=3)
    return ICLRegressionConfig(**{**base, **kw})


def test_curriculum_schedule_grows_by_stage_and_stops_at_the_final_size():
    cfg = _curriculum(curriculum_d_inc=1, curriculum_n_inc=2)
    assert cfg.curriculum_sizes(1) == (2, 3) and cfg.curriculum_sizes(100) == (2, 3)  # stage 0: steps 1 … 100
    assert cfg.curriculum_sizes(101) == (3, 5)
    assert cfg.curriculum_sizes(301) == (5, 9)
    assert cfg.curriculum_sizes(10**6) == (5, 11) == cfg.curriculum_sizes(None)
    only_n = ICLRegressionConfig(d=5, n_points=11, curriculum_every=10, curriculum_n_start=1)
    assert only_n.curriculum_sizes(1) == (5, 1)
    assert ICLRegressionConfig(d=5, n_points=11).curriculum_sizes(1) == (5, 11)  # no curriculum


@pytest.mark.parametrize("tok", ["interleaved", "stacked"])
def test_stepped_batches_have_the_stage_length_and_zero_inactive_coordinates(tok):
    task = _curriculum(tokenization=tok, dtype="float64").build()
    task.set_step(150)  # stage 1: 3 active dimensions, 5 examples
    b = task.sample(6, torch.Generator().manual_seed(0))
    assert b["X"].shape == (6, 5, 5) and b["y"].shape == (6, 5)
    assert (b["X"][..., 3:] == 0).all() and (b["x_query"][..., 3:] == 0).all()
    assert (b["X"][..., :3] != 0).all()
    assert b["inputs"].shape[1] == (11 if tok == "interleaved" else 6)
    assert b["inputs"].shape[1] <= task.model_fields()["n_ctx"]
    assert torch.allclose(b["y"], torch.einsum("bnd,bd->bn", b["X"][..., :3], b["w"][..., :3]), rtol=0, atol=1e-13)
    task.set_step(None)  # evaluation: the final size
    assert task.sample(2, torch.Generator().manual_seed(0))["X"].shape == (2, 11, 5)


def test_unstepped_curriculum_warns_once():
    from toy_models.tasks.icl_regression import UNSTEPPED_DRAWS_BEFORE_WARNING, CurriculumNotSteppedWarning

    task = _curriculum().build()
    gen = torch.Generator().manual_seed(0)
    for _ in range(UNSTEPPED_DRAWS_BEFORE_WARNING):
        task.sample(1, gen)  # evaluation-sized draws: no warning yet
    with pytest.warns(CurriculumNotSteppedWarning, match="set_step"):
        task.sample(1, gen)
    stepped = _curriculum().build()
    stepped.set_step(1)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(UNSTEPPED_DRAWS_BEFORE_WARNING + 2):
            stepped.sample(1, gen)


@pytest.mark.parametrize("kw,field", [
    ({"curriculum_d_start": 0}, "curriculum_d_start=0"), ({"curriculum_d_start": 6}, "curriculum_d_start=6"),
    ({"curriculum_n_start": 12}, "curriculum_n_start=12"), ({"curriculum_every": 0}, "curriculum_every=0"),
    ({"curriculum_d_inc": 0}, "curriculum_d_inc=0"),
    ({"curriculum_every": None}, "curriculum_every=None"),
    ({"curriculum_d_start": None, "curriculum_n_start": None}, "curriculum_every=100"),
])
def test_bad_curriculum_is_refused_with_the_field_named(kw, field):
    with pytest.raises(ValueError, match=field):
        _curriculum(**kw)


def test_bad_step_is_refused():
    task = _curriculum().build()
    with pytest.raises(ValueError, match="step=0"):
        task.set_step(0)


def test_curriculum_follows_the_schedule_under_the_trainer(tmp_path, monkeypatch):
    """The trainer calls ``task.set_step(step)`` before each training batch: evaluation batches stay at
    the final size, training batch s has the stage sizes of step s."""
    from theorybench.experiment import ExperimentConfig, TrainConfig
    from theorybench.runs import get_or_train
    from toy_models.tasks.icl_regression import ICLRegressionTask

    original_sample = ICLRegressionTask.sample
    seen = []

    def recording(self, batch_size, generator):
        batch = original_sample(self, batch_size, generator)
        seen.append((self.step, int((batch["X"].abs().sum((0, 1)) > 0).sum()), batch["X"].shape[1]))
        return batch

    monkeypatch.setattr(ICLRegressionTask, "sample", recording)
    task = ICLRegressionConfig(d=4, n_points=6, curriculum_every=2, curriculum_d_start=2, curriculum_n_start=2)
    cfg = ExperimentConfig(name="icl_curriculum", task=task,
                           model=TransformerConfig(n_layers=1, d_model=8, n_heads=2),
                           train=TrainConfig(steps=6, batch_size=4, eval_every=6, eval_batches=2,
                                             checkpoint_every=6, log_every=6))
    get_or_train(cfg, tmp_path, progress=False)
    assert seen[:2] == [(None, 4, 6), (None, 4, 6)]  # the evaluation set, drawn before step 1
    assert seen[2:] == [(1, 2, 2), (2, 2, 2), (3, 3, 4), (4, 3, 4), (5, 4, 6), (6, 4, 6)]


@settings(max_examples=25, deadline=None)
@given(d=st.integers(1, 9), small=st.integers(1, 40), extra=st.integers(1, 5000), seed=st.integers(0, 2**31 - 1))
def test_task_pools_are_nested_for_every_size(d, small, extra, seed):
    """The pool of M tasks is the first M rows of the pool of M' > M, for every M (also M·d < 16, where a
    single ``randn(M, d)`` takes another path, and across the 4096-value block boundary): a sweep over M
    adds tasks to one pool instead of redrawing it. A pool drawn by one ``randn(M, d)`` fails this for
    M·d < 16 and whenever M·d is not a multiple of 16."""
    a = ICLRegressionConfig(d=d, n_tasks=small, pool_seed=seed).build().pool
    b = ICLRegressionConfig(d=d, n_tasks=small + extra, pool_seed=seed).build().pool
    assert a.shape == (small, d) and b.shape == (small + extra, d)
    assert torch.equal(a, b[:small])
