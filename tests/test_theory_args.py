"""The theory's own statement of the model's rules agrees with the model's.

``theory`` does not import the model, so it states the depth rules (Mix-LN's split, LayerNorm-Scaling,
DeepNorm's α and β, GPT-2's residual-writer count) and the sinusoidal table itself. These tests fail
when one side changes without the other.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from theory.variance.recursion import sinusoidal_table as theory_sinusoidal_table
from toy_models import TransformerConfig
from toy_models.init import residual_writers
from toy_models.positional import sinusoidal_table
from toy_models.theory_args import variance_architecture

PLACEMENTS = ("none", "post", "pre", "peri", "mix", "lns", "deepnorm")


@settings(max_examples=40, deadline=None)
@given(placement=st.sampled_from(PLACEMENTS), n_layers=st.integers(1, 40), attn_only=st.booleans(),
       mix_alpha=st.floats(0.0, 1.0), clip_gamma=st.sampled_from([0.0, -0.03]), clip_zeta=st.sampled_from([1.0, 1.2]))
def test_architecture_rules_match_the_config(placement, n_layers, attn_only, mix_alpha, clip_gamma, clip_zeta):
    cfg = TransformerConfig(n_layers=n_layers, norm_placement=placement, attn_only=attn_only, mix_alpha=mix_alpha,
                            clip_gamma=clip_gamma, clip_zeta=clip_zeta)
    arch = variance_architecture(cfg)
    # Exact equality: both sides evaluate the same closed forms in the same order.
    assert [arch.block_placement(layer) for layer in range(n_layers)] == \
        [cfg.block_placement(layer) for layer in range(n_layers)]
    assert [arch.lns_scale(layer) for layer in range(n_layers)] == [cfg.lns_scale(layer) for layer in range(n_layers)]
    assert (arch.deepnorm_alpha, arch.deepnorm_beta) == (cfg.deepnorm_alpha, cfg.deepnorm_beta)
    assert arch.residual_writers == residual_writers(cfg)
    assert arch.clipped_softmax == cfg.clipped_softmax
    assert (arch.d_head, arch.d_mlp, arch.attn_scale, arch.embed_norm) == \
        (cfg.head_dim, cfg.mlp_dim, cfg.scale, cfg.has_embed_norm)
    deeper = arch.replace(n_layers=n_layers + 3)
    assert deeper.deepnorm_beta == cfg.replace(n_layers=n_layers + 3).deepnorm_beta


@pytest.mark.parametrize("n_ctx, d_model", [(1, 2), (16, 32), (9, 7)])
def test_sinusoidal_table_matches_the_model(n_ctx, d_model):
    want = sinusoidal_table(n_ctx, d_model, dtype=torch.float64).numpy()
    # Same float64 formula in numpy and torch, whose pow, sin and cos may each round differently by
    # ≤ 1 ulp: the angle p·f (p < n_ctx, f ≤ 1) then differs by ≤ 2·n_ctx·ε, and sin/cos add ≤ 2ε.
    eps = np.finfo(np.float64).eps
    assert np.allclose(theory_sinusoidal_table(n_ctx, d_model), want, rtol=0, atol=(2 * n_ctx + 2) * eps)
