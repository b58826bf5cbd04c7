"""Probes of a least-squares-level in-context regressor: what each layer holds, and which algorithm it is.

"What learning algorithm is in-context learning? Investigations with linear models" (Akyürek et al.
2023): trained transformers' predictions match least squares / ridge rather than gradient descent
(for deep enough models), and probes decode the moment Xᵀy and the task w from their hidden states
(the moments in intermediate layers, w in late layers, some only through an MLP probe). Figure
``icl_probe_r2`` reads the seed-0 transformer of figure ``icl_estimator_errors`` (the same run):

- left: held-out R² per layer of linear (solid) and small-MLP (dotted) probes (``probes.icl_linear``,
  ``probes.icl_mlp``) from the residual stream at the query token to w, Xᵀy and XᵀX, beside the same
  probes on the untrained model of the same config (grey: what the architecture alone makes readable);
- right: the model's squared prediction difference (/d, over N = d+1 … 2d) from k-step GD for every
  k ≤ 40 (step tuned per k and N), from ridge over a λ grid, least squares, averaging and 3-NN.

Claims, fixed here: (1) the model is closer to the least-squares family (least squares, ridge on the λ
grid) than to any rival (k-step GD, k ≤ 40, averaging, 3-NN): margin ≥ 0 with a prompt-bootstrap
interval; (2) w is decodable at the last layer: R² (best of linear and MLP) minus the untrained
control's ≥ 0.5 (most of w's variance explained beyond what the architecture alone gives); (3) Xᵀy is
decodable at some layer by the same measure, ≥ 0.5. The claims are about a least-squares-level learner:
they are measured only where the scale is sized for one and the seed-0 model reaches error/d ≤ 0.02 over
N = d+1 … 2d (``common.LS_LEVEL``); elsewhere they are not measured (inconclusive), with the reason.
"""

from __future__ import annotations

import numpy as np
import torch

from probes._common import resid_hook_names
from probes.icl_linear import linear_probe_residuals, regression_targets, residual_probe_r2
from probes.icl_mlp import mlp_probe_residuals
from theory.icl import predictors as P
from theory.icl.references import knn_capped
from theorybench.claims import Claim, Criterion, bootstrap_interval, not_measured
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.runs import get_or_train
from theorybench.threads import single_thread
from toy_models import Transformer

from .common import (GD_K_MAX, LS_LEVEL, eval_batch, model_prefix_predictions, predictor_prefix_predictions,
                     tuned_gd_prefix_predictions, window)
from .experiments import garg_configs
from .sizes import PROBE_R2 as SIZES
from .sizes import Garg, ProbeR2

RIDGE_LAMS = (1e-3, 1e-2, 0.1, 0.3, 1.0)  # ridge over a λ grid (Akyürek et al. compare ridge at several λ)
PROBE_TARGETS = ("w", "Xᵀy", "XᵀX")
DECODABLE = 0.5  # R² above the untrained control: more than half of the target's variance
SOURCE = ("What learning algorithm is in-context learning? Investigations with linear models (Akyürek et al. 2023), "
          "sections 4–5")
CLAIMS = (
    Claim(key="least_squares_family",
          statement="A trained transformer's predictions are closer to least squares / ridge than to gradient descent "
                    "(any k ≤ 40 steps, tuned), averaging or nearest neighbours",
          source=SOURCE,
          criteria=(Criterion(key="family_margin",
                              quantity="min over rivals (k-step GD k ≤ 40, averaging, 3-NN) minus min over least "
                                       "squares and ridge (λ grid) of E(ŷ − ŷ_ref)²/d over N = d+1 … 2d",
                              op=">=", threshold=0.0),)),
    Claim(key="w_in_late_layers",
          statement="The task w is decodable from the last layer's hidden state at the query token",
          source=SOURCE,
          criteria=(Criterion(key="w_last_r2", quantity="held-out R² for w at the last layer (best of linear and MLP "
                                                        "probe) minus the untrained model's", op=">=",
                              threshold=DECODABLE),)),
    Claim(key="moment_decodable",
          statement="The moment Xᵀy is decodable from some layer's hidden state at the query token",
          source=SOURCE,
          criteria=(Criterion(key="xty_best_r2", quantity="held-out R² for Xᵀy at its best layer (best of linear and "
                                                          "MLP probe) minus the untrained model's", op=">=",
                              threshold=DECODABLE),)),
)


def probe_model(garg: Garg):
    """The seed-0 run of the Garg transformer of size ``garg`` (trained if absent) and an untrained twin."""
    run = get_or_train(garg_configs(garg)[0])
    return run, run.load_model(), Transformer(run.config.resolved().model).eval()


def probe_r2_frame(model, task_cfg, prompts: int, seed: int = 0):
    """``residual_probe_r2`` at the query token for w, Xᵀy, XᵀX on ``prompts`` fresh prompts."""
    batch = eval_batch(task_cfg, prompts, seed=seed)
    dtype = next(model.parameters()).dtype
    targets = regression_targets(batch["X"], batch["y"], batch["w"])
    return residual_probe_r2(model, batch["inputs"].to(dtype), targets)


