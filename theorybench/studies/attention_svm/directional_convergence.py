"""Attention as an SVM: normalized GD on one softmax-attention layer, read against the Att-SVM solutions.

"Transformers as Support Vector Machines" and "Max-Margin Token Selection in Attention Mechanism"
(Tarzanagh, Li, Thrampoulidis, Oymak, 2023). One layer f(X) = vᵀ Xᵀ softmax(X W z), logistic loss,
normalized GD (η = 0.1) on W directly or on W = K Qᵀ, data of the ``equal_scores`` geometry (the
condition of the paper's global-convergence result, so the selected tokens α are the optimal ones):

- ``attention_svm_directional_convergence``: corr(W(k), W_svm) = ⟨W(k), W_svm⟩ / (‖W(k)‖ ‖W_svm‖)
  against the Frobenius Att-SVM and the nuclear Att-SVM⋆ solutions, for both parameterizations.
- ``attention_svm_rank_and_saturation``: the normalized spectrum σ_i(W(k))/σ_1 beside the SVM
  solutions' spectra, and the softmax mass on the selected token.

Both figures read the same runs (one per seed and parameterization), cached per size in this process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from theorybench.claims import Claim, Criterion, exact, not_measured, paired_difference, t_interval
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.threads import single_thread

# "tiny" is what the test suite renders (tests/test_studies.py); "quick", "medium" and "full" the user
# scales. n, T, d, η and 1000 steps are the paper's setup; seeds ≥ 2 so that a standard deviation
# exists. medium: 20 seeds at the paper's 1000 steps (≈ 2 s of CPU per seed and parameterization).
SIZES = {"quick": dict(n=6, T=8, d=10, steps=1000, seeds=4), "medium": dict(n=6, T=8, d=10, steps=1000, seeds=20),
         "full": dict(n=6, T=8, d=10, steps=3000, seeds=20), "tiny": dict(n=6, T=8, d=10, steps=300, seeds=2)}
PAPER_STEPS = 1000  # the paper's iterations: convergence criteria are not judged on shorter runs
LR = 0.1
PARAMETERIZATIONS = {"W": "W trained directly", "KQ": "W = K Qᵀ, K and Q trained"}
NORM_LABELS = {"fro": "Frobenius Att-SVM", "nuc": "nuclear Att-SVM⋆"}
MATCHING_NORM = {"W": "fro", "KQ": "nuc"}  # the solution each parameterization is predicted to reach
SATURATED = 0.99  # softmax mass on the selected token counted as "selected"
# Relative singular values of an SVM solution below this are solver round-off (CLARABEL stops at 1e-9
# relative residuals; a nuclear solution's zero singular values come back at 1e-13–1e-11).
_FLOOR = 1e-12


@dataclass(frozen=True)
class SeedRun:
    """One data seed: the instance, both SVM solutions for α = opt, and the W(k) trajectory per parameterization."""

    seed: int
    inst: object  # toy_models.tasks.attention_svm_data.AttentionSVMInstance
    svm: dict  # norm -> theory.attention_svm.SVMSolution
    W: dict  # parameterization -> [steps+1, d, d]


@functools.lru_cache(maxsize=2)
def seed_runs(n: int, T: int, d: int, steps: int, seeds: int) -> tuple[SeedRun, ...]:
    """Solve both Att-SVMs and train both parameterizations for seeds 0 … seeds−1 (cached: both figures share them)."""
    import torch
    from tqdm.auto import tqdm

    from theory.attention_svm import solve_att_svm
    from toy_models.single_attention import SingleAttention
    from toy_models.svm_training import initialize_factors, train
    from toy_models.tasks.attention_svm_data import AttentionSVMData

    runs = []
    with single_thread():  # d×d = 10×10 tensors: extra intra-op threads only cost
        for seed in tqdm(range(seeds), desc="attention-SVM seeds", leave=False, disable=None):
            inst = AttentionSVMData(n=n, T=T, d=d, seed=seed).generate()
            svm = {norm: solve_att_svm(inst.X, inst.Z, inst.opt, norm).require() for norm in NORM_LABELS}
            W = {}
            for par in PARAMETERIZATIONS:
                model = SingleAttention(torch.tensor(inst.v), par)
                initialize_factors(model, seed=seed)
                W[par] = train(model, inst.X, inst.Z, inst.Y, steps=steps, lr=LR, path="direct").W
            runs.append(SeedRun(seed, inst, svm, W))
    return tuple(runs)


def correlation_curve(W: np.ndarray, W_svm: np.ndarray) -> np.ndarray:
    """corr(W(k), W_svm) for every k of a trajectory [K, d, d]; nan where W(k) = 0 (k = 0: both inits give W = 0)."""
    from probes.attention_svm import correlation_curve as curve

    return curve(W, W_svm)


def selected_mass(W: np.ndarray, inst) -> np.ndarray:
    """Mean over inputs of softmax(X_i W(k) z_i) at the optimal token, for every k: [K]."""
    from probes.attention_svm import selected_mass as mass

    return mass(W, inst.X, inst.Z, inst.opt)


def _mean_sd(curves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    stack = np.stack(curves)
    return stack.mean(axis=0), stack.std(axis=0, ddof=1)


# ---------------------------------------------------------------------------------------- figure 1
def directional_convergence(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt

    from theory.attention_svm import certify
    from theorybench.style import band

    size = SIZES[scale]
    runs = seed_runs(**size)
    k = np.arange(1, size["steps"] + 1)  # k = 0 has W = 0, whose direction is undefined
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.0), sharey=True, layout="constrained")
    numbers: dict[str, float | str] = {}
    for ax, (par, title) in zip(axes, PARAMETERIZATIONS.items()):
        for norm, label in NORM_LABELS.items():
            curves = [correlation_curve(r.W[par], r.svm[norm].W)[1:] for r in runs]
            mean, sd = _mean_sd(curves)
            band(ax, k, mean, sd, label=f"vs {label}", color=_norm_colors()[norm])
            final = np.array([c[-1] for c in curves])
            numbers[f"{par}: final corr with {norm} SVM (mean)"] = round(float(final.mean()), 4)
            numbers[f"{par}: final corr with {norm} SVM (min over seeds)"] = round(float(final.min()), 4)
        ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("iteration k")
        ax.set_title(f"{title}\n(predicted: {NORM_LABELS[MATCHING_NORM[par]]})", fontsize=9)
    axes[0].set_ylabel("corr(W(k), W_svm)")
    axes[0].legend(loc="lower right")
    fig.suptitle(f"Normalized GD, n = {size['n']}, T = {size['T']}, d = {size['d']}, η = {LR}: "
                 f"mean ± sd over {len(runs)} seeds", fontsize=10)
    certified = sum(certify(r.svm[norm]).passed for r in runs for norm in NORM_LABELS)
    numbers["SVM solutions passing the KKT certificate"] = f"{certified}/{2 * len(runs)}"
    numbers["iterations"] = size["steps"]
    numbers["seeds"] = len(runs)
    measured = {}
    for par, own in MATCHING_NORM.items():
        other = "nuc" if own == "fro" else "fro"
        final = {norm: [correlation_curve(r.W[par], r.svm[norm].W)[-1] for r in runs] for norm in NORM_LABELS}
        if size["steps"] >= PAPER_STEPS:
            measured[f"{par.lower()}_corr_own"] = t_interval(final[own])
        else:
            measured[f"{par.lower()}_corr_own"] = not_measured(f"{size['steps']} steps, fewer than the paper's {PAPER_STEPS}")
        measured[f"{par.lower()}_own_minus_other"] = paired_difference(final[own], final[other])
    return FigureResult(fig, numbers, measured)


# ---------------------------------------------------------------------------------------- figure 2
def rank_and_saturation(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt

    from theory.attention_svm import numerical_rank, support_inputs
    from theorybench.style import band

    size = SIZES[scale]
    runs = seed_runs(**size)
    steps = size["steps"]
    k = np.arange(1, steps + 1)
    r_max = min(size["n"], size["d"])  # rank(W(k)) ≤ min(n, d): every gradient is Σ_i (…) z_iᵀ
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
    numbers: dict[str, float | str] = {}
    for par, title in PARAMETERIZATIONS.items():
        curves = [selected_mass(r.W[par], r.inst)[1:] for r in runs]
        mean, sd = _mean_sd(curves)
        band(ax, k, mean, sd, label=title)
        first = [int(k[np.argmax(c >= SATURATED)]) if np.any(c >= SATURATED) else np.nan for c in curves]
        numbers[f"{par}: softmax mass on selected token at k = {steps} (mean)"] = round(float(mean[-1]), 4)
        numbers[f"{par}: first k with mass ≥ {SATURATED} (median over seeds)"] = float(np.nanmedian(first))
        numbers[f"{par}: rank of W(k = {steps}) (mean over seeds)"] = float(np.mean([numerical_rank(r.W[par][-1]) for r in runs]))
        matched = sum(numerical_rank(r.W[par][-1]) == r.svm[MATCHING_NORM[par]].rank for r in runs)
        numbers[f"{par}: seeds whose final rank equals its SVM's"] = f"{matched}/{len(runs)}"
    for norm in NORM_LABELS:
        numbers[f"rank of the {norm} SVM solution (mean over seeds)"] = float(np.mean([r.svm[norm].rank for r in runs]))
    law = [r.svm["fro"].rank == min(size["d"], int(support_inputs(r.svm["fro"]).sum())) for r in runs]
    numbers["seeds with rank(W^fro) = min(d, inputs with a support token)"] = f"{sum(law)}/{len(runs)}"
    measured = {
        "fro_rank_law": exact(sum(law) / len(runs), f"solver, rank at its stated accuracy, {len(runs)} seeds"),
        "nuc_rank_below_fro": paired_difference([r.svm["fro"].rank for r in runs], [r.svm["nuc"].rank for r in runs]),
    }
    for par in PARAMETERIZATIONS:
        mass = [selected_mass(r.W[par], r.inst)[-1] for r in runs]
        measured[f"{par.lower()}_saturated"] = t_interval(mass)
    ax.set_xscale("log")
    ax.set_xlabel("iteration k")
    ax.set_ylabel("softmax mass on the selected token")
    ax.set_ylim(0, 1.0)  # the mean ± sd band crosses 1 where seeds saturate at different k; mass cannot
    ax.set_title(f"mean ± sd over {len(runs)} seeds", fontsize=9)
    ax.legend(loc="upper left")
    fig.suptitle(f"Spectrum of W(k) and saturation of the softmax (n = {size['n']}, T = {size['T']}, d = {size['d']}).  "
                 f"◀: the SVM solution's σ_i / σ_1 (values below {_FLOOR:.0e} are solver round-off, drawn at {_FLOOR:.0e})",
                 fontsize=10)
    return FigureResult(fig, numbers, measured)


def _norm_colors() -> dict[str, str]:
    import matplotlib.pyplot as plt

    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {"fro": cycle[0], "nuc": cycle[1]}


_CITE = ("'Transformers as Support Vector Machines' and 'Max-Margin Token Selection in Attention Mechanism' "
         "(Tarzanagh, Li, Thrampoulidis, Oymak 2023)")

_TF_SVM = "Transformers as Support Vector Machines (Tarzanagh, Li, Thrampoulidis, Oymak 2023)"

CONVERGENCE_CLAIMS = (
    Claim(key="w_to_frobenius_svm",
          statement=("Normalized GD on W converges in direction to the Frobenius Att-SVM solution W^mm, "
                     "not to the nuclear one"),
          source=f"{_TF_SVM}, the W-parameterization convergence figure (n = 6, T = 8, d = 10, 1000 steps)",
          criteria=(Criterion(key="w_corr_own", quantity="corr(W(K), W^mm_F) at the last step K ≥ 1000, mean over seeds",
                              op=">=", threshold=0.99),
                    Criterion(key="w_own_minus_other", quantity="corr(W(K), W^mm_F) − corr(W(K), W^mm_⋆), mean over seeds",
                              op=">=", threshold=0.0))),
    Claim(key="kq_to_nuclear_svm",
          statement=("Normalized GD on (K, Q) converges in direction (of W = KQᵀ) to the nuclear Att-SVM⋆ "
                     "solution, not to the Frobenius one"),
          source=f"{_TF_SVM}, the (K, Q)-parameterization convergence figure",
          criteria=(Criterion(key="kq_corr_own", quantity="corr(KQᵀ(K), W^mm_⋆) at the last step K ≥ 1000, mean over seeds",
                              op=">=", threshold=0.99),
                    Criterion(key="kq_own_minus_other", quantity="corr(KQᵀ(K), W^mm_⋆) − corr(KQᵀ(K), W^mm_F), mean over seeds",
                              op=">=", threshold=0.0))),
)

SPECTRUM_CLAIMS = (
    Claim(key="frobenius_rank_law",
          statement=("The Frobenius Att-SVM solution W^mm = Σ_i (Σ_t λ_it (x_iα − x_it)) z_iᵀ has rank "
                     "min(d, number of inputs with a support token)"),
          source=f"{_TF_SVM}, the KKT form of W^mm (rank ≤ n); inputs without support tokens drop out",
          criteria=(Criterion(key="fro_rank_law", quantity="fraction of seeds where the law holds",
                              op=">=", threshold=1.0),)),
    Claim(key="nuclear_rank_lower",
          statement="The nuclear Att-SVM⋆ solution has lower rank than the Frobenius one",
          source=f"{_TF_SVM}, rank of the SVM solutions (nuclear norm favours low rank)",
          criteria=(Criterion(key="nuc_rank_below_fro", quantity="rank(W^mm_F) − rank(W^mm_⋆), mean over seeds",
                              op=">=", threshold=1.0),)),
    Claim(key="softmax_saturates",
          statement="‖W(k)‖ → ∞ under normalized GD, so the softmax concentrates on the selected tokens",
          source=f"{_TF_SVM}, directional-convergence theorems (‖W(k)‖ → ∞)",
          criteria=(Criterion(key="w_saturated", quantity="softmax mass on the selected token at the last step (W), mean over seeds",
                              op=">=", threshold=0.99),
                    Criterion(key="kq_saturated", quantity="softmax mass on the selected token at the last step (K, Q), mean over seeds",
                              op=">=", threshold=0.99))),
)

register_figure(FigureSpec(
    name="attention_svm_directional_convergence",
    family="attention_svm",
    claim=("Normalized gradient descent on a softmax-attention layer converges in direction to a max-margin "
           "token-selection SVM: trained as W, to the Frobenius-norm Att-SVM solution; trained as W = KQᵀ, to the "
           f"nuclear-norm Att-SVM⋆ solution, and each correlates clearly less with the other one ({_CITE})."),
    make=directional_convergence,
    claims=CONVERGENCE_CLAIMS,
))

register_figure(FigureSpec(
    name="attention_svm_rank_and_saturation",
    family="attention_svm",
    claim=("The Frobenius Att-SVM solution has rank min(d, number of inputs with a support token) while the nuclear "
           "Att-SVM⋆ solution has lower rank; "
           "W(k) follows the spectrum of the solution its parameterization is biased toward (the (K, Q) "
           "trajectory's trailing singular values decay), and ‖W(k)‖ → ∞ saturates the softmax onto the "
           f"selected tokens ({_CITE})."),
    make=rank_and_saturation,
    claims=SPECTRUM_CLAIMS,
))
