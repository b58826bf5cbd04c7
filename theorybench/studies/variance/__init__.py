"""Variance growth with depth and norm placement (Xiong et al. 2020, Kim et al. 2025, Li et al. 2024, Sun et
al. 2024, Bondarenko et al. 2023, Guo et al. 2024): one module per figure; importing the package registers
them (see README.md: claim → figure → function → test)."""

from . import (gradient_norms_early_training, gradient_scale_at_init, massive_activations_training,  # noqa: F401
               residual_growth_at_init, sink_growth, sink_massive_activations, trained_growth)
