"""Tree baselines of in-context learning, batched over prompts: greedy decision-tree learning (CART,
scikit-learn's ``DecisionTreeRegressor``) and gradient-boosted trees (XGBoost's ``XGBRegressor``), each
fit on one prompt's examples.

These are the baselines "What Can Transformers Learn In-Context? A Case Study of Simple Function
Classes" (Garg et al. 2022) compare with on random decision trees: greedy trees of depth 4 (the depth
of the target trees) and of unlimited depth, and XGBoost with its default parameters.

Interface: that of ``theory.icl.predictors`` (X [B, N, d], y [B, N], x_q [B, d] or [B, M, d] →
``Prediction``); a tree is no linear map of x_q, so ``w_hat`` is None.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.tree import DecisionTreeRegressor
from xgboost import XGBRegressor

from ..errors import ConfigError

from .predictors import Labels, Prediction, Prompts, Queries, _prepare

GARG_TREE_DEPTHS = (4, None)  # their two greedy-tree baselines


def _fit_predict_each(X: torch.Tensor, y: torch.Tensor, x_q: torch.Tensor, make) -> Prediction:
    """Fit ``make()`` on each prompt's examples and predict its queries ([B] or [B, M], float64)."""
    single = x_q.dim() == 2
    q = (x_q[:, None] if single else x_q).numpy()
    Xn, yn = X.numpy(), y.numpy()
    out = np.stack([make().fit(Xn[b], yn[b]).predict(q[b]) for b in range(len(Xn))]).astype(np.float64)
    y_hat = torch.from_numpy(out)
    return Prediction(y_hat[:, 0] if single else y_hat, None)


def greedy_tree(X: Prompts, y: Labels, x_q: Queries, max_depth: int | None = 4, seed: int = 0) -> Prediction:
    """CART regression tree (squared-error splits, grown greedily to ``max_depth``; None: until leaves are
    pure). ``seed`` fixes scikit-learn's feature order, which decides ties between equally good splits."""
    if max_depth is not None and (isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 1):
        raise ConfigError("max_depth", max_depth, "a positive integer, or None for an unlimited depth")
    X, y, x_q = _prepare(X, y, x_q)
    return _fit_predict_each(X, y, x_q, lambda: DecisionTreeRegressor(max_depth=max_depth, random_state=seed))


def boosted_trees(X: Prompts, y: Labels, x_q: Queries, seed: int = 0, **params) -> Prediction:
    """XGBoost regression with its default parameters (Garg et al.'s baseline: 100 rounds of depth-6 trees,
    learning rate 0.3), overridable through ``params``; one thread per fit, as the prompts are many and small."""
    X, y, x_q = _prepare(X, y, x_q)
    return _fit_predict_each(X, y, x_q, lambda: XGBRegressor(n_jobs=1, random_state=seed, **params))
