"""Pre-LN → Pre-RMSNorm → Pre-CRMSNorm gives the same logits on random models ("Pre-RMSNorm and
Pre-CRMSNorm Transformers", Jiang et al. 2023), and refuses models it does not cover."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from toy_models import Transformer, TransformerConfig
from toy_models.transforms import (
    ConversionError,
    pre_ln_to_pre_crmsnorm,
    pre_ln_to_pre_rmsnorm,
    pre_rmsnorm_to_pre_crmsnorm,
)

# Relative bounds of the issue, checked against what rounding predicts. The conversion re-associates
# every matmul (γ folded into W, a recentred W_O, a compressed reader): float rounding gives a
# relative error of ≈ √K·eps per dot product of length K ≤ d_mlp = 128 (√128·eps: 2.5e-15 in
# float64, 1.3e-6 in float32), compounded over ≤ 3 blocks × 2 sublayers and amplified by the
# norms' 1/σ by O(1) on these O(1)-scaled weights: ≲ 1e-14 (float64) and ≲ 1e-5 (float32). The
# measured errors are 1e-15 and 3e-7..6e-7 (see the report), inside the bounds below.
REL_TOL = {"float64": 1e-10, "float32": 1e-5}


def _randomize(model: Transformer, gen: torch.Generator, *, zero_gate_bias: bool) -> None:
    """Gains ≠ 1 and biases ≠ 0, so that every fold is exercised (init leaves γ = 1, β = 0, b = 0)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "w":
                p.copy_(1 + 0.5 * noise)
            elif leaf == "b" and zero_gate_bias and ".ln2." in name:
                p.zero_()  # a gated MLP's W_gate has no bias to absorb β·W_gate
            elif leaf.startswith("b"):
                p.copy_(0.3 * noise)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


configs = st.fixed_dictionaries({
    "n_layers": st.integers(1, 3),
    "n_heads": st.sampled_from([1, 2, 4]),
    "d_model": st.sampled_from([8, 16, 32]),
    "attn_only": st.booleans(),
    "gated_mlp": st.booleans(),
    "attn_bias": st.booleans(),
    "mlp_bias": st.booleans(),
    "unembed_bias": st.booleans(),
    "norm_gain": st.booleans(),
    "norm_bias": st.booleans(),
    "pos": st.sampled_from(["learned", "sinusoidal", "rotary", "none"]),
    "act_fn": st.sampled_from(["relu", "gelu", "silu"]),
    "attention_dir": st.sampled_from(["causal", "bidirectional"]),
    "dtype": st.sampled_from(["float32", "float64"]),
    "seed": st.integers(0, 2**16),
})


@settings(max_examples=12)
@given(kw=configs)
def test_conversion_preserves_logits(kw):
    cfg = TransformerConfig(n_ctx=8, d_vocab=13, init="fan_in", **kw)
    model = Transformer(cfg)
    gen = torch.Generator().manual_seed(kw["seed"])
    _randomize(model, gen, zero_gate_bias=kw["gated_mlp"])
    tokens = torch.randint(0, 13, (3, 8), generator=gen)
    with torch.no_grad():
        want = model(tokens, attn_path="reference")
        rms = pre_ln_to_pre_rmsnorm(model)
        crms = pre_rmsnorm_to_pre_crmsnorm(rms)
        for path in ("reference", "kernel"):
            assert _rel_err(rms(tokens, attn_path=path), want) <= REL_TOL[cfg.dtype]
            assert _rel_err(crms(tokens, attn_path=path), want) <= REL_TOL[cfg.dtype]
    assert rms.cfg.norm_kind == "rmsnorm" and rms.cfg.d_model == cfg.d_model
    assert crms.cfg.norm_kind == "crmsnorm" and crms.cfg.d_model == cfg.d_model - 1  # one fewer dimension


def test_residual_stream_is_the_centred_original():
    """The mechanism, not only the outputs: the new stream is x − mean(x) at every layer, and the
    compressed one stores its first d − 1 coordinates (exact in float64 up to ~1e-15)."""
    model = Transformer(TransformerConfig(n_layers=2, d_model=16, n_heads=2, n_ctx=8, d_vocab=13, init="fan_in",
                                          dtype="float64"))
    _randomize(model, torch.Generator().manual_seed(1), zero_gate_bias=False)
    tokens = torch.randint(0, 13, (2, 8), generator=torch.Generator().manual_seed(2))
    names = lambda n: n.endswith("hook_resid_post")  # noqa: E731
    _, c0 = model.run_with_cache(tokens, names_filter=names)
    _, c1 = pre_ln_to_pre_rmsnorm(model).run_with_cache(tokens, names_filter=names)
    _, c2 = pre_ln_to_pre_crmsnorm(model).run_with_cache(tokens, names_filter=names)
    for name, x in c0.items():
        centred = x - x.mean(-1, keepdim=True)
        assert torch.allclose(c1[name], centred, rtol=0, atol=1e-12 * x.abs().max())
        assert torch.allclose(c2[name], centred[..., :-1], rtol=0, atol=1e-12 * x.abs().max())


