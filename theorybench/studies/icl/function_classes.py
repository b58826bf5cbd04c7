"""In-context learning beyond linear regression: sparse linear functions, decision trees and two-layer
ReLU networks, each beside its strong baseline.

"What Can Transformers Learn In-Context? A Case Study of Simple Function Classes" (Garg et al. 2022,
their figure 4): transformers trained on interleaved prompts of these classes match or beat the
task-specific learners — the Lasso on sparse linear functions, greedy tree learning and XGBoost on
decision trees, a two-layer network trained by gradient descent on ReLU networks — and beat the
generic ones (least squares, averaging, 3-NN).

Per class: a sweep of softmax transformers over seeds (``icl_transformer.transformer_experiment``'s
model and optimizer, with the class's task: ``toy_models.tasks.{sparse_linear, decision_tree,
relu_network}``), trained through the run store; a figure ``icl_<class>`` of the normalized error
(ŷ − y)²/E[y²] (Garg et al.'s normalization: s, 1 and d; predicting 0 scores 1) against the number of
in-context examples N, the transformer (mean ± std over seeds, every N) and the baselines (on a grid
of N) on the same held-out prompts.

Claims: criteria fixed here, before any run. A gap "transformer − baseline" is the per-seed mean over
a window of N of the difference of normalized errors, with a t interval over seeds; the best baseline
is the one with the lowest mean error over the window. Tiny and quick models are undertrained by
design (sized for the test suite and ``make figures``), so their criteria are ``not_measured``. At
medium and full a run must also show it is trained before it is judged (``training_adequacy``): every
seed has left the predict-zero plateau (query error at N max ≤ ``PLATEAU_LEVEL``), its error does not
rise with N (the Bayes predictor's expected error never does: error at N max ≤ its lowest error from the
window's start on, plus ``RISE_SLACK``), and its held-out loss fell by at most ``STILL_IMPROVING``
(relative) over the last quarter of training; otherwise the criteria are ``not_measured`` with the
numbers that failed, i.e. inconclusive, not a failure.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import numpy as np
import torch

from theorybench.claims import Claim, Criterion, not_measured, t_interval
from theorybench.registry import ExperimentSpec, FigureResult, FigureSpec, SweepSpec, register_experiment
from theorybench.registry import register_figure, register_sweep
from theorybench.threads import single_thread

SOURCE = "What Can Transformers Learn In-Context? A Case Study of Simple Function Classes, Fig. 4"
MARGIN = 0.05  # "matches": within 5% of the trivial (predict-0) error of the best baseline, fixed before any run
PLATEAU_LEVEL = 0.9  # normalized query error at N max: 1 is predicting 0, the plateau an untrained model sits on
STILL_IMPROVING = 0.10  # relative fall of the held-out loss over the last quarter of training that marks a run as unfinished
# Rise of the error from its best N in the window to N max tolerated as sampling noise: ~2 standard errors of a
# mean over 300 prompts whose per-prompt normalized error has a standard deviation ≈ 1.
RISE_SLACK = 0.1
CLASSES = ("sparse_linear", "decision_tree", "relu_network")

# Per class: the task (d, N and the class's parameter), the model and training keys of
# ``icl_transformer`` (layers, width, heads, batch, steps, lr, warmup, init; curriculum = (every,
# d_start, d_inc, n_start, n_inc)), seeds, held-out prompts, the grid of N the baselines are run at, the
# claim windows [lo, hi] of N, and ``decides`` (whether this scale's models are trained enough to decide).
_TINY_MODEL = dict(layers=1, width=16, heads=2, batch=32, steps=20, lr=3e-3, warmup=2, init="fan_in")
_QUICK_MODEL = dict(layers=2, width=32, heads=4, batch=64, steps=500, lr=3e-3, warmup=25, init="fan_in")
# Medium: the size believed (not measured end to end on this machine) to decide the claims in ≈ 20 min per
# class on 2 free CPU cores: 3 seeds × 5000 steps of a 2-layer width-64 model, with a curriculum that
# starts at 2 active dimensions (without it, a sparse-linear pilot at d = 8 sat on the predict-zero plateau
# for 1000 steps; with it, it left the plateau after ~500).
_MEDIUM_MODEL = dict(layers=2, width=64, heads=4, batch=64, steps=5000, lr=3e-3, warmup=100, init="fan_in")
# Garg et al.: GPT-2 with 12 layers, width 256, 8 heads; Adam at 1e-4, batch 64, 500k steps.
_FULL_MODEL = dict(layers=12, width=256, heads=8, batch=64, steps=500_000, lr=1e-4, warmup=1000, init="fan_in")

SIZES = {
    "tiny": dict(
        sparse_linear=dict(d=3, N=6, sparsity=1, **_TINY_MODEL, grid=(1, 2, 3, 6), window=(2, 3)),
        decision_tree=dict(d=2, N=6, depth=1, **_TINY_MODEL, grid=(1, 3, 6), window=(3, 6)),
        relu_network=dict(d=2, N=6, hidden=4, **_TINY_MODEL, grid=(1, 3, 6), window=(3, 6)),
        seeds=2, eval_prompts=12, decides=False),
    "quick": dict(
        sparse_linear=dict(d=6, N=12, sparsity=2, **_QUICK_MODEL, grid=(1, 2, 3, 4, 5, 8, 12), window=(3, 5)),
        decision_tree=dict(d=4, N=24, depth=2, **_QUICK_MODEL, grid=(1, 4, 8, 16, 24), window=(12, 24)),
        relu_network=dict(d=3, N=24, hidden=20, **_QUICK_MODEL, grid=(1, 4, 8, 16, 24), window=(12, 24)),
        seeds=2, eval_prompts=100, decides=False),
    # Sparse-linear windows end below N = d: the claim is about the regime where least squares cannot
    # identify w and sparsity is what helps (at N ≥ d noiseless least squares is exact).
    "medium": dict(
        sparse_linear=dict(d=8, N=16, sparsity=2, **_MEDIUM_MODEL, curriculum=(200, 2, 1, 6, 2),
                           grid=(1, 2, 4, 5, 6, 7, 10, 16), window=(4, 7)),
        decision_tree=dict(d=5, N=24, depth=3, **_MEDIUM_MODEL, curriculum=(200, 2, 1, 8, 2),
                           grid=(1, 4, 8, 12, 16, 20, 24), window=(12, 24)),
        relu_network=dict(d=4, N=24, hidden=50, **_MEDIUM_MODEL, curriculum=(200, 2, 1, 8, 2),
                          grid=(1, 4, 8, 12, 16, 20, 24), window=(12, 24)),
        seeds=3, eval_prompts=300, decides=True),
    # The paper's sizes and curricula (points 11 → 41 by 2, or 26 → 101 by 5; dimensions 5 → 20 by 1;
    # every 2000 steps): a GPU's work.
    "full": dict(
        sparse_linear=dict(d=20, N=40, sparsity=3, **_FULL_MODEL, curriculum=(2000, 5, 1, 11, 2),
                           grid=(1, 3, 6, 10, 15, 19, 30, 40), window=(6, 19)),
        decision_tree=dict(d=20, N=100, depth=4, **_FULL_MODEL, curriculum=(2000, 5, 1, 26, 5),
                           grid=(1, 10, 25, 50, 75, 100), window=(50, 100)),
        relu_network=dict(d=20, N=100, hidden=100, **_FULL_MODEL, curriculum=(2000, 5, 1, 26, 5),
                          grid=(1, 10, 25, 50, 75, 100), window=(50, 100)),
        seeds=3, eval_prompts=1000, decides=True),
}


# ---------------------------------------------------------------------------------- runs
def class_task(cls: str, size: dict):
    """The task config of class ``cls`` at a class size dict (final size and optional curriculum)."""
    # Imports inside the builders here and below: ``theorybench list`` imports every study module at start-up.
    from toy_models.tasks.decision_tree import DecisionTreeConfig
    from toy_models.tasks.relu_network import ReluNetworkConfig
    from toy_models.tasks.sparse_linear import SparseLinearConfig

    curriculum = {}
    if size.get("curriculum"):
        every, d_start, d_inc, n_start, n_inc = size["curriculum"]
        curriculum = dict(curriculum_every=every, curriculum_d_start=d_start, curriculum_d_inc=d_inc,
                          curriculum_n_start=n_start, curriculum_n_inc=n_inc)
    common = dict(d=size["d"], n_points=size["N"], **curriculum)
    if cls == "sparse_linear":
        return SparseLinearConfig(sparsity=size["sparsity"], **common)
    if cls == "decision_tree":
        return DecisionTreeConfig(depth=size["depth"], **common)
    return ReluNetworkConfig(hidden=size["hidden"], **common)


def class_experiment(cls: str, scale: str, seed: int = 0):
    """The transformer of ``icl_transformer`` (same model, optimizer, schedule) on class ``cls``'s prompts."""
    from theorybench.studies.icl.common import transformer_experiment

    size = SIZES[scale][cls]
    # Built as the linear-regression experiment, then given this class's task: the model, optimizer and
    # schedule stay those of the Garg figure of ``icl.py`` by construction.
    base = transformer_experiment({k: v for k, v in size.items() if k != "curriculum"}, seed=seed,
                                  name=f"icl_{cls}_transformer")
    return dataclasses.replace(base, task=class_task(cls, size))


