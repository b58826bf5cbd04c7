"""Task diversity: from the dMMSE predictor to ridge as the number of pretraining tasks M grows.

"Pretraining task diversity and the emergence of non-Bayesian in-context learning for regression"
(Raventós et al. 2023): a transformer pretrained on prompts whose task w is drawn uniformly from a
fixed pool of M tasks (w_1 … w_M ~ N(0, I_d), noise σ) behaves, for small M, like the Bayes
predictor of its pretraining distribution, the dMMSE posterior mean over the pool (it fails on new
tasks); past a threshold M* it behaves like ridge regression with λ = σ², the Bayes predictor for
w ~ N(0, I_d), and solves new tasks — although ridge is not optimal for its pretraining data.

Sweep ``icl_task_diversity``: one run per M in SIZES[scale]["task_counts"] (None = w ~ N(0, I_d),
infinitely many tasks), each a softmax transformer of ``icl_transformer.transformer_experiment``.
Figure ``icl_task_diversity``: on held-out prompts with NEW tasks w ~ N(0, I_d), per M, the model's
error and its squared prediction difference from dMMSE (over its own pool) and from ridge, both
averaged over the prefixes k = 1 … N and divided by d; and the same on prompts from the pool. The
transition is read off the measured curves: the smallest M in the grid at which the model is closer
to ridge than to dMMSE on new tasks (reported as not reached when no M is).
"""

from __future__ import annotations

import math

import numpy as np

from theorybench.registry import FigureResult, FigureSpec, SweepSpec, register_figure, register_sweep
from theorybench.threads import single_thread

# "tiny" is what the test suite renders (tests/test_studies.py); "quick" and "full" are the user scales.
# Keys of the model and training: see ``icl_transformer``'s module docstring; task_counts is the grid of M.
SIZES = {
    "quick": dict(d=3, N=8, noise_std=0.5, layers=2, width=32, heads=4, batch=64, steps=1500, lr=1e-3, warmup=50,
                  init="fan_in", seeds=1, eval_prompts=1000, task_counts=(1, 4, 16, 64, 256, None)),
    # The paper's task (d = 8, N = 16, σ² = 0.25) and grid M = 2⁰ … 2²⁰, ∞; a model and budget sized for a GPU.
    "full": dict(d=8, N=16, noise_std=0.5, layers=8, width=128, heads=4, batch=256, steps=200_000, lr=1e-3,
                 warmup=2000, init="fan_in", seeds=2, eval_prompts=4000,
                 task_counts=tuple(2**k for k in range(0, 21, 2)) + (None,)),
    "tiny": dict(d=2, N=4, noise_std=0.5, layers=1, width=16, heads=2, batch=32, steps=60, lr=3e-3, warmup=5,
                 init="fan_in", seeds=1, eval_prompts=300, task_counts=(1, 8, None)),
}


def member_name(M: int | None) -> str:
    return f"icl_diversity_M{'inf' if M is None else M}"


def diversity_members(scale: str):
    """A softmax transformer per pretraining task count M (pool fixed by pool_seed 0; None: w ~ N(0, I))."""
    from theorybench.studies.icl_transformer import transformer_experiment

    size = SIZES[scale]
    return [transformer_experiment(size, seed=s, name=member_name(M), n_tasks=M, pool_seed=0)
            for M in size["task_counts"] for s in range(size["seeds"])]


SWEEP = register_sweep(SweepSpec("icl_task_diversity", "icl", diversity_members))


def _comparisons(model, batch: dict, pool, noise_std: float) -> dict[str, float]:
    """Mean over prompts and prefixes 1 … N, divided by d: the model's squared error against the noisy
    labels, the references' errors, and (ŷ_model − ŷ_ref)² for ref = dMMSE (if a pool) and ridge λ = σ²."""
    from theory.icl import predictors as P
    from theorybench.studies.icl_transformer import model_prefix_predictions, predictor_prefix_predictions

    d = batch["X"].shape[-1]
    y = batch["targets"].double()[:, 1:]
    model_pred = model_prefix_predictions(model, batch)[:, 1:]
    refs = {"ridge": lambda X, yy, q: P.ridge(X, yy, q, noise_std**2)}
    if pool is not None:
        refs["dMMSE"] = lambda X, yy, q: P.dmmse(X, yy, q, pool, noise_std)
    out = {"model_mse": float(((model_pred - y) ** 2).mean()) / d}
    for name, fn in refs.items():
        pred = predictor_prefix_predictions(batch, fn)[:, 1:]
        out[f"{name}_mse"] = float(((pred - y) ** 2).mean()) / d
        out[f"diff_{name}"] = float(((model_pred - pred) ** 2).mean()) / d
    return out


