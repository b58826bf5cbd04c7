"""Figure ``attention_svm_rank_and_saturation``: the normalized spectrum σ_i(W(k))/σ_1 beside the SVM
solutions' spectra, and the softmax mass on the selected token, from the runs of ``common.measure``
("Transformers as Support Vector Machines", Tarzanagh, Li, Thrampoulidis, Oymak 2023)."""

from __future__ import annotations

import numpy as np

from theorybench.claims import Claim, Criterion, Measurement, exact, paired_difference, t_interval
from theorybench.registry import FigureResult, FigureSpec, register_figure

from .common import (CITE, MATCHING_NORM, NORM_LABELS, PARAMETERIZATIONS, TF_SVM, SeedRun, mean_sd, measure,
                     selected_mass)
from .sizes import SEED_RUN_SIZES, SeedRunSizes

SIZES = SEED_RUN_SIZES  # what theorybench.figures hashes into each result's provenance
SATURATED = 0.99  # softmax mass on the selected token counted as "selected"
# Relative singular values of an SVM solution below this are solver round-off (CLARABEL stops at 1e-9
# relative residuals; a nuclear solution's zero singular values come back at 1e-13–1e-11).
_FLOOR = 1e-12


def plot(runs: tuple[SeedRun, ...], sizes: SeedRunSizes):
    # matplotlib here, not at the top: the command line imports every study and should start fast
    import matplotlib.pyplot as plt

    from theorybench.style import band  # with matplotlib, for the same reason

    k = np.arange(1, sizes.steps + 1)
    r_max = min(sizes.n, sizes.d)  # rank(W(k)) ≤ min(n, d): every gradient is Σ_i (…) z_iᵀ
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.0), layout="constrained")
    run = runs[0]
    for ax, par in zip(axes[:2], PARAMETERIZATIONS):
        sv = np.linalg.svd(run.W[par][1:], compute_uv=False)[:, :r_max]
        sv = sv / sv[:, :1]
        target = np.linalg.svd(run.svm[MATCHING_NORM[par]].W, compute_uv=False)[:r_max]
        target = target / target[0]
        colors = plt.cm.viridis(np.linspace(0, 0.9, r_max))
        for i in range(r_max):
            ax.plot(k, sv[:, i], color=colors[i], lw=1.2, label=f"σ{i + 1}" if i in (0, r_max - 1) else None)
            ax.plot(k[-1] * 1.25, max(target[i], _FLOOR), marker="<", color=colors[i], ms=6, clip_on=False)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(_FLOOR / 3, 2)
        ax.set_xlabel("iteration k")
        ax.set_title(f"{PARAMETERIZATIONS[par]}, seed {run.seed}\n"
                     f"◀ {NORM_LABELS[MATCHING_NORM[par]]}, rank {run.svm[MATCHING_NORM[par]].rank}", fontsize=9)
    axes[0].set_ylabel(f"σ_i(W(k)) / σ_1(W(k)),  i = 1 … {r_max}")
    axes[0].legend(loc="lower left")
    ax = axes[2]
    for par, title in PARAMETERIZATIONS.items():
        mean, sd = mean_sd([selected_mass(r.W[par], r.inst)[1:] for r in runs])
        band(ax, k, mean, sd, label=title)
    ax.set_xscale("log")
    ax.set_xlabel("iteration k")
    ax.set_ylabel("softmax mass on the selected token")
    ax.set_ylim(0, 1.0)  # the mean ± sd band crosses 1 where seeds saturate at different k; mass cannot
    ax.set_title(f"mean ± sd over {len(runs)} seeds", fontsize=9)
    ax.legend(loc="upper left")
    fig.suptitle(f"Spectrum of W(k) and saturation of the softmax (n = {sizes.n}, T = {sizes.T}, d = {sizes.d}).  "
                 f"◀: the SVM solution's σ_i / σ_1 (values below {_FLOOR:.0e} are solver round-off, drawn at {_FLOOR:.0e})",
                 fontsize=10)
    return fig


def _rank_law(runs: tuple[SeedRun, ...], sizes: SeedRunSizes) -> list[bool]:
    """Per seed: rank(W^fro) = min(d, inputs with a support token)."""
    # here, not at the top: theory.attention_svm loads cvxpy (≈ 0.6 s of the command line's start-up)
    from theory.attention_svm import support_inputs

    return [r.svm["fro"].rank == min(sizes.d, int(support_inputs(r.svm["fro"]).sum())) for r in runs]