def _seeds(cls: str, scale: str):
    return [class_experiment(cls, scale, s) for s in range(SIZES[scale]["seeds"])]


LABELS = {"sparse_linear": "sparse linear", "decision_tree": "decision-tree", "relu_network": "two-layer ReLU network"}
SWEEPS = {}
for _cls in CLASSES:
    _first = partial(class_experiment, _cls, seed=0)
    _first.__doc__ = f"Softmax transformer on interleaved {LABELS[_cls]} prompts (Garg et al. 2022), seed 0."
    register_experiment(ExperimentSpec(f"icl_{_cls}_transformer", "icl", _first))
    _all = partial(_seeds, _cls)
    _all.__doc__ = f"The {LABELS[_cls]} transformer at every seed its figure averages."
    SWEEPS[_cls] = register_sweep(SweepSpec(f"icl_{_cls}_seeds", "icl", _all))


# ---------------------------------------------------------------------------------- baselines
def class_baselines(cls: str, size: dict) -> dict:
    """Label → ``fn(X, y, x_q) -> Prediction``: the baselines Garg et al. plot for the class, plus OMP."""
    from theory.icl import baselines_nn as NN
    from theory.icl import baselines_sparse as S
    from theory.icl import baselines_trees as T
    from theory.icl import predictors as P
    from theory.icl.references import knn_capped

    if cls == "sparse_linear":
        return {f"Lasso α = {S.GARG_LASSO_ALPHA:g}": S.lasso,
                f"OMP, {size['sparsity']} atoms": lambda X, y, q: S.omp(X, y, q, size["sparsity"]),
                "least squares": P.least_squares, "averaging": P.averaging, "3-NN": knn_capped(3)}
    if cls == "decision_tree":
        return {f"greedy tree, depth {size['depth']}": lambda X, y, q: T.greedy_tree(X, y, q, size["depth"]),
                "greedy tree, unlimited depth": lambda X, y, q: T.greedy_tree(X, y, q, None),
                "XGBoost": T.boosted_trees, "2-layer NN, GD": NN.two_layer_nn_gd,
                "least squares": P.least_squares, "3-NN": knn_capped(3)}
    return {"2-layer NN, GD": NN.two_layer_nn_gd, "least squares": P.least_squares, "3-NN": knn_capped(3),
            "averaging": P.averaging}


