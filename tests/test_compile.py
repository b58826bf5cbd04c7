"""torch.compile (inductor, CPU) of the toy transformer: same outputs and gradients as eager, and
TransformerLens hooks still fire (``toy_models.compile.compile_model``). Compiling costs seconds per
graph, so one small config runs by default; the others are marked slow.

Tolerance: inductor fuses and reorders the same float32 sums, so compiled vs eager differ like the two
attention paths do (tests/test_paths_agree.py): |Δ| ≤ c·√K·ε₃₂·scale with c = √(2n), n the number of
sequential accumulations (6L + 2 forward, twice that for gradients), K the longest one.
"""

import math
import os

os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = "1"  # before inductor starts: a worker pool slows eager code on 2 cores

import pytest  # noqa: E402
import torch  # noqa: E402

from toy_models import Transformer, TransformerConfig  # noqa: E402
from toy_models.compile import compile_model  # noqa: E402

EPS32 = torch.finfo(torch.float32).eps
SMALL = TransformerConfig(n_layers=2, d_model=32, n_heads=4, d_mlp=64, n_ctx=16, d_vocab=20)


def _tol(cfg, K, scale, backward=False):
    n = (6 * cfg.n_layers + 2) * (2 if backward else 1)
    return math.sqrt(2 * n) * math.sqrt(K) * EPS32 * scale


def _forward_backward(fn, model, tokens, cot, **kwargs):
    model.zero_grad()
    out = fn(tokens, **kwargs)
    (out * cot).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _check_compiled_equals_eager(cfg, path, padding=False):
    torch._dynamo.reset()
    model = Transformer(cfg)
    compiled = compile_model(model)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, cfg.d_vocab, (3, 12), generator=gen)
    cot = torch.randn(3, 12, cfg.vocab_out, generator=gen)
    kwargs = {"attn_path": path}
    if padding:
        kwargs["padding_mask"] = torch.tensor([[1] * 12, [0] * 3 + [1] * 9, [1] * 12])
    out_e, grad_e = _forward_backward(model, model, tokens, cot, **kwargs)
    out_c, grad_c = _forward_backward(compiled, model, tokens, cot, **kwargs)
    K = max(cfg.d_model, cfg.mlp_dim, cfg.n_heads * cfg.head_dim, 3 * 12)
    scale = out_e.abs().max().item()
    assert (out_c - out_e).abs().max().item() <= _tol(cfg, K, scale)
    module_scale = {}  # b_K's gradient is zero by softmax's shift invariance: judge it on its module's scale
    for name, g in grad_e.items():
        module = name.rsplit(".", 1)[0]
        module_scale[module] = max(module_scale.get(module, 0.0), g.abs().max().item())
    for name in grad_e:
        scale = module_scale[name.rsplit(".", 1)[0]]
        err = (grad_c[name] - grad_e[name]).abs().max().item()
        assert err <= _tol(cfg, K, scale, backward=True), f"{name}: {err:.3g}"
    return model, compiled, tokens


def test_compiled_kernel_path_equals_eager_and_hooks_fire():
    model, compiled, tokens = _check_compiled_equals_eager(SMALL, "kernel")
    # A hook added after the first compile fires (the guard recompiles) and changes the output.
    seen = []

    def zero_mlp(act, hook):
        seen.append(hook.name)
        return torch.zeros_like(act)

    eager_ablated = model.run_with_hooks(tokens, attn_path="kernel", fwd_hooks=[("blocks.1.hook_mlp_out", zero_mlp)])
    seen.clear()
    with model.hooks(fwd_hooks=[("blocks.1.hook_mlp_out", zero_mlp)]):
        compiled_ablated = compiled(tokens, attn_path="kernel")
    assert seen == ["blocks.1.hook_mlp_out"]
    K = max(SMALL.d_model, SMALL.mlp_dim)
    assert (compiled_ablated - eager_ablated).abs().max() <= _tol(SMALL, K, eager_ablated.abs().max().item())
    assert (compiled_ablated - model(tokens, attn_path="kernel")).abs().max() > 1e-4  # the ablation did something
    # Once the hook is gone, the compiled model is back to the un-hooked function.
    seen.clear()
    compiled(tokens, attn_path="kernel")
    assert seen == []


@pytest.mark.slow
def test_compiled_kernel_path_refuses_a_pattern_hook():
    torch._dynamo.reset()
    model = Transformer(SMALL)
    compiled = compile_model(model)
    tokens = torch.randint(0, SMALL.d_vocab, (2, 8))
    compiled(tokens, attn_path="kernel")
    model.add_hook("blocks.0.attn.hook_pattern", lambda act, hook: None)
    with pytest.raises(RuntimeError, match="attn_path='reference'"):
        compiled(tokens, attn_path="kernel")
    model.reset_hooks()


@pytest.mark.slow
def test_compiled_reference_path_equals_eager():
    _check_compiled_equals_eager(SMALL, "reference")


@pytest.mark.slow
@pytest.mark.parametrize("changes", [
    {"norm_placement": "peri", "norm_kind": "rmsnorm", "pos": "rotary", "gated_mlp": True},
    {"norm_placement": "mix", "mix_alpha": 0.5, "attention": "linear", "attention_dir": "bidirectional"},
    {"norm_placement": "post", "attention_dir": "bidirectional"},
])
@pytest.mark.parametrize("path", ["reference", "kernel"])
def test_compiled_equals_eager_on_other_architectures_with_padding(changes, path):
    _check_compiled_equals_eager(SMALL.replace(**changes), path, padding=True)
