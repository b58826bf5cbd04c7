"""Variance of the residual stream and gradient scale at initialization, per norm placement."""

from .gaussian import activation_kernel, second_moment
from .recursion import (
    InitVariances,
    VarianceProfile,
    attention_kernel,
    input_kernel,
    linear_growth_slope,
    mlp_kernel,
    norm_kernel,
    score_variance,
    variance_profile,
)

__all__ = ["activation_kernel", "second_moment", "InitVariances", "VarianceProfile", "attention_kernel",
           "input_kernel", "linear_growth_slope", "mlp_kernel", "norm_kernel", "score_variance",
           "variance_profile"]

from .gradients import last_layer_grad_ratio, last_layer_grad_sq  # noqa: E402

__all__ += ["last_layer_grad_ratio", "last_layer_grad_sq"]

from .eps_regime import peri_eps_ratio, peri_output_variance  # noqa: E402

__all__ += ["peri_eps_ratio", "peri_output_variance"]
