"""Mix-LN's angular distance between consecutive layers (probes.residual_stats, "Mix-LN: Unleashing the
Power of Deeper Layers by Combining Pre-LN and Post-LN", Li et al. 2024): mean over tokens of
arccos(cos(x_l, x_{l+1}))/π, checked against layers that rotate each token by a known angle."""

import math

import pytest
import torch

from probes import angular_distance, residual_stats
from toy_models import Transformer, TransformerConfig

TOKENS = torch.tensor([[0, 1, 2, 3, 4, 0], [4, 3, 2, 1, 0, 1]])
# arccos has slope 1/sin θ: a cosine rounded at ~1e-16 moves θ by ≤ 1e-16/sin θ ≤ 1e-15 for the angles
# below (sin θ ≥ 0.29); the mean of 12 such terms keeps that order. 1e-12 leaves margin.
TOL = 1e-12


def _planar_identity_model() -> Transformer:
    """Zero-weight blocks without norms (every block is the identity); token t embeds as
    r_t (cos φ_t, sin φ_t, 0, …): every stream vector lies in the plane of coordinates 0 and 1."""
    cfg = TransformerConfig(n_layers=3, d_model=8, n_heads=2, n_ctx=6, d_vocab=5, norm_placement="none",
                            init="zero", dtype="float64", pos="none")
    model = Transformer(cfg)
    phi = torch.tensor([0.1, 0.9, 2.0, -1.3, 3.0], dtype=torch.float64)
    r = torch.tensor([1.0, 2.5, 0.3, 7.0, 1.1], dtype=torch.float64)
    with torch.no_grad():
        model.embed.W_E[:, 0] = r * phi.cos()
        model.embed.W_E[:, 1] = r * phi.sin()
    return model


def _rotate(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Rotate coordinates (0, 1) of every token by theta [batch, pos]."""
    c, s = theta.cos(), theta.sin()
    y = x.clone()
    y[..., 0] = c * x[..., 0] - s * x[..., 1]
    y[..., 1] = s * x[..., 0] + c * x[..., 1]
    return y


def _angular(df, layer: int) -> float:
    sel = df[(df.layer == layer) & (df.quantity == "angular_distance")]
    return float(sel.value.iloc[0])


@pytest.mark.parametrize("theta", [0.3, 1.0, 2.5, math.pi])
def test_a_layer_rotating_by_theta_has_distance_theta_over_pi(theta):
    model = _planar_identity_model()
    angle = torch.full(TOKENS.shape, theta, dtype=torch.float64)
    model.blocks[1].hook_resid_post.add_hook(lambda x, hook: _rotate(x, angle))
    try:
        df = residual_stats(model, TOKENS)
    finally:
        model.reset_hooks(including_permanent=True)
    assert _angular(df, 0) < 1e-7  # identity block: arccos near 1 turns a 1e-16 cosine error into ≤ 1e-8
    assert abs(_angular(df, 1) - theta / math.pi) < (1e-7 if theta == math.pi else TOL)  # same at cos = −1
    assert _angular(df, 2) < 1e-7


def test_the_distance_is_the_mean_of_per_token_angles_not_the_angle_of_a_mean():
    """Token t rotated by θ_t: the probe returns mean_t θ_t/π (arccos of the mean cosine would differ)."""
    model = _planar_identity_model()
    theta = torch.tensor([0.3, 0.6, 1.2, 2.0, 2.8], dtype=torch.float64)[TOKENS]
    model.blocks[0].hook_resid_post.add_hook(lambda x, hook: _rotate(x, theta))
    try:
        df = residual_stats(model, TOKENS)
    finally:
        model.reset_hooks(including_permanent=True)
    want = float(theta.mean() / math.pi)
    assert abs(_angular(df, 0) - want) < TOL
    assert abs(float(torch.arccos(theta.cos().mean())) / math.pi - want) > 0.01  # the two readings differ


def test_scaling_does_not_move_the_direction():
    a = torch.randn(2, 5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert angular_distance(a, 3.7 * a) < 1e-7
    assert abs(angular_distance(a, -0.2 * a) - 1.0) < 1e-7


def test_angular_distance_on_a_hooked_transformer():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_ctx=8, d_head=4, n_heads=4, d_vocab=10, act_fn="gelu",
                                  seed=0)
    model = HookedTransformer(cfg)
    tokens = torch.randint(0, 10, (2, 8), generator=torch.Generator().manual_seed(0))
    df = residual_stats(model, tokens)
    _, cache = model.run_with_cache(tokens)
    a, b = cache["blocks.1.hook_resid_pre"].double(), cache["blocks.1.hook_resid_post"].double()
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    want = float(torch.arccos(cos.clamp(-1, 1)).mean() / math.pi)
    # float32 activations: cosines carry ~1e-7 relative error, and arccos' slope 1/sin θ stays O(1) here
    assert abs(_angular(df, 1) - want) < 1e-6