@torch.no_grad()
def probe_rows(model, batch: dict, mlp_steps: int) -> dict:
    """{(kind, layer, target): (residual rows, total rows)} of linear and MLP probes (``kind``) from the
    residual stream x_l at the query token, l = 0 … L, on ``batch`` (half fit, half held out)."""
    names = resid_hook_names(model)
    dtype = next(model.parameters()).dtype
    _, cache = model.run_with_cache(batch["inputs"].to(dtype), names_filter=names)
    targets = regression_targets(batch["X"], batch["y"], batch["w"])
    rows = {}
    for layer, name in enumerate(names):
        feats = cache[name][:, -1]
        for tname, t in targets.items():
            rows[("linear", layer, tname)] = linear_probe_residuals(feats, t)
            rows[("mlp", layer, tname)] = mlp_probe_residuals(feats, t, steps=mlp_steps)
    return rows


def r2(rows: tuple) -> float:
    resid, total = rows
    return float(1 - resid.sum() / total.sum())


def best_probe_gain(trained: dict, control: dict, layers, target: str):
    """The (layer, kind) whose trained-minus-control R² is largest over ``layers``, and that gain's
    percentile-bootstrap interval over held-out prompts (trained and control are scored on the same rows,
    so the resampling is paired)."""
    best = max(((layer, kind) for layer in layers for kind in ("linear", "mlp")),
               key=lambda lk: r2(trained[(lk[1], lk[0], target)]) - r2(control[(lk[1], lk[0], target)]))
    layer, kind = best
    samples = torch.stack([*trained[(kind, layer, target)], *control[(kind, layer, target)]], 1).numpy()

    def gain(x):
        return float((1 - x[:, 0].sum() / x[:, 1].sum()) - (1 - x[:, 2].sum() / x[:, 3].sum()))

    return best, bootstrap_interval(samples, gain, method="percentile bootstrap over held-out prompts")


def reference_distances(model, batch: dict, d: int) -> dict:
    """Per prompt, E(ŷ_model − ŷ_ref)²/d over N = d+1 … 2d for every reference: least squares, ridge on
    ``RIDGE_LAMS``, k-step GD for k ≤ 40 (tuned per k and N), averaging and 3-NN; and the model's
    error curve. Returns {"dist": {name: [prompts]}, "err": [N + 1], "err_ls": float}."""
    model_pred = model_prefix_predictions(model, batch).numpy()
    targets = batch["targets"].double().numpy()
    refs = {"least squares": P.least_squares, "averaging": P.averaging, "3-NN": knn_capped(3)}
    refs.update({f"ridge λ = {lam:g}": (lambda X, y, q, lam=lam: P.ridge(X, y, q, lam)) for lam in RIDGE_LAMS})
    preds = {name: predictor_prefix_predictions(batch, fn).numpy() for name, fn in refs.items()}
    gd = tuned_gd_prefix_predictions(batch, GD_K_MAX).numpy()
    preds.update({f"{k}-step GD": gd[k] for k in range(1, GD_K_MAX + 1)})
    win = window(d, targets.shape[1] - 1)
    dist = {name: ((model_pred - p)[:, win] ** 2).mean(1) / d for name, p in preds.items()}
    err = ((model_pred - targets) ** 2).mean(0) / d
    return {"dist": dist, "err": err, "err_ls": float(err[win].max())}


def is_ls_family(name: str) -> bool:
    return name == "least squares" or name.startswith("ridge")


def family_margin(dist: dict):
    """min over rivals − min over the least-squares family of the mean distances, with a percentile-bootstrap
    interval over prompts."""
    names = list(dist)
    samples = np.stack([dist[n] for n in names], 1)
    fam = np.array([is_ls_family(n) for n in names])

    def margin(x):
        means = x.mean(0)
        return float(means[~fam].min() - means[fam].min())

    return bootstrap_interval(samples, margin, method="percentile bootstrap over prompts")


def measure(size: ProbeR2) -> dict:
    """On the seed-0 Garg transformer and its untrained twin: the probes' residual rows (``trained``, ``control``;
    ``probe_rows``) and the model's distances to every reference (``refs``; ``reference_distances``)."""
    garg = size.garg
    with single_thread():
        run, model, untrained = probe_model(garg)
        batch = eval_batch(run.config.task, size.probe_prompts, seed=3)
        trained = probe_rows(model, batch, size.mlp_steps)
        control = probe_rows(untrained, batch, size.mlp_steps)
        refs = reference_distances(model, eval_batch(run.config.task, garg.eval_prompts, seed=4), garg.d)
    return {"size": size, "trained": trained, "control": control, "refs": refs}


def _layers(data: dict) -> list[int]:
    return list(range(max(layer for _, layer, _ in data["trained"]) + 1))


