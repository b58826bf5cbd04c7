"""Attention sinks and value norms (probes.attention_sinks, "Quantizable Transformers", Bondarenko et al.
2023) against hand-computed values on a tiny constructed model, and on a HookedTransformer."""

import math

import pytest
import torch

from probes import attention_sinks
from toy_models import Transformer, TransformerConfig

# float64 sums of ≤ 12 terms: rounding ~1e-15 relative; 1e-12 leaves margin.
TOL = 1e-12
TOKENS = torch.tensor([[0, 1, 2, 3, 4, 0], [4, 3, 2, 1, 0, 1]])
BIG = 30.0


def _sink_model() -> Transformer:
    """3 blocks, all weights zero except: x = (δ_{pos,0}, token, 0, …); head 0 of every layer scores key 0
    at BIG²/√d_head = 450 (and every other key at 0), head 1 scores every key at 0 (uniform under the
    causal mask); each head's value is v = x[:d_head] = (δ_{pos,0}, token, 0, 0)."""
    cfg = TransformerConfig(n_layers=3, d_model=8, n_heads=2, n_ctx=6, d_vocab=5, norm_placement="none",
                            init="zero", dtype="float64")
    model = Transformer(cfg)
    with torch.no_grad():
        model.embed.W_E[:, 1] = torch.arange(5, dtype=torch.float64)
        model.pos_embed.W_pos[0, 0] = 1.0
        for block in model.blocks:
            block.attn.W_K[0, 0, 0] = BIG
            block.attn.b_Q[0, 0] = BIG
            for h in range(2):
                block.attn.W_V[h, :4, :] = torch.eye(4, dtype=torch.float64)
    return model


def _value(df, **where) -> float:
    sel = df
    for k, v in where.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, sel
    return float(sel["value"].iloc[0])


def test_first_token_sink_mass_and_value_norms():
    df = attention_sinks(_sink_model(), TOKENS, value_norms=True)
    uniform = sum(1.0 / (q + 1) for q in range(1, 6)) / 5  # key 0's share of q + 1 equal scores, q = 1…5
    # Position 0 carries (1, token): ‖v‖ = √(1 + t²) for the first tokens 0 and 4; elsewhere ‖v‖ = |token|,
    # and the other tokens are 1, 2, 3, 4, 0 and 3, 2, 1, 0, 1 (sum 17 over 10 keys).
    sink_norm, other_norm = (1.0 + math.sqrt(17.0)) / 2, 17.0 / 10
    for layer in range(3):
        # the other keys of head 0 share ≤ 5·e^{−450} of the mass
        assert _value(df, layer=layer, head=0, quantity="sink_mass") > 1 - 1e-12
        assert abs(_value(df, layer=layer, head=1, quantity="sink_mass") - uniform) < TOL
        for head in range(2):
            assert abs(_value(df, layer=layer, head=head, quantity="sink_value_norm") - sink_norm) < TOL
            assert abs(_value(df, layer=layer, head=head, quantity="other_value_norm") - other_norm) < TOL
            assert abs(_value(df, layer=layer, head=head, quantity="value_norm_ratio") - sink_norm / other_norm) < TOL
    # without value_norms the frame has the sink mass only, one row per (layer, head)
    assert set(attention_sinks(_sink_model(), TOKENS).quantity) == {"sink_mass"}


def test_delimiter_token_sinks():
    """Token 0 as the delimiter: row 0 has it at positions 0 and 5 (queries 1…5 count), row 1 at position 4
    (only query 5 counts). Head 1 is uniform over keys ≤ q, so its mass is #delimiters ≤ q / (q + 1)."""
    df = attention_sinks(_sink_model(), TOKENS, sink_tokens=(0,), value_norms=True)
    masses = [1 / 2, 1 / 3, 1 / 4, 1 / 5, 2 / 6] + [1 / 6]
    want = sum(masses) / len(masses)
    # delimiter keys: (row 0, pos 0) with v = (1, 0), (row 0, pos 5) and (row 1, pos 4) with v = 0;
    # the 9 others: tokens 1, 2, 3, 4 (row 0) and 4 at position 0 (√17), 3, 2, 1, 1 (row 1).
    sink_norm, other_norm = 1.0 / 3, (10 + math.sqrt(17.0) + 7) / 9
    for layer in range(3):
        assert abs(_value(df, layer=layer, head=1, quantity="sink_mass") - want) < TOL
        assert abs(_value(df, layer=layer, head=1, quantity="sink_value_norm") - sink_norm) < TOL
        assert abs(_value(df, layer=layer, head=1, quantity="other_value_norm") - other_norm) < TOL


def test_bad_requests_are_refused_with_the_reason():
    model = _sink_model()
    with pytest.raises(ValueError, match=r"sink_positions=\(6,\) is not allowed: positions in \[0, 6\)"):
        attention_sinks(model, TOKENS, sink_positions=(6,))
    with pytest.raises(ValueError, match="no query comes after a sink key"):
        attention_sinks(model, TOKENS, sink_positions=(5,))
    with pytest.raises(ValueError, match="no query comes after a sink key"):
        attention_sinks(model, TOKENS, sink_tokens=(7,))  # a token that never occurs
    with pytest.raises(ValueError, match="every key is a sink"):
        attention_sinks(model, TOKENS, sink_tokens=range(5), value_norms=True)
    continuous = Transformer(TransformerConfig(n_layers=1, d_model=8, n_heads=2, n_ctx=4, input_kind="continuous",
                                               d_input=3))
    with pytest.raises(ValueError, match="sink_tokens needs token-id inputs"):
        attention_sinks(continuous, torch.randn(1, 4, 3), sink_tokens=(0,))


def test_value_norms_on_a_hooked_transformer():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_ctx=8, d_head=4, n_heads=4, d_vocab=10, act_fn="gelu",
                                  seed=0)
    model = HookedTransformer(cfg)
    tokens = torch.randint(0, 10, (3, 8), generator=torch.Generator().manual_seed(0))
    df = attention_sinks(model, tokens, value_norms=True)
    _, cache = model.run_with_cache(tokens)
    for layer in range(2):
        norms = cache[f"blocks.{layer}.attn.hook_v"].double().norm(dim=-1)  # [batch, pos, head]
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"].double()
        for head in range(4):
            # float32 activations: each norm and attention weight carries ~1e-7 relative rounding
            want = float(norms[:, 0, head].mean())
            assert abs(_value(df, layer=layer, head=head, quantity="sink_value_norm") - want) <= 1e-6 * want
            want = float(norms[:, 1:, head].mean())
            assert abs(_value(df, layer=layer, head=head, quantity="other_value_norm") - want) <= 1e-6 * want
            want = float(pattern[:, head, 1:, 0].mean())
            assert abs(_value(df, layer=layer, head=head, quantity="sink_mass") - want) <= 1e-6
