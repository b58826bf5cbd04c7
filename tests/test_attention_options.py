"""Clipped softmax and gated attention ("Quantizable Transformers: Removing Outliers by Helping Attention
Heads Do Nothing", Bondarenko et al. 2023): the formulas, their hooks, and what they let a head do.

Agreement of the reference and kernel paths with these options is in tests/test_paths_agree.py (its
config strategy draws them); here float64 is used, where the two implementations of one formula differ
by rounding only (≈ √K·ε₆₄ ≈ 1e-15 relative), so 1e-12 × scale separates rounding from a wrong formula.
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from toy_models import Transformer, TransformerConfig
from toy_models.attention import clipped_softmax, head_gate

# float64 everywhere: the two paths compute the same sums in another order, so they differ by ≈ √K·ε₆₄ ≈ 1e-15
# relative for K ≤ 64; 1e-12 × the tensor's scale is far above that and far below any modelling difference.
REL64 = 1e-12
CFG = TransformerConfig(n_layers=2, d_model=16, n_heads=4, d_mlp=32, n_ctx=12, d_vocab=10, init="fan_in",
                        dtype="float64")


def _tokens(B=3, T=12, seed=0):
    return torch.randint(0, CFG.d_vocab, (B, T), generator=torch.Generator().manual_seed(seed))


@given(gamma=st.sampled_from([0.0, -0.01, -0.1, -1.0]), zeta=st.sampled_from([1.0, 1.05, 2.0]),
       seed=st.integers(0, 2**16), n=st.integers(1, 12))
def test_clipped_softmax_is_the_clipped_affine_map_of_the_softmax(gamma, zeta, seed, n):
    s = 3 * torch.randn(4, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    p = torch.softmax(s, -1)
    out = clipped_softmax(s, gamma, zeta)
    want = torch.minimum(torch.maximum((zeta - gamma) * p + gamma, torch.zeros(())), torch.ones(()))
    torch.testing.assert_close(out, want, rtol=0, atol=1e-15)  # one multiply-add: a few ulps of numbers ≤ 1
    assert ((out >= 0) & (out <= 1)).all()


def test_clipped_softmax_reaches_exact_zero_and_one_at_finite_scores():
    """What the clip is for: a head can give a key exactly 0 (or all weight 1) without an infinite score.
    softmax([0, 0, log 1e-3]) has a weight 1e-3/2.001 ≈ 5e-4 < −γ/(ζ−γ) = 0.01/1.02 for γ = −0.01: clipped to 0."""
    s = torch.tensor([[0.0, 0.0, math.log(1e-3)]], dtype=torch.float64)
    out = clipped_softmax(s, -0.01, 1.0)
    assert out[0, 2] == 0 and (torch.softmax(s, -1) > 0).all()
    one = clipped_softmax(torch.tensor([[8.0, 0.0]], dtype=torch.float64), 0.0, 1.1)  # 1.1 · 0.9997 > 1
    assert one[0, 0] == 1.0


def test_default_gamma_zeta_is_the_plain_softmax_bit_for_bit():
    s = torch.randn(5, 7, generator=torch.Generator().manual_seed(1))
    assert torch.equal(clipped_softmax(s, 0.0, 1.0), torch.softmax(s, -1))


@pytest.mark.parametrize("path", ["reference", "kernel"])
def test_clipped_pattern_is_zero_on_masked_keys_and_the_clip_of_the_softmax_elsewhere(path):
    cfg = CFG.replace(clip_gamma=-0.05, clip_zeta=1.0)
    model = Transformer(cfg)
    _, cache = model.run_with_cache(_tokens(), attn_path="reference")
    for layer in range(cfg.n_layers):
        scores, pattern = cache[f"blocks.{layer}.attn.hook_attn_scores"], cache[f"blocks.{layer}.attn.hook_pattern"]
        causal = torch.ones(12, 12, dtype=torch.bool).tril()
        assert (pattern[..., ~causal] == 0).all()
        # the same function of the same cached scores: bit for bit
        torch.testing.assert_close(pattern, clipped_softmax(scores, -0.05, 1.0), rtol=0, atol=0)
    # the kernel path computes the same function (its own matmuls): same logits
    ref = model(_tokens(), attn_path="reference")
    ker = model(_tokens(), attn_path=path)
    torch.testing.assert_close(ker, ref, rtol=0, atol=REL64 * ref.abs().max().item())


@pytest.mark.parametrize("path", ["reference", "kernel"])
def test_gate_hook_is_sigmoid_of_the_heads_own_input_chunk_and_scales_z(path):
    cfg = CFG.replace(attn_gate=True)
    model = Transformer(cfg)
    tokens = _tokens()
    _, cache = model.run_with_cache(tokens, attn_path=path)
    for layer in range(cfg.n_layers):
        attn = model.blocks[layer].attn
        x = cache[f"blocks.{layer}.ln1.hook_normalized"] * model.blocks[layer].ln1.w + model.blocks[layer].ln1.b
        gate = cache[f"blocks.{layer}.attn.hook_gate"]
        assert gate.shape == (3, 12, cfg.n_heads) and ((gate > 0) & (gate < 1)).all()
        # head h reads x[..., h·d_head : (h+1)·d_head]
        for h in range(cfg.n_heads):
            chunk = x[..., h * cfg.head_dim:(h + 1) * cfg.head_dim]
            want = torch.sigmoid(chunk @ attn.W_G[h] + attn.b_G[h])
            # float64 sigmoid of a 4-term dot product summed in another order: a few ε₆₄ (2.2e-16), ≪ 1e-14
            torch.testing.assert_close(gate[..., h], want, rtol=0, atol=1e-14)
    # hook_z is the gated z: ablating the gate to 1 through the hook gives the ungated model
    ones = [(f"blocks.{layer}.attn.hook_gate", lambda g, hook: torch.ones_like(g)) for layer in range(cfg.n_layers)]
    ungated = Transformer(CFG)
    ungated.load_state_dict({k: v for k, v in model.state_dict().items() if not k.endswith(("W_G", "b_G"))})
    got = model.run_with_hooks(tokens, fwd_hooks=ones, attn_path=path)
    want = ungated(tokens, attn_path=path)
    torch.testing.assert_close(got, want, rtol=0, atol=REL64 * want.abs().max().item())


@pytest.mark.parametrize("path", ["reference", "kernel"])
def test_a_closed_gate_makes_the_head_a_no_op(path):
    """The paper's point: with π_h → 0 head h adds nothing, whatever its attention. Patching every gate
    to 0 leaves the attention output equal to b_O at every position."""
    model = Transformer(CFG.replace(attn_gate=True, attn_bias=True))
    with torch.no_grad():
        for block in model.blocks:
            block.attn.b_O.normal_(generator=torch.Generator().manual_seed(3))
    zeros = [(f"blocks.{layer}.attn.hook_gate", lambda g, hook: torch.zeros_like(g)) for layer in range(2)]
    with model.hooks(fwd_hooks=zeros):
        _, cache = model.run_with_cache(_tokens(), attn_path=path, names_filter=lambda n: n.endswith("hook_attn_out"))
    for layer in range(2):
        out = cache[f"blocks.{layer}.hook_attn_out"]
        # a zero gate multiplies every head's output by exactly 0, and 0 + b_O is b_O: bit for bit
        torch.testing.assert_close(out, model.blocks[layer].attn.b_O.expand_as(out), rtol=0, atol=0)


def test_gate_parameters_init_fan_in_and_zero_bias():
    """W_G [head, d_head] ~ N(0, 1/d_head) under fan_in (each gate reads d_head coordinates), b_G = 0:
    over 4·4 = 16 entries per layer × 2 layers, the sample variance of 32 N(0, 1/4) draws is within
    a factor [0.4, 1.9] of 1/4 with probability > 0.999 (χ²₃₂ quantiles 12.8 and 61.1, over 32)."""
    model = Transformer(CFG.replace(attn_gate=True, n_layers=2))
    w = torch.cat([b.attn.W_G.flatten() for b in model.blocks])
    assert all((b.attn.b_G == 0).all() for b in model.blocks)
    assert 0.4 * 0.25 <= w.var(unbiased=False).item() <= 1.9 * 0.25


def test_head_gate_shape_and_value_at_zero_weights():
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    g = head_gate(x, torch.zeros(3, 4, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    assert g.shape == (2, 5, 3) and (g == 0.5).all()  # W_G = 0, b_G = 0: every gate at sigmoid(0)


@pytest.mark.parametrize("changes", [{"attn_gate": True}, {"clip_gamma": -0.1}, {"clip_zeta": 1.2}])
def test_every_export_target_refuses_the_options_it_cannot_express(changes):
    """No target format has a clipped softmax or a head gate: exporting would silently drop them."""
    from toy_models.export import ExportError, TARGETS, check_exportable

    model = Transformer(CFG.replace(**changes))
    for target in TARGETS:
        with pytest.raises(ExportError, match=next(iter(changes))):
            check_exportable(model, target)
