"""The one-layer attention model on the toy transformer's attention, and its GD implicit bias.

Claim ("Transformers as Support Vector Machines", Tarzanagh et al. 2023; n=6, T=8, d=10, η=0.1):
normalized GD on W converges in direction to the Frobenius Att-SVM solution, on (K, Q) to the nuclear
one, and each correlates clearly less with the other norm's solution. Data: the ``equal_scores``
geometry (all non-optimal tokens share one score), the condition of the paper's global-convergence
result for W, so α = the globally optimal tokens.
"""

import numpy as np
import pytest
import torch

from _svm_reference import reference_train
from _svm_runs import svm_trajectory
from theory.attention_svm import correlation, solve_att_svm
from toy_models.single_attention import SingleAttention
from toy_models.tasks.attention_svm_data import AttentionSVMData

SEEDS = (0, 1, 2)


def _model(inst, parameterization, cross_attn=True, seed=0):
    m = SingleAttention(torch.tensor(inst.v), parameterization, cross_attn=cross_attn)
    m.initialize_factors(seed=seed)
    return m


def _selected(inst, W: np.ndarray) -> np.ndarray:
    """argmax_t softmax(X_i W z_i)_t per input: the token the trained attention selects."""
    return np.argmax(np.einsum("ntd,de,ne->nt", inst.X, W, inst.Z), axis=1)


def _loss(inst, W: np.ndarray) -> float:
    a = np.einsum("ntd,de,ne->nt", inst.X, W, inst.Z)
    s = np.exp(a - a.max(axis=1, keepdims=True))
    s /= s.sum(axis=1, keepdims=True)
    return float(np.mean(np.logaddexp(0.0, -inst.Y * np.einsum("nt,ntd,d->n", s, inst.X, inst.v))))


@pytest.mark.parametrize("parameterization", ["W", "KQ"])
@pytest.mark.parametrize("cross_attn", [True, False])
def test_three_paths_agree_in_value_and_gradient(parameterization, cross_attn):
    inst = AttentionSVMData(seed=4, cross_attn=cross_attn).generate()
    X, Z = torch.tensor(inst.X), torch.tensor(inst.Z)
    m = _model(inst, parameterization, cross_attn)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in m.factors():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    outs, grads = {}, {}
    for path in ("direct", "reference", "kernel"):
        f = m(X, Z if cross_attn else None, path=path)
        outs[path] = f.detach()
        grads[path] = torch.autograd.grad(f.sum(), m.factors())
    # float64: the paths differ by summation order over T ≤ 9 keys and d = 10 coordinates of O(1)-O(10)
    # terms, i.e. a few ulps × scale ~ 1e-14; 1e-11 is generous and still far below any real mismatch.
    for path in ("reference", "kernel"):
        torch.testing.assert_close(outs[path], outs["direct"], atol=1e-11, rtol=0)
        for g, g0 in zip(grads[path], grads["direct"]):
            torch.testing.assert_close(g, g0, atol=1e-11, rtol=1e-11)


def test_direct_path_is_the_formula():
    inst = AttentionSVMData(seed=5).generate()
    m = _model(inst, "W")
    W = np.random.default_rng(0).standard_normal((10, 10))
    m.set_W(torch.tensor(W))
    a = np.einsum("ntd,de,ne->nt", inst.X, W, inst.Z)
    s = np.exp(a - a.max(1, keepdims=True))
    s /= s.sum(1, keepdims=True)
    f = np.einsum("nt,ntd,d->n", s, inst.X, inst.v)
    np.testing.assert_allclose(m(torch.tensor(inst.X), torch.tensor(inst.Z), path="direct").detach().numpy(), f,
                               atol=1e-13)  # same formula, float64 round-off on O(1) values