STRONG = {"sparse_linear": ("Lasso",), "decision_tree": ("greedy tree", "XGBoost"), "relu_network": ("2-layer NN",)}
WEAK = {"sparse_linear": ("least squares", "averaging", "3-NN"), "decision_tree": ("3-NN", "2-layer NN, GD"),
        "relu_network": ("least squares", "3-NN")}


def _baseline_errors(batch: dict, fns: dict, grid, second_moment: float) -> dict[str, np.ndarray]:
    """Normalized squared error per prompt of each baseline at every k in ``grid`` ([prompts, len(grid)]):
    at k examples the query is x_{k+1} (x_q at k = N)."""
    X, y = batch["X"].double(), batch["y"].double()
    xs = torch.cat([X, batch["x_query"].double()[:, None]], 1)
    targets = batch["targets"].double()
    out = {}
    for name, fn in fns.items():
        cols = [((fn(X[:, :k], y[:, :k], xs[:, k]).y_hat - targets[:, k]) ** 2) for k in grid]
        out[name] = (torch.stack(cols, 1) / second_moment).numpy()
    return out


def measure(cls: str, scale: str) -> dict:
    """Train (or reuse) every seed, then on one set of held-out prompts: each seed's normalized error at
    every N ([seeds, N + 1]) and each baseline's at the grid ({name: [len(grid)]})."""
    from theorybench.runstore import get_or_train
    from theorybench.studies.icl.common import eval_batch, model_prefix_predictions

    sizes, size = SIZES[scale], SIZES[scale][cls]
    with single_thread():
        runs = [get_or_train(cfg) for cfg in SWEEPS[cls].members(scale)]
        task_cfg = runs[0].config.task
        batch = eval_batch(task_cfg, sizes["eval_prompts"])
        m2 = task_cfg.build().label_second_moment()
        targets = batch["targets"].double()
        model = np.stack([((model_prefix_predictions(r.load_model(), batch) - targets) ** 2 / m2).mean(0).numpy()
                          for r in runs])
        refs = _baseline_errors(batch, class_baselines(cls, size), size["grid"], m2)
    return dict(model=model, refs={k: v.mean(0) for k, v in refs.items()}, grid=np.array(size["grid"]),
                size=size, decides=sizes["decides"],
                adequacy=training_adequacy(model, [r.metrics for r in runs], size["window"][0]))


