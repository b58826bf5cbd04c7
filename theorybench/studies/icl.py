"""In-context linear regression: the reference estimators' error curves that trained models are read against.

Figure ``icl_estimator_errors``: the exact finite-N expected errors of ``theory.icl.expected_error``
(least squares, averaging, one tuned GD step, the Zhang–Frei–Bartlett optimum) as lines, with
Monte Carlo estimates over sampled prompts as points with ±2 standard-error bars, and ridge at the
Bayes λ = σ² (no closed form at finite N: Monte Carlo only).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from theorybench.registry import FigureResult, FigureSpec, register_figure

# "tiny" is what the test suite renders (tests/test_studies.py); "quick" and "full" are the user scales.
SIZES = {"quick": dict(d=10, n_max=30, prompts=2000), "full": dict(d=20, n_max=60, prompts=20000),
         "tiny": dict(d=3, n_max=8, prompts=200)}
NOISE_STD = 0.5


def _monte_carlo(d: int, N: int, prompts: int, gen: torch.Generator) -> dict[str, tuple[float, float]]:
    """Mean and standard error of (ŷ − y_q)²/d per estimator over ``prompts`` sampled prompts."""
    from theory.icl import expected_error as ee
    from theory.icl import predictors as P

    X = torch.randn(prompts, N, d, generator=gen, dtype=torch.float64)
    w = torch.randn(prompts, d, generator=gen, dtype=torch.float64)
    x_q = torch.randn(prompts, d, generator=gen, dtype=torch.float64)
    y = torch.einsum("bnd,bd->bn", X, w) + NOISE_STD * torch.randn(prompts, N, generator=gen, dtype=torch.float64)
    y_q = (x_q * w).sum(-1) + NOISE_STD * torch.randn(prompts, generator=gen, dtype=torch.float64)
    eye = torch.eye(d, dtype=torch.float64)
    preds = {
        "least squares": P.least_squares(X, y, x_q),
        "averaging": P.averaging(X, y, x_q),
        "one GD step, tuned η": P.gd(X, y, x_q, ee.optimal_one_step_eta(eye, N, NOISE_STD), 1),
        "ridge, λ = σ² (Bayes)": P.bayes_gaussian(X, y, x_q, NOISE_STD),
    }
    out = {}
    for name, pred in preds.items():
        err = ((pred.y_hat.reshape(-1) - y_q) ** 2 / d).numpy()
        out[name] = (float(err.mean()), float(err.std(ddof=1) / math.sqrt(len(err))))
    return out


def _closed_forms(d: int, N: int) -> dict[str, float]:
    from theory.icl import expected_error as ee

    eye = torch.eye(d, dtype=torch.float64)
    eta = ee.optimal_one_step_eta(eye, N, NOISE_STD)
    return {
        "least squares": ee.least_squares_error(d, N, NOISE_STD) / d,
        "averaging": ee.averaging_error(eye, N, NOISE_STD) / d,
        "one GD step, tuned η": ee.one_step_gd_error(eta, eye, N, NOISE_STD) / d,
        "Zhang–Frei–Bartlett optimum": ee.zfb_error(eye, N, NOISE_STD) / d,
    }


def estimator_errors(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    size = SIZES[scale]
    d, Ns = size["d"], np.arange(1, size["n_max"] + 1)
    gen = torch.Generator().manual_seed(0)
    mc = [_monte_carlo(d, int(N), size["prompts"], gen) for N in tqdm(Ns, desc="icl Monte Carlo", leave=False)]
    exact = [_closed_forms(d, int(N)) for N in Ns]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colors = dict(zip(["least squares", "averaging", "one GD step, tuned η", "ridge, λ = σ² (Bayes)",
                       "Zhang–Frei–Bartlett optimum"], plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    worst_z, checked = 0.0, 0
    for name in exact[0]:
        line = np.array([e[name] for e in exact])
        ax.plot(Ns, np.where(np.isfinite(line), line, np.nan), color=colors[name], label=f"{name} (exact)",
                ls="--" if name.startswith("Zhang") else "-")
    for name in mc[0]:
        mean = np.array([m[name][0] for m in mc])
        se = np.array([m[name][1] for m in mc])
        # Where the exact expectation is infinite (least squares at N ∈ {d−1, d, d+1} with noise) a sample
        # mean estimates nothing: those points are left out rather than drawn as a finite value.
        finite = np.array([math.isfinite(e.get(name, 0.0)) for e in exact])
        ax.errorbar(Ns[finite], mean[finite], yerr=2 * se[finite], fmt="o", ms=3, color=colors[name], alpha=0.8,
                    label=f"{name} (Monte Carlo)" if name.startswith("ridge") else None)
        if name in exact[0]:
            for e, m_, s_ in zip(exact, mean, se):
                # Least squares next to N = d has a finite-sample mean but an infinite expectation: skip.
                if math.isfinite(e[name]) and e[name] < 1e3:
                    worst_z, checked = max(worst_z, abs(m_ - e[name]) / s_), checked + 1
    ax.axvline(d, color="0.5", lw=0.8, ls=":", label="N = d")
    ax.set_yscale("log")
    ax.set_ylim(NOISE_STD**2 / d / 2, 3)
    ax.set_xlabel("in-context examples N")
    ax.set_ylabel("normalized squared error  E[(ŷ − y)²] / d")
    ax.set_title(f"Reference estimators, d = {d}, σ = {NOISE_STD} (points: Monte Carlo ± 2 SE)")
    ax.legend(fontsize=7, ncol=2)
    ls_at_2d = exact[2 * d - 1]["least squares"]
    return FigureResult(fig, {
        "largest Monte Carlo deviation from exact (in SE)": round(worst_z, 2),
        "points compared": checked,
        "least squares error / d at N = 2d": round(ls_at_2d, 4),
        "ZFB-optimum error / d at N = 2d": round(exact[2 * d - 1]["Zhang–Frei–Bartlett optimum"], 4),
    })


register_figure(FigureSpec(
    name="icl_estimator_errors",
    family="icl",
    claim=("The analytic references of in-context regression: least squares (error → σ² once N > d, with a "
           "double-descent peak at N = d for noisy labels), averaging, a tuned GD step and the optimum of one "
           "trained linear-attention layer ('What Can Transformers Learn In-Context?', Garg et al. 2022; "
           "'Trained Transformers Learn Linear Models In-Context', Zhang, Frei, Bartlett 2024), exact at "
           "finite N and confirmed by Monte Carlo."),
    make=estimator_errors,
))