def diversity_curves(scale: str) -> dict:
    """Train (or reuse) every member; measure ``_comparisons`` on new tasks and on pool tasks per M
    (averaged over seeds). Returns {"new": {M: {...}}, "pool": {M: {...}}, "size": ...}."""
    import dataclasses

    from theorybench.runstore import get_or_train
    from theorybench.studies.icl_transformer import eval_batch

    size = SIZES[scale]
    with single_thread():
        runs = [get_or_train(cfg) for cfg in SWEEP.members(scale)]
        fresh_cfg = dataclasses.replace(runs[0].config.task, n_tasks=None)
        fresh = eval_batch(fresh_cfg, size["eval_prompts"], seed=1)
        out: dict = {"new": {}, "pool": {}, "size": size}
        for M in size["task_counts"]:
            members = [r for r in runs if r.config.task.n_tasks == M]
            task = members[0].config.task.build()
            pooled = eval_batch(members[0].config.task, size["eval_prompts"], seed=2) if M is not None else fresh
            for key, batch in (("new", fresh), ("pool", pooled)):
                per_seed = [_comparisons(r.load_model(), batch, task.pool, size["noise_std"]) for r in members]
                out[key][M] = {k: float(np.mean([c[k] for c in per_seed])) for k in per_seed[0]}
    return out


def transition(new: dict) -> float:
    """The smallest finite M at which the model's squared prediction difference from ridge is below the one
    from dMMSE on new tasks; inf when no M in the grid is (M = ∞ has no dMMSE to compare with)."""
    for M, c in sorted(((M, c) for M, c in new.items() if M is not None), key=lambda item: item[0]):
        if c["diff_ridge"] < c["diff_dMMSE"]:
            return float(M)
    return math.inf


def task_diversity(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt

    curves = diversity_curves(scale)
    size, new, pool = curves["size"], curves["new"], curves["pool"]
    finite = [M for M in size["task_counts"] if M is not None]
    xs = {M: (math.log2(M) if M is not None else math.log2(max(finite)) + 2) for M in size["task_counts"]}
    order = list(size["task_counts"])
    x = np.array([xs[M] for M in order])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))

    ax = axes[0]
    ax.plot(x, [new[M]["model_mse"] for M in order], "o-", color="k", label="transformer")
    ax.plot([xs[M] for M in finite], [new[M]["dMMSE_mse"] for M in finite], "s--", label="dMMSE (its pool)")
    ax.plot(x, [new[M]["ridge_mse"] for M in order], "--", label="ridge, λ = σ²")
    ax.set_ylabel("error on new tasks  (ŷ − y)² / d")
    ax.set_title(f"new tasks w ~ N(0, I), d = {size['d']}, N = {size['N']}, σ = {size['noise_std']}")

    ax = axes[1]
    for key, style in (("new", "-"), ("pool", ":")):
        data = curves[key]
        ax.plot([xs[M] for M in finite], [data[M]["diff_dMMSE"] for M in finite], "s" + style, color="C0",
                label=f"vs dMMSE ({key} tasks)")
        ax.plot(x, [data[M]["diff_ridge"] for M in order], "o" + style, color="C1", label=f"vs ridge ({key} tasks)")
    ax.set_yscale("log")
    ax.set_ylabel("(ŷ_model − ŷ_ref)² / d")
    ax.set_title("squared prediction difference")
    M_star = transition(new)
    if math.isfinite(M_star):
        for a in axes:
            a.axvline(math.log2(M_star), color="0.5", lw=0.8, ls="-.")
    for a in axes:
        a.set_xticks(x, [("∞" if M is None else f"{M}") for M in order])
        a.set_xlabel("pretraining tasks M")
        a.legend(fontsize=7)

    big = max(finite)
    return FigureResult(fig, {
        "transition M* (first M closer to ridge than to dMMSE, new tasks)": M_star if math.isfinite(M_star) else
        "not reached in the grid",
        f"new tasks, M = {min(finite)}: model error / d": round(new[min(finite)]["model_mse"], 4),
        f"new tasks, M = {big}: model error / d": round(new[big]["model_mse"], 4),
        "new tasks, M = ∞: model error / d": round(new[None]["model_mse"], 4) if None in new else "not run",
        "new tasks: ridge error / d": round(new[order[-1]]["ridge_mse"], 4),
        f"new tasks, M = {min(finite)}: difference to dMMSE / to ridge":
            f"{new[min(finite)]['diff_dMMSE']:.3g} / {new[min(finite)]['diff_ridge']:.3g}",
        f"new tasks, M = {big}: difference to dMMSE / to ridge":
            f"{new[big]['diff_dMMSE']:.3g} / {new[big]['diff_ridge']:.3g}",
        "new tasks, M = ∞: difference to ridge": round(new[None]["diff_ridge"], 4) if None in new else "not run",
        "training steps per model": size["steps"],
    })


register_figure(FigureSpec(
    name="icl_task_diversity",
    family="icl",
    claim=("A transformer pretrained on a pool of M regression tasks predicts like the Bayes posterior over that "
           "pool (dMMSE) when M is small and like ridge regression (the Bayes predictor for w ~ N(0, I)) past a "
           "task-diversity threshold, solving unseen tasks ('Pretraining task diversity and the emergence of "
           "non-Bayesian in-context learning for regression', Raventós et al. 2023); the threshold here is "
           "measured as the first M of the grid at which the model is closer to ridge than to dMMSE."),
    make=task_diversity,
))
