"""In-context linear regression: closed-form predictors and their expected errors."""

from .expected_error import (
    averaging_error,
    least_squares_error,
    linear_moment_error,
    one_step_gd_error,
    optimal_linear_moment_matrix,
    optimal_one_step_eta,
    zfb_error,
)
from .predictors import (
    Prediction,
    averaging,
    bayes_gaussian,
    dmmse,
    gd,
    knn,
    least_squares,
    preconditioned_gd,
    ridge,
    tune_gd_step,
    zfb_gamma,
    zfb_optimum,
)

__all__ = [
    "Prediction", "averaging", "bayes_gaussian", "dmmse", "gd", "knn", "least_squares", "preconditioned_gd",
    "ridge", "tune_gd_step", "zfb_gamma", "zfb_optimum", "averaging_error", "least_squares_error",
    "linear_moment_error", "one_step_gd_error", "optimal_linear_moment_matrix", "optimal_one_step_eta",
    "zfb_error",
]
