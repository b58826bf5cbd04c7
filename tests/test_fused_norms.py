"""The kernel path's fused norms (``toy_models.norms``): the same function as the written-out form, taken
only when no hook watches the norm, so probes and caches keep every tensor they read."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from toy_models import Transformer, TransformerConfig
from toy_models.norms import Norm

EPS64 = torch.finfo(torch.float64).eps


@settings(max_examples=20, deadline=None)
@given(d=st.integers(2, 64), seed=st.integers(0, 2**16), kind=st.sampled_from(["layernorm", "rmsnorm"]),
       gain=st.booleans(), bias=st.booleans(), offset=st.floats(-3, 3))
def test_fused_equals_written_out(d, seed, kind, gain, bias, offset):
    gen = torch.Generator().manual_seed(seed)
    norm = Norm(d, center=kind == "layernorm", gain=gain, bias=bias, eps=1e-5, dtype=torch.float64)
    with torch.no_grad():
        for p in norm.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    x = torch.randn(3, 5, d, generator=gen, dtype=torch.float64) + offset
    # Both are backward-stable evaluations of one formula; a normalized entry is at most √d in size and
    # its sums run over d terms, so each form is within ~d·ε·√d of the exact value (times the gain, plus one
    # rounding of the bias, hence scale); the two differ by at most twice that, and 4× keeps a factor 2 for
    # the square root and division the forms round in different orders.
    scale = 1 + (norm.w.abs().max().item() if norm.w is not None else 1)
    torch.testing.assert_close(norm(x, fused=True), norm(x), rtol=0, atol=d * EPS64 * math.sqrt(d) * scale * 4)


def test_a_hooked_norm_is_written_out_on_the_kernel_path():
    cfg = TransformerConfig(n_layers=1, d_model=8, n_heads=2, n_ctx=6, d_vocab=5)
    model = Transformer(cfg)
    tokens = torch.randint(0, 5, (2, 6), generator=torch.Generator().manual_seed(0))
    seen = []
    model.blocks[0].ln1.hook_scale.add_hook(lambda t, hook: seen.append(t.shape))
    model(tokens, attn_path="kernel")
    assert seen == [(2, 6, 1)]
    _, cache = model.run_with_cache(tokens, attn_path="kernel")
    assert "blocks.0.ln1.hook_normalized" in cache and "ln_final.hook_scale" in cache


@pytest.mark.parametrize("kind", ["layernorm", "rmsnorm", "crmsnorm"])
def test_kernel_and_reference_paths_agree_with_fused_norms(kind):
    cfg = TransformerConfig(n_layers=2, d_model=16, n_heads=2, n_ctx=7, d_vocab=9, norm_kind=kind, dtype="float64")
    model = Transformer(cfg)
    tokens = torch.randint(0, 9, (3, 7), generator=torch.Generator().manual_seed(1))
    # float64 throughout; the paths differ by summation order over ≤ 64-term sums, ≤ 64·ε ≈ 1.4e-14 relative
    # per sum, through 2 layers and the norms (which rescale by at most √16 = 4): ~1e-13 on O(1) logits at
    # worst, so 1e-12 holds on any CPU while a wrong norm (an error of O(1e-3) or more) does not.
    torch.testing.assert_close(model(tokens, attn_path="kernel"), model(tokens, attn_path="reference"),
                               rtol=0, atol=1e-12)
