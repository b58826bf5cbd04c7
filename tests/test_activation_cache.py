"""``Transformer.run_with_cache`` returns a TransformerLens ActivationCache (dict-style access kept)."""

from __future__ import annotations

import torch
from transformer_lens import ActivationCache

from toy_models import Transformer, TransformerConfig


def _model_and_tokens():
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(n_layers=2, d_model=16, n_heads=2, d_vocab=10, n_ctx=8)).eval()
    return model, torch.randint(0, 10, (3, 8))


def test_run_with_cache_gives_an_activation_cache_with_dict_access():
    model, tokens = _model_and_tokens()
    logits, cache = model.run_with_cache(tokens)
    plain_logits, plain = model.run_with_cache(tokens, return_cache_object=False)
    assert isinstance(cache, ActivationCache) and isinstance(plain, dict)
    assert torch.equal(logits, plain_logits) and list(cache.keys()) == list(plain)
    for name, value in plain.items():  # the same tensors under the same names
        assert torch.equal(cache[name], value)
    assert torch.equal(cache["pattern", 0], plain["blocks.0.attn.hook_pattern"])
    assert torch.equal(cache["resid_post", -1], plain["blocks.1.hook_resid_post"])  # negative layer index
    _, same = model.run_with_cache(tokens, return_cache_object=True)  # the call: no TypeError
    assert isinstance(same, ActivationCache)


def test_accumulated_and_decomposed_residuals_add_up_to_the_residual_stream():
    model, tokens = _model_and_tokens()
    _, cache = model.run_with_cache(tokens)
    accumulated, labels = cache.accumulated_resid(return_labels=True)
    assert labels == ["0_pre", "1_pre", "final_post"] and accumulated.shape == (3, 3, 8, 16)
    assert torch.equal(accumulated[1], cache["blocks.1.hook_resid_pre"])
    parts, labels = cache.decompose_resid(return_labels=True)
    assert labels == ["embed", "pos_embed", "0_attn_out", "0_mlp_out", "1_attn_out", "1_mlp_out"]
    # The residual stream is the sum of its parts (additions in another order: float32 rounding,
    # |resid| ~ 1 here, so 1e-5 is ~100 ulp).
    torch.testing.assert_close(parts.sum(0), cache["blocks.1.hook_resid_post"], atol=1e-5, rtol=1e-5)


def test_remove_batch_dim_gives_a_cache_without_the_batch_dim():
    model, tokens = _model_and_tokens()
    _, cache = model.run_with_cache(tokens[:1], remove_batch_dim=True)
    assert not cache.has_batch_dim and cache["pattern", 0].shape == (2, 8, 8)