def test_continuous_read_in_is_recentred():
    cfg = TransformerConfig(n_layers=2, d_model=16, n_heads=2, n_ctx=8, input_kind="continuous", d_input=5,
                            init="fan_in", dtype="float64")
    model = Transformer(cfg)
    _randomize(model, torch.Generator().manual_seed(3), zero_gate_bias=False)
    x = torch.randn(2, 8, 5, dtype=torch.float64)
    with torch.no_grad():
        assert _rel_err(pre_ln_to_pre_crmsnorm(model)(x), model(x)) <= REL_TOL["float64"]


@pytest.mark.parametrize("change, field", [
    (dict(norm_placement="post"), "norm_placement"),
    (dict(norm_placement="peri"), "norm_placement"),
    (dict(norm_placement="mix"), "norm_placement"),
    (dict(norm_kind="rmsnorm"), "norm_kind"),
    (dict(embed="onehot", d_model=32, d_vocab=8), "embed"),
    (dict(pos="onehot", n_ctx=8), "pos"),
    (dict(output="onehot", d_model=32, d_vocab=8), "output"),
    (dict(embed_norm=True), "embed_norm"),
])
def test_refuses_models_outside_the_identity(change, field):
    base = dict(n_layers=1, d_model=16, n_heads=2, n_ctx=8, d_vocab=13)
    model = Transformer(TransformerConfig(**{**base, **change}))
    with pytest.raises(ConversionError) as err:
        pre_ln_to_pre_rmsnorm(model)
    assert err.value.field_name == field


def test_gated_mlp_with_a_norm_bias_is_refused():
    model = Transformer(TransformerConfig(n_layers=1, d_model=16, n_heads=2, n_ctx=8, d_vocab=13, gated_mlp=True))
    with torch.no_grad():
        model.blocks[0].ln2.b.fill_(0.1)
    with pytest.raises(ConversionError, match="W_gate"):
        pre_ln_to_pre_rmsnorm(model)


def test_crmsnorm_needs_zero_mean_writers():
    """A Pre-RMSNorm model built directly has a non-zero-mean stream: dropping a coordinate would change it."""
    model = Transformer(TransformerConfig(n_layers=1, d_model=16, n_heads=2, n_ctx=8, d_vocab=13, norm_kind="rmsnorm"))
    with pytest.raises(ConversionError, match="zero-mean writers"):
        pre_rmsnorm_to_pre_crmsnorm(model)
    with pytest.raises(ConversionError) as err:
        pre_rmsnorm_to_pre_crmsnorm(Transformer(TransformerConfig(n_layers=1, d_model=16, n_heads=2, n_ctx=8)))
    assert err.value.field_name == "norm_kind"


# ------------------------------------------------------------------------------------------ training
# "The same training trajectory": the converted models are the Pre-LN model in other coordinates, so
# training gives the same trajectory when the optimizer acts in coordinates that correspond.
#
# Pre-RMSNorm. L_pre(θ) = L_rms(T θ), T recentring the writers over d_model (C = I − 11ᵀ/d on their last
# axis). So ∇_pre = C ∇_rms on the writers, and the Pre-LN update, mapped through T, is the update of the
# RMSNorm model trained with zero-mean writers: gradient projected by C, weights re-centred after the
# step (the parametrization W = Ŵ C). That holds for any optimizer (AdamW included: both see the same
# gradients, and weight decay is linear). Norm gains are left out: folding γ into W_Q changes the
# coordinates of (γ, W_Q) to γ·W_Q, where no plain optimizer step corresponds.
#
# Pre-CRMSNorm. Writers become W P (P = C[:, :d−1]) and readers Q R (Q = [I | −1]), so an SGD step on
# the Pre-LN model maps to SGD on the CRMSNorm model preconditioned by PᵀP = I − 11ᵀ/d on the writers
# and QQᵀ = I + 11ᵀ on the readers ((PᵀP)(QQᵀ) = I: the two metrics are inverse).
#
# Tolerance: float64; the conversion itself is exact to ~1e-15 (above), each step adds rounding of the
# same order, and an AdamW step normalizes updates elementwise (errors stay relative); 5 steps: ≲ 1e-13
# (measured ≤ 1.5e-16 relative on the losses). The float64 bound, 1e-10 relative, holds.
_WRITER_SUFFIXES = ("embed.W_E", "pos_embed.W_pos", "attn.W_O", "attn.b_O", "mlp.W_out", "mlp.b_out")
_READER_SUFFIXES = ("attn.W_Q", "attn.W_K", "attn.W_V", "mlp.W_in", "unembed.W_U")  # d_model on axis −2
TRAIN_STEPS = 5


