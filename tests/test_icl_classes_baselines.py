"""The baselines of the function-class figures (Garg et al., "What Can Transformers Learn In-Context?"):
Lasso and OMP against their optimality conditions, trees and boosting against their libraries and exact
cases, the two-layer network trained on the prompt against a hand-written gradient step."""

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from sklearn.tree import DecisionTreeRegressor
from xgboost import XGBRegressor

from theory.icl import predictors as P
from theory.icl.baselines_nn import init_two_layer, two_layer_forward, two_layer_nn_gd
from theory.icl.baselines_sparse import lasso, omp
from theory.icl.baselines_trees import boosted_trees, greedy_tree
from toy_models.config import ConfigError

F64 = torch.float64
EPS32 = float(torch.finfo(torch.float32).eps)
SEEDS = st.integers(0, 2**31 - 1)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _regression(B, N, d, seed, sparsity=None):
    g = _gen(seed)
    X = torch.randn(B, N, d, generator=g, dtype=F64)
    w = torch.randn(B, d, generator=g, dtype=F64)
    if sparsity is not None:
        keep = torch.rand(B, d, generator=g).argsort(1)[:, :sparsity]
        w = w * torch.zeros(B, d, dtype=torch.bool).scatter_(1, keep, True)
    return X, w, torch.einsum("bnd,bd->bn", X, w), torch.randn(B, d, generator=g, dtype=F64)


# ------------------------------------------------------------------------------------------ Lasso
@given(d=st.integers(1, 5), extra=st.integers(1, 20), alpha=st.sampled_from([1.0, 0.1, 0.01]), seed=SEEDS)
def test_lasso_satisfies_its_optimality_conditions(d, extra, alpha, seed):
    """KKT of (1/(2N))‖y − Xw‖² + α‖w‖₁: g = Xᵀ(y − Xŵ)/N has |g_j| ≤ α, and g_j = α·sign(ŵ_j) on the
    support. With duality gap G ≤ tol·‖y‖²/N (scikit-learn's stopping rule, on this objective's scale)
    and μ, L the extreme eigenvalues of XᵀX/N, strong convexity gives ‖ŵ − w*‖ ≤ √(2G/μ), so each g_j
    is within L·√(2G/μ) of its value at the optimum. A wrongly scaled α (e.g. α·N) breaks this by ~α."""
    N, tol = d + extra, 1e-10
    X, _, _, x_q = _regression(2, N, d, seed)
    y = torch.einsum("bnd,bd->bn", X, torch.randn(2, d, generator=_gen(seed + 1), dtype=F64)) \
        + 0.3 * torch.randn(2, N, generator=_gen(seed + 2), dtype=F64)
    w = lasso(X, y, x_q, alpha=alpha, tol=tol).w_hat
    for b in range(2):
        eig = torch.linalg.eigvalsh(X[b].T @ X[b] / N)
        assume(float(eig[0]) > 1e-3)
        slack = float(eig[-1]) * math.sqrt(2 * tol * float(y[b] @ y[b]) / N / float(eig[0])) + 1e-12
        g = X[b].T @ (y[b] - X[b] @ w[b]) / N
        assert (g.abs() <= alpha + slack).all()
        on = w[b] != 0
        assert torch.allclose(g[on], alpha * torch.sign(w[b][on]), rtol=0, atol=slack)


@given(d=st.integers(1, 5), extra=st.integers(2, 20), seed=SEEDS)
def test_lasso_at_vanishing_alpha_is_least_squares(d, extra, seed):
    """At the optimum (XᵀX/N)(ŵ_LS − w*) = g* with ‖g*‖_∞ ≤ α, so ‖w* − ŵ_LS‖₂ ≤ √d·α/μ; add the
    solver's √(2G/μ) (previous test)."""
    N, alpha, tol = d + extra, 1e-6, 1e-12
    X, _, _, x_q = _regression(3, N, d, seed)
    y = torch.randn(3, N, generator=_gen(seed + 1), dtype=F64)
    w_l, w_ls = lasso(X, y, x_q, alpha=alpha, tol=tol).w_hat, P.least_squares(X, y, x_q).w_hat
    for b in range(3):
        mu = float(torch.linalg.eigvalsh(X[b].T @ X[b] / N)[0])
        assume(mu > 1e-3)
        bound = math.sqrt(d) * alpha / mu + math.sqrt(2 * tol * float(y[b] @ y[b]) / N / mu) + 1e-12
        assert float((w_l[b] - w_ls[b]).norm()) <= bound


