"""The in-context-learning family (``README.md`` here: claim → figure → function → test).

Importing the package registers its experiments, sweeps (``experiments``) and figures (one module each)."""

from . import (decision_tree, estimator_errors, lsa_trained_vs_gd, ood_shifts, probe_r2,  # noqa: F401
               relu_network, sparse_linear, task_diversity)
