"""Bad inputs and masks are refused with a ValueError that states the expected shape (or range), not a
stack of einsum errors; good ones of every accepted form run."""

import pytest
import torch

from toy_models import ConfigError, Transformer, TransformerConfig

TOKENS = Transformer(TransformerConfig(n_layers=1, d_model=16, n_heads=2, n_ctx=8, d_vocab=10))
CONTINUOUS = Transformer(TransformerConfig(n_layers=1, d_model=16, n_heads=2, n_ctx=8, input_kind="continuous",
                                           d_input=3))


@pytest.mark.parametrize("inputs, phrase", [
    (torch.zeros(2, 4, 1, dtype=torch.long), "[batch, pos]"),            # an extra axis
    (torch.zeros(4, dtype=torch.long), "[batch, pos]"),                  # no batch axis
    (torch.zeros(2, 4), "dtype int64"),                                  # float token ids
    (torch.zeros(2, 4, dtype=torch.bool), "dtype int64"),
    (torch.full((2, 4), 10), "[0, d_vocab=10)"),                         # out of range, high
    (torch.full((2, 4), -1), "[0, d_vocab=10)"),                         # out of range, low
    (torch.zeros(2, 9, dtype=torch.long), "n_ctx=8"),                    # too long
])
def test_bad_token_inputs(inputs, phrase):
    with pytest.raises(ValueError) as info:
        TOKENS(inputs)
    assert phrase in str(info.value)
    assert str(tuple(inputs.shape)) in str(info.value) or "range" in str(info.value) or "length" in str(info.value)


def test_token_ids_may_be_int32():
    assert TOKENS(torch.zeros(1, 3, dtype=torch.int32)).shape == (1, 3, 10)


@pytest.mark.parametrize("inputs, phrase", [
    (torch.zeros(2, 4), "[batch, pos, d_input=3]"),
    (torch.zeros(2, 4, 5), "[batch, pos, d_input=3]"),
    (torch.zeros(2, 4, 3, dtype=torch.float64), "cast with inputs.to(torch.float32)"),
    (torch.zeros(2, 4, 3, dtype=torch.long), "torch.float32"),
    (torch.zeros(2, 9, 3), "n_ctx=8"),
])
def test_bad_continuous_inputs(inputs, phrase):
    with pytest.raises(ValueError) as info:
        CONTINUOUS(inputs)
    assert phrase in str(info.value)


def test_non_tensor_input_is_a_type_error():
    with pytest.raises(TypeError, match="torch.Tensor"):
        TOKENS([[1, 2, 3]])


@pytest.mark.parametrize("path", ["reference", "kernel"])
@pytest.mark.parametrize("kwargs, phrase", [
    ({"padding_mask": torch.ones(2, 5)}, "expected [batch, pos] = [2, 4]"),
    ({"padding_mask": torch.ones(4)}, "expected [batch, pos] = [2, 4]"),
    ({"attn_mask": torch.ones(4, 5, dtype=torch.bool)}, "[query, key] = [4, 4] or [batch, query, key] = [2, 4, 4]"),
    ({"attn_mask": torch.ones(3, 4, 4, dtype=torch.bool)}, "[batch, query, key] = [2, 4, 4]"),
    ({"attn_mask": torch.ones(2, 1, 4, 4, dtype=torch.bool)}, "[batch, query, key] = [2, 4, 4]"),
])
def test_bad_mask_shapes(kwargs, phrase, path):
    with pytest.raises(ValueError) as info:
        TOKENS(torch.zeros(2, 4, dtype=torch.long), attn_path=path, **kwargs)
    assert phrase in str(info.value)


def test_unknown_attn_path_is_refused():
    with pytest.raises(ConfigError, match="attn_path='flash'"):
        TOKENS(torch.zeros(1, 3, dtype=torch.long), attn_path="flash")


@pytest.mark.parametrize("path", ["reference", "kernel"])
def test_a_query_with_no_allowed_key_outputs_zero_attention_not_nan(path):
    # Left padding under a causal mask: position 0 is padding and may attend to nothing.
    model = Transformer(TransformerConfig(n_layers=1, d_model=16, n_heads=2, n_ctx=8, d_vocab=10, attn_bias=False,
                                          attn_only=True))
    tokens = torch.randint(0, 10, (2, 4))
    padding = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    _, cache = model.run_with_cache(tokens, padding_mask=padding, attn_path=path)
    z = cache["blocks.0.attn.hook_z"]
    assert torch.isfinite(z).all()
    assert torch.all(z[0, 0] == 0) and torch.any(z[1, 0] != 0)


def test_floating_point_attn_mask_is_refused():
    additive = torch.zeros(4, 4).masked_fill(~torch.ones(4, 4, dtype=torch.bool).tril(), float("-inf"))
    with pytest.raises(ValueError, match="bool"):
        TOKENS(torch.zeros(1, 4, dtype=torch.long), attn_mask=additive)


def test_float_padding_masks_of_zeros_and_ones_are_accepted_and_others_refused():
    tokens = torch.zeros(2, 4, dtype=torch.long)
    keep = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]])
    out_int = TOKENS(tokens, padding_mask=keep)
    torch.testing.assert_close(TOKENS(tokens, padding_mask=keep.float()), out_int, rtol=0, atol=0)
    with pytest.raises(ValueError, match="0s and 1s|0/1"):
        TOKENS(tokens, padding_mask=keep.float() * 2)
    with pytest.raises(ValueError, match="0s and 1s"):
        TOKENS(tokens, padding_mask=keep * 3)