def test_lasso_predicts_each_prompt_with_its_own_fit():
    X, w, y, x_q = _regression(4, 12, 3, 0)
    full = lasso(X, y, x_q)
    perm = torch.tensor([2, 0, 3, 1])
    assert torch.equal(lasso(X[perm], y[perm], x_q[perm]).y_hat, full.y_hat[perm])
    assert torch.allclose(full.y_hat, (x_q * full.w_hat).sum(-1), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------ OMP
@given(d=st.integers(2, 8), data=st.data(), seed=SEEDS)
def test_omp_recovers_a_sparse_w_exactly_from_an_orthogonal_design(d, data, seed):
    """Orthogonal columns have coherence 0, under which OMP selects a true atom at every step (Tropp 2004,
    "Greed is Good"), then least squares on the support is exact: error ~ ε₆₄·‖w‖·√N, bound 1e-10·‖w‖."""
    s, N = data.draw(st.integers(1, d)), d + data.draw(st.integers(0, 6))
    g = _gen(seed)
    Q = torch.linalg.qr(torch.randn(2, N, d, generator=g, dtype=F64)).Q * math.sqrt(N)
    _, w, _, x_q = _regression(2, N, d, seed + 1, sparsity=s)
    y = torch.einsum("bnd,bd->bn", Q, w)
    w_hat = omp(Q, y, x_q, sparsity=s).w_hat
    assert float((w_hat - w).norm()) <= 1e-10 * float(w.norm())


@given(s=st.integers(1, 2), d=st.integers(3, 6), seed=SEEDS)
def test_omp_recovers_a_sparse_w_from_an_incoherent_gaussian_design(s, d, seed):
    """Generic Gaussian prompts, noiseless: whenever the coherence μ = max |cos(X_i, X_j)| < 1/(2s − 1),
    OMP recovers every s-sparse w exactly (Tropp 2004); N = 300 makes that the usual case."""
    X, w, y, x_q = _regression(1, 300, d, seed, sparsity=s)
    cols = X[0] / X[0].norm(dim=0)
    gram = (cols.T @ cols).abs() - torch.eye(d, dtype=F64)
    assume(float(gram.max()) < 1 / (2 * s - 1))
    assert float((omp(X, y, x_q, sparsity=s).w_hat - w).norm()) <= 1e-10 * float(w.norm())


def test_omp_and_lasso_refuse_bad_parameters():
    X, _, y, x_q = _regression(1, 4, 2, 0)
    for call, field in ((lambda: omp(X, y, x_q, sparsity=0), "sparsity"), (lambda: lasso(X, y, x_q, alpha=0), "alpha")):
        with pytest.raises(ConfigError) as err:
            call()
        assert err.value.field_name == field


# ------------------------------------------------------------------------------------------ trees
@given(N=st.integers(2, 30), a=st.floats(-5, 5), b=st.floats(-5, 5), seed=SEEDS)
def test_depth_one_tree_is_exact_on_a_sign_step(N, a, b, seed):
    """y = a if x > 0 else b (one input): the root split at the gap between the largest negative and the
    smallest positive input separates the labels perfectly, so every query outside that gap gets its
    side's label. scikit-learn runs its trees partly in float32 (features, some node statistics): the
    bound is float32's resolution ε₃₂·|label|, while a wrong split is off by |a − b| ≥ 0.1."""
    x = torch.randn(1, N, 1, generator=_gen(seed), dtype=F64)
    # Labels at least 0.1 apart: the split's impurity decrease (~(a − b)²) must not underflow.
    assume(bool((x > 0).any() and (x <= 0).any()) and abs(a - b) >= 0.1)
    y = torch.where(x[..., 0] > 0, a, b)
    far = x.abs().max() + torch.rand(1, 10, 1, generator=_gen(seed + 1), dtype=F64)
    q = torch.cat([far, -far], 1)
    pred = greedy_tree(x, y, q, max_depth=1).y_hat
    expected = torch.tensor([[a] * 10 + [b] * 10], dtype=F64)
    assert torch.allclose(pred, expected, rtol=0, atol=EPS32 * max(abs(a), abs(b)))


@given(depth=st.sampled_from([1, 3, None]), seed=SEEDS)
def test_greedy_tree_equals_the_library_fit_of_each_prompt(depth, seed):
    X, _, _, _ = _regression(3, 15, 4, seed)
    y = torch.randn(3, 15, generator=_gen(seed + 1), dtype=F64)
    q = torch.randn(3, 5, 4, generator=_gen(seed + 2), dtype=F64)
    pred = greedy_tree(X, y, q, max_depth=depth).y_hat
    for b in (2, 0, 1):
        ref = DecisionTreeRegressor(max_depth=depth, random_state=0).fit(X[b].numpy(), y[b].numpy())
        assert np.array_equal(pred[b].numpy(), ref.predict(q[b].numpy()))


def test_unlimited_tree_interpolates_distinct_points():
    X, _, _, _ = _regression(2, 20, 3, 0)
    y = torch.randn(2, 20, generator=_gen(1), dtype=F64)
    assert torch.equal(greedy_tree(X, y, X, max_depth=None).y_hat, y)  # pure leaves hold one point each


def test_boosted_trees_equal_the_library_fit_of_each_prompt():
    X, _, _, _ = _regression(3, 12, 3, 4)
    y = torch.randn(3, 12, generator=_gen(5), dtype=F64)
    pred = boosted_trees(X, y, X[:, 0]).y_hat
    for b in (1, 2, 0):
        ref = XGBRegressor(n_jobs=1, random_state=0).fit(X[b].numpy(), y[b].numpy())
        assert float(pred[b]) == float(ref.predict(X[b, :1].numpy())[0])


# Labels within float32's normal range: XGBoost stores them in float32, where 1e-143 is 0.
@given(c=st.floats(-10, 10).filter(lambda c: c == 0 or abs(c) > 1e-30), seed=SEEDS)
def test_boosted_trees_predict_a_constant_label(c, seed):
    """Constant labels: the base score is their mean and every gradient is 0, so every tree adds 0; the
    prediction is c in XGBoost's float32, within 4·ε₃₂·|c| (rounding of the labels and of their mean)."""
    X, _, _, x_q = _regression(2, 8, 3, seed)
    pred = boosted_trees(X, torch.full((2, 8), c, dtype=F64), x_q).y_hat
    assert (pred - c).abs().max() <= 4 * EPS32 * abs(c)


# ------------------------------------------------------------------------------------------ two-layer network
def _hand_gd_step(params, X, y, lr):
    """One GD step on L = (1/N) Σ (a·relu(Wᵀx_i + b) + c − y_i)², gradients written out by hand (numpy)."""
    W, b, a, c = (params[k].numpy() for k in ("W", "b", "a", "c"))
    X, y = X.numpy(), y.numpy()
    N = len(X)
    pre = X @ W + b                       # [N, h]
    act = np.maximum(pre, 0)
    r = act @ a + c - y                   # residuals [N]
    on = (pre > 0).astype(float)
    grad = {"a": 2 / N * act.T @ r, "c": 2 / N * r.sum(),
            "W": 2 / N * X.T @ (r[:, None] * on * a), "b": 2 / N * (r[:, None] * on * a).sum(0)}
    return {k: torch.as_tensor(v - lr * grad[k]) for k, v in dict(W=W, b=b, a=a, c=c).items()}


@given(N=st.integers(1, 12), d=st.integers(1, 4), h=st.integers(1, 8), seed=SEEDS)
def test_one_gd_step_of_the_prompt_network_matches_the_hand_gradient(N, d, h, seed):
    """Float64, O(1) values and N·h-term sums: agreement to 1e-12 (a 2× loss-scale or a cross-prompt
    mix-up shifts the prediction by ~lr·|gradient| ≳ 1e-4)."""
    lr, B = 0.05, 3
    X, _, _, x_q = _regression(B, N, d, seed)
    y = torch.randn(B, N, generator=_gen(seed + 1), dtype=F64)
    init = init_two_layer(B, d, h, _gen(seed + 2))
    pred = two_layer_nn_gd(X, y, x_q, hidden=h, lr=lr, steps=1, optimizer="gd", seed=seed + 2).y_hat
    for i in range(B):
        stepped = _hand_gd_step({k: v[i] for k, v in init.items()}, X[i], y[i], lr)
        expected = two_layer_forward({k: v[None] for k, v in stepped.items()}, x_q[i][None, None])[0, 0]
        assert abs(float(pred[i]) - float(expected)) <= 1e-12


def test_prompts_train_independently_and_zero_steps_is_the_init():
    X, _, _, x_q = _regression(2, 10, 3, 7)
    y = torch.randn(2, 10, generator=_gen(8), dtype=F64)
    y_other = y.clone()
    y_other[1] = torch.randn(10, generator=_gen(9), dtype=F64)  # change prompt 1 only
    a = two_layer_nn_gd(X, y, x_q, hidden=16, steps=20).y_hat
    b = two_layer_nn_gd(X, y_other, x_q, hidden=16, steps=20).y_hat
    # Prompt 0 sees the same init and data in both runs and its gradients never involve prompt 1.
    assert float(a[0]) == float(b[0]) and float(a[1]) != float(b[1])
    init = init_two_layer(2, 3, 16, _gen(0))
    expected = two_layer_forward(init, x_q[:, None])[:, 0]
    assert torch.equal(two_layer_nn_gd(X, y, x_q, hidden=16, steps=0).y_hat, expected)


def test_adam_training_fits_the_prompt():
    """Garg et al.'s setting (h = 100, Adam 5e-3, 100 steps) on a prompt it can fit: a linear target
    with N = 20, d = 2. The fit must beat predicting the mean label (what a broken update would leave)."""
    X, _, y, _ = _regression(4, 20, 2, 11)
    fit = two_layer_nn_gd(X, y, X).y_hat
    assert (((fit - y) ** 2).mean(1) < 0.1 * ((y - y.mean(1, keepdim=True)) ** 2).mean(1)).all()
