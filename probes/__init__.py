"""Probes on any HookedRootModule (toy Transformer, HookedTransformer): tidy pandas frames of
residual-stream statistics, gradient norms, massive activations and attention sinks."""

from .gradients import gradient_norms, next_token_loss
from .outliers import attention_sinks, kurtosis, massive_activations, outlier_stats
from .residual_stats import angular_distance, residual_stats

__all__ = ["angular_distance", "attention_sinks", "gradient_norms", "kurtosis", "massive_activations",
           "next_token_loss", "outlier_stats", "residual_stats"]
