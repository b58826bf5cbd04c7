"""Every invalid TransformerConfig value is refused at construction with a ConfigError that names the
field, shows the value and says what is allowed; valid edge cases are accepted."""

import math

import pytest

from toy_models import ConfigError, Transformer, TransformerConfig

# (changes, field the error must name, a phrase of the rule the message must contain)
INVALID = [
    # non-positive or non-integer sizes
    ({"n_layers": 0}, "n_layers", "positive integer"),
    ({"n_layers": -2}, "n_layers", "positive integer"),
    ({"n_layers": 2.0}, "n_layers", "positive integer"),
    ({"n_layers": True}, "n_layers", "positive integer"),
    ({"d_model": 0}, "d_model", "positive integer"),
    ({"n_heads": 0}, "n_heads", "positive integer"),
    ({"n_ctx": -1}, "n_ctx", "positive integer"),
    ({"d_vocab": 0}, "d_vocab", "positive integer"),
    ({"d_head": 0}, "d_head", "positive integer"),
    ({"d_mlp": -4}, "d_mlp", "positive integer"),
    ({"d_vocab_out": 0}, "d_vocab_out", "positive integer"),
    ({"input_kind": "continuous", "d_input": 0}, "d_input", "positive integer"),
    # heads that must divide
    ({"d_model": 64, "n_heads": 3}, "n_heads", "must divide d_model=64"),
    # unknown names
    ({"norm_placement": "sandwich"}, "norm_placement", "'mix'"),
    ({"norm_kind": "batchnorm"}, "norm_kind", "'crmsnorm'"),
    ({"attention": "sparse"}, "attention", "'linear'"),
    ({"attention_dir": "sliding"}, "attention_dir", "'bidirectional'"),
    ({"pos": "alibi"}, "pos", "'rotary'"),
    ({"act_fn": "tanh"}, "act_fn", "'gelu_tanh'"),
    ({"input_kind": "images"}, "input_kind", "'continuous'"),
    ({"embed": "frozen"}, "embed", "'onehot'"),
    ({"output": "softmax"}, "output", "'unembed'"),
    ({"init": "xavier"}, "init", "'fan_in'"),
    ({"dtype": "float16"}, "dtype", "'float64'"),
    ({"attn_path": "flash"}, "attn_path", "'kernel'"),
    # fractions and positive floats
    ({"norm_placement": "mix", "mix_alpha": -0.1}, "mix_alpha", "[0, 1]"),
    ({"norm_placement": "mix", "mix_alpha": 1.5}, "mix_alpha", "[0, 1]"),
    ({"mix_alpha": math.nan}, "mix_alpha", "[0, 1]"),
    ({"mix_alpha": "0.5"}, "mix_alpha", "[0, 1]"),
    ({"norm_eps": 0.0}, "norm_eps", "positive"),
    ({"norm_eps": -1e-5}, "norm_eps", "positive"),
    ({"norm_eps": math.inf}, "norm_eps", "positive"),
    ({"norm_eps": True}, "norm_eps", "positive"),
    # Bondarenko et al.'s clipped softmax: γ ≤ 0 ≤ 1 ≤ ζ, and only on a softmax
    ({"clip_gamma": 0.1}, "clip_gamma", "≤ 0"),
    ({"clip_gamma": math.nan}, "clip_gamma", "≤ 0"),
    ({"clip_zeta": 0.9}, "clip_zeta", "≥ 1"),
    ({"clip_zeta": "1.1"}, "clip_zeta", "≥ 1"),
    ({"attention": "linear", "clip_gamma": -0.1}, "clip_gamma/clip_zeta", "attention='linear'"),
    # the gate reads head h's d_head-sized chunk of x
    ({"attn_gate": 1}, "attn_gate", "True or False"),
    ({"attn_gate": True, "d_head": 8, "d_model": 64, "n_heads": 4}, "attn_gate", "4 · 8 ≠ 64"),
    ({"init_std": -0.02}, "init_std", "non-negative"),
    ({"attn_scale": 0.0}, "attn_scale", "positive"),
    ({"rotary_base": -1.0}, "rotary_base", "positive"),
    ({"seed": -1}, "seed", "non-negative integer"),
    ({"seed": 1.5}, "seed", "non-negative integer"),
    # flags
    ({"attn_only": 1}, "attn_only", "True or False"),
    ({"norm_gain": "yes"}, "norm_gain", "True or False"),
    ({"embed_norm": "yes"}, "embed_norm", "True, False or None"),
    # rotary needs an even head size, whether d_head is derived or set
    ({"pos": "rotary", "d_model": 12, "n_heads": 4}, "pos", "d_head=3"),
    ({"pos": "rotary", "d_head": 15}, "pos", "d_head=15"),
    # continuous inputs
    ({"input_kind": "continuous"}, "d_input", "input_kind='continuous'"),
    ({"input_kind": "continuous", "d_input": 3, "embed": "onehot"}, "embed", "linear read-in"),
    # one-hot embeddings that do not fit
    ({"embed": "onehot", "d_vocab": 100, "d_model": 64}, "d_model", "= 100"),
    ({"embed": "onehot", "pos": "onehot", "d_vocab": 40, "n_ctx": 32, "d_model": 64}, "d_model", "= 72"),
    ({"output": "onehot", "d_vocab": 80, "d_model": 64}, "d_model", "= 80"),
    ({"output": "onehot", "d_vocab": 16, "d_vocab_out": 8}, "d_vocab_out", "equal to d_vocab"),
    ({"pos": "onehot", "n_ctx": 65, "d_model": 64}, "n_ctx", "d_model=64"),
]


