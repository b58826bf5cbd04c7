"""The multi-token SVM-equivalence predictor for attention with a nonlinear head.

"Transformers as Support Vector Machines" (Tarzanagh, Li, Thrampoulidis, Oymak, 2023), Section on
nonlinear heads: when the trained attention keeps a set O_i = {t : s_it ≥ 10⁻³} of tokens per input,

- direction  W^dir = argmin ‖W‖  s.t.  (x_it − x_iτ)ᵀ W z_i = 0   ∀ t, τ ∈ O_i
                                        (x_it − x_iτ)ᵀ W z_i ≥ 1   ∀ t ∈ O_i, τ ∉ O_i
- finite part W^fin = argmin ‖W‖  s.t.  (x_it − x_iτ)ᵀ W z_i = log(s_it / s_iτ)   ∀ t, τ ∈ O_i
- prediction  W^SVMeq = W^fin + R·W^dir, R fitted by least squares to the trained W.

The norm is Frobenius for the W-parameterization and nuclear for (K, Q). Equalities within O_i are
imposed against one reference token t0_i ∈ O_i (the others follow by differences). When every input
keeps all its tokens (early in training) there is nothing to separate: W^dir = 0, R = 0 and the
prediction is W^fin alone (``corr_dir`` is then nan; ``corr_pred`` too if moreover every kept set has
uniform probabilities, so that W^fin = 0 has no direction). An infeasible W^dir problem raises
``InfeasibleSVMError``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Float

from .problems import (SOLVER_TOL, InfeasibleSVMError, Queries, SVMInputError, Tokens, check_tokens, correlation,
                       solve_margin_program)

SELECT_THRESHOLD = 1e-3


@dataclass(frozen=True)
class SVMEquivalence:
    selected: np.ndarray  # [n, T] bool, the sets O_i
    W_dir: np.ndarray
    W_fin: np.ndarray
    R: float
    W_pred: np.ndarray  # W^fin + R·W^dir
    corr_pred: float  # correlation(W_trained, W_pred)
    corr_dir: float  # correlation(W_trained, W_dir)


def _rows(X: np.ndarray, Z: np.ndarray, a_idx, b_idx, i_idx) -> np.ndarray:
    d = X.shape[2]
    diffs = X[i_idx, a_idx] - X[i_idx, b_idx]
    return np.einsum("md,me->mde", diffs, Z[i_idx]).reshape(len(i_idx), d * d)


def svm_equivalence(X: Tokens, Z: Queries, probs: Float[np.ndarray, "n T"], W_trained: Float[np.ndarray, "d d"],
                    norm: str = "fro", threshold: float = SELECT_THRESHOLD) -> SVMEquivalence:
    """W^dir, W^fin and the fitted W^fin + R·W^dir for softmax probabilities ``probs`` [n, T] of ``W_trained``."""
    X, Z, _ = check_tokens(X, Z)
    S = np.asarray(probs, dtype=np.float64)
    n, T, d = X.shape
    if S.shape != (n, T) or np.any(S < 0):
        raise SVMInputError("probs", f"array of shape {S.shape}", f"non-negative softmax probabilities of shape [{n}, {T}]")
    Wt = np.asarray(W_trained, dtype=np.float64)
    if Wt.shape != (d, d):
        raise SVMInputError("W_trained", f"array of shape {Wt.shape}", f"[{d}, {d}]")
    O = S >= threshold
    if not O.any(axis=1).all():
        raise SVMInputError("threshold", threshold, "at most the largest probability of every input")
    t0 = np.argmax(S, axis=1)
    # Equalities: every other selected token against the reference t0_i.
    eq = O.copy()
    eq[np.arange(n), t0] = False
    ei, et = np.nonzero(eq)
    E = _rows(X, Z, t0[ei], et, ei)
    log_ratio = np.log(S[ei, t0[ei]] / S[ei, et])
    # Inequalities: each selected token above each non-selected one.
    gi, gt, gtau = np.nonzero(O[:, :, None] & ~O[:, None, :])
    G = _rows(X, Z, gt, gtau, gi)

    direction = solve_margin_program(G, np.ones(len(gi)), (d, d), norm, E=E, e=np.zeros(len(ei)))
    finite = solve_margin_program(np.zeros((0, d * d)), np.zeros(0), (d, d), norm, E=E, e=log_ratio)
    for name, res in (("W_dir", direction), ("W_fin", finite)):
        if res["value"] is None:
            raise InfeasibleSVMError(f"the {name} problem of the SVM equivalence failed (status {res['status']!r})")
    W_dir, W_fin = direction["value"], finite["value"]
    if len(gi) == 0:  # no token left out anywhere: no direction to grow along
        W_dir = np.zeros_like(W_dir)
        R, corr_dir = 0.0, float("nan")
    else:
        R = float(np.sum((Wt - W_fin) * W_dir) / np.sum(W_dir * W_dir))
        corr_dir = correlation(Wt, W_dir)
    W_pred = W_fin + R * W_dir
    # "Zero" up to the solver: W^fin solves equalities with O(1) right-hand sides to SOLVER_TOL, so a
    # prediction below 10·SOLVER_TOL in norm is the zero matrix, whose direction is solver noise.
    corr_pred = correlation(Wt, W_pred) if np.linalg.norm(W_pred) > 10 * SOLVER_TOL else float("nan")
    return SVMEquivalence(selected=O, W_dir=W_dir, W_fin=W_fin, R=R, W_pred=W_pred,
                          corr_pred=corr_pred, corr_dir=corr_dir)
