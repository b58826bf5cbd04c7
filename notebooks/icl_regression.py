# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # In-context linear regression: constructions, trained learners, probes
#
# Part I, linear self-attention as one step of gradient descent. "Transformers learn in-context by
# gradient descent" (von Oswald et al. 2023) and "Trained Transformers Learn Linear Models In-Context"
# (Zhang, Frei, Bartlett 2024): one layer of linear self-attention (LSA) on stacked tokens
# [x_i; y_i], query [x_q; 0], can compute, and when trained does compute, one step of gradient
# descent from w = 0, ŷ = x_qᵀ η (1/N) Σ y_i x_i. For x ~ N(0, I) the risk-minimizing step
# η = N/(N + d + 1) is exactly the ZFB optimum Γ⁻¹ = N/(N + d + 1) · I.
#
# Part II, a softmax transformer on interleaved tokens ("What Can Transformers Learn In-Context?",
# Garg et al. 2022), trained with the experiment machinery, read against the closed-form predictors,
# and probed layer by layer ("What learning algorithm is in-context learning?", Akyürek et al. 2023).
#
# The flow: config → data → the exact construction (both attention paths) → training → comparison →
# figure; then the trained softmax model → its error curve → agreement with each predictor → linear
# probes per layer.

# %%
import matplotlib.pyplot as plt
import torch

import theorybench
from theory.icl import expected_error as ee
from theory.icl import predictors as P
from theorybench.registry import default_scale
from theorybench.runs import get_or_train
from theorybench.runstore import store_root
from theorybench.studies.icl import lsa_trained_vs_gd as icl_lsa
from theorybench.studies.icl.sizes import GARG as GARG_SIZES
from theorybench.studies.icl.sizes import GARG_FAST
from theorybench.style import apply_style
from toy_models.constructions.lsa import gd_lsa, lsa_inputs
from toy_models.tasks.icl_regression import ICLRegressionConfig

apply_style()
# Models of a few hundred weights: thread hand-offs cost more than they save (and oversubscribe a
# shared machine), so one thread is the fastest.
torch.set_num_threads(1)
SCALE = default_scale()
# The notebook trains the small "tiny" size at quick scale (seconds), the figure's quick size at full.
SIZE = icl_lsa.SIZES["tiny" if SCALE == "quick" else "quick"]
d, N = SIZE.d, SIZE.n_points
print(f"scale={SCALE}: d={d}, N={N}, {SIZE.steps} Adam steps of batch {SIZE.batch_size}")

# %% [markdown]
# ## Part I. Linear self-attention
#
# ## 1. Config and data
#
# The stacked task: tokens [x_i; y_i] for the context and [x_q; 0] for the query, plus an attention
# mask that lets every token attend to the N context tokens only, so the normalized linear attention
# divides by N.

# %%
task = ICLRegressionConfig(d=d, n_points=N, tokenization="stacked", dtype="float64").build()
batch = task.sample(512, torch.Generator().manual_seed(0))
print({k: tuple(v.shape) for k, v in batch.items()})
eye = torch.eye(d, dtype=torch.float64)
eta = ee.optimal_one_step_eta(eye, N, 0.0)
print(f"tuned η = {eta:.4f} = N/(N+d+1) = {N / (N + d + 1):.4f}")
print(f"exact expected MSE: predict 0 = {d}, tuned GD step = {ee.one_step_gd_error(eta, eye, N):.4f}, "
      f"ZFB optimum = {ee.zfb_error(eye, N):.4f}")

# %% [markdown]
# ## 2. The exact construction: `gd_lsa` is one GD step, on both attention paths
#
# W_Q = W_K = [[I, 0], [0, 0]], W_V = e_y e_yᵀ, W_O = −η e_y e_yᵀ and read-out −e_y (see
# `toy_models/constructions/lsa.py`). In float64 the two paths and the closed form agree to rounding:
# a sum of N products of O(1) terms, error ~ N·ε·scale ≈ 1e-14, far below the 1e-10 asserted.

# %%
model = gd_lsa(d, eta, n_ctx=N + 1)
inputs, mask = lsa_inputs(batch["X"], batch["y"], batch["x_query"])
gd = P.gd(batch["X"], batch["y"], batch["x_query"], eta, 1).y_hat.reshape(-1)
for path in ("reference", "kernel"):
    y_lsa = model(inputs, attn_mask=mask, attn_path=path)[:, -1, 0].detach()
    err = float((y_lsa - gd).abs().max() / gd.abs().max())
    print(f"{path:9s} path: max |ŷ_LSA − ŷ_GD| / max |ŷ_GD| = {err:.1e}")
    assert err < 1e-10

