"""Probes on any HookedRootModule (toy Transformer, HookedTransformer): tidy pandas frames of
residual-stream statistics, gradient norms, massive activations and attention sinks.

The family-specific probes are submodules, imported by name:
``probes.icl_agreement`` (a model against each closed-form predictor), ``probes.icl_linear``
(per-layer linear probes to w, Xᵀy, XᵀX), ``probes.reachability`` (per-layer reachable sets and reach
radius), ``probes.attention_patching`` (per-example computation graphs), ``probes.graph_tokens``
(a token sequence back to its graph), ``probes.attention_svm`` (trajectory metrics of W(k)) and
``probes.attention_sinks_noop`` (sink mass with value norms, Bondarenko et al.)."""

from .gradients import gradient_norms, next_token_loss
from .outliers import attention_sinks, kurtosis, massive_activations, outlier_stats
from .residual_stats import angular_distance, residual_stats

__all__ = ["angular_distance", "attention_sinks", "gradient_norms", "kurtosis", "massive_activations",
           "next_token_loss", "outlier_stats", "residual_stats"]
