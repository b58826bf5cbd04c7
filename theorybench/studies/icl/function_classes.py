"""In-context learning beyond linear regression: sparse linear functions, decision trees and two-layer
ReLU networks, each beside its strong baseline.

"What Can Transformers Learn In-Context? A Case Study of Simple Function Classes" (Garg et al. 2022,
their figure 4): transformers trained on interleaved prompts of these classes match or beat the
task-specific learners — the Lasso on sparse linear functions, greedy tree learning and XGBoost on
decision trees, a two-layer network trained by gradient descent on ReLU networks — and beat the
generic ones (least squares, averaging, 3-NN).

Per class: a sweep of softmax transformers over seeds (``experiments.transformer_experiment``'s
model and optimizer, with the class's task: ``toy_models.tasks.{sparse_linear, decision_tree,
relu_network}``), trained through the run store; a figure ``icl_<class>`` (its own module, here the
measuring, drawing and judging they share) of the normalized error
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

import numpy as np
import torch

from theory.icl import baselines_nn as NN
from theory.icl import predictors as P
from theory.icl.references import knn_capped
from theorybench.claims import Claim, Criterion, not_measured, t_interval
from theorybench.runs import get_or_train
from theorybench.threads import single_thread

from .common import eval_batch, model_prefix_predictions, seed_band
from .experiments import class_configs
from .sizes import FunctionClass, FunctionClasses

SOURCE = "What Can Transformers Learn In-Context? A Case Study of Simple Function Classes, Fig. 4"
MARGIN = 0.05  # "matches": within 5% of the trivial (predict-0) error of the best baseline, fixed before any run
PLATEAU_LEVEL = 0.9  # normalized query error at N max: 1 is predicting 0, the plateau an untrained model sits on
STILL_IMPROVING = 0.10  # relative fall of the held-out loss over the last quarter of training that marks a run as unfinished
# Rise of the error from its best N in the window to N max tolerated as sampling noise: ~2 standard errors of a
# mean over 300 prompts whose per-prompt normalized error has a standard deviation ≈ 1.
RISE_SLACK = 0.1

# ---------------------------------------------------------------------------------- baselines
def class_baselines(cls: str, size: FunctionClass) -> dict:
    """Label → ``fn(X, y, x_q) -> Prediction``: the baselines Garg et al. plot for the class, plus OMP. ``size``
    gives ``sparsity`` or ``depth``; the class's task config, which has the same fields, does as well."""
    # Start-up time: scikit-learn and XGBoost load in seconds, and ``theorybench list`` imports every study.
    from theory.icl import baselines_sparse as S
    from theory.icl import baselines_trees as T

    if cls == "sparse_linear":
        return {f"Lasso α = {S.GARG_LASSO_ALPHA:g}": S.lasso,
                f"OMP, {size.sparsity} atoms": lambda X, y, q: S.omp(X, y, q, size.sparsity),
                "least squares": P.least_squares, "averaging": P.averaging, "3-NN": knn_capped(3)}
    if cls == "decision_tree":
        return {f"greedy tree, depth {size.depth}": lambda X, y, q: T.greedy_tree(X, y, q, size.depth),
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


def measure(cls: str, sizes: FunctionClasses) -> dict:
    """Train (or reuse) every seed of class ``cls``, then on one set of held-out prompts: each seed's normalized
    error at every N ([seeds, N + 1]) and each baseline's at the grid ({name: [len(grid)]})."""
    size = sizes.of(cls)
    with single_thread():
        runs = [get_or_train(cfg) for cfg in class_configs(cls, sizes)]
        task_cfg = runs[0].config.task
        batch = eval_batch(task_cfg, sizes.eval_prompts)
        m2 = task_cfg.build().label_second_moment()
        targets = batch["targets"].double()
        model = np.stack([((model_prefix_predictions(r.load_model(), batch) - targets) ** 2 / m2).mean(0).numpy()
                          for r in runs])
        refs = _baseline_errors(batch, class_baselines(cls, size), size.grid, m2)
    return dict(model=model, refs={k: v.mean(0) for k, v in refs.items()}, grid=np.array(size.grid),
                size=size, decides=sizes.decides,
                adequacy=training_adequacy(model, [r.metrics for r in runs], size.window[0]))


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
def class_claims(cls: str, statement_match: str, statement_weak: str) -> tuple[Claim, ...]:
    """The two claims of class ``cls``' figure: it matches the best strong baseline within ``MARGIN``, and beats
    every weak one; criteria fixed here, before any run."""
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


def criterion_keys(cls: str) -> list[str]:
    """The criterion keys of ``class_claims(cls, …)``, in order."""
    return [f"{cls}_gap_best"] + [f"{cls}_gain_{_key(w)}" for w in WEAK[cls]]


def _key(label: str) -> str:
    return {"least squares": "ls", "averaging": "avg", "3-NN": "knn", "2-layer NN, GD": "nn_gd"}[label]


def measurements(cls: str, data: dict) -> dict:
    """A Measurement per criterion of the class's claims (``not_measured`` where the scale cannot decide)."""
    keys = criterion_keys(cls)
    if not data["decides"]:
        reason = (f"the {data['size'].steps}-step model of this scale is undertrained by design; "
                  "medium and full decide")
        return {k: not_measured(reason) for k in keys}
    if data["adequacy"]:
        return {k: not_measured(f"undertrained: {data['adequacy']}") for k in keys}
    grid, (lo, hi) = data["grid"], data["size"].window
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
TITLES = {"sparse_linear": "sparse linear, d = {d}, s = {sparsity}", "decision_tree": "decision trees, d = {d}, depth {depth}",
          "relu_network": "2-layer ReLU networks, d = {d}, {hidden} units"}


def plot(cls: str, data: dict):
    """The transformer's error at every N (mean ± std over seeds) beside the baselines at their grid."""
    import matplotlib.pyplot as plt  # start-up time: matplotlib

    from theorybench.style import band  # start-up time: matplotlib

    size = data["size"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, curve in data["refs"].items():
        strong = name.startswith(STRONG[cls])
        ax.plot(data["grid"], curve, marker="o", ms=3, lw=1.6 if strong else 1.0, ls="-" if strong else "--",
                label=name)
    mean, std = seed_band(list(data["model"]))
    band(ax, np.arange(size.n_points + 1), mean, std, color="k",
         label=f"transformer ({len(data['model'])} seeds, mean ± std)")
    lo, hi = size.window
    ax.axvspan(lo, hi, color="0.9", zorder=0, label="claim window")
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set_ylim(0, 1.4)
    ax.set_xlabel("in-context examples N")
    ax.set_ylabel("normalized squared error  (ŷ − y)² / E[y²]")
    ax.legend(fontsize=6.5)
    ax.set_title(TITLES[cls].format(**vars(size)) + f"  ({size.n_layers} layers, width {size.d_model}, "
                                                    f"{size.steps} steps)", fontsize=9)
    return fig


def numbers(data: dict) -> dict:
    size = data["size"]
    out = {"transformer error at N max (mean over seeds)": round(float(data["model"][:, size.n_points].mean()), 4)}
    out.update({f"{name} error at N max": round(float(curve[-1]), 4) for name, curve in data["refs"].items()})
    out["training steps"] = size.steps
    return out