# %% [markdown]
# ## 3. Training
#
# `icl_lsa.train_at` (`train_lsa` at a size) trains a one-layer LSA toy model with AdamW (lr cosine-decayed to 0) on fresh
# noiseless prompts. `init="zfb"` is the ZFB parametrization and initialization: identity read-in,
# W_K = W_V = I and read-out e_y frozen, W_Q = (W^{KQ})ᵀ and W_O = (W^{PV})ᵀ trained from
# W^{PV}(0) = σ e_y e_yᵀ, W^{KQ}(0) = σ [[ΘΘᵀ, 0], [0, 0]]. (At that init the model is already a
# tiny GD step, so the sensitivity cosine starts at 1; what is learned is the scale η and staying in
# the blocks.) `init="toy_normal"` is the toy's generic init with every weight trainable, read-in
# and read-out included: the configuration that did not converge.

# %%
runs = {init: icl_lsa.train_at(SIZE, init) for init in ("zfb", "toy_normal")}
for init, run in runs.items():
    f = run["final"]
    print(f"{init:10s}: held-out MSE {f['mse']:.4f} (tuned GD {f['gd_mse']:.4f}), "
          f"‖ŷ − ŷ_GD‖/‖ŷ_GD‖ = {f['rel_diff']:.3f}, cos(∂ŷ/∂x_q, ŵ_GD) = {f['cosine']:.4f}")

# %% [markdown]
# ## 4. Comparison in weight space
#
# In the ZFB parametrization the prediction is carried by W^{PV}_{d+1,d+1} · W^{KQ}_{11}; ZFB's
# theorem says it converges to Γ⁻¹.

# %%
M = icl_lsa.zfb_effective_matrix(runs["zfb"]["model"])
g_inv = torch.linalg.inv(P.zfb_gamma(eye, N))
print("learned block:\n", M.numpy().round(3))
print("Γ⁻¹:\n", g_inv.numpy().round(3))
print(f"relative Frobenius error {float((M - g_inv).norm() / g_inv.norm()):.3f}")

# %% [markdown]
# ## 5. Figure: error over training and predictions on held-out prompts

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
for init, run in runs.items():
    axes[0].plot(run["trace"]["step"], run["trace"]["mse"], label=icl_lsa.LSA_LABELS[init])
    axes[1].scatter(run["final"]["y_gd"][:300], run["final"]["y_model"][:300], s=5, alpha=0.6,
                    label=icl_lsa.LSA_LABELS[init])
axes[0].axhline(ee.zfb_error(eye, N), color="k", ls="--", lw=1, label="tuned GD = ZFB optimum (exact)")
axes[0].set(yscale="log", xlabel="training step", ylabel="held-out MSE", title="test error")
axes[0].legend(fontsize=7)
lim = float(runs["zfb"]["final"]["y_gd"].abs().max())
axes[1].plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
axes[1].set(xlabel="ŷ_GD (tuned η)", ylabel="trained LSA ŷ", title="held-out predictions")
axes[1].legend(fontsize=7)
plt.show()

# %% [markdown]
# ## Part II. A softmax transformer trained on interleaved prompts
#
# ## 6. Train (or reuse) the run
#
# `icl.experiments.transformer_experiment` builds the `ExperimentConfig` (task, model, optimizer,
# training) from a typed size (`icl.sizes`); `get_or_train` trains it once into the run store and returns the
# stored run afterwards. At quick scale the notebook uses `GARG_FAST` (d = 3, a few seconds of training: it
# learns in context, not yet to least-squares accuracy); at full scale the figure's quick model
# (`theorybench figures icl_estimator_errors` trains the same runs). The Pre-LN model uses the `fan_in`
# init: with GPT-2's 0.02 init it stays on the predict-zero plateau for thousands of steps (measured:
# no progress after 1500 steps at d = 5), with `fan_in` it leaves it after a few hundred.

# %%
from theory.icl.references import reference_predictors  # noqa: E402
from theorybench.studies.icl.common import (  # noqa: E402
    eval_batch,
    estimator_prefix_errors,
    model_prefix_errors,
)
from theorybench.studies.icl.experiments import GARG_NAME, transformer_experiment  # noqa: E402

GARG = GARG_FAST if SCALE == "quick" else GARG_SIZES["quick"]
cfg = transformer_experiment(GARG, seed=0, name="icl_garg_fast" if SCALE == "quick" else GARG_NAME,
                             noise_std=GARG.noise_std)
print(cfg.task)
# `theorybench.load` reads a stored run back (by Run, folder or folder name): config, metrics, model.
print(f"run store: {store_root()}")  # $THEORYBENCH_RUNS, else the repository's runs/, from any working folder
loaded = theorybench.load(get_or_train(cfg))
trained = loaded.model
print(loaded.run.dir)
print(loaded.metrics.dropna().tail(3)[["step", "train_loss", "eval_nse"]].to_string(index=False))

