"""The function-class figures (Garg et al., "What Can Transformers Learn In-Context?", figure 4): their
experiments, the baselines' error curves on the figure's prompts, and the claim measurements."""

import numpy as np
import pandas as pd
import pytest
import torch

from theory.icl.predictors import Prediction
from theorybench import registry
from theorybench.claims import judge_all
from theorybench.studies.icl import decision_tree, relu_network, sparse_linear
from theorybench.studies.icl import function_classes as C
from theorybench.studies.icl.experiments import CLASS_SWEEPS, CLASSES, class_experiment
from theorybench.studies.icl.sizes import FUNCTION_CLASSES

CLAIMS = {m.CLS: m.CLAIMS for m in (sparse_linear, decision_tree, relu_network)}


@pytest.mark.parametrize("cls", CLASSES)
def test_full_scale_keeps_the_papers_sizes(cls):
    cfg = class_experiment(cls, "full")
    assert (cfg.task.d, cfg.model.n_layers, cfg.model.d_model, cfg.model.n_heads) == (20, 12, 256, 8)
    assert cfg.task.n_points == (40 if cls == "sparse_linear" else 100)
    assert cfg.task.curriculum_every == 2000 and cfg.task.curriculum_d_start == 5
    assert cfg.task.task_name == f"icl_{cls}" and cfg.train.steps == 500_000
    if cls == "sparse_linear":
        assert cfg.task.sparsity == 3
    if cls == "decision_tree":
        assert cfg.task.depth == 4
    if cls == "relu_network":
        assert cfg.task.hidden == 100


@pytest.mark.parametrize("scale", ["tiny", "quick", "medium", "full"])
def test_every_scale_has_every_class_with_windows_on_its_grid(scale):
    for cls in CLASSES:
        size = FUNCTION_CLASSES[scale].of(cls)
        lo, hi = size.window
        grid = np.array(size.grid)
        assert grid.max() == size.n_points and ((grid >= lo) & (grid <= hi)).sum() >= 2
        assert len(CLASS_SWEEPS[cls].members(scale)) == FUNCTION_CLASSES[scale].seeds


