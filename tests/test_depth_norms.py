"""LayerNorm-Scaling ("The Curse of Depth in Large Language Models") and DeepNorm ("DeepNet: Scaling
Transformers to 1,000 Layers"): the block computes the stated update, DeepNorm's β reaches exactly the
weights DeepNet scales, and the init-time recursion matches Monte Carlo over seeds."""

import math

import numpy as np
import pytest
import torch

from theory.variance import variance_profile
from toy_models import Transformer, TransformerConfig
from toy_models.init import initialize
from toy_models.norms import make_norm
from toy_models.theory_args import variance_architecture

CFG = TransformerConfig(n_layers=3, d_model=16, n_heads=2, d_mlp=32, n_ctx=8, d_vocab=12, init="fan_in",
                        dtype="float64")
TOKENS = torch.arange(8).reshape(1, 8) % 12


def _cache(cfg, path="reference"):
    with torch.no_grad():
        return Transformer(cfg).run_with_cache(TOKENS, attn_path=path)


@pytest.mark.parametrize("path", ["reference", "kernel"])
def test_layernorm_scaling_feeds_each_sublayer_its_norm_output_over_sqrt_l(path):
    cfg = CFG.replace(norm_placement="lns")
    model = Transformer(cfg)
    _, cache = model.run_with_cache(TOKENS, attn_path=path)
    for layer, block in enumerate(model.blocks):
        c = lambda name: cache[f"blocks.{layer}.{name}"]  # noqa: E731
        ln_out = c("ln1.hook_normalized") * block.ln1.w + block.ln1.b
        # q = (N(x)/√ℓ) W_Q + b_Q with ℓ = layer + 1: one einsum in float64, rounding ~1e-15 of O(1) values
        want = torch.einsum("bpm,hmd->bphd", ln_out / math.sqrt(layer + 1), block.attn.W_Q) + block.attn.b_Q
        torch.testing.assert_close(c("attn.hook_q"), want, rtol=0, atol=1e-12)
        torch.testing.assert_close(c("hook_resid_mid"), c("hook_resid_pre") + c("hook_attn_out"), rtol=0, atol=0)
    assert "ln_final.hook_normalized" in cache  # Pre-LN-based: a final norm
    # ℓ = 1 in block 0: identical to Pre-LN there (same weights, same seed)
    _, pre = _cache(CFG.replace(norm_placement="pre"), path)
    torch.testing.assert_close(cache["blocks.0.hook_resid_post"], pre["blocks.0.hook_resid_post"], rtol=0, atol=0)


@pytest.mark.parametrize("path", ["reference", "kernel"])
def test_deepnorm_is_post_ln_of_alpha_x_plus_f(path):
    cfg = CFG.replace(norm_placement="deepnorm")
    alpha = (2 * cfg.n_layers) ** 0.25
    assert cfg.deepnorm_alpha == pytest.approx(alpha, rel=1e-15)
    model = Transformer(cfg)
    _, cache = model.run_with_cache(TOKENS, attn_path=path)
    norm = make_norm(cfg)
    for layer in range(cfg.n_layers):
        c = lambda name: cache[f"blocks.{layer}.{name}"]  # noqa: E731
        torch.testing.assert_close(c("hook_resid_mid"), norm(alpha * c("hook_resid_pre") + c("hook_attn_out")),
                                   rtol=0, atol=1e-13)
        torch.testing.assert_close(c("hook_resid_post"), norm(alpha * c("hook_resid_mid") + c("hook_mlp_out")),
                                   rtol=0, atol=1e-13)
    assert "ln_final.hook_normalized" not in cache and "ln_embed.hook_normalized" in cache  # as Post-LN


@pytest.mark.parametrize("init", ["gpt2", "fan_in", "normal"])
def test_deepnorm_beta_scales_exactly_v_o_and_the_mlp(init):
    """Same seed, same draws: DeepNorm's weights are Post-LN's times β = (8L)^{-1/4} on W_V, W_O, W_in,
    W_gate, W_out, and equal elsewhere (W_Q, W_K, embeddings)."""
    base = CFG.replace(init=init, gated_mlp=True)
    deep, post = Transformer(base.replace(norm_placement="deepnorm")), Transformer(base.replace(norm_placement="post"))
    beta = (8 * base.n_layers) ** -0.25
    scaled = ("attn.W_V", "attn.W_O", "mlp.W_in", "mlp.W_gate", "mlp.W_out")
    post_params = dict(post.named_parameters())
    for name, p in deep.named_parameters():
        factor = beta if name.endswith(scaled) else 1.0
        torch.testing.assert_close(p, factor * post_params[name], rtol=1e-15, atol=0, msg=name)


@pytest.mark.parametrize("placement", ["lns", "deepnorm"])
@pytest.mark.parametrize("init, extra", [("gpt2", {}), ("fan_in", {"attn_scale": 1e4})])
def test_init_recursion_matches_monte_carlo(placement, init, extra):
    """The recursion's mean square at every resid hook against 40 seeds: within 4 standard errors (a 4σ
    false alarm: p = 6e-5 per quantity) plus the theory's own finite-width term at a norm's output (where
    the seed spread vanishes; see VarianceProfile.remainder). fan_in with score scale 1e4: near-uniform
    attention, where the recursion is exact in expectation."""
    cfg = TransformerConfig(n_layers=4, d_model=32, n_heads=4, n_ctx=8, d_vocab=20, norm_placement=placement,
                            init=init, dtype="float64", act_fn="relu", **extra)
    tokens = torch.randint(0, 20, (2, 8), generator=torch.Generator().manual_seed(7))
    prof = variance_profile(variance_architecture(cfg), tokens.numpy())
    model, n = Transformer(cfg), 40
    vals = np.zeros((n, len(prof.hooks)))
    for s in range(n):
        initialize(model, cfg.replace(seed=500 + s))
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens, names_filter=list(set(prof.hooks)))
        vals[s] = [float(cache[h].pow(2).mean()) for h in prof.hooks]
    mean, se = vals.mean(0), vals.std(0, ddof=1) / math.sqrt(n)
    tol = 4 * se + prof.remainder
    bad = np.abs(mean - prof.variance) > tol
    assert not bad.any(), list(zip(np.array(prof.hooks)[bad], prof.variance[bad], mean[bad], tol[bad]))

