"""Task diversity: from the dMMSE predictor to ridge as the number of pretraining tasks M grows.

"Pretraining task diversity and the emergence of non-Bayesian in-context learning for regression"
(Raventós et al. 2023): a transformer pretrained on prompts whose task w is drawn uniformly from a
fixed pool of M tasks (w_1 … w_M ~ N(0, I_d), noise σ) behaves, for small M, like the Bayes
predictor of its pretraining distribution, the dMMSE posterior mean over the pool (it fails on new
tasks); past a threshold M* it behaves like ridge regression with λ = σ², the Bayes predictor for
w ~ N(0, I_d), and solves new tasks — although ridge is not optimal for its pretraining data.

Sweep ``icl_task_diversity`` (``experiments``): one run per M in ``sizes.TaskDiversity.task_counts`` (None
= w ~ N(0, I_d), infinitely many tasks), each a softmax transformer of ``experiments.transformer_experiment``.
Figure ``icl_task_diversity``: on held-out prompts with NEW tasks w ~ N(0, I_d), per M, the model's
error and its squared prediction difference from dMMSE (over its own pool) and from ridge, both
averaged over the prefixes k = 1 … N and divided by d; and the same on prompts from the pool. The
transition is read off the measured curves with a margin and a noise estimate (``classify``,
``transition``): M* is the first M at which the model is ridge-like beyond sampling error and half
the dMMSE–ridge gap, with no dMMSE-like M above it; and only once the unlimited-pool model has come
within 10 % of ridge's error (an undertrained model leaves the claims inconclusive).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from theory.icl import predictors as P
from theorybench.claims import Claim, Criterion, Measurement, bootstrap_interval, not_measured
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.runs import get_or_train
from theorybench.threads import single_thread

from .common import eval_batch, model_prefix_predictions, predictor_prefix_predictions
from .experiments import diversity_configs
from .sizes import TASK_DIVERSITY as SIZES
from .sizes import TaskDiversity


def per_prompt_comparisons(model, batch: dict, pool, noise_std: float) -> dict[str, np.ndarray]:
    """Per prompt, averaged over the prefixes k = 1 … N and divided by d: the model's and the references'
    squared errors against the noisy labels (``model_mse``, ``ridge_mse``, ``dMMSE_mse``), the model's
    squared prediction differences from ridge λ = σ² and from dMMSE over its pool (``diff_ridge``,
    ``diff_dMMSE``), and the references' own difference ``gap`` = (ŷ_dMMSE − ŷ_ridge)² / d. Arrays
    [prompts]; the dMMSE entries only when ``pool`` is given."""
    d = batch["X"].shape[-1]
    y = batch["targets"].double()[:, 1:]
    model_pred = model_prefix_predictions(model, batch)[:, 1:]
    preds = {"ridge": predictor_prefix_predictions(batch, lambda X, yy, q: P.ridge(X, yy, q, noise_std**2))[:, 1:]}
    if pool is not None:
        preds["dMMSE"] = predictor_prefix_predictions(batch, lambda X, yy, q: P.dmmse(X, yy, q, pool, noise_std))[:, 1:]

    def per_prompt(t):
        return (t ** 2).mean(1).numpy() / d

    out = {"model_mse": per_prompt(model_pred - y)}
    for name, pred in preds.items():
        out[f"{name}_mse"] = per_prompt(pred - y)
        out[f"diff_{name}"] = per_prompt(model_pred - pred)
    if pool is not None:
        out["gap"] = per_prompt(preds["dMMSE"] - preds["ridge"])
    return out


def measure(size: TaskDiversity) -> dict:
    """Train (or reuse) every member; measure ``per_prompt_comparisons`` on new tasks and on pool tasks per
    M and seed. Returns {"new": {M: [per-seed dicts]}, "pool": {M: [...]}, "size": ...}; ``mean_over``
    gives the seed-averaged means."""
    with single_thread():
        runs = [get_or_train(cfg) for cfg in diversity_configs(size)]
        fresh_cfg = dataclasses.replace(runs[0].config.task, n_tasks=None)
        fresh = eval_batch(fresh_cfg, size.eval_prompts, seed=1)
        out: dict = {"new": {}, "pool": {}, "size": size}
        for M in size.task_counts:
            members = [r for r in runs if r.config.task.n_tasks == M]
            task = members[0].config.task.build()
            pooled = eval_batch(members[0].config.task, size.eval_prompts, seed=2) if M is not None else fresh
            for key, batch in (("new", fresh), ("pool", pooled)):
                out[key][M] = [per_prompt_comparisons(r.load_model(), batch, task.pool, size.noise_std)
                               for r in members]
    return out


def mean_over(per_seed: list[dict]) -> dict[str, float]:
    """The mean over prompts and seeds of each per-prompt quantity."""
    return {k: float(np.mean([c[k].mean() for c in per_seed])) for k in per_seed[0]}


# A model is ridge-like at M (on new tasks) when, for every seed, its margin
#     m = E(ŷ − ŷ_dMMSE)²/d − E(ŷ − ŷ_ridge)²/d
# minus Z_SAMPLING standard errors (over prompts) exceeds GAP_FRACTION of the references' own gap
# g = E(ŷ_dMMSE − ŷ_ridge)²/d; dMMSE-like when m plus Z standard errors is below −GAP_FRACTION · g.
# Why a fraction of the gap: for a model on the segment between the references, m runs from −g (at
# dMMSE) to +g (at ridge), and m ≥ g/2 places it within a quarter of the segment from ridge. Where the
# references nearly coincide (large M: the pool fills the space and dMMSE → ridge) or the margin is
# within sampling error, the model is neither ("undecided"), never ridge-like by default.
Z_SAMPLING = 2.0
GAP_FRACTION = 0.5


def classify(per_seed: list[dict], z: float = Z_SAMPLING, fraction: float = GAP_FRACTION) -> str:
    """"ridge", "dMMSE" or "undecided" for one M from its per-seed per-prompt comparisons (see above)."""
    ridge, dmmse = [], []
    for c in per_seed:
        m = c["diff_dMMSE"] - c["diff_ridge"]
        mean, se = float(m.mean()), float(m.std(ddof=1) / math.sqrt(len(m)))
        gap = float(c["gap"].mean())
        ridge.append(mean - z * se > fraction * gap)
        dmmse.append(mean + z * se < -fraction * gap)
    return "ridge" if all(ridge) else "dMMSE" if all(dmmse) else "undecided"


def transition(new: dict, z: float = Z_SAMPLING, fraction: float = GAP_FRACTION) -> dict:
    """The task-diversity threshold read off the classified grid (``classify`` per finite M).

    M* is the smallest M classified ridge-like with no larger M classified dMMSE-like; the threshold lies
    in (M_low, M*], M_low the largest M below M* classified dMMSE-like (the grid's previous M if none
    is). Returns {"M_star", "M_low" (inf/nan when no M* exists), "classes": {M: class}}."""
    finite = sorted(M for M in new if M is not None)
    classes = {M: classify(new[M], z, fraction) for M in finite}
    M_star = math.inf
    for i, M in enumerate(finite):
        if classes[M] == "ridge" and all(classes[L] != "dMMSE" for L in finite[i + 1:]):
            M_star = M
            break
    if not math.isfinite(M_star):
        return {"M_star": math.inf, "M_low": math.nan, "classes": classes}
    below = [M for M in finite if M < M_star]
    dmmse_below = [M for M in below if classes[M] == "dMMSE"]
    M_low = max(dmmse_below) if dmmse_below else (max(below) if below else 0.0)
    return {"M_star": float(M_star), "M_low": float(M_low), "classes": classes}


# The claims, with their criteria fixed before any run. Thresholds: ±GAP_FRACTION of the dMMSE–ridge gap
# (the classification above); 2¹² is the top of the medium grid (the M = 2⁰ … 2¹²); the
# unlimited-pool model must first come within RIDGE_RATIO_MAX of ridge's error (the 10 %).
RIDGE_RATIO_MAX = 1.10
M_GRID_TOP = 2**12
SOURCE = ("Pretraining task diversity and the emergence of non-Bayesian in-context learning for regression "
          "(Raventós et al. 2023), figures 1–2")
CLAIMS = (
    Claim(key="dmmse_below_threshold",
          statement="With few pretraining tasks the model predicts like the Bayes posterior over its pool (dMMSE), "
                    "not like ridge, on new tasks",
          source=SOURCE,
          criteria=(Criterion(key="small_m_position",
                              quantity="margin / gap at the smallest M, new tasks, worst seed (−1 = dMMSE, +1 = ridge)",
                              op="<=", threshold=-GAP_FRACTION),)),
    Claim(key="ridge_above_threshold",
          statement="Past a task-diversity threshold M* the model predicts like ridge (the Bayes predictor for "
                    "w ~ N(0, I)), not like dMMSE, on new tasks",
          source=SOURCE,
          criteria=(Criterion(key="threshold_m",
                              quantity="M*: first M ridge-like on new tasks (margin beyond 2 SE and half the "
                                       "dMMSE–ridge gap, every seed) with no dMMSE-like M above it",
                              op="<=", threshold=float(M_GRID_TOP)),)),
)


def ridge_ratio(per_seed: list[dict]) -> tuple[float, float]:
    """(largest over seeds of model error / ridge error on new tasks, that seed's ratio + 2 standard errors).
    The SE is the delta method's: sd over prompts of (e_model − r·e_ridge) / (√n · mean e_ridge)."""
    worst = (-math.inf, -math.inf)
    for c in per_seed:
        a, b = c["model_mse"], c["ridge_mse"]
        r = float(a.mean() / b.mean())
        se = float((a - r * b).std(ddof=1) / (math.sqrt(len(a)) * b.mean()))
        worst = max(worst, (r, r + Z_SAMPLING * se))
    return worst


def position(per_seed: list[dict]):
    """margin / gap (−1: the model is dMMSE, +1: ridge) with a prompt-bootstrap interval, for the seed whose
    value is largest (the one least like dMMSE)."""
    best = None
    for c in per_seed:
        samples = np.stack([c["diff_dMMSE"] - c["diff_ridge"], c["gap"]], 1)
        m = bootstrap_interval(samples, lambda x: float(x[:, 0].mean() / x[:, 1].mean()),
                               method="percentile bootstrap over prompts, worst seed")
        if best is None or m.value > best.value:
            best = m
    return best


def diversity_measurements(curves: dict) -> tuple[dict, dict]:
    """(measured, numbers): a Measurement for every criterion of ``CLAIMS``, and the gate and transition
    read-outs. Without an unlimited-pool model within RIDGE_RATIO_MAX of ridge, every criterion is
    not measured: an undertrained model's distances to dMMSE and ridge say nothing about a transition."""
    new, size = curves["new"], curves["size"]
    finite = sorted(M for M in new if M is not None)
    trans = transition(new)
    numbers: dict = {f"class at M = {M} (new tasks)": trans["classes"][M] for M in finite}
    if None not in new:
        reason = "no unlimited-pool (M = ∞) model in this scale's grid, so no check that the learner reaches ridge"
        return {c.key: not_measured(reason) for claim in CLAIMS for c in claim.criteria}, numbers
    ratio, upper = ridge_ratio(new[None])
    numbers["M = ∞: model / ridge error on new tasks (worst seed)"] = round(ratio, 4)
    if upper > RIDGE_RATIO_MAX:
        reason = (f"unlimited-pool model's new-task error is {ratio:.3g}× ridge's (+2 SE: {upper:.3g}) > "
                  f"{RIDGE_RATIO_MAX}: undertrained at {size.steps} steps, its distances to dMMSE and ridge "
                  "cannot show a transition")
        return {c.key: not_measured(reason) for claim in CLAIMS for c in claim.criteria}, numbers
    M_star = trans["M_star"]
    if math.isfinite(M_star):
        threshold = Measurement(M_star, trans["M_low"], M_star, "grid bracket (last dMMSE-like M, first ridge-like M]",
                                n=len(new[None]), level=None)
    else:
        threshold = Measurement(math.inf, math.inf, math.inf, "no ridge-like M in the grid", n=len(new[None]),
                                level=None)
    return {"small_m_position": position(new[finite[0]]), "threshold_m": threshold}, numbers


def _positions(size: TaskDiversity) -> tuple[dict, list, list]:
    """x position of every M (log2 M; ∞ two steps right of the largest), the grid in order, its finite Ms."""
    finite = [M for M in size.task_counts if M is not None]
    xs = {M: (math.log2(M) if M is not None else math.log2(max(finite)) + 2) for M in size.task_counts}
    return xs, list(size.task_counts), finite


def plot(data: dict):
    """New-task errors, the squared prediction differences from dMMSE and ridge, and the model's position."""
    import matplotlib.pyplot as plt  # start-up time: matplotlib

    size = data["size"]
    new = {M: mean_over(v) for M, v in data["new"].items()}
    pool = {M: mean_over(v) for M, v in data["pool"].items()}
    xs, order, finite = _positions(size)
    x = np.array([xs[M] for M in order])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))

    ax = axes[0]
    ax.plot(x, [new[M]["model_mse"] for M in order], "o-", color="k", label="transformer (mean over seeds)")
    ax.plot([xs[M] for M in finite], [new[M]["dMMSE_mse"] for M in finite], "s--", label="dMMSE (its pool)")
    ax.plot(x, [new[M]["ridge_mse"] for M in order], "--", label="ridge, λ = σ²")
    ax.set_ylabel("error on new tasks  (ŷ − y)² / d")
    ax.set_title(f"new tasks w ~ N(0, I), d = {size.d}, N = {size.n_points}, σ = {size.noise_std}")

    ax = axes[1]
    for key, style in (("new", "-"), ("pool", ":")):
        means = new if key == "new" else pool
        ax.plot([xs[M] for M in finite], [means[M]["diff_dMMSE"] for M in finite], "s" + style, color="C0",
                label=f"vs dMMSE ({key} tasks)")
        ax.plot(x, [means[M]["diff_ridge"] for M in order], "o" + style, color="C1", label=f"vs ridge ({key} tasks)")
    ax.plot([xs[M] for M in finite], [new[M]["gap"] for M in finite], "k--", lw=0.8, label="dMMSE vs ridge (new)")
    ax.set_yscale("log")
    ax.set_ylabel("(ŷ_a − ŷ_b)² / d")
    ax.set_title("squared prediction differences")

    ax = axes[2]
    for s in range(len(data["new"][finite[0]])):
        pos = [float((c[s]["diff_dMMSE"] - c[s]["diff_ridge"]).mean() / c[s]["gap"].mean())
               for c in (data["new"][M] for M in finite)]
        ax.plot([xs[M] for M in finite], pos, "o-", label=f"seed {s}")
    for level in (GAP_FRACTION, -GAP_FRACTION):
        ax.axhline(level, color="0.5", lw=0.8, ls=":")
    ax.set_ylim(-1.5, 1.5)
    ax.set_ylabel("margin / gap  (−1: dMMSE, +1: ridge)")
    ax.set_title("position between the references (new tasks)")

    trans = transition(data["new"])
    if math.isfinite(trans["M_star"]):
        for a in axes:
            a.axvline(math.log2(trans["M_star"]), color="0.5", lw=0.8, ls="-.")
    for a in axes:
        a.set_xticks([xs[M] for M in (order if a is not axes[2] else finite)],
                     [("∞" if M is None else f"{M}") for M in (order if a is not axes[2] else finite)])
        a.set_xlabel("pretraining tasks M")
        a.legend(fontsize=7)
    return fig


