"""Variance of the residual stream and gradient scale at initialization, per norm placement.

Every function takes an ``Architecture`` (plain numbers and names; ``toy_models.theory_args.
variance_architecture`` builds one from a model config) and token ids."""

from .architecture import Architecture
from .eps_regime import peri_eps_ratio, peri_output_variance
from .gaussian import activation_kernel, second_moment
from .gradients import last_layer_grad_ratio, last_layer_grad_sq
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

__all__ = ["Architecture", "activation_kernel", "second_moment", "InitVariances", "VarianceProfile",
           "attention_kernel", "input_kernel", "linear_growth_slope", "mlp_kernel", "norm_kernel", "score_variance",
           "variance_profile", "last_layer_grad_ratio", "last_layer_grad_sq", "peri_eps_ratio",
           "peri_output_variance"]