def numbers(runs: tuple[SeedRun, ...], sizes: SeedRunSizes) -> dict[str, float | str]:
    # here, not at the top: theory.attention_svm loads cvxpy (≈ 0.6 s of the command line's start-up)
    from theory.attention_svm import numerical_rank

    steps = sizes.steps
    k = np.arange(1, steps + 1)
    out: dict[str, float | str] = {}
    for par in PARAMETERIZATIONS:
        curves = [selected_mass(r.W[par], r.inst)[1:] for r in runs]
        mean, _ = mean_sd(curves)
        first = [int(k[np.argmax(c >= SATURATED)]) if np.any(c >= SATURATED) else np.nan for c in curves]
        out[f"{par}: softmax mass on selected token at k = {steps} (mean)"] = round(float(mean[-1]), 4)
        out[f"{par}: first k with mass ≥ {SATURATED} (median over seeds)"] = float(np.nanmedian(first))
        out[f"{par}: rank of W(k = {steps}) (mean over seeds)"] = float(np.mean([numerical_rank(r.W[par][-1]) for r in runs]))
        matched = sum(numerical_rank(r.W[par][-1]) == r.svm[MATCHING_NORM[par]].rank for r in runs)
        out[f"{par}: seeds whose final rank equals its SVM's"] = f"{matched}/{len(runs)}"
    for norm in NORM_LABELS:
        out[f"rank of the {norm} SVM solution (mean over seeds)"] = float(np.mean([r.svm[norm].rank for r in runs]))
    out["seeds with rank(W^fro) = min(d, inputs with a support token)"] = f"{sum(_rank_law(runs, sizes))}/{len(runs)}"
    return out


def spectrum_measurements(runs: tuple[SeedRun, ...], sizes: SeedRunSizes) -> dict[str, Measurement]:
    """The rank law's rate over seeds (exact: the solver's rank), the paired rank gap Frobenius − nuclear,
    and the final softmax mass on the selected token per parameterization (t interval over seeds)."""
    law = _rank_law(runs, sizes)
    measured = {
        "fro_rank_law": exact(sum(law) / len(runs), f"solver, rank at its stated accuracy, {len(runs)} seeds"),
        "nuc_rank_below_fro": paired_difference([r.svm["fro"].rank for r in runs], [r.svm["nuc"].rank for r in runs]),
    }
    for par in PARAMETERIZATIONS:
        measured[f"{par.lower()}_saturated"] = t_interval([selected_mass(r.W[par], r.inst)[-1] for r in runs])
    return measured


def rank_and_saturation(scale: str) -> FigureResult:
    sizes = SIZES[scale]
    runs = measure(sizes)
    return FigureResult(plot(runs, sizes), numbers(runs, sizes), spectrum_measurements(runs, sizes))


SPECTRUM_CLAIMS = (
    Claim(key="frobenius_rank_law",
          statement=("The Frobenius Att-SVM solution W^mm = Σ_i (Σ_t λ_it (x_iα − x_it)) z_iᵀ has rank "
                     "min(d, number of inputs with a support token)"),
          source=f"{TF_SVM}, the KKT form of W^mm (rank ≤ n); inputs without support tokens drop out",
          criteria=(Criterion(key="fro_rank_law", quantity="fraction of seeds where the law holds",
                              op=">=", threshold=1.0),)),
    Claim(key="nuclear_rank_lower",
          statement="The nuclear Att-SVM⋆ solution has lower rank than the Frobenius one",
          source=f"{TF_SVM}, rank of the SVM solutions (nuclear norm favours low rank)",
          criteria=(Criterion(key="nuc_rank_below_fro", quantity="rank(W^mm_F) − rank(W^mm_⋆), mean over seeds",
                              op=">=", threshold=1.0),)),
    Claim(key="softmax_saturates",
          statement="‖W(k)‖ → ∞ under normalized GD, so the softmax concentrates on the selected tokens",
          source=f"{TF_SVM}, directional-convergence theorems (‖W(k)‖ → ∞)",
          criteria=(Criterion(key="w_saturated", quantity="softmax mass on the selected token at the last step (W), mean over seeds",
                              op=">=", threshold=0.99),
                    Criterion(key="kq_saturated", quantity="softmax mass on the selected token at the last step (K, Q), mean over seeds",
                              op=">=", threshold=0.99))),
)

register_figure(FigureSpec(
    name="attention_svm_rank_and_saturation",
    family="attention_svm",
    claim=("The Frobenius Att-SVM solution has rank min(d, number of inputs with a support token) while the nuclear "
           "Att-SVM⋆ solution has lower rank; "
           "W(k) follows the spectrum of the solution its parameterization is biased toward (the (K, Q) "
           "trajectory's trailing singular values decay), and ‖W(k)‖ → ∞ saturates the softmax onto the "
           f"selected tokens ({CITE})."),
    make=rank_and_saturation,
    claims=SPECTRUM_CLAIMS,
))
