"""Exact function-preserving transformations of toy models (same outputs, different architecture)."""

from .rmsnorm_equivalence import (
    ConversionError,
    pre_ln_to_pre_crmsnorm,
    pre_ln_to_pre_rmsnorm,
    pre_rmsnorm_to_pre_crmsnorm,
)

__all__ = ["ConversionError", "pre_ln_to_pre_rmsnorm", "pre_rmsnorm_to_pre_crmsnorm", "pre_ln_to_pre_crmsnorm"]