def numbers(data: dict) -> dict:
    size = data["size"]
    new = {M: mean_over(v) for M, v in data["new"].items()}
    _, order, finite = _positions(size)
    _, out = diversity_measurements(data)
    trans = transition(data["new"])
    big = max(finite)
    out.update({
        "transition M* (first ridge-like M, none dMMSE-like above)": trans["M_star"] if math.isfinite(trans["M_star"])
        else "not reached in the grid",
        f"new tasks, M = {min(finite)}: model error / d": round(new[min(finite)]["model_mse"], 4),
        f"new tasks, M = {big}: model error / d": round(new[big]["model_mse"], 4),
        "new tasks, M = ∞: model error / d": round(new[None]["model_mse"], 4) if None in new else "not run",
        "new tasks: ridge error / d": round(new[order[-1]]["ridge_mse"], 4),
        f"new tasks, M = {min(finite)}: difference to dMMSE / to ridge / gap":
            f"{new[min(finite)]['diff_dMMSE']:.3g} / {new[min(finite)]['diff_ridge']:.3g} / {new[min(finite)]['gap']:.3g}",
        f"new tasks, M = {big}: difference to dMMSE / to ridge / gap":
            f"{new[big]['diff_dMMSE']:.3g} / {new[big]['diff_ridge']:.3g} / {new[big]['gap']:.3g}",
        "training steps per model": size.steps,
        "seeds": size.seeds,
    })
    return out


def make(scale: str) -> FigureResult:
    data = measure(SIZES[scale])
    return FigureResult(plot(data), numbers(data), diversity_measurements(data)[0])


register_figure(FigureSpec(
    name="icl_task_diversity",
    family="icl",
    claim=("A transformer pretrained on a pool of M regression tasks predicts like the Bayes posterior over that "
           "pool (dMMSE) when M is small and like ridge regression (the Bayes predictor for w ~ N(0, I)) past a "
           "task-diversity threshold, solving unseen tasks ('Pretraining task diversity and the emergence of "
           "non-Bayesian in-context learning for regression', Raventós et al. 2023). Read only once the "
           "unlimited-pool model is within 10 % of ridge's error; the model is ridge-like (dMMSE-like) at M when "
           "its margin between the two exceeds 2 standard errors and half of their own gap, for every seed."),
    make=make,
    claims=CLAIMS,
))
