"""The synthetic token-selection data keeps the promises of its docstring.

``equal_scores`` is the geometry of the global-convergence theorem for GD on W in "Transformers as
Support Vector Machines" (Tarzanagh et al. 2023): every non-optimal token of an input has one score,
strictly below the optimal token's. ``random`` is the paper's unit-vector setup.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from toy_models.config import ConfigError
from toy_models.tasks.attention_svm_data import AttentionSVMData

# float64 round-off on unit vectors of dimension d ≤ 16: a norm or an inner product is a sum of d
# products, exact to ~d·ε ≈ 4e-15; 1e-13 is well above that and far below any real deviation.
ROUND = 1e-13


@given(n=st.integers(1, 6), T=st.integers(2, 9), d=st.integers(2, 16), seed=st.integers(0, 10_000),
       low=st.floats(-0.9, 0.4), spread=st.floats(0.05, 0.5), cross=st.booleans())
def test_equal_scores_geometry(n, T, d, seed, low, spread, cross):
    cfg = AttentionSVMData(n=n, T=T, d=d, seed=seed, geometry="equal_scores", score_low=low,
                           score_high=low + spread, cross_attn=cross)
    inst = cfg.generate()
    assert inst.X.shape == (n, T, d) and inst.Z.shape == (n, d) and inst.Y.shape == (n,) and inst.v.shape == (d,)
    np.testing.assert_allclose(np.linalg.norm(inst.X, axis=-1), 1.0, atol=ROUND)  # unit tokens
    np.testing.assert_allclose(np.linalg.norm(inst.v), 1.0, atol=ROUND)
    assert set(np.unique(inst.Y)) <= {-1.0, 1.0}
    gamma = inst.scores
    rows = np.arange(n)
    # The optimal token has score_high, every other token exactly score_low: the theorem's condition.
    np.testing.assert_allclose(gamma[rows, inst.opt], cfg.score_high, atol=ROUND)
    others = np.ones((n, T), dtype=bool)
    others[rows, inst.opt] = False
    np.testing.assert_allclose(gamma[others], cfg.score_low, atol=ROUND)
    np.testing.assert_array_equal(inst.opt, np.argmax(gamma, axis=1))
    if cross:
        np.testing.assert_allclose(np.linalg.norm(inst.Z, axis=-1), 1.0, atol=ROUND)
    else:
        np.testing.assert_array_equal(inst.Z, inst.X[:, 0])  # self-attention: the query is x_i1


def test_equal_scores_optimal_position_is_uniform():
    # 1200 inputs, T = 8: each position's count is Binomial(1200, 1/8), mean 150, sd √(1200·(1/8)·(7/8)) ≈ 11.5.
    # 4 sd on each of 8 counts: a false alarm has probability < 8·6.3e-5 (and the draw is seeded anyway).
    inst = AttentionSVMData(n=1200, T=8, d=4, seed=0).generate()
    counts = np.bincount(inst.opt, minlength=8)
    sd = np.sqrt(1200 * (1 / 8) * (7 / 8))
    assert np.all(np.abs(counts - 150) <= 4 * sd), counts


def test_random_geometry_is_unit_vectors_and_reproducible():
    a = AttentionSVMData(n=5, T=6, d=7, seed=3, geometry="random").generate()
    b = AttentionSVMData(n=5, T=6, d=7, seed=3, geometry="random").generate()
    c = AttentionSVMData(n=5, T=6, d=7, seed=4, geometry="random").generate()
    np.testing.assert_allclose(np.linalg.norm(a.X, axis=-1), 1.0, atol=ROUND)
    np.testing.assert_allclose(np.linalg.norm(a.Z, axis=-1), 1.0, atol=ROUND)
    for field in ("X", "Z", "Y", "v", "opt"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.X, c.X)
    # Random scores: the optimal token is the argmax and (with probability one) unique.
    top2 = np.sort(a.scores, axis=1)[:, -2:]
    assert np.all(top2[:, 1] > top2[:, 0])


@pytest.mark.parametrize("kwargs, field", [
    (dict(T=1), "T"), (dict(n=0), "n"), (dict(d=0), "d"), (dict(n=True), "n"), (dict(T=2.0), "T"),
    (dict(d=1), "d"), (dict(seed=-1), "seed"), (dict(geometry="grid"), "geometry"),
    (dict(score_low=0.5, score_high=0.5), "score_high"), (dict(score_high=1.5), "score_high"),
])
def test_bad_configs_name_the_field(kwargs, field):
    with pytest.raises(ConfigError) as err:
        AttentionSVMData(**kwargs)
    assert err.value.field_name == field and "not allowed" in str(err.value)


def test_one_dimensional_random_data_is_allowed():
    # d = 1 only breaks equal_scores (no direction orthogonal to v); the random geometry is fine.
    inst = AttentionSVMData(d=1, geometry="random").generate()
    np.testing.assert_allclose(np.abs(inst.X), 1.0, atol=ROUND)
