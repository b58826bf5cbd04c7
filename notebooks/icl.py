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
# # In-context regression: linear self-attention as one step of gradient descent
#
# "Transformers learn in-context by gradient descent" (von Oswald et al. 2023) and "Trained
# Transformers Learn Linear Models In-Context" (Zhang, Frei, Bartlett 2024): one layer of linear
# self-attention (LSA) on stacked tokens [x_i; y_i], query [x_q; 0], can compute, and when trained
# does compute, one step of gradient descent from w = 0,
# ŷ = x_qᵀ η (1/N) Σ y_i x_i. For x ~ N(0, I) the risk-minimizing step η = N/(N + d + 1) is exactly
# the ZFB optimum Γ⁻¹ = N/(N + d + 1) · I.
#
# The flow: config → data → the exact construction (both attention paths) → training → comparison → figure.

# %%
import matplotlib.pyplot as plt
import torch

from theory.icl import expected_error as ee
from theory.icl import predictors as P
from theorybench.registry import default_scale
from theorybench.studies import icl
from theorybench.style import apply_style
from toy_models.constructions.lsa import gd_lsa, lsa_inputs
from toy_models.tasks.icl_regression import ICLRegressionConfig

apply_style()
# Models of a few hundred weights: thread hand-offs cost more than they save (and oversubscribe a
# shared machine), so one thread is the fastest.
torch.set_num_threads(1)
SCALE = default_scale()
# The notebook trains the small "tiny" size at quick scale (seconds), the figure's quick size at full.
SIZE = icl.SIZES["tiny" if SCALE == "quick" else "quick"]["lsa"]
d, N = SIZE["d"], SIZE["N"]
print(f"scale={SCALE}: d={d}, N={N}, {SIZE['steps']} Adam steps of batch {SIZE['batch']}")

# %% [markdown]
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
# `icl.train_lsa` trains a one-layer LSA toy model with AdamW (lr cosine-decayed to 0) on fresh
# noiseless prompts. `init="zfb"` is the ZFB parametrization and initialization: identity read-in,
# W_K = W_V = I and read-out e_y frozen, W_Q = (W^{KQ})ᵀ and W_O = (W^{PV})ᵀ trained from
# W^{PV}(0) = σ e_y e_yᵀ, W^{KQ}(0) = σ [[ΘΘᵀ, 0], [0, 0]]. (At that init the model is already a
# tiny GD step, so the sensitivity cosine starts at 1; what is learned is the scale η and staying in
# the blocks.) `init="toy_normal"` is the toy's generic init with every weight trainable, read-in
# and read-out included: the configuration that did not converge.

# %%
runs = {init: icl.train_lsa(init=init, **SIZE) for init in ("zfb", "toy_normal")}
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
M = icl.zfb_effective_matrix(runs["zfb"]["model"])
g_inv = torch.linalg.inv(P.zfb_gamma(eye, N))
print("learned block:\n", M.numpy().round(3))
print("Γ⁻¹:\n", g_inv.numpy().round(3))
print(f"relative Frobenius error {float((M - g_inv).norm() / g_inv.norm()):.3f}")

# %% [markdown]
# ## 5. Figure: error over training and predictions on held-out prompts

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
for init, run in runs.items():
    axes[0].plot(run["trace"]["step"], run["trace"]["mse"], label=icl.LSA_LABELS[init])
    axes[1].scatter(run["final"]["y_gd"][:300], run["final"]["y_model"][:300], s=5, alpha=0.6,
                    label=icl.LSA_LABELS[init])
axes[0].axhline(ee.zfb_error(eye, N), color="k", ls="--", lw=1, label="tuned GD = ZFB optimum (exact)")
axes[0].set(yscale="log", xlabel="training step", ylabel="held-out MSE", title="test error")
axes[0].legend(fontsize=7)
lim = float(runs["zfb"]["final"]["y_gd"].abs().max())
axes[1].plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
axes[1].set(xlabel="ŷ_GD (tuned η)", ylabel="trained LSA ŷ", title="held-out predictions")
axes[1].legend(fontsize=7)
plt.show()
