"""Probes of the trained in-context regressor: what each layer holds, and which algorithm it agrees with.

Figure ``icl_probe_r2`` reads the seed-0 transformer of figure ``icl_estimator_errors`` (the same run,
from the same size dict):

- left ("What learning algorithm is in-context learning? Investigations with linear models", Akyürek
  et al. 2023): held-out R² of linear probes (``probes.icl_linear``) from the residual stream at the
  query token, after each layer, to the task w, the moment Xᵀy and the Gram matrix XᵀX; dashed, the
  same probes on the untrained model of the same config (what the architecture alone makes
  decodable, e.g. through the residual copy of the input);
- right: the squared prediction difference between the model and each reference predictor
  (``probes.icl_agreement``), divided by d, across the number of in-context examples N, on noiseless
  prompts (solid) and on prompts with label noise σ = ``probe_noise`` (dotted: off the training
  distribution, where least squares and ridge part ways).
"""

from __future__ import annotations

from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.threads import single_thread

from . import icl

# "tiny" is what the test suite renders (tests/test_studies.py). ``garg`` is figure 1's size dict (the
# same object, so the same runs); probe_prompts: prompts for the probes (half fit, half held out);
# agree_prompts: prompts per (N, σ) point of the agreement curves.
SIZES = {
    scale: dict(garg=icl.SIZES[scale]["garg"], probe_prompts=p, agree_prompts=a, probe_noise=0.5)
    for scale, p, a in (("quick", 4000, 500), ("full", 20000, 2000), ("tiny", 600, 100))
}


def probe_model(scale: str):
    """The seed-0 run of the Garg transformer at ``scale`` (trained if absent) and an untrained twin."""
    from theorybench.runstore import get_or_train
    from theorybench.studies.icl_transformer import transformer_experiment
    from toy_models import Transformer

    cfg = transformer_experiment(SIZES[scale]["garg"], seed=0, name=icl.GARG_NAME)
    run = get_or_train(cfg)
    return run, run.load_model(), Transformer(run.config.resolved().model).eval()


def probe_r2_frame(model, task_cfg, prompts: int, seed: int = 0):
    """``residual_probe_r2`` at the query token for w, Xᵀy, XᵀX on ``prompts`` fresh prompts."""
    from probes.icl_linear import regression_targets, residual_probe_r2
    from theorybench.studies.icl_transformer import eval_batch

    batch = eval_batch(task_cfg, prompts, seed=seed)
    dtype = next(model.parameters()).dtype
    targets = regression_targets(batch["X"], batch["y"], batch["w"])
    return residual_probe_r2(model, batch["inputs"].to(dtype), targets)


def icl_probe_r2(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt

    from probes.icl_agreement import agreement_across
    from theory.icl.references import reference_predictors

    size = SIZES[scale]
    garg = size["garg"]
    d, N = garg["d"], garg["N"]
    with single_thread():
        run, model, untrained = probe_model(scale)
        task_cfg = run.config.task
        trained = probe_r2_frame(model, task_cfg, size["probe_prompts"])
        init = probe_r2_frame(untrained, task_cfg, size["probe_prompts"])
        Ns = sorted({1, *range(2, N + 1, max(1, N // 6)), d, 2 * d if 2 * d <= N else N, N})
        sigmas = (0.0, size["probe_noise"])
        # One λ at every σ: the model was trained on one noise level and is not told the probe's.
        agree = agreement_across(model, task_cfg, Ns, sigmas,
                                 lambda s: reference_predictors(s, ridge_lam=garg["ridge_lam"]),
                                 prompts=size["agree_prompts"])

    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.2))
    ax = axes[0]
    colors = {}
    for target in ("w", "Xᵀy", "XᵀX"):
        t = trained[trained.target == target]
        (line,) = ax.plot(t.layer, t.r2, "o-", label=f"{target} (trained)")
        colors[target] = line.get_color()
        u = init[init.target == target]
        ax.plot(u.layer, u.r2, "x--", color=colors[target], alpha=0.7, label=f"{target} (untrained)")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xticks(sorted(trained.layer.unique()))
    ax.set_xlabel("residual stream after layer  (0 = embedding)")
    ax.set_ylabel("held-out R² of a linear probe")
    ax.set_ylim(-0.1, 1.02)
    ax.set_title(f"linear probes at the query token (d = {d}, N = {N})")
    ax.legend(fontsize=7)

    ax = axes[1]
    diffs = agree[agree.quantity == "sq_pred_diff"]
    for i, (name, group) in enumerate(diffs.groupby("predictor", sort=False)):
        for sigma, style in zip(sigmas, ("o-", "s:")):
            g = group[group.noise_std == sigma]
            ax.plot(g.N, g.value / d, style, color=f"C{i}", label=f"{name}" if sigma == 0 else None)
    ax.plot([], [], "k-", label="noiseless prompts")
    ax.plot([], [], "k:", label=f"prompts with σ = {size['probe_noise']}")
    ax.set_yscale("log")
    ax.set_xlabel("in-context examples N")
    ax.set_ylabel("(ŷ_model − ŷ_ref)² / d")
    ax.set_title("agreement with the reference predictors")
    ax.legend(fontsize=7)

    def r2(frame, target, layer):
        return round(float(frame[(frame.target == target) & (frame.layer == layer)].r2.iloc[0]), 4)

    L = int(trained.layer.max())
    best = {t: trained[trained.target == t].sort_values("r2").iloc[-1] for t in ("w", "Xᵀy", "XᵀX")}
    at = diffs[(diffs.N == (2 * d if 2 * d <= N else N)) & (diffs.noise_std == 0.0)]
    closest = at.sort_values("value").iloc[0]
    numbers = {f"probe R² for {t}: best layer (trained)": int(b.layer) for t, b in best.items()}
    numbers.update({f"probe R² for {t}: best value (trained)": round(float(b.r2), 4) for t, b in best.items()})
    numbers.update({f"probe R² for {t}: last layer, untrained": r2(init, t, L) for t in ("w", "Xᵀy", "XᵀX")})
    numbers["closest predictor at N = 2d, noiseless"] = str(closest.predictor)
    numbers["its squared prediction difference / d"] = round(float(closest.value) / d, 5)
    cos = agree[(agree.quantity == "weight_cos") & (agree.predictor == "least squares") & (agree.noise_std == 0.0)]
    numbers["implicit-weight cosine with least squares at N = N_max"] = round(float(cos[cos.N == N].value.iloc[0]), 4)
    lin = agree[(agree.quantity == "linearity_r2") & (agree.noise_std == 0.0)]
    numbers["model linearity in x_q (R² of the implicit-weight fit), mean over N"] = round(float(lin.value.mean()), 4)
    return FigureResult(fig, numbers)


register_figure(FigureSpec(
    name="icl_probe_r2",
    family="icl",
    claim=("Akyürek et al. ('What learning algorithm is in-context learning? Investigations with linear "
           "models', 2023) decode the quantities of the algorithm a trained in-context regressor runs (the "
           "moment Xᵀy, the task w, less so XᵀX) from its hidden states at the query token in later layers, and "
           "find its predictions closest to least squares / ridge rather than to one GD step, averaging or "
           "nearest neighbours; here the same linear probes (held-out R² per layer, against the untrained "
           "model) and prediction differences, measured on the figure-1 transformer."),
    make=icl_probe_r2,
))
