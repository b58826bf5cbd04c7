"""The nonlinear-head model of the SVM-equivalence experiment: gradient and batched normalized GD.

"Transformers as Support Vector Machines" (Tarzanagh, Li, Thrampoulidis, Oymak, 2023), nonlinear heads:
f(X_i) = 1ᵀ ReLU(Vᵀ X_iᵀ softmax(X_i W z_i)), logistic loss.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from toy_models.config import ConfigError
from toy_models.svm_training import EPS, relu_head_gradient, train_relu_head


def _autograd(X, Z, Y, V, W):
    Wt = torch.tensor(W, requires_grad=True)
    Xt, Zt, Yt, Vt = (torch.tensor(a) for a in (X, Z, Y, V))
    s = torch.softmax(torch.einsum("ntd,de,ne->nt", Xt, Wt, Zt), dim=-1)
    f = torch.relu(torch.einsum("nt,ntd->nd", s, Xt) @ Vt).sum(dim=-1)
    loss = torch.nn.functional.softplus(-Yt * f).mean()
    return torch.autograd.grad(loss, Wt)[0].numpy()


@settings(max_examples=20, deadline=None)
@given(B=st.integers(1, 3), n=st.integers(1, 4), T=st.integers(2, 5), d=st.integers(2, 6),
       seed=st.integers(0, 10_000), scale=st.sampled_from([0.1, 1.0, 5.0]))
def test_gradient_matches_autograd(B, n, T, d, seed, scale):
    """Per instance of a batch, against torch autograd on the same formula. Both are float64 sums of
    ≤ T·d·n terms of size ≤ |x||V||z| = O(d) (Gaussian entries), which cancel when the softmax
    saturates: round-off ~ε·T·d·n·d ≈ 1e-13 absolute, so 1e-12·(1 + largest entry)."""
    rng = np.random.default_rng(seed)
    X, Z = rng.standard_normal((B, n, T, d)), rng.standard_normal((B, n, d))
    Y = np.where(rng.random((B, n)) < 0.5, -1.0, 1.0)
    V, W = rng.standard_normal((B, d, d)), scale * rng.standard_normal((B, d, d))
    grad, s = relu_head_gradient(X, Z, Y, V, W)
    assert np.allclose(s.sum(axis=-1), 1.0, atol=1e-14)
    for b in range(B):
        ref = _autograd(X[b], Z[b], Y[b], V[b], W[b])
        assert np.max(np.abs(grad[b] - ref)) <= 1e-12 * (1 + np.max(np.abs(ref)))


def test_each_instance_steps_by_eta_on_its_own():
    """Normalized per instance: ‖W(1) − W(0)‖_F = η‖g‖/(‖g‖ + ε) for each b, however different the
    gradient sizes in the batch (here 1e3 apart through the scale of V)."""
    rng = np.random.default_rng(0)
    B, n, T, d = 3, 3, 4, 5
    X, Z = rng.standard_normal((B, n, T, d)), rng.standard_normal((B, n, d))
    Y = np.array([[1.0, -1.0, 1.0]] * B)
    V = rng.standard_normal((B, d, d)) * np.array([1e-3, 1.0, 1.0])[:, None, None]
    W0 = rng.standard_normal((B, d, d))
    tr = train_relu_head(X, Z, Y, V, W0, steps=1, lr=0.1, record_every=1)
    grad, _ = relu_head_gradient(X, Z, Y, V, W0)
    g = np.linalg.norm(grad, axis=(1, 2))
    step = np.linalg.norm(tr.W[1] - tr.W[0], axis=(1, 2))
    np.testing.assert_allclose(step, 0.1 * g / (g + EPS), rtol=1e-12)
    assert tr.steps.tolist() == [0, 1]


def test_bad_shapes_name_the_field():
    X = np.zeros((2, 3, 4, 5))
    with pytest.raises(ConfigError, match="V"):
        train_relu_head(X, np.zeros((2, 3, 5)), np.ones((2, 3)), np.zeros((2, 4, 4)), np.zeros((2, 5, 5)))
    with pytest.raises(ConfigError, match="record_every"):
        train_relu_head(X, np.zeros((2, 3, 5)), np.ones((2, 3)), np.zeros((2, 5, 5)), np.zeros((2, 5, 5)),
                        record_every=0)
