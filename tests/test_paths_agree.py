"""The reference (einsum) and kernel (SDPA / re-associated matmul) attention paths compute the same
function from the same weights: outputs and parameter gradients agree, over random configs (every
norm placement × norm kind × attention kind × direction × positional encoding × MLP variant × biases ×
clipped softmax × attention gate), shapes, padding masks and explicit attention masks.

Tolerance (float32). The two paths sum the same products in different orders. A length-K float32
accumulation has a rounding error ≈ √K·ε₃₂ relative to the magnitude of its terms (random-walk model
of round-to-nearest), and a path is a chain of n such accumulations whose errors add in quadrature:
per block q/k/v projection, scores, pattern·v, W_O, W_in (+W_gate), W_out, plus read-in and unembedding,
so n_fwd = 6L + 2 (7L + 2 with the attention gate, whose x_h·W_G[h] is one more accumulation per block;
the clipped softmax's affine map and clamp, LayerNorm-Scaling's 1/√ℓ and DeepNorm's α are single
roundings per entry, below one accumulation's), and the backward pass runs the chain again (n = 2·n_fwd for gradients). Two paths,
each with its own error: |Δ| ≤ c·√K·ε₃₂·scale with c = √(2n). K is the longest accumulation
(max of d_model, d_mlp, heads·d_head, pos, and batch·pos for weight gradients), ``scale`` is max|ref|
of the compared tensor (for a gradient: of its owning module, because some gradients are zero by
symmetry — b_K under softmax, W_Q at a single key — and hold only rounding noise of their siblings'
size). With K ≤ 64 and L ≤ 2, c·√K·ε₃₂ ≤ √64·8·1.19e-7 = 7.6e-6 < 1e-5 (gate included): the issue's bound
(|Δ| ≤ 1e-5·scale) follows, and is asserted too.
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from toy_models import Transformer, TransformerConfig

EPS32 = torch.finfo(torch.float32).eps
EPS64 = torch.finfo(torch.float64).eps
N_CTX = 8


@st.composite
def configs(draw, init=st.just("gpt2"), max_layers=2):
    d_head = draw(st.sampled_from([2, 4, 6, 8]))  # even: rotary may be drawn
    kw = dict(
        n_layers=draw(st.integers(1, max_layers)), d_model=draw(st.sampled_from([12, 16, 24])),
        n_heads=draw(st.integers(1, 3)), d_head=d_head, d_mlp=draw(st.sampled_from([8, 32])), n_ctx=N_CTX,
        attn_only=draw(st.booleans()), gated_mlp=draw(st.booleans()), act_fn=draw(st.sampled_from(
            ["relu", "gelu", "gelu_tanh", "silu"])), attn_bias=draw(st.booleans()), mlp_bias=draw(st.booleans()),
        attention=draw(st.sampled_from(["softmax", "linear"])),
        attention_dir=draw(st.sampled_from(["causal", "bidirectional"])), linear_normalize=draw(st.booleans()),
        norm_placement=draw(st.sampled_from(["none", "post", "pre", "peri", "mix", "lns", "deepnorm"])),
        norm_kind=draw(st.sampled_from(["layernorm", "rmsnorm", "crmsnorm"])), norm_gain=draw(st.booleans()),
        norm_bias=draw(st.booleans()), mix_alpha=draw(st.sampled_from([0.0, 0.5, 1.0])),
        pos=draw(st.sampled_from(["learned", "sinusoidal", "rotary", "onehot", "none"])),
        init=draw(init), seed=draw(st.integers(0, 1000)), d_vocab=7,
    )
    if draw(st.booleans()):
        kw.update(input_kind="continuous", d_input=3)
    if kw["attention"] == "softmax" and draw(st.booleans()):  # Bondarenko et al.'s clipped softmax
        kw.update(clip_gamma=draw(st.sampled_from([0.0, -0.03, -0.2])), clip_zeta=draw(st.sampled_from([1.0, 1.1])))
    if draw(st.booleans()) and kw["d_model"] % kw["n_heads"] == 0:  # the gate reads d_head-sized chunks of x
        kw.update(attn_gate=True, d_head=kw["d_model"] // kw["n_heads"])
    return TransformerConfig(**kw)


@st.composite
def batches(draw, cfg):
    """inputs, padding_mask, attn_mask, and a fixed cotangent for the gradient."""
    B, T = draw(st.integers(1, 3)), draw(st.integers(1, N_CTX))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    if cfg.input_kind == "tokens":
        x = torch.randint(0, cfg.d_vocab, (B, T), generator=gen)
    else:
        x = torch.randn(B, T, cfg.d_input, generator=gen, dtype=getattr(torch, cfg.dtype))
    mask_kind = draw(st.sampled_from(["none", "padding", "query_key", "batch_query_key", "both"]))
    padding = (torch.rand(B, T, generator=gen) < 0.7).long() if mask_kind in ("padding", "both") else None
    attn = None
    if mask_kind in ("query_key", "both"):
        attn = torch.rand(T, T, generator=gen) < 0.6
    elif mask_kind == "batch_query_key":
        attn = torch.rand(B, T, T, generator=gen) < 0.6
    cot = torch.randn(B, T, cfg.vocab_out, generator=gen, dtype=torch.float64)
    return x, padding, attn, cot


def _run(model, x, padding, attn, cot, path):
    model.zero_grad()
    out = model(x, padding_mask=padding, attn_mask=attn, attn_path=path)
    (out * cot.to(out.dtype)).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _both_paths(cfg, data):
    model = Transformer(cfg)
    x, padding, attn, cot = data
    return _run(model, x, padding, attn, cot, "reference"), _run(model, x, padding, attn, cot, "kernel"), x


def _module_scales(grads):
    scales = {}
    for name, g in grads.items():
        module = name.rsplit(".", 1)[0]
        scales[module] = max(scales.get(module, 0.0), g.abs().max().item())
    return {name: scales[name.rsplit(".", 1)[0]] for name in grads}


@given(data=st.data(), cfg=configs())
def test_float32_paths_agree_within_derived_tolerance(cfg, data):
    batch = data.draw(batches(cfg))
    (out_r, grad_r), (out_k, grad_k), x = _both_paths(cfg, batch)
    B, T = x.shape[:2]
    K = max(cfg.d_model, cfg.mlp_dim, cfg.n_heads * cfg.head_dim, T, B * T)
    n_fwd = (7 if cfg.attn_gate else 6) * cfg.n_layers + 2
    for name, ref, ker, n, scale in (
        [("logits", out_r, out_k, n_fwd, out_r.abs().max().item())]
        + [(p, grad_r[p], grad_k[p], 2 * n_fwd, s) for p, s in _module_scales(grad_r).items()]
    ):
        tol = math.sqrt(2 * n) * math.sqrt(K) * EPS32 * scale  # derivation in the module docstring
        err = (ref - ker).abs().max().item()
        assert err <= tol, f"{name}: |Δ| = {err:.3g} > tol {tol:.3g} (scale {scale:.3g}, K {K}, n {n})"
        assert err <= 1e-5 * scale, name  # the bound
    assert grad_r.keys() == grad_k.keys()


@given(data=st.data(), cfg=configs(init=st.sampled_from(["gpt2", "fan_in"]), max_layers=3))
def test_float64_paths_agree_to_rounding(cfg, data):
    # float64: the same derivation gives c·√K·ε₆₄ ≤ √80·8·2.2e-16 ≈ 1.6e-14 relative; 1e-12 leaves
    # room for the norm amplification of near-cancelled vectors seen in float32 (up to ~100×), while
    # any real difference between the paths (a wrong mask, scale or association) is O(1).
    cfg = cfg.replace(dtype="float64")
    batch = data.draw(batches(cfg))
    (out_r, grad_r), (out_k, grad_k), _ = _both_paths(cfg, batch)
    torch.testing.assert_close(out_k, out_r, rtol=0, atol=1e-12 * out_r.abs().max().item())
    for name, scale in _module_scales(grad_r).items():
        torch.testing.assert_close(grad_k[name], grad_r[name], rtol=0, atol=1e-12 * scale, msg=name)


# Not asserted: float32 agreement in the ill-conditioned fan_in regime (up to 3 layers). The derived
# 1e-5 bound assumes well-conditioned layers; there the paths can differ by more, and not symmetrically:
# against the float64 evaluation of the same weights, in 2000 random draws the kernel path's float32 error
# reached 2e-4·scale (a W_Q gradient, 3 layers) where the reference path's was 3e-8, and a softmax W_K
# gradient 1.1e-5·scale against 6e-10 (a gradient near zero by symmetry, which the reference computes in
# the same order as float64). No bound on that gap is derived yet, so none is asserted (a non-strict xfail
# stood here and could not fail). The paths' agreement in this regime is asserted in float64 above
# (test_float64_paths_agree_to_rounding: fan_in, up to 3 layers, 1e-12).


@pytest.mark.parametrize("alpha, n_layers", [(0.5, 4), (0.25, 4), (1.0, 2), (0.0, 2)])
@pytest.mark.parametrize("norm_kind", ["layernorm", "rmsnorm"])
@pytest.mark.parametrize("path", ["reference", "kernel"])
def test_mix_ln_first_floor_alpha_L_blocks_are_post_ln_and_the_rest_pre_ln(alpha, n_layers, norm_kind, path):
    cfg = TransformerConfig(n_layers=n_layers, d_model=16, n_heads=2, d_mlp=32, n_ctx=8, norm_placement="mix",
                            mix_alpha=alpha, norm_kind=norm_kind, init="fan_in", dtype="float64")
    model = Transformer(cfg)
    _, cache = model.run_with_cache(torch.randint(0, cfg.d_vocab, (2, 8)), attn_path=path)
    n_post = math.floor(alpha * n_layers)
    eps = cfg.norm_eps
    for layer in range(n_layers):
        c = lambda name: cache[f"blocks.{layer}.{name}"]  # noqa: E731
        if layer < n_post:
            # Post-LN: x ← N(x + F(x)). At w = 1, b = 0 the output has mean 0 (LayerNorm) and mean square
            # v/(v + ε) with v the pre-norm variance (RMSNorm: mean square) of the sum.
            summed = c("hook_resid_mid") + c("hook_mlp_out")
            centred = summed - summed.mean(-1, keepdim=True) if norm_kind == "layernorm" else summed
            v = centred.pow(2).mean(-1)
            out = c("hook_resid_post")
            if norm_kind == "layernorm":
                assert out.mean(-1).abs().max() <= 1e-12  # float64 rounding of a mean of O(1) terms
            torch.testing.assert_close(out.pow(2).mean(-1), v / (v + eps), rtol=1e-12, atol=0)
            torch.testing.assert_close(c("hook_resid_mid"), c("ln1.hook_normalized"), rtol=0, atol=0)
        else:
            # Pre-LN: x ← x + F(N(x)), the sum is not normalized and the norm sees the block input.
            torch.testing.assert_close(c("hook_resid_post"), c("hook_resid_mid") + c("hook_mlp_out"), rtol=0, atol=0)
            torch.testing.assert_close(c("hook_resid_mid"), c("hook_resid_pre") + c("hook_attn_out"), rtol=0, atol=0)
            assert c("hook_resid_post").pow(2).mean(-1).max() > 1.5  # fan_in residual grows: not unit RMS
    assert "ln_final.hook_normalized" in cache  # Mix-LN ends with a final norm
