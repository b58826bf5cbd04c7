"""Attention as an SVM in two dimensions: GD paths of a trainable prompt p and the max-margin rays.

"Max-Margin Token Selection in Attention Mechanism" (Tarzanagh, Li, Zhang, Oymak, 2023): for
f(X) = vᵀ Xᵀ softmax(X p) with the logistic loss, gradient descent on p diverges in norm and its
direction converges to the p-SVM solution p^mm_α = argmin ‖p‖ s.t. pᵀ(x_α − x_t) ≥ 1 (t ≠ α) of a
*locally optimal* selection α — the globally optimal token from most initializations, a locally
optimal one from initializations in its cone. Normalized GD grows ‖p(k)‖ linearly (η per step once the
direction settles); constant-step GD only logarithmically, as the gradient decays like exp(−margin·‖p‖).

In float64 the textbook gradient Σ_t s_t(γ_t − γ̄)x_t is round-off once the softmax saturates (near
‖p‖ ≈ ‖p^mm_α‖·ln(1/ε)), and normalized GD would follow that round-off off the ray. ``svm_training``
computes it as Σ_{t≠α} s_t δ_t (D_t − D̄), accurate down to the underflow of the weights, so
normalized GD keeps growing ‖p‖ by η per step along the ray: the offset b that the path picked up
before saturation stays fixed and 1 − corr ≈ ½‖b‖²/‖p‖² keeps falling. A run stops only when the
gradient leaves the normal float64 range (``PRECISION_FLOOR``), after some 4,000 steps here.

The instance is one input of three tokens in the plane, with head v = e_2 (token score γ_t = x_t[1]):
x_0 = (1, 0.5) (γ = 0.5, locally optimal: it beats its only support token x_1), x_1 = (0.3, 0)
(γ = 0) and x_2 = (−1, 1) (γ = 1, the global optimum). GD starts on a circle of radius R_0
around the origin, at evenly spaced angles.
"""

from __future__ import annotations

import functools

import numpy as np
from tqdm.auto import tqdm

from theorybench.claims import Claim, Criterion, Measurement, exact, not_measured
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.threads import single_thread
from toy_models.svm_training import train_prompt

from .sizes import PROMPT_SIZES, PromptSizes

SIZES = PROMPT_SIZES  # what theorybench.figures hashes into each result's provenance
LR = 0.1
PAPER_STEPS = 1000  # the Max-Margin experiments' iterations: the ray criterion is not judged on shorter runs
R0 = 3.0  # radius of the initializations: large enough that the local cone catches some of them
TOKENS = np.array([[[1.0, 0.5], [0.3, 0.0], [-1.0, 1.0]]])
Y = np.array([1.0])
V = np.array([0.0, 1.0])
Z_E1 = np.array([[1.0, 0.0]])  # the prompt model as the W-layer with query e_1 (see toy_models.svm_training)



def measure(sizes: PromptSizes) -> dict:
    """The p-SVM rays and GD paths of ``sizes`` (``prompt_runs``, cached per size in this process)."""
    return prompt_runs(sizes.inits, sizes.steps)


@functools.lru_cache(maxsize=2)
def prompt_runs(inits: int, steps: int) -> dict:
    """p-SVM solutions of every locally optimal selection and the GD paths from each initialization."""
    # here, not at the top: theory.attention_svm loads cvxpy (≈ 0.6 s of the command line's start-up)
    from theory.attention_svm import is_locally_optimal, optimal_tokens, solve_att_svm, solve_p_svm

    T = TOKENS.shape[1]
    rays = {}
    for t in range(T):
        alpha = np.array([t])
        sol = solve_p_svm(TOKENS, alpha)
        att = solve_att_svm(TOKENS, Z_E1, alpha)  # same constraints on W e_1: the local-optimality test's SVM
        if sol.optimal and is_locally_optimal(TOKENS, Y, V, Z_E1, alpha, solution=att):
            rays[t] = sol.value
    angles = np.linspace(0, 2 * np.pi, inits, endpoint=False)
    paths = {"normalized": [], "gd": []}
    selected = {"normalized": [], "gd": []}
    stopped = {"normalized": [], "gd": []}
    with single_thread():
        for theta in tqdm(angles, desc="prompt GD paths", leave=False, disable=None):
            p0 = R0 * np.array([np.cos(theta), np.sin(theta)])
            for method in paths:
                tr = train_prompt(TOKENS, Y, V, p0, steps=steps, lr=LR, method=method)
                # A run that stopped (gradient below the float64 normal range) stays where it stopped.
                pad = np.repeat(tr.p[-1:], steps + 1 - len(tr.p), axis=0)
                paths[method].append(np.concatenate([tr.p, pad]))
                selected[method].append(int(tr.selected[0]))
                stopped[method].append(steps if tr.stopped_at is None else tr.stopped_at)
    return dict(rays=rays, opt=int(optimal_tokens(TOKENS, Y, V)[0]), angles=angles,
                paths={m: np.stack(p) for m, p in paths.items()}, selected={m: np.array(s) for m, s in selected.items()},
                last_step={m: np.array(s) for m, s in stopped.items()})


