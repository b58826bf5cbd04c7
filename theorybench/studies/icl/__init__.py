"""The in-context-learning family: importing this package registers its experiments, sweeps and figures."""

from . import estimator_errors, function_classes, lsa_trained_vs_gd, ood_shifts, probe_r2, task_diversity  # noqa: F401
