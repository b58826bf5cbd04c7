"""Attention as an SVM ("Transformers as Support Vector Machines", "Max-Margin Token Selection in Attention
Mechanism", Tarzanagh, Li, Thrampoulidis, Oymak 2023): one module per figure; importing the package
registers them (see README.md: claim → figure → function → test)."""

from . import (directional_convergence, experiments, nonlinear_head, prompt_geometry,  # noqa: F401
               rank_and_saturation, rank_vs_d)
