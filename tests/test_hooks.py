"""TransformerLens hooks on both attention paths: names and values match a HookedTransformer
(TransformerLens 3.9) with the same weights, ablations through hooks equal ablations of the weights,
backward hooks fire, and the kernel path refuses the hooks it cannot serve."""

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from toy_models import Transformer, TransformerConfig
from toy_models.attention import REFERENCE_ONLY_HOOKS

# float64 everywhere: the implementations compute the same sums (possibly in a different order), so
# they differ by ≈ √K·ε₆₄ ≈ 1e-15 relative for K ≤ 64; 1e-12 × the tensor's scale is far above that
# and far below any modelling difference (O(1)).
REL64 = 1e-12
CFG = TransformerConfig(n_layers=2, d_model=32, n_heads=4, d_mlp=64, n_ctx=16, d_vocab=20, act_fn="gelu",
                        norm_placement="pre", init="fan_in", dtype="float64")


def _close(a, b, msg=""):
    torch.testing.assert_close(a, b, rtol=0, atol=REL64 * max(b.abs().max().item(), 1e-300), msg=msg)


def _tokens(cfg=CFG, B=2, T=10, seed=0):
    return torch.randint(0, cfg.d_vocab, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("ours, theirs", [
    ({}, {"normalization_type": "LN"}),
    ({"norm_kind": "rmsnorm", "attn_only": True}, {"normalization_type": "RMS", "attn_only": True}),
    ({"gated_mlp": True, "mlp_bias": False, "act_fn": "silu"},
     {"normalization_type": "LN", "gated_mlp": True, "act_fn": "silu"}),
])
def test_cache_names_and_values_match_transformer_lens(ours, theirs):
    cfg = CFG.replace(**ours)
    model = Transformer(cfg)
    tl = HookedTransformer(HookedTransformerConfig(
        n_layers=cfg.n_layers, d_model=cfg.d_model, n_heads=cfg.n_heads, d_head=cfg.head_dim, d_mlp=cfg.mlp_dim,
        n_ctx=cfg.n_ctx, d_vocab=cfg.d_vocab, use_attn_result=True, dtype=torch.float64,
        **{"act_fn": cfg.act_fn} | theirs))
    # The parameter names are TransformerLens' own; TL adds only its mask buffers (and a zero b_in,
    # which is where TL adds it in a gated MLP, so we leave ours out: mlp_bias=False).
    missing, unexpected = tl.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.endswith(("attn.IGNORE", "attn.mask", "mlp.b_in", "mlp.b_out"))
                                  for k in missing), missing
    tokens = _tokens(cfg)
    logits, cache = model.run_with_cache(tokens)
    tl_logits, tl_cache = tl.run_with_cache(tokens)
    # TL has hooks on the unembedding that ours lacks; every other name is shared.
    assert set(tl_cache.keys()) - set(cache.keys()) == {"unembed.hook_in", "unembed.hook_out"}
    assert set(cache.keys()) <= set(tl_cache.keys())
    for name in cache.keys():
        assert cache[name].shape == tl_cache[name].shape, name
        _close(cache[name], tl_cache[name], msg=name)
    _close(logits, tl_logits)


@pytest.mark.parametrize("head", [0, 3])
@pytest.mark.parametrize("hook, path", [("hook_pattern", "reference"), ("hook_z", "reference"), ("hook_z", "kernel")])
def test_head_ablation_through_a_hook_equals_zeroing_its_W_O(hook, path, head):
    model = Transformer(CFG)
    tokens = _tokens()
    layer = 1

    def ablate(act, hook):  # pattern: [batch, head, q, k]; z: [batch, pos, head, d_head]
        act = act.clone()
        if hook.name.endswith("hook_pattern"):
            act[:, head] = 0
        else:
            act[:, :, head] = 0
        return act

    hooked = model.run_with_hooks(tokens, attn_path=path, fwd_hooks=[(f"blocks.{layer}.attn.{hook}", ablate)])
    with torch.no_grad():
        model.blocks[layer].attn.W_O[head] = 0
    ablated = model(tokens, attn_path=path)
    _close(hooked, ablated)
    assert (hooked - Transformer(CFG)(tokens)).abs().max() > 1e-3  # the head mattered