def training_adequacy(model: np.ndarray, histories: list, window_start: int) -> str:
    """'' if every seed is trained enough to be judged, else why not (module docstring): the query error
    at N max ≤ PLATEAU_LEVEL and ≤ RISE_SLACK above the seed's lowest error at N ≥ ``window_start``, and
    the held-out loss (``eval_mse_all_prefixes``) fell by at most STILL_IMPROVING over the last quarter."""
    problems = []
    for seed, (curve, hist) in enumerate(zip(model, histories)):
        if curve[-1] > PLATEAU_LEVEL:
            problems.append(f"seed {seed} error at N max {curve[-1]:.3f} > {PLATEAU_LEVEL} (on the plateau)")
        lowest = float(curve[window_start:].min())
        if curve[-1] > lowest + RISE_SLACK:
            problems.append(f"seed {seed} error rises with N: {lowest:.3f} → {curve[-1]:.3f} at N max")
        evals = hist.dropna(subset=["eval_mse_all_prefixes"])
        last = float(evals["eval_mse_all_prefixes"].iloc[-1])
        steps = evals["step"].to_numpy()
        before = float(evals["eval_mse_all_prefixes"].iloc[int(np.searchsorted(steps, 0.75 * steps[-1]))])
        if before > 0 and (before - last) / before > STILL_IMPROVING:
            problems.append(f"seed {seed} held-out loss still fell {(before - last) / before:.0%} over the last "
                            f"quarter ({before:.3f} → {last:.3f})")
    return "; ".join(problems)


# ---------------------------------------------------------------------------------- claims
def _claims(cls: str, statement_match: str, statement_weak: str) -> tuple[Claim, ...]:
    weak = WEAK[cls]
    return (
        Claim(key=f"{cls}_matches_best", statement=statement_match, source=SOURCE,
              criteria=(Criterion(key=f"{cls}_gap_best",
                                  quantity=f"transformer − best of {' / '.join(STRONG[cls])} normalized error, "
                                           "mean over the window of N (t interval over seeds)",
                                  op="<=", threshold=MARGIN),)),
        Claim(key=f"{cls}_beats_weak", statement=statement_weak, source=SOURCE,
              criteria=tuple(Criterion(key=f"{cls}_gain_{_key(w)}",
                                       quantity=f"{w} − transformer normalized error, mean over the window of N",
                                       op=">=", threshold=0.0) for w in weak)),
    )


def _key(label: str) -> str:
    return {"least squares": "ls", "averaging": "avg", "3-NN": "knn", "2-layer NN, GD": "nn_gd"}[label]


CLAIMS = {
    "sparse_linear": _claims(
        "sparse_linear",
        f"On s-sparse linear functions a trained transformer's error is within {MARGIN} (normalized) of the Lasso's",
        "… and below least squares, averaging and 3-NN while N is below d (sparsity is what it exploits)"),
    "decision_tree": _claims(
        "decision_tree",
        f"On random depth-k decision trees a trained transformer's error is within {MARGIN} (normalized) of the "
        "best of greedy tree learning and XGBoost, or below it",
        "… and below 3-NN and a two-layer network trained on the prompt"),
    "relu_network": _claims(
        "relu_network",
        f"On random two-layer ReLU networks a trained transformer's error is within {MARGIN} (normalized) of a "
        "two-layer network trained on the prompt by gradient descent",
        "… and below least squares and 3-NN"),
}


