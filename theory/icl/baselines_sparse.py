"""Sparse-regression baselines of in-context learning, batched over prompts: the Lasso and orthogonal
matching pursuit, each fit on one prompt's examples by scikit-learn.

"What Can Transformers Learn In-Context? A Case Study of Simple Function Classes" (Garg et al. 2022)
compare the transformer on sparse linear functions with the Lasso,

    ŵ = argmin_w (1/(2N)) ‖y − Xw‖² + α ‖w‖₁      (scikit-learn's ``Lasso``, no intercept),

over the grid α ∈ {1, 0.1, 0.01, 0.001, 0.0001} and plot α = 0.01 (``GARG_LASSO_ALPHA``). Orthogonal
matching pursuit (greedy support selection, then least squares on the support, stopped at s atoms) is
the classical greedy alternative that knows the sparsity s.

Interface: that of ``theory.icl.predictors`` (X [B, N, d], y [B, N], x_q [B, d] or [B, M, d] →
``Prediction`` with ŷ and the fitted ŵ [B, d]).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso, OrthogonalMatchingPursuit

from ..errors import ConfigError

from .predictors import Labels, Prediction, Prompts, Queries, _predict, _prepare

GARG_LASSO_ALPHAS = (1.0, 0.1, 0.01, 0.001, 0.0001)  # the grid of their baseline list
GARG_LASSO_ALPHA = 0.01  # the grid point their sparse-regression figure shows
LASSO_MAX_ITER = 100_000  # Garg et al.'s; coordinate descent is slow at small α


def _per_prompt(X: torch.Tensor, y: torch.Tensor, fit) -> torch.Tensor:
    """ŵ [B, d]: ``fit(X_b, y_b) -> coef`` on each prompt (float64 numpy in and out)."""
    Xn, yn = X.numpy(), y.numpy()
    return torch.from_numpy(np.stack([fit(Xn[b], yn[b]) for b in range(len(Xn))]))


def lasso(X: Prompts, y: Labels, x_q: Queries, alpha: float = GARG_LASSO_ALPHA, tol: float = 1e-4) -> Prediction:
    """The Lasso ŵ = argmin (1/(2N))‖y − Xw‖² + α‖w‖₁ per prompt (scikit-learn, no intercept, Garg et
    al.'s max_iter); ``tol`` is scikit-learn's duality-gap tolerance (its default, which Garg et al. used)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ConfigError("alpha", alpha, "a positive float (α → 0 is least squares; use least_squares)")
    X, y, x_q = _prepare(X, y, x_q)

    def fit(Xb, yb):
        model = Lasso(alpha=float(alpha), fit_intercept=False, max_iter=LASSO_MAX_ITER, tol=tol)
        with warnings.catch_warnings():
            # A prompt that misses the tolerance still returns coordinate descent's last iterate, the
            # answer Garg et al.'s baseline would give; the tests bound how far that can be from the optimum.
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.fit(Xb, yb).coef_

    return _predict(_per_prompt(X, y, fit), x_q)


def omp(X: Prompts, y: Labels, x_q: Queries, sparsity: int) -> Prediction:
    """Orthogonal matching pursuit with ``sparsity`` atoms (capped at min(N, d)) per prompt, no intercept."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, int) or sparsity < 1:
        raise ConfigError("sparsity", sparsity, "a positive integer (the number of atoms OMP selects)")
    X, y, x_q = _prepare(X, y, x_q)
    atoms = min(sparsity, *X.shape[1:])

    def fit(Xb, yb):
        model = OrthogonalMatchingPursuit(n_nonzero_coefs=atoms, fit_intercept=False)
        with warnings.catch_warnings():
            # Raised when the residual is already 0 (noiseless labels fitted with fewer atoms): the fit is exact.
            warnings.filterwarnings("ignore", message="Orthogonal matching pursuit ended prematurely")
            return model.fit(Xb, yb).coef_

    return _predict(_per_prompt(X, y, fit), x_q)