def plot(data: dict):
    """Left: probe R² per layer against the untrained control; right: the model's distance to each reference."""
    import matplotlib.pyplot as plt  # start-up time: matplotlib

    garg, trained, control = data["size"].garg, data["trained"], data["control"]
    layers = _layers(data)
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.4))
    ax = axes[0]
    for i, target in enumerate(PROBE_TARGETS):
        for kind, style in (("linear", "o-"), ("mlp", "s:")):
            ax.plot(layers, [r2(trained[(kind, lay, target)]) for lay in layers], style, color=f"C{i}",
                    label=f"{target}, {kind} probe")
            ax.plot(layers, [r2(control[(kind, lay, target)]) for lay in layers], style, color=f"C{i}", alpha=0.35)
    ax.plot([], [], color="0.6", label="faint: untrained model (control)")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xticks(layers)
    ax.set_xlabel("residual stream after layer  (0 = embedding)")
    ax.set_ylabel("held-out R²")
    ax.set_ylim(-0.1, 1.02)
    ax.set_title(f"probes at the query token (d = {garg.d}, N = {garg.n_points}, seed 0)")
    ax.legend(fontsize=6.5)

    ax = axes[1]
    means = {name: float(v.mean()) for name, v in data["refs"]["dist"].items()}
    ks = np.arange(1, GD_K_MAX + 1)
    ax.plot(ks, [means[f"{k}-step GD"] for k in ks], "o-", ms=3, color="C0", label="k-step GD, tuned η")
    for i, name in enumerate(n for n in means if not n.endswith("-step GD")):
        ax.axhline(means[name], color=f"C{i + 1}", lw=1.2, ls="--" if is_ls_family(name) else ":", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("GD steps k")
    ax.set_ylabel("E(ŷ_model − ŷ_ref)² / d over N = d+1 … 2d")
    ax.set_title("distance of the model to each reference")
    ax.legend(fontsize=6.5, ncol=2)
    return fig


def _closest(data: dict) -> str:
    means = {name: float(v.mean()) for name, v in data["refs"]["dist"].items()}
    return min(means, key=means.get)


def numbers(data: dict) -> dict:
    trained, control, refs = data["trained"], data["control"], data["refs"]
    layers = _layers(data)
    L = layers[-1]
    means = {name: float(v.mean()) for name, v in refs["dist"].items()}
    ks = np.arange(1, GD_K_MAX + 1)
    out = {
        "seed-0 model: largest error / d over N = d+1 … 2d": round(refs["err_ls"], 4),
        "closest reference (N = d+1 … 2d)": _closest(data),
        "closest k-step GD (k ≤ 40)": int(min(ks, key=lambda k: means[f"{k}-step GD"])),
        "distance to least squares / to 40-step GD": f"{means['least squares']:.3g} / {means['40-step GD']:.3g}",
    }
    for target in PROBE_TARGETS:
        for kind in ("linear", "mlp"):
            out[f"probe R² for {target}, {kind}: last layer (trained / untrained)"] = (
                f"{r2(trained[(kind, L, target)]):.3f} / {r2(control[(kind, L, target)]):.3f}")
        (layer, kind), _ = best_probe_gain(trained, control, layers, target)
        out[f"probe R² for {target}: best layer and probe above control"] = f"layer {layer}, {kind}"
    return out


def measured(data: dict, scale: str) -> dict:
    """A Measurement per criterion of ``CLAIMS``: not measured unless the scale is sized for a least-squares-level
    learner and the seed-0 model is one."""
    trained, control, refs = data["trained"], data["control"], data["refs"]
    layers = _layers(data)
    decides = data["size"].garg.decides
    if not decides or refs["err_ls"] > LS_LEVEL:
        why = (f"the {scale} scale is not sized for a least-squares-level learner" if not decides else
               f"the seed-0 model is not at least-squares level (error/d {refs['err_ls']:.3g} > {LS_LEVEL})")
        note = f"{why}; measured here: closest reference {_closest(data)}, see the numbers"
        return {c.key: not_measured(note) for claim in CLAIMS for c in claim.criteria}
    return {"family_margin": family_margin(refs["dist"]),
            "w_last_r2": best_probe_gain(trained, control, [layers[-1]], "w")[1],
            "xty_best_r2": best_probe_gain(trained, control, layers, "Xᵀy")[1]}


def make(scale: str) -> FigureResult:
    data = measure(SIZES[scale])
    return FigureResult(plot(data), numbers(data), measured(data, scale))


register_figure(FigureSpec(
    name="icl_probe_r2",
    family="icl",
    claim=("Akyürek et al. ('What learning algorithm is in-context learning? Investigations with linear models', "
           "2023) find a trained transformer's predictions closest to least squares / ridge rather than to gradient "
           "descent, and decode the moment Xᵀy and the task w from its hidden states; here, on the figure-1 "
           "transformer: linear and MLP probes per layer against the untrained model, and the model's distance to "
           "k-step GD for every k ≤ 40 (tuned), ridge over a λ grid, least squares, averaging and 3-NN. Judged "
           "only on a least-squares-level learner (error/d ≤ 0.02 over N = d+1 … 2d)."),
    make=make,
    claims=CLAIMS,
))