@pytest.mark.parametrize("changes, field, rule", INVALID, ids=lambda v: repr(v) if isinstance(v, dict) else "")
def test_invalid_value_is_refused_with_field_value_and_rule(changes, field, rule):
    with pytest.raises(ConfigError) as info:
        TransformerConfig(**changes)
    err = info.value
    assert err.field_name == field
    message = str(err)
    assert message.startswith(f"{field}=")
    assert repr(err.value) in message
    if field in changes:  # the offending value itself is shown, not some derived one
        assert err.value == changes[field] or (isinstance(changes[field], float) and math.isnan(changes[field]))
    assert rule in message, message


def test_config_error_is_a_value_error():
    # Callers (CLI, run store) catch ValueError for every bad user value.
    assert issubclass(ConfigError, ValueError)


def test_model_constructor_overrides_are_validated_too():
    with pytest.raises(ConfigError, match=r"n_heads=5"):
        Transformer(d_model=64, n_heads=5)


def test_from_dict_refuses_unknown_field_and_lists_valid_ones():
    with pytest.raises(ConfigError) as info:
        TransformerConfig.from_dict({"n_layer": 2})
    assert info.value.field_name == "n_layer"
    assert "n_layers" in str(info.value)  # the valid spelling is offered


def test_round_trip_through_dict_and_hash():
    cfg = TransformerConfig(n_layers=3, norm_placement="mix", mix_alpha=0.5, pos="rotary")
    again = TransformerConfig.from_dict(cfg.to_dict())
    assert again == cfg and hash(again) == hash(cfg)


@pytest.mark.parametrize("changes", [
    {"d_model": 64, "n_heads": 4, "d_head": 8},   # d_head ≠ d_model / n_heads
    {"d_model": 64, "n_heads": 3, "d_head": 16},  # heads need not divide when d_head is set
    {"d_model": 64, "n_heads": 4, "d_head": 32},
    {"norm_placement": "mix", "mix_alpha": 0.0},
    {"norm_placement": "mix", "mix_alpha": 1.0},
    {"norm_placement": "mix", "mix_alpha": 1},    # an int fraction is a fraction
    {"init_std": 0.0},
    {"pos": "rotary", "d_model": 24, "n_heads": 3},  # d_head 8, even
    {"embed": "onehot", "pos": "onehot", "d_vocab": 32, "n_ctx": 32, "d_model": 64},  # exactly fits
    {"input_kind": "continuous", "d_input": 5},
    {"output": "onehot", "d_vocab": 16, "d_vocab_out": 16},
])
def test_valid_edge_cases_are_accepted_and_build(changes):
    cfg = TransformerConfig(n_ctx=changes.pop("n_ctx", 16), **changes)
    model = Transformer(cfg)
    assert model.blocks[0].attn.W_Q.shape == (cfg.n_heads, cfg.d_model, cfg.head_dim)


@pytest.mark.parametrize("alpha, n_layers, n_post", [(0.0, 4, 0), (0.25, 4, 1), (0.5, 3, 1), (0.99, 4, 3), (1.0, 4, 4)])
def test_mix_alpha_gives_floor_alpha_L_post_blocks(alpha, n_layers, n_post):
    cfg = TransformerConfig(norm_placement="mix", mix_alpha=alpha, n_layers=n_layers)
    assert cfg.n_post_layers == n_post
    assert [cfg.block_placement(i) for i in range(n_layers)] == ["post"] * n_post + ["pre"] * (n_layers - n_post)


@pytest.mark.parametrize("changes", [
    {"mix_alpha": True}, {"norm_eps": True}, {"init_std": math.inf}, {"attn_scale": math.inf},
    {"rotary_base": math.inf}, {"norm_eps": math.inf},
])
def test_bools_and_non_finite_floats_are_refused(changes):
    with pytest.raises(ConfigError):
        TransformerConfig(**changes)
