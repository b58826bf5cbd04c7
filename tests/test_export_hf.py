"""Export to Hugging Face GPT-2, BERT and Gemma 2: same logits from the same weights; refusals.

Tolerance (float32), the issue's bound max|Δlogits| ≤ 1e-5 · max|logits|, derived: the two models
compute the same function with different operation order, so they differ by rounding only. Unit
roundoff u = 2⁻²⁴ ≈ 6e-8 (eps = 2u ≈ 1.2e-7). A length-K dot product carries a rounding error of
about √K·u relative to its scale (K ≤ 64 here: ≈ 5e-7); each layer has about six such stages (q/k/v,
scores, pattern·v, W_O, W_in, W_out) and the norms between them renormalize, so errors add rather
than compound (for widths ≥ 8; at d_model = 3 a layer can amplify rounding ~10x, see
test_tiny_width_export_is_right_up_to_hugging_faces_float32_conditioning): √(3 layers · 6 stages) · 5e-7 ≈ 2e-6, inside 1e-5 with a margin of ~5 for the
max-over-entries tail. Target-specific extra rounding, all below that: GPT-2's "gelu_new" formula vs
torch's tanh-GELU kernel (a few u); Gemma's √d_model embedding scale, written as W_E/s and multiplied
back, s·fl(W_E/s) = W_E(1+δ) with |δ| ≤ 2u ≈ 1.2e-7 relative in the residual stream; Gemma's rotary
angles p·θ computed in float32, |Δangle| ≤ p·θ·u ≤ T·u ≈ 7e-7 at T ≤ 12 (θ ≤ 1).
Float64: the same count with u = 1.1e-16 gives ≈ 4e-15, asserted as ≤ 1e-12 (the brief's "~1e-12").
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from _randomized import randomized as _randomized
from hypothesis import given
from hypothesis import strategies as st

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from toy_models import Transformer, TransformerConfig  # noqa: E402
from toy_models.export import ExportError, to_hf_bert, to_hf_gemma2, to_hf_gpt2  # noqa: E402

ACTS = ("relu", "gelu", "gelu_tanh", "silu")
REL_TOL_F32 = 1e-5  # derivation in the module docstring
REL_TOL_F64 = 1e-12


# ---------------------------------------------------------------------- helpers
def randomized(cfg: TransformerConfig, zero_unembed_bias: bool = False) -> Transformer:
    return _randomized(cfg, keep_zero_bias=lambda name: zero_unembed_bias and name == "unembed.b_U")


def inputs(cfg: TransformerConfig, batch: int, T: int, seed: int, padded: bool):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, cfg.d_vocab, (batch, T), generator=gen)
    if not padded:
        return tokens, None
    mask = (torch.rand(batch, T, generator=gen) > 0.3).long()
    mask[torch.arange(batch), torch.randint(0, T, (batch,), generator=gen)] = 1  # ≥ 1 real token per row
    return tokens, mask


@torch.no_grad()
def relative_error(model, hf, tokens, mask) -> float:
    """max |toy − HF| over real positions, divided by max |toy logits| there."""
    ours = model(tokens, padding_mask=mask)
    theirs = hf(tokens, attention_mask=mask).logits
    assert theirs.shape == ours.shape and theirs.dtype == ours.dtype
    keep = torch.ones(tokens.shape, dtype=torch.bool) if mask is None else mask.bool()
    return ((ours - theirs)[keep].abs().max() / ours[keep].abs().max()).item()


shape = st.fixed_dictionaries({
    "n_layers": st.integers(1, 3), "n_heads": st.integers(1, 4),
    "d_mlp": st.integers(4, 64), "d_vocab": st.integers(2, 40), "act_fn": st.sampled_from(ACTS),
    "attn_bias": st.booleans(), "norm_eps": st.sampled_from([1e-5, 1e-6]), "seed": st.integers(0, 2**16),
})
run = st.fixed_dictionaries({"batch": st.integers(1, 3), "T": st.integers(1, 12), "padded": st.booleans()})


MIN_WIDTH = 8  # see test_tiny_width_export_is_right_up_to_hugging_faces_float32_conditioning: the derivation assumes well-conditioned layers


def head_size(data, n_heads: int) -> int:
    """d_head with n_heads · d_head ≥ MIN_WIDTH."""
    return data.draw(st.sampled_from([d for d in (2, 4, 6, 8) if n_heads * d >= MIN_WIDTH]))


def absolute_pos(d_model: int, n_ctx: int):
    return st.sampled_from(["learned", "sinusoidal", "none"] + (["onehot"] if n_ctx <= d_model else []))


# ---------------------------------------------------------------------- GPT-2
@given(shape=shape, run=run, data=st.data())
def test_gpt2_logits_match(shape, run, data):
    d_head = head_size(data, shape["n_heads"])
    d_model = shape["n_heads"] * d_head
    n_ctx = run["T"] + data.draw(st.integers(0, 4))
    cfg = TransformerConfig(
        **shape, d_head=d_head, d_model=d_model, n_ctx=n_ctx, norm_placement="pre", norm_kind="layernorm",
        pos=data.draw(absolute_pos(d_model, n_ctx)), mlp_bias=data.draw(st.booleans()),
        norm_gain=data.draw(st.booleans()), norm_bias=data.draw(st.booleans()),
        unembed_bias=data.draw(st.booleans()),  # True is exported with b_U = 0 (GPT-2's lm_head has no bias)
        attn_scale=data.draw(st.sampled_from([None, 1.0])),
    )
    model = randomized(cfg, zero_unembed_bias=True)
    hf = to_hf_gpt2(model)
    assert not hf.training and hf.config.tie_word_embeddings is False
    tokens, mask = inputs(cfg, run["batch"], run["T"], shape["seed"], run["padded"])
    assert relative_error(model, hf, tokens, mask) <= REL_TOL_F32


# ---------------------------------------------------------------------- BERT
@given(shape=shape, run=run, data=st.data())
def test_bert_logits_match_with_padding(shape, run, data):
    d_head = head_size(data, shape["n_heads"])
    d_model = shape["n_heads"] * d_head
    n_ctx = run["T"] + data.draw(st.integers(0, 4))
    cfg = TransformerConfig(
        **shape, d_head=d_head, d_model=d_model, n_ctx=n_ctx, norm_placement="post", norm_kind="layernorm",
        attention_dir=data.draw(st.sampled_from(["bidirectional", "causal"])),
        pos=data.draw(absolute_pos(d_model, n_ctx)), mlp_bias=data.draw(st.booleans()),
        norm_gain=data.draw(st.booleans()), norm_bias=data.draw(st.booleans()),
        unembed_bias=data.draw(st.booleans()), d_vocab_out=data.draw(st.integers(1, 30)),
    )
    model = randomized(cfg)
    hf = to_hf_bert(model)
    assert type(hf).__name__ == "BertForTokenClassification" and not hf.training
    tokens, mask = inputs(cfg, run["batch"], run["T"], shape["seed"], run["padded"])
    assert relative_error(model, hf, tokens, mask) <= REL_TOL_F32


def test_bert_padding_mask_is_honoured():
    """The comparison above means something only if padding changes the logits: it must, here."""
    cfg = TransformerConfig(n_layers=2, d_model=16, n_heads=2, d_vocab=11, n_ctx=8, norm_placement="post",
                            attention_dir="bidirectional")
    model = randomized(cfg)
    hf = to_hf_bert(model)
    tokens, mask = torch.arange(8).remainder(11)[None].repeat(2, 1), torch.ones(2, 8, dtype=torch.long)
    mask[1, 5:] = 0
    with torch.no_grad():
        unmasked, masked = hf(tokens).logits, hf(tokens, attention_mask=mask).logits
    assert (unmasked[1, :5] - masked[1, :5]).abs().max() > 1e-3  # padding is not ignored ...
    assert relative_error(model, hf, tokens, mask) <= REL_TOL_F32  # ... and agrees with the toy's


# ---------------------------------------------------------------------- Gemma 2
@given(shape=shape, run=run, data=st.data())
def test_gemma2_logits_match(shape, run, data):
    # head_dim is free; heads must divide d_model
    d_model = shape["n_heads"] * data.draw(st.integers(max(2, -(-MIN_WIDTH // shape["n_heads"])), 8))
    cfg = TransformerConfig(
        **shape, d_head=data.draw(st.sampled_from([2, 4, 6, 8])), d_model=d_model, n_ctx=run["T"] + data.draw(st.integers(0, 4)), norm_placement="peri",
        norm_kind="rmsnorm", embed_norm=False, pos="rotary", rotary_base=data.draw(st.sampled_from([100.0, 10000.0])),
        gated_mlp=True, mlp_bias=False, unembed_bias=False, norm_gain=data.draw(st.booleans()),
        attn_scale=data.draw(st.sampled_from([None, math.sqrt(2), 3.0])),
    )
    model = randomized(cfg)
    hf = to_hf_gemma2(model)
    c = hf.config
    assert (c.attn_logit_softcapping, c.final_logit_softcapping, c.tie_word_embeddings) == (None, None, False)
    assert set(c.layer_types) == {"full_attention"} and c.num_key_value_heads == c.num_attention_heads
    tokens, mask = inputs(cfg, run["batch"], run["T"], shape["seed"], run["padded"])
    assert relative_error(model, hf, tokens, mask) <= REL_TOL_F32


def test_tiny_width_export_is_right_up_to_hugging_faces_float32_conditioning():
    """The hypothesis counterexample that set MIN_WIDTH: at d_model = 3 the Peri-LN output norms divide by
    the RMS of 3-vectors with cancellation and amplify rounding ~4-10x per layer, so the float32 bound
    1e-5 does not hold there (measured: toy vs Gemma 2 in float32 1.2e-5). Which side is off is measured
    against the float64 toy (the same weights, the truth up to 1e-15): the toy's own float32 error is
    1.3e-6, inside the bound (its norms compute in float32 with this conditioning too, so the margin is
    the ~8x of a well-conditioned-enough function); Gemma 2 computes RMSNorm, the softmax and the rotary
    angles in float32 even for a float64 model, so its error is 1.1e-5 (float32 model) and 2.1e-5
    (float64 model) on the three CPU dispatches tried. The mapping is checked at 1e-4: five times the
    worst of those, while a mis-mapped weight moves logits by O(1)."""
    cfg = TransformerConfig(n_layers=3, n_heads=1, d_head=8, d_model=3, d_mlp=11, d_vocab=27, n_ctx=1, act_fn="relu",
                            attn_bias=False, seed=1381, norm_placement="peri", norm_kind="rmsnorm", embed_norm=False,
                            pos="rotary", rotary_base=100.0, gated_mlp=True, mlp_bias=False, unembed_bias=False)
    model = randomized(cfg)
    tokens, _ = inputs(cfg, 1, 1, cfg.seed, False)
    exact = Transformer(cfg.replace(dtype="float64"))
    exact.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    with torch.no_grad():
        truth = exact(tokens)
        toy_error = ((model(tokens).double() - truth).abs().max() / truth.abs().max()).item()
    assert toy_error <= REL_TOL_F32
    assert relative_error(model, to_hf_gemma2(model), tokens, None) <= 1e-4
    assert relative_error(exact, to_hf_gemma2(exact), tokens, None) <= 1e-4


# ---------------------------------------------------------------------- float64
F64_CONFIGS = {
    "gpt2": (to_hf_gpt2, dict(norm_placement="pre", unembed_bias=False)),
    "bert": (to_hf_bert, dict(norm_placement="post", attention_dir="bidirectional")),
    "gemma2": (to_hf_gemma2, dict(norm_placement="peri", norm_kind="rmsnorm", embed_norm=False, pos="rotary",
                                  gated_mlp=True, mlp_bias=False, unembed_bias=False)),
}


@pytest.mark.parametrize("target", [
    "gpt2", "bert",
    pytest.param("gemma2", marks=pytest.mark.xfail(strict=True, reason=(
        "measured 2.2e-7 (1.6e-7 to 3.2e-7 over seeds and CPU dispatches; bound 1e-12): Gemma 2 computes RMSNorm (x.float()), the softmax (dtype=float32) and the rotary "
        "angles in float32 even in a float64 model, so float64 agreement is float32-limited"))),
])
def test_float64_export_agrees_to_1e_12(target):
    export, arch = F64_CONFIGS[target]
    cfg = TransformerConfig(n_layers=3, d_model=32, n_heads=4, d_vocab=23, n_ctx=12, act_fn="gelu_tanh",
                            dtype="float64", **arch)
    model = randomized(cfg)
    hf = export(model)
    assert next(hf.parameters()).dtype == torch.float64
    tokens, _ = inputs(cfg, 2, 12, 0, False)
    assert relative_error(model, hf, tokens, None) <= REL_TOL_F64


def test_gemma2_float64_export_meets_the_float32_bound():
    """What float64 Gemma 2 does achieve: its float32 internals put it under the float32 bound."""
    export, arch = F64_CONFIGS["gemma2"]
    cfg = TransformerConfig(n_layers=3, d_model=32, n_heads=4, d_vocab=23, n_ctx=12, dtype="float64", **arch)
    model = randomized(cfg)
    tokens, _ = inputs(cfg, 2, 12, 0, False)
    assert relative_error(model, export(model), tokens, None) <= REL_TOL_F32


@pytest.mark.xfail(strict=True, reason=(
    "Hugging Face Gemma 2 in float64 with a padded query that sees no real key (left padding): the mask "
    "holds float64's min, the float32 softmax turns it into -inf, the row becomes NaN and 0·NaN "
    "reaches the real positions through V in the next layer; measured: NaN logits (55 of the 143 real-position "
    "logits), on every CPU dispatch tried"))
def test_gemma2_float64_left_padding():
    export, arch = F64_CONFIGS["gemma2"]
    cfg = TransformerConfig(n_layers=2, d_model=16, n_heads=2, d_vocab=11, n_ctx=8, dtype="float64", **arch)
    model = randomized(cfg)
    tokens, mask = inputs(cfg, 2, 8, 0, False)[0], torch.ones(2, 8, dtype=torch.long)
    mask[1, :3] = 0
    assert relative_error(model, export(model), tokens, mask) <= REL_TOL_F32


# ---------------------------------------------------------------------- refusals
REFUSALS = [
    # (exporter, config overrides, expected message fragments: field=value, the target, the supporters)
    (to_hf_gpt2, dict(norm_placement="post"), ["norm_placement='post'", "GPT-2 (needs 'pre')", "support norm_placement='post': BERT"]),
    (to_hf_gpt2, dict(d_head=8), ["d_head=8", "needs d_model / n_heads = 16", ": Gemma 2, TransformerLens"]),
    (to_hf_gpt2, dict(gated_mlp=True), ["gated_mlp=True", "support gated_mlp=True: Gemma 2, TransformerLens"]),
    (to_hf_gpt2, dict(attn_only=True), ["attn_only=True", "support attn_only=True: TransformerLens"]),
    (to_hf_gpt2, dict(attention="linear"), ["attention='linear'", "support attention='linear': none"]),
    (to_hf_gpt2, dict(d_vocab_out=3), ["d_vocab_out=3", "needs d_vocab=64", ": BERT, TransformerLens"]),
    (to_hf_gpt2, dict(attn_scale=2.5), ["attn_scale=2.5", "support attn_scale=2.5: TransformerLens"]),
    (to_hf_bert, dict(norm_placement="pre"), ["norm_placement='pre'", "BERT (needs 'post')", ": GPT-2, TransformerLens"]),
    (to_hf_bert, dict(norm_placement="post", embed_norm=False), ["embed_norm=False", "BERT (needs True)", ": GPT-2, Gemma 2, TransformerLens"]),
    (to_hf_bert, dict(norm_placement="post", pos="rotary"), ["pos='rotary'", ": Gemma 2, TransformerLens"]),
    (to_hf_gemma2, dict(norm_placement="peri", norm_kind="layernorm", embed_norm=False, pos="rotary", gated_mlp=True, mlp_bias=False, unembed_bias=False),
     ["norm_kind='layernorm'", "Gemma 2 (needs 'rmsnorm')", "support norm_kind='layernorm': GPT-2, BERT"]),
    (to_hf_gemma2, dict(norm_placement="peri", norm_kind="rmsnorm", pos="rotary", gated_mlp=True, mlp_bias=False, unembed_bias=False),
     ["embed_norm=True", "Gemma 2 (needs False)", "support embed_norm=True: BERT"]),
    (to_hf_gemma2, dict(norm_placement="peri", norm_kind="rmsnorm", embed_norm=False, pos="rotary", gated_mlp=True, mlp_bias=False, unembed_bias=False, attn_scale=1.5),
     ["attn_scale=1.5", "√n for a positive integer n", "support attn_scale=1.5: TransformerLens"]),
    (to_hf_gemma2, dict(norm_placement="mix"), ["norm_placement='mix'", "support norm_placement='mix': none",
                                                "pos='learned'", "gated_mlp=False"]),
]


@pytest.mark.parametrize("export, overrides, fragments", REFUSALS)
def test_refusal_names_field_value_and_supporting_targets(export, overrides, fragments):
    with pytest.raises(ExportError) as info:
        export(Transformer(TransformerConfig(**overrides)))
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize("export", [to_hf_gpt2, to_hf_gemma2])
def test_nonzero_bias_the_target_lacks_is_refused_and_zero_bias_is_not(export):
    """GPT-2's lm_head and Gemma 2's MLP have no bias: a zero toy bias exports, a nonzero one is refused."""
    arch = {} if export is to_hf_gpt2 else dict(F64_CONFIGS["gemma2"][1], unembed_bias=True)
    model = Transformer(TransformerConfig(n_layers=1, d_model=16, n_heads=2, d_vocab=10, n_ctx=8, **arch))
    export(model)  # b_U exists but is zero at init: the same function as no bias
    with torch.no_grad():
        model.unembed.b_U[3] = 0.5
    with pytest.raises(ExportError, match=r"unembed_bias=True cannot be exported to .* targets that support "
                                          r"unembed_bias=True: BERT, TransformerLens"):
        export(model)
