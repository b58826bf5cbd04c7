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
# # A tour of the toy transformer
#
# The one model every study family builds on: a validated config, a `Transformer` that is a
# TransformerLens `HookedRootModule` (so `run_with_cache` and hook names such as
# `blocks.0.attn.hook_pattern` work as on a `HookedTransformer`), and two attention paths that share
# one set of weights: the hooked einsum **reference** path and the **kernel** path through
# `scaled_dot_product_attention`.
#
# The flow: config → model → cached run → look at a head → check both paths agree → see a refusal.

# %%
import math

import matplotlib.pyplot as plt
import seaborn as sns
import torch

from theorybench.registry import default_scale
from theorybench.style import apply_style
from toy_models import ConfigError, Transformer, TransformerConfig

apply_style()
SCALE = default_scale()  # THEORYBENCH_SCALE: "quick" (tests, CPU) or "full"
SEQ_LEN = 16 if SCALE == "quick" else 64
print(f"scale={SCALE}, sequence length {SEQ_LEN}")

# %% [markdown]
# ## 1. A config and a model
#
# The config is a frozen dataclass that validates itself. `fan_in` initialization (every matrix
# ~ N(0, 1/fan_in)) gives attention patterns that are far from uniform already at initialization,
# which makes the pattern plot below worth looking at.

# %%
cfg = TransformerConfig(n_layers=2, d_model=32, n_heads=4, n_ctx=64, d_vocab=20, init="fan_in", seed=0)
model = Transformer(cfg)
print(cfg.norm_placement, cfg.attention, cfg.attention_dir, "| d_head =", cfg.head_dim)
print(sum(p.numel() for p in model.parameters()), "parameters")

# %% [markdown]
# ## 2. `run_with_cache`: every intermediate, under TransformerLens names

# %%
tokens = torch.randint(0, cfg.d_vocab, (2, SEQ_LEN), generator=torch.Generator().manual_seed(0))
logits, cache = model.run_with_cache(tokens)
print("logits", tuple(logits.shape))
block0 = [name for name in cache.keys() if name.startswith("blocks.0.")]
print(len(cache), "cached activations; block 0:")
for name in block0:
    print(f"  {name:32s} {tuple(cache[name].shape)}")

# %% [markdown]
# ## 3. One head's attention pattern
#
# `blocks.0.attn.hook_pattern` is [batch, head, query, key]; causal, so the upper triangle is zero.

# %%
pattern = cache["blocks.0.attn.hook_pattern"][0, 1].detach()
# Each query's weights sum to 1, up to float32 rounding of a sum of ≤ SEQ_LEN terms: ≤ SEQ_LEN·ε ≈ 2e-6,
# inside allclose's default 1e-5 relative tolerance.
assert torch.allclose(pattern.sum(-1), torch.ones(SEQ_LEN))
assert torch.all(pattern.triu(1) == 0)  # causal: no weight on later keys
fig, ax = plt.subplots(figsize=(4, 3.4))
sns.heatmap(pattern.numpy(), ax=ax, cmap="viridis", square=True, cbar_kws={"label": "attention weight"})
ax.set_xlabel("key position")
ax.set_ylabel("query position")
ax.set_title("layer 0, head 1")
plt.show()

# %% [markdown]
# ## 4. Reference and kernel paths compute the same function
#
# Same weights, two implementations; only the order of floating-point operations differs. Bound:
# each layer has a few (≈4: projections, scores, weighted sum, output projection) inner products of
# length at most K = max(d_model, n_ctx); with random-walk rounding each contributes about
# √K·ε relative error, so |Δ logits| ≤ 4·L·√K·ε·max(1, max|logits|).

# %%
for dtype in ("float32", "float64"):
    m = Transformer(cfg.replace(dtype=dtype))
    ref, ker = m(tokens, attn_path="reference"), m(tokens, attn_path="kernel")
    eps = torch.finfo(getattr(torch, dtype)).eps
    bound = 4 * cfg.n_layers * math.sqrt(max(cfg.d_model, cfg.n_ctx)) * eps * max(1.0, ref.abs().max().item())
    diff = (ref - ker).abs().max().item()
    print(f"{dtype}: max |reference − kernel| = {diff:.2e}  (bound {bound:.2e})")
    assert diff <= bound

# %% [markdown]
# The kernel path never forms the pattern, so a hook on it is refused rather than silently never
# called:

# %%
try:
    model.run_with_hooks(tokens, attn_path="kernel",
                         fwd_hooks=[("blocks.0.attn.hook_pattern", lambda act, hook: act)])
except RuntimeError as err:
    print("refused:", err)
else:
    raise AssertionError("a pattern hook on the kernel path should be refused")

# %% [markdown]
# ## 5. Bad configs are refused before any tensor exists
#
# The message names the field, the value and what is allowed.

# %%
for bad in ({"norm_placement": "middle"}, {"d_model": 30, "n_heads": 4}):
    try:
        TransformerConfig(**bad)
    except ConfigError as err:
        print("refused:", err)
    else:
        raise AssertionError(f"{bad} should be refused")