def test_normalized_step_has_length_eta(tmp_path):
    W = svm_trajectory(tmp_path, "W", steps=3)
    steps = np.linalg.norm(np.diff(W, axis=0), axis=(1, 2))
    np.testing.assert_allclose(steps, 0.1, rtol=1e-12)  # W ← W − η g/‖g‖ exactly, up to round-off


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Normalized GD through the trainer, 1000 steps, W and (K, Q), on each seed; correlations with both
    SVM solutions."""
    root = tmp_path_factory.mktemp("svm_runs")
    out = {"W": [], "KQ": []}
    for seed in SEEDS:
        inst = AttentionSVMData(n=6, T=8, d=10, seed=seed).generate()
        fro = solve_att_svm(inst.X, inst.Z, inst.opt, "fro").W
        nuc = solve_att_svm(inst.X, inst.Z, inst.opt, "nuc").W
        for par in out:
            W = svm_trajectory(root, par, seed=seed)[-1]
            out[par].append(dict(fro=correlation(W, fro), nuc=correlation(W, nuc),
                                 selected_opt=bool(np.all(_selected(inst, W) == inst.opt))))
    return {par: {k: np.mean([r[k] for r in rs]) for k in rs[0]} for par, rs in out.items()}


def test_W_converges_to_frobenius_svm(runs):
    # Issue threshold 0.99 at 1000 steps, mean over seeds. Measured: 0.9958, 0.9982, 0.9980 (seeds 0–2).
    assert runs["W"]["selected_opt"] == 1.0
    assert runs["W"]["fro"] >= 0.99


def test_KQ_converges_to_nuclear_svm(runs):
    # Measured with K(0) from the data seed (before the trainer): 0.9986, 0.9985, 0.9983 (seeds 0–2).
    assert runs["KQ"]["selected_opt"] == 1.0
    assert runs["KQ"]["nuc"] >= 0.99


def test_the_two_parameterizations_are_distinguishable(runs):
    # Cross-correlations measured 0.65–0.83; "clearly less" = at least 0.1 below the matching norm.
    assert runs["W"]["nuc"] <= runs["W"]["fro"] - 0.1
    assert runs["KQ"]["fro"] <= runs["KQ"]["nuc"] - 0.1


def test_plain_gd_decreases_the_loss_and_grows_the_norm(tmp_path):
    inst = AttentionSVMData(seed=0).generate()
    W = svm_trajectory(tmp_path, "W", steps=200, method="gd")
    loss = np.array([_loss(inst, w) for w in W])
    # The logistic loss is smooth; with η = 0.1 ≪ 2/L (L = O(1) here: |f| ≤ max‖x‖‖v‖ = 1) GD descends.
    assert np.all(np.diff(loss) <= 1e-15)
    norms = np.linalg.norm(W, axis=(1, 2))
    assert norms[-1] > norms[1] > 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_local_version_on_paper_random_geometry(seed, tmp_path):
    """The paper's random unit-vector data: GD may pick a locally-optimal α; compare with that α's SVMs."""
    inst = AttentionSVMData(seed=seed, geometry="random").generate()
    for par, norm in (("W", "fro"), ("KQ", "nuc")):
        W = svm_trajectory(tmp_path, par, seed=seed, steps=2000, geometry="random")[-1]
        sol = solve_att_svm(inst.X, inst.Z, _selected(inst, W), norm)
        assert sol.optimal
        assert correlation(W, sol.W) >= 0.99


@pytest.mark.slow
@pytest.mark.parametrize("path", ["reference", "kernel"])
def test_training_through_the_toy_transformer_paths(path, tmp_path):
    inst = AttentionSVMData(seed=0).generate()
    for par, norm in (("W", "fro"), ("KQ", "nuc")):
        W = svm_trajectory(tmp_path, par, path=path)[-1]
        assert correlation(W, solve_att_svm(inst.X, inst.Z, inst.opt, norm).W) >= 0.99


@pytest.mark.parametrize("cross_attn", [True, False])
def test_relu_head_paths_agree(cross_attn):
    """The nonlinear-head layer h(Xᵀ softmax(XWz)) through the toy transformer's paths equals the formula."""
    from toy_models.single_attention import ReLUHead

    inst = AttentionSVMData(seed=2, cross_attn=cross_attn, geometry="random").generate()
    head = ReLUHead(10, width=16, seed=3)
    m = SingleAttention(None, "W", cross_attn=cross_attn, head=head)
    W = torch.tensor(np.random.default_rng(1).standard_normal((10, 10)))
    m.set_W(W)
    X, Z = torch.tensor(inst.X), torch.tensor(inst.Z)
    z = Z if cross_attn else X[:, 0]
    s = torch.softmax(torch.einsum("ntd,de,ne->nt", X, W, z), dim=-1)
    expected = torch.relu(torch.einsum("nt,ntd->nd", s, X) @ head.B.T) @ head.a
    grads = {}
    for path in ("direct", "reference", "kernel"):
        f = m(X, Z if cross_attn else None, path=path)
        # float64, sums over T ≤ 9 keys, d = 10 and width 16 of O(1) terms: ~1e-15; 1e-11 as above.
        torch.testing.assert_close(f.detach(), expected, atol=1e-11, rtol=0)
        grads[path] = torch.autograd.grad(f.sum(), m.factors())[0]
    for path in ("reference", "kernel"):
        torch.testing.assert_close(grads[path], grads["direct"], atol=1e-11, rtol=1e-11)


