"""The named reference-predictor sets (theory.icl.references) agree with the predictors they name."""

import pytest
import torch

from theory.icl import expected_error as ee
from theory.icl import predictors as P
from theory.icl.references import reference_predictors

F64 = torch.float64


def _prompts(B=16, N=6, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(B, N, d, generator=g, dtype=F64)
    w = torch.randn(B, d, generator=g, dtype=F64)
    y = (X @ w[..., None])[..., 0] + 0.5 * torch.randn(B, N, generator=g, dtype=F64)
    return X, y, torch.randn(B, d, generator=g, dtype=F64)


def test_members_are_the_named_predictors():
    X, y, q = _prompts()
    pool = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    refs = reference_predictors(0.5, pool=pool)
    assert list(refs) == ["least squares", "ridge λ = 0.25", "one GD step, tuned η", "averaging", "3-NN", "dMMSE"]
    same = {  # identical arithmetic: exact equality
        "least squares": P.least_squares(X, y, q), "ridge λ = 0.25": P.ridge(X, y, q, 0.25),
        "averaging": P.averaging(X, y, q), "3-NN": P.knn(X, y, q, 3), "dMMSE": P.dmmse(X, y, q, pool, 0.5),
        "one GD step, tuned η": P.gd(X, y, q, ee.optimal_one_step_eta(torch.eye(3, dtype=F64), 6, 0.5), 1),
    }
    for name, want in same.items():
        assert torch.equal(refs[name](X, y, q).y_hat, want.y_hat), name


def test_noiseless_set_has_no_ridge_unless_asked_and_knn_is_capped_at_N():
    X, y, q = _prompts(N=2)
    assert "ridge λ = 0" not in reference_predictors(0.0)
    assert "ridge λ = 0.1" in reference_predictors(0.0, ridge_lam=0.1)
    assert torch.equal(reference_predictors(0.0)["3-NN"](X, y, q).y_hat, P.knn(X, y, q, 2).y_hat)


@pytest.mark.parametrize("kw,field", [({"noise_std": -0.1}, "noise_std"), ({"ridge_lam": -1.0}, "ridge_lam=-1.0"),
                                      ({"knn_k": 0}, "knn_k=0")])
def test_bad_input_is_refused_with_the_field_named(kw, field):
    with pytest.raises(ValueError, match=field):
        reference_predictors(**{"noise_std": 0.5, **kw})
