"""The measuring functions of the nonlinear-head claims: a Welch interval and a Spearman statistic."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from theorybench.studies.attention_svm.nonlinear_head import spearman, welch_difference


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), na=st.integers(3, 40), nb=st.integers(3, 40), shift=st.floats(-2, 2))
def test_welch_difference_matches_scipy(seed, na, nb, shift):
    """Against scipy's Welch t-test confidence interval (equal_var=False): the same formula, so 1e-10."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(shift, 1.0, na), rng.normal(0.0, 3.0, nb)
    m = welch_difference(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert abs(m.value - (a.mean() - b.mean())) <= 1e-12
    assert abs(m.low - ci.low) <= 1e-10 and abs(m.high - ci.high) <= 1e-10


def test_spearman_reads_rank_order_only():
    x = np.array([1e-17, 1e-12, 1e-9, 1e-7])
    assert spearman(np.column_stack([x, np.log(x)])) == 1.0  # any increasing map: ρ = 1
    assert spearman(np.column_stack([x, -x ** 3])) == -1.0