def test_backward_hooks_fire_with_the_activation_gradient():
    model = Transformer(CFG)
    tokens = _tokens()
    names = ["blocks.1.hook_resid_post", "blocks.0.attn.hook_pattern", "blocks.0.mlp.hook_post"]
    grads, acts = {}, {}

    def keep_act(act, hook):
        act.retain_grad()
        acts[hook.name] = act

    for name in names:
        model.add_hook(name, lambda g, hook: grads.setdefault(hook.name, g.detach().clone()), dir="bwd")
        model.add_hook(name, keep_act)
    model(tokens).pow(2).sum().backward()
    model.reset_hooks()
    for name in names:
        assert name in grads, name
        _close(grads[name], acts[name].grad, msg=name)
        assert grads[name].abs().max() > 0


KERNEL_HOOKS = ["hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre", "blocks.0.attn.hook_q",
                "blocks.0.attn.hook_k", "blocks.0.attn.hook_v", "blocks.0.attn.hook_z", "blocks.0.hook_attn_out",
                "blocks.0.hook_resid_mid", "blocks.0.hook_mlp_out", "blocks.1.hook_resid_post"]


@pytest.mark.parametrize("cfg", [CFG, CFG.replace(pos="rotary", attention_dir="bidirectional", norm_placement="peri"),
                                 CFG.replace(attn_gate=True, clip_gamma=-0.05, clip_zeta=1.02, norm_placement="lns"),
                                 CFG.replace(attn_gate=True, norm_placement="deepnorm")],
                         ids=["pre", "peri-rotary-bidirectional", "lns-gated-clipped", "deepnorm-gated"])
def test_kernel_path_caches_everything_but_pattern_scores_result_and_values_agree(cfg):
    model = Transformer(cfg)
    tokens = _tokens(cfg)
    padding = torch.tensor([[1] * 10, [0, 0] + [1] * 8])
    _, ref = model.run_with_cache(tokens, padding_mask=padding, attn_path="reference")
    _, ker = model.run_with_cache(tokens, padding_mask=padding, attn_path="kernel")
    assert set(ker.keys()) == {k for k in ref.keys() if not k.endswith(REFERENCE_ONLY_HOOKS)}
    assert set(KERNEL_HOOKS) - {"hook_pos_embed"} <= set(ker.keys())
    for name in ker.keys():
        _close(ker[name], ref[name], msg=name)


def test_kernel_path_forward_hooks_fire():
    model = Transformer(CFG)
    fired = []
    hooks = [(name, lambda act, hook: fired.append(hook.name)) for name in KERNEL_HOOKS]
    model.run_with_hooks(_tokens(), attn_path="kernel", fwd_hooks=hooks)
    assert sorted(fired) == sorted(KERNEL_HOOKS)


@pytest.mark.parametrize("hook", REFERENCE_ONLY_HOOKS)
@pytest.mark.parametrize("direction", ["fwd", "bwd"])
def test_kernel_path_refuses_pattern_scores_and_result_hooks(hook, direction):
    model = Transformer(CFG)
    name = f"blocks.1.attn.{hook}"
    model.add_hook(name, lambda act, hook: None, dir=direction)
    with pytest.raises(RuntimeError) as info:
        model(_tokens(), attn_path="kernel")
    assert name in str(info.value) and "attn_path='reference'" in str(info.value)
    model(_tokens(), attn_path="reference")  # the same hook is fine on the reference path
    model.reset_hooks()
    model(_tokens(), attn_path="kernel")  # and the kernel path runs again once it is gone


def test_kernel_path_refuses_an_explicit_cache_of_the_pattern():
    with pytest.raises(RuntimeError, match="attn_path='reference'"):
        Transformer(CFG).run_with_cache(_tokens(), attn_path="kernel", names_filter=lambda n: "pattern" in n)


def test_run_with_cache_takes_the_kernel_path_by_position_too():
    """attn_path is forward's fourth parameter; passed by position the kernel cache still skips the
    reference-only hooks instead of refusing them."""
    model = Transformer(TransformerConfig(n_layers=1, d_model=16, n_heads=2, n_ctx=8, d_vocab=10))
    tokens = torch.zeros(1, 4, dtype=torch.long)
    _, cache = model.run_with_cache(tokens, None, None, "kernel")
    assert "blocks.0.attn.hook_z" in cache and "blocks.0.attn.hook_pattern" not in cache
