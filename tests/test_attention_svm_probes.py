"""The attention-SVM probes read what the layer computes."""

import numpy as np
import pytest
import torch

from probes.attention_svm import attention_pattern, correlation_curve, norm_growth, selected_mass, spectrum
from theory.attention_svm import correlation
from toy_models.single_attention import SingleAttention
from toy_models.tasks.attention_svm_data import AttentionSVMData


@pytest.mark.parametrize("cross_attn", [True, False])
def test_hooked_pattern_is_the_softmax_of_the_scores(cross_attn):
    inst = AttentionSVMData(seed=1, cross_attn=cross_attn, geometry="random").generate()
    m = SingleAttention(torch.tensor(inst.v), "W", cross_attn=cross_attn)
    m.set_W(torch.tensor(np.random.default_rng(0).standard_normal((10, 10))))
    Z = inst.Z if cross_attn else None
    pattern = attention_pattern(m, inst.X, Z)
    direct = m.attention_probs(torch.tensor(inst.X), None if Z is None else torch.tensor(Z)).detach().numpy()
    # Same float64 softmax over T = 8 scores, reference path vs formula: ~1e-16; 1e-13 as in the path tests.
    np.testing.assert_allclose(pattern, direct, atol=1e-13)
    np.testing.assert_allclose(pattern.sum(axis=1), 1.0, atol=1e-13)
    assert not m.attn.hook_pattern.fwd_hooks  # the probe leaves no hook behind


def test_trajectory_metrics():
    rng = np.random.default_rng(0)
    W_svm = rng.standard_normal((4, 4))
    W = np.stack([np.zeros((4, 4)), W_svm, -2 * W_svm, W_svm + rng.standard_normal((4, 4))])
    c = correlation_curve(W, W_svm)
    assert np.isnan(c[0]) and c[1] == pytest.approx(1.0, abs=1e-15) and c[2] == pytest.approx(-1.0, abs=1e-15)
    assert c[3] == pytest.approx(correlation(W[3], W_svm), abs=1e-15)
    np.testing.assert_allclose(norm_growth(W), np.linalg.norm(W, axis=(1, 2)), rtol=0, atol=0)
    s = spectrum(W)
    assert np.all(np.isnan(s[0])) and np.allclose(s[1:, 0], 1.0) and np.all(np.diff(s[1:], axis=1) <= 0)
    # A huge W concentrates the softmax on the tokens it scores highest.
    inst = AttentionSVMData(n=3, T=4, d=4, seed=0, geometry="random").generate()
    scores = np.einsum("ntd,de,ne->nt", inst.X, W_svm, inst.Z)
    mass = selected_mass(np.stack([0 * W_svm, 1e3 * W_svm]), inst.X, inst.Z, scores.argmax(axis=1))
    top2 = np.sort(scores, axis=1)[:, -2:]
    gap = 1e3 * np.min(top2[:, 1] - top2[:, 0])
    # Uniform at W = 0; at 1e3·W every other token has weight ≤ e^(−gap): mass ≥ 1 − (T − 1) e^(−gap).
    assert mass[0] == pytest.approx(0.25, abs=1e-15) and 1 - 3 * np.exp(-gap) - 1e-15 <= mass[1] <= 1 + 1e-15
