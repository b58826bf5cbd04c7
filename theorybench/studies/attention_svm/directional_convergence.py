"""Figure ``attention_svm_directional_convergence``: corr(W(k), W_svm) = ⟨W(k), W_svm⟩ / (‖W(k)‖ ‖W_svm‖)
against the Frobenius Att-SVM and the nuclear Att-SVM⋆ solutions, for both parameterizations (W trained
directly, W = K Qᵀ), from the runs of ``common.measure`` ("Transformers as Support Vector Machines",
Tarzanagh, Li, Thrampoulidis, Oymak 2023)."""

from __future__ import annotations

import numpy as np

from theorybench.claims import Claim, Criterion, Measurement, not_measured, paired_difference, t_interval
from theorybench.registry import FigureResult, FigureSpec, register_figure

from .common import (CITE, MATCHING_NORM, NORM_LABELS, PAPER_STEPS, PARAMETERIZATIONS, TF_SVM, SeedRun,
                     correlation_curve, mean_sd, measure, norm_colors)
from .experiments import LR
from .sizes import SEED_RUN_SIZES, SeedRunSizes

SIZES = SEED_RUN_SIZES  # what theorybench.figures hashes into each result's provenance


def plot(runs: tuple[SeedRun, ...], sizes: SeedRunSizes):
    # matplotlib here, not at the top: the command line imports every study and should start fast
    import matplotlib.pyplot as plt

    from theorybench.style import band  # with matplotlib, for the same reason

    k = np.arange(1, sizes.steps + 1)  # k = 0 has W = 0, whose direction is undefined
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.0), sharey=True, layout="constrained")
    for ax, (par, title) in zip(axes, PARAMETERIZATIONS.items()):
        for norm, label in NORM_LABELS.items():
            mean, sd = mean_sd([correlation_curve(r.W[par], r.svm[norm].W)[1:] for r in runs])
            band(ax, k, mean, sd, label=f"vs {label}", color=norm_colors()[norm])
        ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("iteration k")
        ax.set_title(f"{title}\n(predicted: {NORM_LABELS[MATCHING_NORM[par]]})", fontsize=9)
    axes[0].set_ylabel("corr(W(k), W_svm)")
    axes[0].legend(loc="lower right")
    fig.suptitle(f"Normalized GD, n = {sizes.n}, T = {sizes.T}, d = {sizes.d}, η = {LR}: "
                 f"mean ± sd over {len(runs)} seeds", fontsize=10)
    return fig


def _final_corr(runs: tuple[SeedRun, ...], par: str, norm: str) -> np.ndarray:
    return np.array([correlation_curve(r.W[par], r.svm[norm].W)[-1] for r in runs])


def numbers(runs: tuple[SeedRun, ...], sizes: SeedRunSizes) -> dict[str, float | str]:
    # here, not at the top: theory.attention_svm loads cvxpy (≈ 0.6 s of the command line's start-up)
    from theory.attention_svm import certify

    out: dict[str, float | str] = {}
    for par in PARAMETERIZATIONS:
        for norm in NORM_LABELS:
            final = _final_corr(runs, par, norm)
            out[f"{par}: final corr with {norm} SVM (mean)"] = round(float(final.mean()), 4)
            out[f"{par}: final corr with {norm} SVM (min over seeds)"] = round(float(final.min()), 4)
    certified = sum(certify(r.svm[norm]).passed for r in runs for norm in NORM_LABELS)
    out["SVM solutions passing the KKT certificate"] = f"{certified}/{2 * len(runs)}"
    out["iterations"] = sizes.steps
    out["seeds"] = len(runs)
    return out


def convergence_measurements(runs: tuple[SeedRun, ...], sizes: SeedRunSizes) -> dict[str, Measurement]:
    """Per parameterization: the final correlation with its own SVM (a t interval over seeds, judged only
    at ≥ the paper's 1000 steps) and its paired excess over the correlation with the other SVM."""
    measured = {}
    for par, own in MATCHING_NORM.items():
        other = "nuc" if own == "fro" else "fro"
        final = {norm: list(_final_corr(runs, par, norm)) for norm in NORM_LABELS}
        if sizes.steps >= PAPER_STEPS:
            measured[f"{par.lower()}_corr_own"] = t_interval(final[own])
        else:
            measured[f"{par.lower()}_corr_own"] = not_measured(f"{sizes.steps} steps, fewer than the paper's {PAPER_STEPS}")
        measured[f"{par.lower()}_own_minus_other"] = paired_difference(final[own], final[other])
    return measured


def directional_convergence(scale: str) -> FigureResult:
    sizes = SIZES[scale]
    runs = measure(sizes)
    return FigureResult(plot(runs, sizes), numbers(runs, sizes), convergence_measurements(runs, sizes))


CONVERGENCE_CLAIMS = (
    Claim(key="w_to_frobenius_svm",
          statement=("Normalized GD on W converges in direction to the Frobenius Att-SVM solution W^mm, "
                     "not to the nuclear one"),
          source=f"{TF_SVM}, the W-parameterization convergence figure (n = 6, T = 8, d = 10, 1000 steps)",
          criteria=(Criterion(key="w_corr_own", quantity="corr(W(K), W^mm_F) at the last step K ≥ 1000, mean over seeds",
                              op=">=", threshold=0.99),
                    Criterion(key="w_own_minus_other", quantity="corr(W(K), W^mm_F) − corr(W(K), W^mm_⋆), mean over seeds",
                              op=">=", threshold=0.0))),
    Claim(key="kq_to_nuclear_svm",
          statement=("Normalized GD on (K, Q) converges in direction (of W = KQᵀ) to the nuclear Att-SVM⋆ "
                     "solution, not to the Frobenius one"),
          source=f"{TF_SVM}, the (K, Q)-parameterization convergence figure",
          criteria=(Criterion(key="kq_corr_own", quantity="corr(KQᵀ(K), W^mm_⋆) at the last step K ≥ 1000, mean over seeds",
                              op=">=", threshold=0.99),
                    Criterion(key="kq_own_minus_other", quantity="corr(KQᵀ(K), W^mm_⋆) − corr(KQᵀ(K), W^mm_F), mean over seeds",
                              op=">=", threshold=0.0))),
)

register_figure(FigureSpec(
    name="attention_svm_directional_convergence",
    family="attention_svm",
    claim=("Normalized gradient descent on a softmax-attention layer converges in direction to a max-margin "
           "token-selection SVM: trained as W, to the Frobenius-norm Att-SVM solution; trained as W = KQᵀ, to the "
           f"nuclear-norm Att-SVM⋆ solution, and each correlates clearly less with the other one ({CITE})."),
    make=directional_convergence,
    claims=CONVERGENCE_CLAIMS,
))