def test_prompt_training_is_gd_on_p():
    """One step of train_prompt equals the textbook gradient of log(1 + exp(−Y vᵀXᵀsoftmax(Xp))) at a p
    where the softmax is not saturated (the stable form is checked at saturation in
    test_attention_svm_prompt_ngd.py)."""
    from toy_models.svm_training import train_prompt

    X = np.array([[[1.0, 0.5], [0.3, 0.0], [-1.0, 1.0]], [[0.2, -1.0], [0.5, 0.5], [-0.3, 0.1]]])
    Y, v, p0 = np.array([1.0, -1.0]), np.array([0.0, 1.0]), np.array([0.4, -0.7])
    for method in ("normalized", "gd"):
        tr = train_prompt(X, Y, v, p0, steps=1, lr=0.1, method=method)
        s = np.exp(X @ p0)
        s /= s.sum(axis=1, keepdims=True)
        gamma = X @ v  # [n, T] values
        f = np.sum(s * gamma, axis=1)
        dl = -Y / (1 + np.exp(Y * f))  # d/df log(1 + exp(−Y f))
        # ∂f/∂p = Xᵀ (diag(s) − s sᵀ) γ = Σ_t s_t (γ_t − f) x_t
        grad = np.mean(dl[:, None] * np.einsum("nt,ntd->nd", s * (gamma - f[:, None]), X), axis=0)
        step = grad / np.linalg.norm(grad) if method == "normalized" else grad
        np.testing.assert_allclose(tr.p[1], p0 - 0.1 * step, atol=1e-14)  # same float64 formula, reordered


def test_single_constraint_gd_direction_is_exactly_the_svm():
    """n = 1, T = 2: every gradient is a multiple of a zᵀ (a = x_1 − x_2), the direction of W^mm for
    both norms, so W(k) ∝ W^mm from the first step on. Tolerance: float64 round-off of the 150 steps'
    accumulation, ≤ 150·ε ≈ 3e-14 relative in the direction; 1e-12 leaves no room for a wrong one.
    150 steps keep ‖W‖ = 15 below the float64 wall ‖W^mm‖·ln(1/ε) ≈ 21, where the softmax saturates to
    round-off and the gradient becomes noise (measured: the direction then drifts to corr 0.9991 by 1000)."""
    X = np.array([[[0.6, 0.8, 0.0], [0.0, -0.6, 0.8]]])
    Z, Y, v = np.array([[0.0, 1.0, 0.0]]), np.array([1.0]), np.array([0.0, 1.0, 0.0])
    W_svm = solve_att_svm(X, Z, np.array([0]), "fro").W
    m = SingleAttention(torch.tensor(v), "W")
    # Data of its own: the trainer's loop, as before the move (the trainer reproduces it bit for bit:
    # tests/test_attention_svm_trainer.py).
    W = reference_train(m, X, Z, Y, steps=150, lr=0.1)
    a, z = X[0, 0] - X[0, 1], Z[0]
    exact = np.outer(a, z)
    assert correlation(W[-1], exact) >= 1 - 1e-12
    # The solver's W^mm against the closed form: 1e-9 relative (CLARABEL's tolerance).
    assert correlation(W_svm, exact) >= 1 - 1e-9