# %% [markdown]
# ## 7. Error against the number of in-context examples
#
# On held-out prompts: the model's prediction of y_{k+1} from the k examples before it, for every k,
# beside the reference estimators on the same prompts (Garg et al.'s figure).

# %%
dg, Ng = GARG.d, GARG.n_points
held_out = eval_batch(cfg.task, 1000)
model_err = model_prefix_errors(trained, held_out).mean(0)
ref_err = {k: v.mean(0) for k, v in estimator_prefix_errors(held_out, reference_predictors(0.0, ridge_lam=0.1)).items()}
fig, ax = plt.subplots(figsize=(6, 3.8))
for name, curve in ref_err.items():
    ax.plot(range(Ng + 1), curve, label=name)
ax.plot(range(Ng + 1), model_err, "k-o", ms=3, label="trained transformer")
ax.axvline(dg, color="0.5", ls=":")
ax.set(ylim=(0, 1.5), xlabel="in-context examples N", ylabel="(ŷ − y)² / d", title=f"d = {dg}, noiseless")
ax.legend(fontsize=7)
plt.show()
print("model error / d at N ≥ 2d:", model_err[2 * dg:].round(3))

# %% [markdown]
# ## 8. Which algorithm does it agree with?
#
# `probes.icl_agreement` reads the model as a predictor: its implicit weight vector is the least-squares
# fit of its answers to 2d fresh queries sharing one context (Akyürek et al.). Per context length N and
# label noise σ of the probe prompts: squared prediction difference, implicit-weight distance and cosine
# to each reference predictor (σ > 0 is off the noiseless training distribution; ridge keeps λ = 0.1, as
# the model is not told σ; k-NN has no implicit weight, so no cosine).

# %%
from probes.icl_agreement import agreement_across  # noqa: E402

agree = agreement_across(trained, cfg.task, Ns=[1, dg, 2 * dg, Ng], noise_stds=[0.0, 0.5],
                         predictors=lambda s: reference_predictors(s, ridge_lam=0.1), prompts=200)
table = agree[agree.quantity.isin(["sq_pred_diff", "weight_cos"])].pivot_table(
    index=["noise_std", "N"], columns=["quantity", "predictor"], values="value")
print(table.round(3).to_string())

# %% [markdown]
# ## 9. Linear probes per layer
#
# `probes.icl_linear`: ridge probes from the residual stream at the query token after each layer to w,
# Xᵀy and XᵀX, fitted on half of the prompts and scored (held-out R²) on the other half; the untrained
# model of the same config is the baseline (what the architecture alone makes decodable).

# %%
from probes.icl_linear import regression_targets, residual_probe_r2  # noqa: E402
from toy_models import Transformer  # noqa: E402

probe_batch = eval_batch(cfg.task, 2000, seed=3)
targets = regression_targets(probe_batch["X"], probe_batch["y"], probe_batch["w"])
inputs = probe_batch["inputs"].float()
frames = {"trained": residual_probe_r2(trained, inputs, targets),
          "untrained": residual_probe_r2(Transformer(loaded.config.model).eval(), inputs, targets)}
fig, ax = plt.subplots(figsize=(5.5, 3.6))
for kind, style in (("trained", "o-"), ("untrained", "x--")):
    for i, (target, g) in enumerate(frames[kind].groupby("target", sort=False)):
        ax.plot(g.layer, g.r2, style, color=f"C{i}", label=f"{target} ({kind})")
ax.set(xlabel="residual stream after layer (0 = embedding)", ylabel="held-out R²", ylim=(-0.1, 1.02))
ax.legend(fontsize=7)
plt.show()
print(frames["trained"].pivot(index="layer", columns="target", values="r2").round(3).to_string())

# %% [markdown]
# ## 10. A curriculum on dimension and prompt length
#
# Garg et al. grow the active dimensions and the prompt length during training. The task computes the
# stage from the step it is told with `set_step` (the trainer must call it before each batch; see
# `toy_models/tasks/icl_regression.py`); inactive coordinates of x are zero and the prompt is shorter.

# %%
from toy_models.tasks.icl_regression import ICLRegressionConfig  # noqa: E402

cur = ICLRegressionConfig(d=5, n_points=11, curriculum_every=100, curriculum_d_start=2, curriculum_n_start=3)
cur_task = cur.build()
for step in (1, 101, 301, 1001):
    cur_task.set_step(step)
    b = cur_task.sample(2, torch.Generator().manual_seed(0))
    print(f"step {step:5d}: sizes {cur.curriculum_sizes(step)}, tokens {tuple(b['inputs'].shape)}, "
          f"x[0, 0] = {b['X'][0, 0].numpy().round(2)}")