def direction_error(paths: np.ndarray, ray: np.ndarray) -> np.ndarray:
    """1 − corr(p(k), ray) for paths [inits, K, 2]."""
    norms = np.linalg.norm(paths, axis=-1)
    return 1 - paths @ ray / (norms * np.linalg.norm(ray))


def plot(run: dict, sizes: PromptSizes):
    # matplotlib here, not at the top: the command line imports every study and should start fast
    import matplotlib.pyplot as plt

    rays, opt = run["rays"], run["opt"]
    P, sel = run["paths"]["normalized"], run["selected"]["normalized"]
    k = np.arange(sizes.steps + 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ray_color = {t: colors[i % len(colors)] for i, t in enumerate(sorted(rays))}
    gamma = (Y[:, None] * (TOKENS @ V))[0]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4), layout="constrained")

    ax = axes[0]
    extent = 1.1 * np.abs(P).max()
    for t, p in sorted(rays.items()):
        u = p / np.linalg.norm(p)
        kind = "global" if t == opt else "local"
        ax.plot([0, extent * u[0]], [0, extent * u[1]], color=ray_color[t], lw=6, alpha=0.25,
                label=f"{kind} max-margin ray p^mm (token {t})")
    for path, s in zip(P, sel):
        ax.plot(path[:, 0], path[:, 1], color=ray_color.get(s, "0.4"), lw=1)
        ax.plot(path[0, 0], path[0, 1], "o", color=ray_color.get(s, "0.4"), ms=3)
    shown = 0.25 * extent  # tokens are O(1): drawn scaled up so that they are visible beside the paths
    for t, x in enumerate(TOKENS[0]):
        ax.plot(*(shown * x), marker="*", ms=12, color="k")
        ax.annotate(f"x{t} (γ = {gamma[t]:g})", shown * x, textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_aspect("equal")
    ax.set_xlabel("p[0]")
    ax.set_ylabel("p[1]")
    ax.set_title(f"normalized GD from {len(P)} starts on ‖p‖ = {R0:g} (★: tokens × {shown:.0f})", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1)

    ax = axes[1]
    for t, p in sorted(rays.items()):
        mine = sel == t
        if mine.any():
            err = np.maximum(direction_error(P[mine], p), 1e-16)
            for e in err:
                ax.plot(k[1:], e[1:], color=ray_color[t], lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("iteration k")
    ax.set_ylabel("1 − corr(p(k), p^mm of the token it selects)")
    ax.set_title("each normalized-GD path against its own ray", fontsize=9)

    ax = axes[2]
    for method, style, label in _METHODS:
        norms = np.linalg.norm(run["paths"][method], axis=-1)
        ax.plot(k, norms.mean(axis=0), ls=style, color="k", label=f"{label} (mean over starts)")
        ax.fill_between(k, norms.min(axis=0), norms.max(axis=0), color="0.5", alpha=0.2)
    ax.plot(k, R0 + LR * k, ls=":", color="0.5", label="‖p(0)‖ + η k")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("iteration k")
    ax.set_ylabel("‖p(k)‖ (band: min–max over starts)")
    ax.set_title(f"norm growth, η = {LR}", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle("Token selection by a trainable prompt p: GD converges in direction to a max-margin ray", fontsize=10)
    return fig


_METHODS = (("normalized", "-", "normalized GD"), ("gd", "--", "constant-step GD"))


def _growth(run: dict) -> np.ndarray:
    """Per start: (‖p(K)‖ − ‖p(0)‖)/(η K) under normalized GD, K the step it stopped at."""
    P, last = run["paths"]["normalized"], run["last_step"]["normalized"]
    return (np.linalg.norm(P[:, -1], axis=-1) - R0) / (LR * np.maximum(last, 1))


def _final_corr(run: dict) -> np.ndarray:
    """Per start: corr(p(K), p^mm of the token it selects); nan where that token has no ray."""
    rays, P, sel = run["rays"], run["paths"]["normalized"], run["selected"]["normalized"]
    return np.array([1 - direction_error(path[None, -1:], rays[t])[0, 0] if t in rays else np.nan
                     for path, t in zip(P, sel)])


def numbers(run: dict, sizes: PromptSizes) -> dict[str, float | str]:
    rays, opt = run["rays"], run["opt"]
    P, sel = run["paths"]["normalized"], run["selected"]["normalized"]
    out: dict[str, float | str] = {}
    for t, p in sorted(rays.items()):
        mine = sel == t
        kind = "global" if t == opt else "local"
        out[f"starts ending on the {kind} token {t}"] = f"{int(mine.sum())}/{len(P)}"
        if mine.any():
            out[f"{kind} token {t}: max 1 − corr(p(K), p^mm) over its starts"] = float(f"{direction_error(P[mine], p)[:, -1].max():.2e}")
    stray = ~np.isin(sel, list(rays))
    out["starts ending on a token that is not locally optimal"] = f"{int(stray.sum())}/{len(P)}"
    for method, _, label in _METHODS:
        norms = np.linalg.norm(run["paths"][method], axis=-1)
        out[f"{label}: mean ‖p(K)‖ at K = {sizes.steps}"] = float(f"{norms[:, -1].mean():.3g}")
    last = run["last_step"]["normalized"]
    out["normalized GD: runs stopped early (gradient below the float64 normal range)"] = \
        f"{int(np.sum(last < sizes.steps))}/{len(P)}"
    out["locally optimal tokens (with their p-SVM rays)"] = ", ".join(str(t) for t in sorted(rays))
    out["iterations"] = sizes.steps
    out["worst start: corr(p(K), p^mm of its token)"] = float(f"{np.nanmin(_final_corr(run)):.6f}")
    out["worst start: (‖p(K)‖ − ‖p(0)‖) / (η K)"] = float(f"{_growth(run).min():.4f}")
    return out


def prompt_measurements(run: dict, sizes: PromptSizes) -> dict[str, Measurement]:
    """Over the deterministic starts: the fraction ending on a locally optimal token, the fraction of
    locally optimal tokens reached, the worst final correlation with its ray (judged at ≥ the paper's
    1000 steps), the worst linear-growth rate under normalized GD, and constant-step over normalized growth."""
    rays, P, sel = run["rays"], run["paths"]["normalized"], run["selected"]["normalized"]
    on_ray = np.isin(sel, list(rays))
    corr = _final_corr(run)
    gd_norms = np.linalg.norm(run["paths"]["gd"][:, -1], axis=-1) - R0
    ngd_norms = np.linalg.norm(P[:, -1], axis=-1) - R0
    return {
        "prompt_ends_locally_optimal": exact(float(on_ray.mean()), f"deterministic starts, {len(P)} of them"),
        "prompt_rays_reached": exact(len(set(sel[on_ray].tolist())) / len(rays), "deterministic starts"),
        "prompt_worst_corr": (exact(float(np.nanmin(corr)) if on_ray.all() else float("-inf"), "worst start")
                              if sizes.steps >= PAPER_STEPS else
                              not_measured(f"{sizes.steps} steps, fewer than the paper's {PAPER_STEPS}")),
        "ngd_linear_growth": exact(float(_growth(run).min()), "worst start: (‖p(K)‖ − ‖p(0)‖)/(η K)"),
        "gd_slower_growth": exact(float(gd_norms.mean() / ngd_norms.mean()), "mean over starts"),
    }


def token_selection_geometry(scale: str) -> FigureResult:
    sizes = SIZES[scale]
    run = measure(sizes)
    return FigureResult(plot(run, sizes), numbers(run, sizes), prompt_measurements(run, sizes))


_MAX_MARGIN = "Max-Margin Token Selection in Attention Mechanism (Tarzanagh, Li, Zhang, Oymak 2023)"

CLAIMS = (
    Claim(key="prompt_to_locally_optimal_ray",
          statement=("Normalized GD on a prompt p converges in direction to the p-SVM ray of a locally optimal token "
                     "(the global one, or a local one from starts in its cone)"),
          source=f"{_MAX_MARGIN}, the 2-D GD-path figures (1000 iterations, η = 0.1)",
          criteria=(Criterion(key="prompt_ends_locally_optimal", quantity="fraction of starts ending on a locally optimal token",
                              op=">=", threshold=1.0),
                    Criterion(key="prompt_worst_corr", quantity="min over starts of corr(p(K), p^mm of its token), K ≥ 1000",
                              op=">=", threshold=0.99))),
    Claim(key="global_and_local_rays",
          statement="Both the global and a local max-margin ray attract GD paths, depending on the start",
          source=f"{_MAX_MARGIN}, local vs global convergence",
          criteria=(Criterion(key="prompt_rays_reached", quantity="fraction of locally optimal tokens reached from some start",
                              op=">=", threshold=1.0),)),
    Claim(key="norm_grows",
          statement="‖p(k)‖ diverges: linearly under normalized GD, much more slowly (logarithmically) under constant steps",
          source=f"{_MAX_MARGIN}; normalized-GD rates of 'Implicit Bias and Fast Convergence Rates for Self-attention'",
          criteria=(Criterion(key="ngd_linear_growth", quantity="min over starts of (‖p(K)‖ − ‖p(0)‖)/(η K), normalized GD",
                              op=">=", threshold=0.9),
                    Criterion(key="gd_slower_growth", quantity="mean growth of ‖p‖ under constant steps / under normalized GD",
                              op="<=", threshold=0.5))),
)


register_figure(FigureSpec(
    name="attention_svm_prompt_geometry",
    family="attention_svm",
    claim=("Gradient descent on a trainable prompt p converges in direction to the max-margin (p-SVM) ray of a locally "
           "optimal token — the global one or, from starts in its cone, a local one — while ‖p(k)‖ grows without bound: "
           "linearly under normalized GD, logarithmically under constant steps "
           "('Max-Margin Token Selection in Attention Mechanism', Tarzanagh, Li, Zhang, Oymak 2023)."),
    make=token_selection_geometry,
    claims=CLAIMS,
))