def test_baseline_errors_are_normalized_squared_errors_at_the_next_point():
    """A predictor that returns x_q's first coordinate: its error at k examples must be (x_{k+1,0} − y_{k+1})²/m2."""
    g = torch.Generator().manual_seed(0)
    X, x_q = torch.randn(5, 4, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    y, y_q = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    batch = dict(X=X, y=y, x_query=x_q, targets=torch.cat([y, y_q[:, None]], 1))
    errs = C._baseline_errors(batch, {"first": lambda X_, y_, q: Prediction(q[:, 0], None)}, (1, 4), 2.0)["first"]
    assert np.allclose(errs[:, 0], ((X[:, 1, 0] - y[:, 1]) ** 2 / 2).numpy(), rtol=0, atol=1e-15)
    assert np.allclose(errs[:, 1], ((x_q[:, 0] - y_q) ** 2 / 2).numpy(), rtol=0, atol=1e-15)


def _synthetic(cls, model_offset, seeds=3):
    """Decided-scale data: baselines constant in N; the transformer = the best strong baseline + offset
    (plus a small per-seed spread), at every N."""
    size = FUNCTION_CLASSES["medium"].of(cls)
    grid = np.array(size.grid)
    refs = {name: np.full(len(grid), 0.5 + 0.1 * i) for i, name in enumerate(C.class_baselines(cls, size))}
    best = min(v[0] for n, v in refs.items() if n.startswith(C.STRONG[cls]))
    model = np.array([np.full(size.n_points + 1, best + model_offset + 0.001 * s) for s in range(seeds)])
    return dict(model=model, refs=refs, grid=grid, size=size, decides=True, adequacy="")


@pytest.mark.parametrize("cls", CLASSES)
def test_a_transformer_at_the_best_baseline_reproduces_both_claims(cls):
    data = _synthetic(cls, model_offset=0.0)
    # Every weak baseline must be worse than the best strong one for the synthetic "beats weak" to hold.
    weak_min = min(data["refs"][w][0] for w in C.WEAK[cls])
    assert weak_min > data["model"].max()
    verdicts = judge_all(CLAIMS[cls], C.measurements(cls, data), f"icl_{cls}")
    assert [v.verdict for v in verdicts] == ["reproduced", "reproduced"]


@pytest.mark.parametrize("cls", CLASSES)
def test_a_transformer_far_above_the_best_baseline_fails_the_match(cls):
    data = _synthetic(cls, model_offset=3 * C.MARGIN)
    measured = C.measurements(cls, data)
    assert measured[f"{cls}_gap_best"].value == pytest.approx(3 * C.MARGIN + 0.001, abs=1e-12)
    assert judge_all(CLAIMS[cls], measured, f"icl_{cls}")[0].verdict == "not reproduced"


def test_only_the_window_counts():
    """The transformer is bad outside the window only: the match must still hold."""
    data = _synthetic("relu_network", model_offset=0.0)
    lo, hi = data["size"].window
    outside = [n for n in range(data["size"].n_points + 1) if not lo <= n <= hi]
    data["model"][:, outside] += 10.0
    assert judge_all(CLAIMS["relu_network"], C.measurements("relu_network", data))[0].verdict == "reproduced"


@pytest.mark.parametrize("cls", CLASSES)
def test_undertrained_scales_measure_nothing_and_stay_inconclusive(cls):
    data = _synthetic(cls, model_offset=0.0)
    data["decides"] = False
    measured = C.measurements(cls, data)
    assert all(not m.measured for m in measured.values())
    assert {v.verdict for v in judge_all(CLAIMS[cls], measured)} == {"inconclusive"}


@pytest.mark.parametrize("cls", CLASSES)
def test_tiny_render_measures_every_declared_criterion(cls):
    spec = registry.get_figure(f"icl_{cls}")
    result = spec.make("tiny")
    verdicts = judge_all(spec.claims, result.measured, spec.name)  # raises if a criterion went unmeasured
    assert {v.verdict for v in verdicts} == {"inconclusive"}


def _history(losses):
    """A trainer metrics table: eval rows every 100 steps (train-only rows in between carry NaN)."""
    rows = []
    for i, loss in enumerate(losses, start=1):
        rows += [dict(step=100 * i - 50, train_loss=1.0, eval_mse_all_prefixes=np.nan),
                 dict(step=100 * i, train_loss=1.0, eval_mse_all_prefixes=loss)]
    return pd.DataFrame(rows)


def test_training_adequacy_flags_the_plateau_and_a_run_still_improving():
    flat = _history([2.0, 1.0, 0.5, 0.41, 0.40, 0.40, 0.40, 0.40])      # last quarter: 0.40 → 0.40
    falling = _history([2.0, 1.8, 1.6, 1.4, 1.2, 1.0, 0.8, 0.6])        # last quarter: 1.0 → 0.6, −40%
    trained = np.array([[1.0, 0.5, 0.2, 0.25], [1.0, 0.4, 0.1, 0.1]])  # a rise of 0.05 < RISE_SLACK: noise
    assert C.training_adequacy(trained, [flat, flat], 1) == ""
    assert "seed 1 held-out loss still fell 40%" in C.training_adequacy(trained, [flat, falling], 1)
    on_plateau = np.array([[1.0, 1.0, 0.95, 0.95], [1.0, 0.4, 0.1, 0.1]])
    assert "seed 0 error at N max 0.950" in C.training_adequacy(on_plateau, [flat, flat], 1)
    rising = np.array([[1.0, 0.3, 0.5, 0.6], [1.0, 0.4, 0.1, 0.1]])  # best 0.3 at N = 1, 0.6 at N max
    assert "seed 0 error rises with N: 0.300 → 0.600" in C.training_adequacy(rising, [flat, flat], 1)
    assert C.training_adequacy(rising, [flat, flat], 2) == ""  # the rise starts before the window


@pytest.mark.parametrize("cls", CLASSES)
def test_an_undertrained_run_at_a_deciding_scale_is_inconclusive(cls):
    data = _synthetic(cls, model_offset=3 * C.MARGIN)  # would fail the match if it were judged
    data["adequacy"] = "seed 0 error at N max 0.950 > 0.9 (on the plateau)"
    measured = C.measurements(cls, data)
    assert all("undertrained" in m.note for m in measured.values())
    assert {v.verdict for v in judge_all(CLAIMS[cls], measured)} == {"inconclusive"}


@pytest.mark.parametrize("cls", CLASSES)
def test_experiment_is_the_first_sweep_member_and_seeds_differ(cls):
    registry.load_studies()
    members = registry.get_sweep(f"icl_{cls}_seeds").members("medium")
    assert registry.get_experiment(f"icl_{cls}_transformer").build("medium").config_hash() == members[0].config_hash()
    assert [m.seed for m in members] == list(range(FUNCTION_CLASSES["medium"].seeds))
    cfg = members[0].resolved()
    assert cfg.model.attention == "softmax" and cfg.model.attention_dir == "causal"
    assert cfg.model.n_ctx == 2 * cfg.task.n_points + 1 and cfg.task.curriculum_every is not None