def measurements(cls: str, data: dict) -> dict:
    """A Measurement per criterion of the class's claims (``not_measured`` where the scale cannot decide)."""
    keys = [c.key for claim in CLAIMS[cls] for c in claim.criteria]
    if not data["decides"]:
        reason = (f"the {data['size']['steps']}-step model of this scale is undertrained by design; "
                  "medium and full decide")
        return {k: not_measured(reason) for k in keys}
    if data["adequacy"]:
        return {k: not_measured(f"undertrained: {data['adequacy']}") for k in keys}
    grid, (lo, hi) = data["grid"], data["size"]["window"]
    cols = (grid >= lo) & (grid <= hi)
    model = data["model"][:, grid[cols]]  # [seeds, window]
    refs = {name: curve[cols] for name, curve in data["refs"].items()}
    strong = {n: c for n, c in refs.items() if n.startswith(STRONG[cls])}
    best = min(strong, key=lambda n: strong[n].mean())
    out = {f"{cls}_gap_best": t_interval((model - strong[best]).mean(1), method=f"t interval over seeds (best: {best})")}
    for w in WEAK[cls]:
        out[f"{cls}_gain_{_key(w)}"] = t_interval((refs[w] - model).mean(1))
    return out


# ---------------------------------------------------------------------------------- figure
def _plot(ax, cls: str, data: dict) -> None:
    from theorybench.studies.icl.common import seed_band
    from theorybench.style import band

    size = data["size"]
    for name, curve in data["refs"].items():
        strong = name.startswith(STRONG[cls])
        ax.plot(data["grid"], curve, marker="o", ms=3, lw=1.6 if strong else 1.0, ls="-" if strong else "--",
                label=name)
    mean, std = seed_band(list(data["model"]))
    band(ax, np.arange(size["N"] + 1), mean, std, color="k",
         label=f"transformer ({len(data['model'])} seeds, mean ± std)")
    lo, hi = size["window"]
    ax.axvspan(lo, hi, color="0.9", zorder=0, label="claim window")
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set_ylim(0, 1.4)
    ax.set_xlabel("in-context examples N")
    ax.set_ylabel("normalized squared error  (ŷ − y)² / E[y²]")
    ax.legend(fontsize=6.5)


TITLES = {"sparse_linear": "sparse linear, d = {d}, s = {sparsity}", "decision_tree": "decision trees, d = {d}, depth {depth}",
          "relu_network": "2-layer ReLU networks, d = {d}, {hidden} units"}


def make(cls: str, scale: str) -> FigureResult:
    import matplotlib.pyplot as plt

    data = measure(cls, scale)
    size = data["size"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    _plot(ax, cls, data)
    ax.set_title(TITLES[cls].format(**size) + f"  ({size['layers']} layers, width {size['width']}, "
                                              f"{size['steps']} steps)", fontsize=9)
    N = size["N"]
    numbers = {"transformer error at N max (mean over seeds)": round(float(data["model"][:, N].mean()), 4)}
    numbers.update({f"{name} error at N max": round(float(curve[-1]), 4) for name, curve in data["refs"].items()})
    numbers["training steps"] = size["steps"]
    return FigureResult(fig, numbers=numbers, measured=measurements(cls, data))


CAPTIONS = {
    "sparse_linear": ("Transformers trained on interleaved prompts of s-sparse linear functions learn them in "
                      "context about as well as the Lasso, far better than least squares below N = d "
                      "('What Can Transformers Learn In-Context?', Garg et al. 2022, figure 4)."),
    "decision_tree": ("Transformers trained on prompts of random decision trees (sign-of-coordinate splits, "
                      "Gaussian leaves) match or beat greedy tree learning and XGBoost fit on the prompt "
                      "('What Can Transformers Learn In-Context?', Garg et al. 2022, figure 4)."),
    "relu_network": ("Transformers trained on prompts of random two-layer ReLU networks match a two-layer "
                     "network trained on the prompt by gradient descent, and beat least squares and 3-NN "
                     "('What Can Transformers Learn In-Context?', Garg et al. 2022, figure 4)."),
}

for _cls in CLASSES:
    _make = partial(make, _cls)
    _make.__module__ = __name__  # tests/test_studies.py finds SIZES through the maker's module
    register_figure(FigureSpec(name=f"icl_{_cls}", family="icl", claim=CAPTIONS[_cls], make=_make,
                               claims=CLAIMS[_cls]))
