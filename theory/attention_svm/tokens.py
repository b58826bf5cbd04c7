"""Token optimality in the attention-SVM picture.

"Transformers as Support Vector Machines" (Tarzanagh, Li, Thrampoulidis, Oymak, 2023):

- token score γ_it = Y_i vᵀ x_it; the globally optimal token opt_i = argmax_t γ_it;
- support tokens of a selection α: T_i = {t ≠ α_i : (x_{iα_i} − x_it)ᵀ W^mm_α z_i = 1}; an input with
  T_i = ∅ has no say in W^mm (``support_inputs``);
- α is locally optimal when the Att-SVM for α is feasible and γ_{iα_i} > γ_it for every support
  token t ∈ T_i (the selected token beats its support tokens, not necessarily all tokens).
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Bool, Float

from .problems import SUPPORT_TOL, Queries, Selection, SVMInputError, SVMSolution, Tokens, check_tokens, solve_att_svm

# Two scores closer than this are a tie: the optimal token is then not unique and the Att-SVM for
# "the" optimal token is ill-posed. 1e-9 is ~1e7 float64 ulps of an O(1) score, far above round-off.
TIE_TOL = 1e-9


def token_scores(X: Tokens, Y: Float[np.ndarray, "n"], v: Float[np.ndarray, "d"]) -> Float[np.ndarray, "n T"]:
    """γ [n, T] with γ_it = Y_i vᵀ x_it."""
    X, _, _ = check_tokens(X)
    Y = np.asarray(Y, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if Y.shape != (X.shape[0],):
        raise SVMInputError("Y", Y, f"a label vector of shape [{X.shape[0]}]")
    if v.shape != (X.shape[2],):
        raise SVMInputError("v", v, f"a head vector of shape [{X.shape[2]}]")
    return Y[:, None] * (X @ v)


def optimal_tokens(X: Tokens, Y: Float[np.ndarray, "n"], v: Float[np.ndarray, "d"],
                   tie_tol: float = TIE_TOL) -> Selection:
    """opt_i = argmax_t γ_it; a tie for the maximum (within ``tie_tol``) is an error, not a coin flip."""
    gamma = token_scores(X, Y, v)
    top2 = np.sort(gamma, axis=1)[:, -2:]
    tied = np.nonzero(top2[:, 1] - top2[:, 0] <= tie_tol)[0]
    if tied.size:
        raise SVMInputError("X", f"inputs {tied.tolist()} with tied top scores",
                            f"a unique optimal token per input (top two scores more than {tie_tol} apart)")
    return np.argmax(gamma, axis=1)


def support_tokens(solution: SVMSolution, tol: float = SUPPORT_TOL) -> Bool[np.ndarray, "n T"]:
    """[n, T] bool: constraints that are active at the solution (margin within ``tol`` of its bound)."""
    sol = solution.require()
    return sol.constrained & (np.abs(sol.margins - sol.rhs) <= tol)


def support_inputs(solution: SVMSolution, tol: float = SUPPORT_TOL) -> Bool[np.ndarray, "n"]:
    """[n] bool: inputs with at least one support token.

    An input without one has all its multipliers λ_it = 0 (complementary slackness), so it drops out of
    W^mm = Σ_i (Σ_t λ_it (x_iα − x_it)) z_iᵀ: rank(W^mm) ≤ min(d, number of inputs with a support
    token), with equality on generic data (the rank law checked in tests/test_attention_svm_rank_law.py).
    """
    return support_tokens(solution, tol).any(axis=1)


def is_feasible(X: Tokens, Z: Queries, alpha: Selection) -> bool:
    """Whether some W separates α from the other tokens with margin 1 (the Att-SVM has a feasible point)."""
    sol = solve_att_svm(X, Z, alpha, norm="fro")
    if sol.optimal:
        return True
    if sol.infeasible:
        return False
    raise RuntimeError(f"feasibility undecided: solver status {sol.status!r}")


def is_locally_optimal(X: Tokens, Y: Float[np.ndarray, "n"], v: Float[np.ndarray, "d"], Z: Queries, alpha: Selection,
                       solution: SVMSolution | None = None) -> bool:
    """α is feasible and γ_{iα_i} > γ_it for all support tokens t of the Frobenius Att-SVM for α."""
    X, Z, alpha = check_tokens(X, Z, alpha)
    sol = solution if solution is not None else solve_att_svm(X, Z, alpha, norm="fro")
    if sol.infeasible:
        return False
    gamma = token_scores(X, Y, v)
    selected = gamma[np.arange(len(alpha)), alpha][:, None]
    support = support_tokens(sol)
    return bool(np.all(selected[np.nonzero(support)[0], 0] > gamma[support]))
