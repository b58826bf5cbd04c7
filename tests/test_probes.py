"""Probes against hand-computed answers on tiny constructed models."""

import math

import numpy as np
import pytest
import torch

from probes import (
    attention_sinks,
    gradient_norms,
    kurtosis,
    massive_activations,
    outlier_stats,
    residual_stats,
)
from toy_models import Transformer, TransformerConfig

# Everything below is float64 on ≤ 16-term sums: rounding is ~1e-15 relative; 1e-12 leaves margin.
TOL = 1e-12


def _identity_model(**kw) -> Transformer:
    """No norms, all block weights zero: every block is the identity on the stream (F = 0)."""
    cfg = TransformerConfig(n_layers=3, d_model=8, n_heads=2, n_ctx=6, d_vocab=5, norm_placement="none",
                            init="zero", dtype="float64", **kw)
    model = Transformer(cfg)
    with torch.no_grad():
        model.embed.W_E.copy_(torch.randn(5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
        model.unembed.W_U.copy_(torch.randn(8, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    return model


TOKENS = torch.tensor([[0, 1, 2, 3, 4, 0], [4, 3, 2, 1, 0, 1]])


def _value(df, **where):
    sel = df
    for k, v in where.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, sel
    return float(sel["value"].iloc[0])


def test_identity_layers_have_zero_angular_distance_and_constant_stats():
    model = _identity_model(pos="none")
    df = residual_stats(model, TOKENS)
    x = model.embed.W_E.detach()[TOKENS]
    for layer in range(4):
        assert abs(_value(df, layer=layer, quantity="mean_square") - float(x.pow(2).mean())) < TOL
        assert abs(_value(df, layer=layer, quantity="variance") - float(x.var(-1, unbiased=False).mean())) < TOL
        assert abs(_value(df, layer=layer, quantity="norm") - float(x.norm(dim=-1).mean())) < TOL
    for layer in range(3):
        # arccos near 1 has slope 1/√(2(1 − cos)): a cos rounding of 1e-16 gives ≤ ~1e-8/π
        assert _value(df, layer=layer, quantity="angular_distance") < 1e-7


def test_a_layer_that_flips_the_stream_has_angular_distance_one():
    model = _identity_model(pos="none")
    model.blocks[1].hook_resid_post.add_hook(lambda x, hook: -x)
    try:
        df = residual_stats(model, TOKENS)
    finally:
        model.reset_hooks(including_permanent=True)
    assert _value(df, layer=0, quantity="angular_distance") < 1e-7
    assert abs(_value(df, layer=1, quantity="angular_distance") - 1.0) < 1e-7  # same slope argument at cos = −1
    # variance is sign-blind
    assert abs(_value(df, layer=2, quantity="mean_square") - _value(df, layer=1, quantity="mean_square")) < TOL


def test_gradient_norms_on_identity_blocks():
    """loss = Σ logits: ∂loss/∂x = W_U·1 =: g at every token and layer (zero-weight blocks pass the
    gradient through unchanged), so ‖∂loss/∂x_l‖ = √(B·T)·‖g‖; ∂loss/∂b_out = ∂loss/∂b_O = Σ_tokens g
    = B·T·g; ∂loss/∂W_out = post ⊗ g = 0 since post = gelu(0) = 0."""
    model = _identity_model(pos="none")
    df = gradient_norms(model, TOKENS, loss_fn=lambda logits: logits.sum())
    g = model.unembed.W_U.detach().sum(-1)
    BT = TOKENS.numel()
    for layer in range(3):
        assert abs(_value(df, layer=layer, quantity="resid_grad_norm") - math.sqrt(BT) * float(g.norm())) < TOL * BT
        assert abs(_value(df, layer=layer, name="mlp.b_out") - BT * float(g.norm())) < TOL * BT
        assert abs(_value(df, layer=layer, name="attn.b_O") - BT * float(g.norm())) < TOL * BT
        assert _value(df, layer=layer, name="mlp.W_out") == 0.0
    assert all(p.grad is None for p in model.parameters())  # the probe leaves .grad alone


def test_gradient_norms_default_loss_matches_autograd():
    model = Transformer(TransformerConfig(n_layers=2, d_model=16, n_heads=2, n_ctx=6, d_vocab=5, dtype="float64"))
    df = gradient_norms(model, TOKENS)
    logits = model(TOKENS)
    torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 5), TOKENS[:, 1:].reshape(-1)).backward()
    want = float(model.blocks[1].attn.W_Q.grad.norm())
    assert abs(_value(df, layer=1, name="attn.W_Q") - want) <= TOL * max(want, 1e-300)
    with pytest.raises(ValueError, match="loss_fn"):
        gradient_norms(Transformer(TransformerConfig(n_layers=1, d_model=8, n_heads=2, n_ctx=4,
                                                     input_kind="continuous", d_input=3)),
                       torch.randn(1, 4, 3))


def test_planted_massive_activation_is_found_exactly_once():
    torch.manual_seed(0)
    acts = {f"h{layer}": torch.randn(2, 6, 16, dtype=torch.float64) for layer in range(3)}
    acts["h1"][1, 0, 7] = 5000.0  # median |N(0,1)| ≈ 0.67: ratio ≈ 7500 > 1000, and 5000 > 100
    per_layer, hits = outlier_stats(acts)
    assert len(hits) == 1
    row = hits.iloc[0]
    assert (row.layer, row.batch, row.pos, row.dim, row.value) == (1, 1, 0, 7, 5000.0)
    assert _value(per_layer, layer=1, quantity="max_abs") == 5000.0
    assert _value(per_layer, layer=0, quantity="n_massive") == 0.0
    # the relative threshold is configurable: at 1e4 × median the planted value no longer qualifies
    assert len(outlier_stats(acts, rel_threshold=1e4)[1]) == 0


def test_kurtosis_known_values():
    assert abs(float(kurtosis(torch.tensor([1.0, -1.0, 1.0, -1.0]))) - 1.0) < TOL  # ±1: μ₄/σ⁴ = 1
    # one spike among n zeros: x = e_1 in R^n has kurtosis (n² − 3n + 3)/(n − 1) = 13 for n = 16
    n = 16
    assert abs(float(kurtosis(torch.eye(n, dtype=torch.float64)[0])) - (n * n - 3 * n + 3) / (n - 1)) < 1e-10


def test_massive_activations_on_a_model_with_a_planted_value():
    model = _identity_model(pos="none")

    def plant(x, hook):
        x = x.clone()
        x[0, 2, 3] = 1e4
        return x

    model.blocks[2].hook_resid_pre.add_hook(plant)
    try:
        _, hits = massive_activations(model, TOKENS)
    finally:
        model.reset_hooks(including_permanent=True)
    # planted at block 2's input; blocks are identities, so it is seen at x_2 and x_3 (the output)
    assert sorted(hits.layer.tolist()) == [2, 3]
    assert set(zip(hits.batch, hits.pos, hits.dim)) == {(0, 2, 3)}


def test_attention_sink_head_and_uniform_heads():
    """Head 0 of every layer attends (almost) only to position 0; head 1 has zero scores, so uniform
    causal attention gives key 0 the mass 1/(q+1) at query q: mean over q = 1..5 of 1/(q+1)."""
    model = _identity_model(pos="learned")
    big = 30.0
    with torch.no_grad():
        model.pos_embed.W_pos.zero_()
        model.pos_embed.W_pos[0, 0] = 1.0  # only position 0 carries coordinate 0
        model.embed.W_E[:, 0] = 0.0
        for block in model.blocks:
            block.attn.W_K[0, 0, 0] = big  # key of position 0: big along head dim 0
            block.attn.b_Q[0, 0] = big  # every query: big along head dim 0
    df = attention_sinks(model, TOKENS, attn_path="reference")
    T = TOKENS.shape[1]
    uniform = np.mean([1.0 / (q + 1) for q in range(1, T)])
    for layer in range(3):
        # score to key 0 is big²/√d_head = 900/2 = 450 vs 0 elsewhere: the rest has mass ≤ 5·e^{-450}
        assert _value(df, layer=layer, head=0) > 1 - 1e-12
        assert abs(_value(df, layer=layer, head=1) - uniform) < TOL
    # the toy model's default attention path is filled in as "reference" (patterns exist only there)
    assert abs(_value(attention_sinks(model, TOKENS), layer=0, head=1) - uniform) < TOL


def test_probes_run_on_a_hooked_transformer():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_ctx=8, d_head=4, n_heads=4, d_vocab=10,
                                  act_fn="gelu", seed=0)
    model = HookedTransformer(cfg)
    tokens = torch.randint(0, 10, (2, 8), generator=torch.Generator().manual_seed(0))
    df = residual_stats(model, tokens)
    _, cache = model.run_with_cache(tokens, names_filter="blocks.1.hook_resid_post")
    want = float(cache["blocks.1.hook_resid_post"].double().pow(2).mean())
    # float32 activations, mean of 256 squares: relative rounding ≲ 256·6e-8
    assert abs(_value(df, layer=2, quantity="mean_square") - want) <= 2e-5 * want
    sinks = attention_sinks(model, tokens)
    assert len(sinks) == 2 * 4 and sinks.value.between(0, 1).all()
    grads = gradient_norms(model, tokens, loss_fn=lambda logits: logits.pow(2).mean())
    assert (grads.query("quantity == 'resid_grad_norm'").value > 0).all()
