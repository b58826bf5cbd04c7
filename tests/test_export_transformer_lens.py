"""Export to TransformerLens' HookedTransformer: same logits, same activations at shared hook names.

Tolerance: max|Δ| ≤ 1e-5 · max|toy| in float32, for the logits and for every shared activation. Both
models run the same operations in a different order (einsum vs matmul, fused vs separate bias), so
they differ by rounding only: √K·u per length-K contraction (K ≤ 64, u = 2⁻²⁴: ≈ 5e-7), added over at
most 3 layers × 6 contraction stages with norms in between (≈ 2e-6), plus TransformerLens' rotary
table computed in float32 from base^(2i/d) (|Δangle| ≤ T·u ≈ 7e-7 at T ≤ 12). Each activation is an
intermediate of the same chain, so the same bound holds relative to its own scale.
Float64: u = 1.1e-16 gives ≈ 4e-15; asserted ≤ 1e-12.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from _randomized import randomized as _randomized
from hypothesis import given
from hypothesis import strategies as st

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from toy_models import Transformer, TransformerConfig  # noqa: E402
from toy_models.export import ExportError, to_hooked_transformer  # noqa: E402

REL_TOL_F32, REL_TOL_F64 = 1e-5, 1e-12  # derivation in the module docstring
ACTS = ("relu", "gelu", "gelu_tanh", "silu")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def randomized(cfg: TransformerConfig) -> Transformer:
    # TransformerLens adds b_in after the gate product, so a gated MLP exports exactly only with zero biases.
    return _randomized(cfg, keep_zero_bias=lambda name: cfg.gated_mlp and ".mlp." in name)


def export(model: Transformer):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tl = to_hooked_transformer(model)
    tl.set_use_attn_result(True)  # so blocks.{l}.attn.hook_result exists on both sides
    return tl


def rel(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return ((ours - theirs).abs().max() / ours.abs().max().clamp_min(1e-30)).item()


@st.composite
def tl_configs(draw, dtype: str = "float32") -> TransformerConfig:
    n_heads, d_head = draw(st.integers(1, 4)), draw(st.sampled_from([2, 4, 6]))
    d_model = draw(st.sampled_from([max(n_heads * d_head, 8), 8, 12, 16]))  # widths ≥ 8: see test_export_hf
    n_ctx = draw(st.integers(12, 16))
    placement = draw(st.sampled_from(["none", "pre", "peri"]))
    kind = "rmsnorm" if placement == "peri" else draw(st.sampled_from(["layernorm", "rmsnorm"]))
    pos = draw(st.sampled_from(["learned", "sinusoidal", "rotary", "none"] + (["onehot"] if n_ctx <= d_model else [])))
    gated = draw(st.booleans())
    return TransformerConfig(
        n_layers=draw(st.integers(1, 3)), d_model=d_model, n_heads=n_heads, d_head=d_head,
        d_mlp=draw(st.integers(4, 64)), n_ctx=n_ctx, d_vocab=draw(st.integers(2, 40)),
        d_vocab_out=draw(st.integers(1, 40)), attn_only=draw(st.booleans()), act_fn=draw(st.sampled_from(ACTS)),
        gated_mlp=gated, attn_bias=draw(st.booleans()), mlp_bias=not gated and draw(st.booleans()),
        attention_dir=draw(st.sampled_from(["causal", "bidirectional"])),
        attn_scale=draw(st.sampled_from([None, 1.0, 2.5])), norm_placement=placement, norm_kind=kind,
        norm_gain=draw(st.booleans()), norm_bias=draw(st.booleans()), embed_norm=False, pos=pos,
        rotary_base=draw(st.sampled_from([100.0, 10000.0])), seed=draw(st.integers(0, 2**16)), dtype=dtype,
    )


def tokens_for(cfg, seed: int, batch: int = 2, T: int = 12):
    return torch.randint(0, cfg.d_vocab, (batch, T), generator=torch.Generator().manual_seed(seed))


@given(cfg=tl_configs(), T=st.integers(1, 12))
def test_logits_and_shared_hooks_match(cfg, T):
    model = randomized(cfg)
    tl = export(model)
    tokens = tokens_for(cfg, cfg.seed, T=T)
    with torch.no_grad():
        ours, ours_cache = model.run_with_cache(tokens)
        theirs, theirs_cache = tl.run_with_cache(tokens)
    assert rel(ours, theirs) <= REL_TOL_F32
    shared = set(ours_cache.keys()) & set(theirs_cache.keys())
    assert {"hook_embed", "blocks.0.hook_resid_pre", "blocks.0.attn.hook_pattern", "blocks.0.attn.hook_z",
            "blocks.0.attn.hook_result", f"blocks.{cfg.n_layers - 1}.hook_resid_post"} <= shared
    for name in sorted(shared):
        a, b = ours_cache[name], theirs_cache[name]
        assert a.shape == b.shape, name
        finite = torch.isfinite(a)  # attention scores hold -inf where masked, on both sides
        assert torch.equal(finite, torch.isfinite(b)), name
        if finite.any():
            assert rel(a[finite], b[finite]) <= REL_TOL_F32, name


def test_hook_normalized_means_the_same():
    """Both fire hook_normalized on x / scale, before the gain and bias (gains randomized, so it matters)."""
    cfg = TransformerConfig(n_layers=1, d_model=16, n_heads=2, d_vocab=10, n_ctx=8, norm_placement="pre")
    model = randomized(cfg)
    tokens = tokens_for(cfg, 0, T=8)
    with torch.no_grad():
        _, ours = model.run_with_cache(tokens)
        _, theirs = export(model).run_with_cache(tokens)
    assert rel(ours["blocks.0.ln1.hook_normalized"], theirs["blocks.0.ln1.hook_normalized"]) <= REL_TOL_F32


@given(cfg=tl_configs(dtype="float64"))
def test_float64_export_agrees_to_1e_12(cfg):
    model = randomized(cfg)
    tl = export(model)
    assert tl.W_E.dtype == torch.float64
    tokens = tokens_for(cfg, cfg.seed)
    with torch.no_grad():
        assert rel(model(tokens), tl(tokens)) <= REL_TOL_F64


@given(cfg=tl_configs(), lengths=st.lists(st.integers(1, 12), min_size=2, max_size=3))
def test_right_padding_matches(cfg, lengths):
    """Causal attention with right padding, compared at real positions. (TL 3.9 counts positions over real
    tokens only and masks keys only under causal attention; see to_hooked_transformer's docstring.)"""
    cfg = cfg.replace(attention_dir="causal")
    model = randomized(cfg)
    tl = export(model)
    tokens = tokens_for(cfg, cfg.seed, batch=len(lengths))
    mask = (torch.arange(12)[None] < torch.tensor(lengths)[:, None]).long()
    with torch.no_grad():
        ours, theirs = model(tokens, padding_mask=mask), tl(tokens, attention_mask=mask)
    keep = mask.bool()
    assert rel(ours[keep], theirs[keep]) <= REL_TOL_F32


REFUSALS = [
    (dict(norm_placement="post"), ["norm_placement='post'", "TransformerLens (needs 'none' or 'pre' or 'peri')",
                                   "support norm_placement='post': BERT"]),
    (dict(norm_placement="mix"), ["norm_placement='mix'", "support norm_placement='mix': none"]),
    (dict(norm_placement="peri", embed_norm=False), ["norm_kind='layernorm'", "(needs 'rmsnorm')"]),
    (dict(norm_placement="peri", norm_kind="rmsnorm"), ["embed_norm=True", "support embed_norm=True: BERT"]),
    (dict(norm_kind="crmsnorm"), ["norm_kind='crmsnorm'", "support norm_kind='crmsnorm': none"]),
    (dict(attention="linear"), ["attention='linear'", "support attention='linear': none"]),
    (dict(input_kind="continuous", d_input=3), ["input_kind='continuous'", "support input_kind='continuous': none"]),
]


@pytest.mark.parametrize("overrides, fragments", REFUSALS)
def test_refusal_names_field_value_and_supporting_targets(overrides, fragments):
    with pytest.raises(ExportError) as info:
        to_hooked_transformer(Transformer(TransformerConfig(**overrides)))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_gated_mlp_with_nonzero_bias_is_refused():
    model = randomized(TransformerConfig(n_layers=1, d_model=16, n_heads=2, d_vocab=10, n_ctx=8, gated_mlp=True))
    with torch.no_grad():
        model.blocks[0].mlp.b_in[0] = 0.5
    with pytest.raises(ExportError, match=r"mlp_bias=True cannot be exported to TransformerLens \(needs False \(or "
                                          r"zero biases\) with gated_mlp=True\); targets that support mlp_bias=True: "
                                          r"GPT-2, BERT"):
        to_hooked_transformer(model)
