"""The norms against their definitions ("Pre-RMSNorm and Pre-CRMSNorm Transformers", Jiang et al. 2023):
LayerNorm(x) = RMSNorm(x − mean x); CRMSNorm(x) = RMSNorm([x, −Σx]) on the n stored coordinates;
``hook_scale`` holds the divisor √(mean square + ε)."""

import torch
from hypothesis import given
from hypothesis import strategies as st

from toy_models import Transformer, TransformerConfig
from toy_models.norms import Norm

# float64 throughout: the identities are exact, so the only error is rounding of O(n) sums of
# O(1) terms, ≈ √n·ε₆₄ ≈ 1e-15 relative for n ≤ 64; 1e-12 leaves room without hiding a wrong formula
# (a wrong formula is off by O(1/n) ≥ 1e-2).
RTOL64 = 1e-12


def _norm(kind: str, n: int, eps: float, gain: bool = True, bias: bool = True) -> Norm:
    norm = Norm(n, center=kind == "layernorm", gain=gain, bias=bias, eps=eps, dtype=torch.float64,
                compressed=kind == "crmsnorm")
    with torch.no_grad():  # non-trivial gain and bias, so that they are part of what is checked
        gen = torch.Generator().manual_seed(n)
        if norm.w is not None:
            norm.w.copy_(1 + torch.rand(n, generator=gen, dtype=torch.float64))
        if norm.b is not None:
            norm.b.copy_(torch.randn(n, generator=gen, dtype=torch.float64))
    return norm


shapes = st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 64))
eps_values = st.sampled_from([1e-5, 1e-2, 0.0])
offsets = st.floats(-10, 10)


def _x(shape, seed, offset):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float64) * 3 + offset


@given(shape=shapes, seed=st.integers(0, 2**16), offset=offsets, eps=eps_values)
def test_layernorm_is_rmsnorm_of_centred_input_plus_bias(shape, seed, offset, eps):
    n = shape[-1]
    x = _x(shape, seed, offset)
    if n == 1 and eps == 0.0:
        eps = 1e-5  # a 1-vector centred is 0: 0/0 without ε
    ln, rms = _norm("layernorm", n, eps), _norm("rmsnorm", n, eps)
    with torch.no_grad():
        rms.w.copy_(ln.w)
    expected = rms(x - x.mean(-1, keepdim=True)) + ln.b
    torch.testing.assert_close(ln(x), expected, rtol=RTOL64, atol=RTOL64)


@given(shape=shapes, seed=st.integers(0, 2**16), offset=offsets, eps=eps_values)
def test_rmsnorm_matches_definition(shape, seed, offset, eps):
    x = _x(shape, seed, offset)
    norm = _norm("rmsnorm", shape[-1], eps)
    expected = norm.w * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    torch.testing.assert_close(norm(x), expected, rtol=RTOL64, atol=RTOL64)
    assert norm.b is None  # RMSNorm has no bias even when norm_bias is asked for


@given(shape=shapes, seed=st.integers(0, 2**16), offset=offsets, eps=eps_values)
def test_crmsnorm_is_rmsnorm_of_the_completed_zero_mean_vector(shape, seed, offset, eps):
    n = shape[-1]
    x = _x(shape, seed, offset)
    crms, rms = _norm("crmsnorm", n, eps), _norm("rmsnorm", n + 1, eps)
    with torch.no_grad():  # the n stored coordinates share the gain; the dropped one's gain is unused
        rms.w[:n].copy_(crms.w)
    full = torch.cat([x, -x.sum(-1, keepdim=True)], dim=-1)  # zero mean in R^{n+1}
    torch.testing.assert_close(crms(x), rms(full)[..., :n], rtol=RTOL64, atol=RTOL64)


@given(kind=st.sampled_from(["layernorm", "rmsnorm", "crmsnorm"]), shape=shapes, seed=st.integers(0, 2**16),
       offset=offsets, eps=eps_values)
def test_hook_scale_holds_the_divisor(kind, shape, seed, offset, eps):
    n = shape[-1]
    x = _x(shape, seed, offset)
    norm = _norm(kind, n, eps)
    seen = {}
    norm.hook_scale.add_hook(lambda act, hook: seen.setdefault("scale", act.detach()))
    norm(x)
    norm.hook_scale.remove_hooks()
    if kind == "layernorm":
        ms = (x - x.mean(-1, keepdim=True)).pow(2).mean(-1, keepdim=True)
    elif kind == "rmsnorm":
        ms = x.pow(2).mean(-1, keepdim=True)
    else:
        ms = (x.pow(2).sum(-1, keepdim=True) + x.sum(-1, keepdim=True).pow(2)) / (n + 1)
    assert seen["scale"].shape == (*shape[:-1], 1)  # TransformerLens' [batch, pos, 1]
    torch.testing.assert_close(seen["scale"], (ms + eps).sqrt(), rtol=RTOL64, atol=RTOL64)


def test_gain_and_bias_flags_follow_the_config():
    for kind, gain, bias, has_w, has_b in [
        ("layernorm", True, True, True, True), ("layernorm", False, False, False, False),
        ("layernorm", True, False, True, False), ("rmsnorm", True, True, True, False),
        ("crmsnorm", False, True, False, False),
    ]:
        model = Transformer(TransformerConfig(n_layers=1, d_model=8, n_heads=2, norm_kind=kind, norm_gain=gain,
                                              norm_bias=bias))
        ln = model.blocks[0].ln1
        assert (ln.w is not None, ln.b is not None) == (has_w, has_b), (kind, gain, bias)


@given(shape=shapes, seed=st.integers(0, 2**16), offset=offsets)
def test_layernorm_output_has_zero_mean_and_unit_rms_at_unit_gain(shape, seed, offset):
    # With w = 1, b = 0 and ε = 0: mean 0 and mean square exactly 1 (up to rounding), for n ≥ 2.
    n = shape[-1]
    if n < 2:
        return
    x = _x(shape, seed, offset)
    y = Norm(n, center=True, gain=True, bias=True, eps=0.0, dtype=torch.float64)(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(shape[:-1], dtype=torch.float64), rtol=0, atol=RTOL64)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(shape[:-1], dtype=torch.float64), rtol=RTOL64, atol=0)