def _trainable_pre_ln(seed: int) -> Transformer:
    cfg = TransformerConfig(n_layers=2, d_model=16, n_heads=2, n_ctx=8, d_vocab=13, init="fan_in", dtype="float64",
                            norm_gain=False, norm_bias=False, seed=seed)
    model = Transformer(cfg)
    _randomize(model, torch.Generator().manual_seed(seed), zero_gate_bias=False)
    return model


def _loss(model: Transformer, tokens: torch.Tensor) -> torch.Tensor:
    logits = model(tokens)
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())


def _train(model: Transformer, batches, make_opt, before_step=None, after_step=None) -> list[float]:
    opt = make_opt(model.parameters())
    losses = []
    for tokens in batches:
        loss = _loss(model, tokens)
        opt.zero_grad()
        loss.backward()
        if before_step:
            before_step(model)
        opt.step()
        if after_step:
            after_step(model)
        losses.append(loss.item())
    return losses


def _each(model: Transformer, suffixes, fn) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(suffixes):
                fn(p)


def _centre_writer_grads(model):
    _each(model, _WRITER_SUFFIXES, lambda p: p.grad.sub_(p.grad.mean(-1, keepdim=True)))


def _centre_writers(model):
    _each(model, _WRITER_SUFFIXES, lambda p: p.sub_(p.mean(-1, keepdim=True)))


def _crms_metric(model):
    d = model.cfg.d_model + 1  # the Pre-LN width
    _each(model, _WRITER_SUFFIXES, lambda p: p.grad.sub_(p.grad.sum(-1, keepdim=True) / d))
    _each(model, _READER_SUFFIXES, lambda p: p.grad.add_(p.grad.sum(-2, keepdim=True)))


def _batches(seed: int):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 13, (4, 8), generator=gen) for _ in range(TRAIN_STEPS)]


OPTIMIZERS = {
    "sgd": lambda params: torch.optim.SGD(params, lr=0.1),
    "adamw": lambda params: torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1),
}


@pytest.mark.parametrize("opt", ["sgd", "adamw"])
@pytest.mark.parametrize("seed", [0, 1])
def test_pre_rmsnorm_with_zero_mean_writers_trains_like_pre_ln(opt, seed):
    pre = _trainable_pre_ln(seed)
    rms = pre_ln_to_pre_rmsnorm(pre)
    batches = _batches(seed)
    want = _train(pre, batches, OPTIMIZERS[opt])
    got = _train(rms, batches, OPTIMIZERS[opt], before_step=_centre_writer_grads, after_step=_centre_writers)
    assert max(abs(a - b) for a, b in zip(got, want)) <= 1e-10 * max(want)
    with torch.no_grad():
        ref = pre(batches[0])
        assert _rel_err(rms(batches[0]), ref) <= REL_TOL["float64"]  # after the last step, too
        assert _rel_err(pre_ln_to_pre_rmsnorm(pre)(batches[0]), rms(batches[0])) <= REL_TOL["float64"]


@pytest.mark.parametrize("seed", [0, 1])
def test_pre_crmsnorm_trains_like_pre_ln_under_sgd_in_the_mapped_metric(seed):
    pre = _trainable_pre_ln(seed)
    crms = pre_ln_to_pre_crmsnorm(pre)
    assert crms.cfg.d_model == pre.cfg.d_model - 1
    batches = _batches(seed)
    want = _train(pre, batches, OPTIMIZERS["sgd"])
    got = _train(crms, batches, OPTIMIZERS["sgd"], before_step=_crms_metric)
    assert max(abs(a - b) for a, b in zip(got, want)) <= 1e-10 * max(want)
    with torch.no_grad():
        assert _rel_err(crms(batches[0]), pre(batches[0])) <= REL_TOL["float64"]


@pytest.mark.xfail(strict=True, reason=(
    "measured: plain AdamW (lr 1e-2) on the converted models, with no zero-mean parametrization or metric, "
    "leaves the Pre-LN trajectory from the second step: relative loss gap up to 6e-3 (RMSNorm) and 4.6e-2 "
    "(CRMSNorm) within 5 steps, against ≤ 1.5e-16 in the corresponding coordinates; the optimizer acts in "
    "other coordinates (see the comment above)"))
@pytest.mark.parametrize("convert", [pre_ln_to_pre_rmsnorm, pre_ln_to_pre_crmsnorm], ids=["rmsnorm", "crmsnorm"])
def test_plain_training_of_the_converted_model_follows_pre_ln(convert):
    pre = _trainable_pre_ln(0)
    other = convert(pre)
    batches = _batches(0)
    want = _train(pre, batches, OPTIMIZERS["adamw"])
    got = _train(other, batches, OPTIMIZERS["adamw"])
    assert max(abs(a - b) for a, b in zip(got, want)) <= 1e-10 * max(want)
