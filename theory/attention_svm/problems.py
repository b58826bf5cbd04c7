"""The hard-margin SVMs of attention, solved with cvxpy + CLARABEL (an interior-point solver) to 1e-9.

"Transformers as Support Vector Machines" (Tarzanagh, Li, Thrampoulidis, Oymak, 2023), with the
score a_it = x_itᵀ W z_i of token t of input i under the query z_i:

- Att-SVM (Frobenius), the limit direction of GD on W:
      W^mm_α = argmin ‖W‖_F  s.t.  (x_{iα_i} − x_it)ᵀ W z_i ≥ 1   ∀ i, t ≠ α_i
- Att-SVM⋆ (nuclear), the limit direction of GD on W = K Qᵀ (since min{½(‖K‖²+‖Q‖²): KQᵀ = W} = ‖W‖_⋆):
      W^mm_⋆,α = argmin ‖W‖_⋆  s.t. the same constraints

"Max-Margin Token Selection in Attention Mechanism" (same authors, 2023), with fixed keys k_it:

- p-SVM:   p^mm = argmin ‖p‖  s.t.  pᵀ(k_{iα_i} − k_it) ≥ 1      ∀ i, t ≠ α_i
- v-SVM:   v^mm = argmin ‖v‖  s.t.  Y_i vᵀ x_{iα_i} ≥ 1          ∀ i
- relaxed joint (v, p): v^mm as above, and the p-SVM in which the inputs that are *not* support
  vectors of v^mm only need margin ≥ 0.

Solvers: CLARABEL (interior point, the default) or SCS (a first-order conic solver, ``solver="SCS"``),
each named explicitly with its tolerance; ``agreement.compare`` checks that the two agree.

Every constraint set is one matrix inequality G·vec(u) ≥ h (no Python loop per constraint). Squared
norms are minimized for the Euclidean problems (same argmin, and stationarity reads u = Gᵀλ). An
infeasible problem comes back with ``status='infeasible'`` and no solution; ``require()`` turns that
into ``InfeasibleSVMError``. Nothing is skipped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import warnings

import cvxpy as cp
import numpy as np
from jaxtyping import Bool, Float, Int

from ..errors import ConfigError

# n inputs of T tokens in d dimensions, one query per input, one selected token per input.
Tokens = Float[np.ndarray, "n T d"]
Queries = Float[np.ndarray, "n d"]
Selection = Int[np.ndarray, "n"]

# ≤ 1e-8 as the study asks: SCS at cvxpy's default tolerance (1e-5) leaves spurious singular values at
# ~1e-7·σ_1, which inflate the rank read by the spectral gap (figure attention_svm_rank_vs_d). CLARABEL's gap and feasibility tolerances are relative
# to the problem scale. We ask for 1e-9 first; a few nuclear-norm instances stall there (CLARABEL then
# reports "optimal_inaccurate"), and those are re-solved at exactly the required 1e-8. The tolerance
# used is recorded in ``SVMSolution.extra['solver_tol']`` (the KKT certificate scales with it).
SOLVER_TOL = 1e-9
SOLVER_TOLS = (SOLVER_TOL, 1e-8)


def clarabel_options(tol: float) -> dict[str, Any]:
    return dict(tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol, tol_infeas_abs=tol, tol_infeas_rel=tol,
                tol_ktratio=1e-7, max_iter=500)


# SCS stops when its primal and dual residuals and gap are below eps_abs + eps_rel·scale. cvxpy runs it
# at eps 1e-5 unless told otherwise ("SCS's default" below); ``SCS_TOL`` is the accurate setting. It is
# an ADMM method: tight tolerances can take many iterations, capped by SCS_MAX_ITERS (then the status
# is "optimal_inaccurate" and the solution is refused by ``require()``, never used silently).
SCS_TOL = 1e-9
SCS_MAX_ITERS = 20_000


def scs_options(tol: float) -> dict[str, Any]:
    return dict(eps_abs=tol, eps_rel=tol, max_iters=SCS_MAX_ITERS)


SOLVERS = ("CLARABEL", "SCS")
NORMS = ("fro", "nuc")


class SVMInputError(ConfigError):
    """An SVM input has the wrong shape or value; the message names the field, the value and the rule.

    The shared ``ConfigError`` under its own name, so callers may catch either."""


class InfeasibleSVMError(RuntimeError):
    """The max-margin problem has no feasible point (e.g. two identical tokens with only one selected)."""


@dataclass(frozen=True)
class SVMSolution:
    """A solved margin problem. ``value`` is W [d, d] (Att-SVM) or a vector (p-, v-SVM); None unless solved.

    ``duals`` holds one multiplier per constraint, laid out like the constraints (for the Att-SVM
    [n, T], 0 at the selected token); ``margins`` the constraint values at the solution, same layout.
    """

    status: str
    norm: str
    value: np.ndarray | None
    objective: float
    duals: np.ndarray | None
    margins: np.ndarray | None
    constrained: np.ndarray  # bool mask: which entries of duals/margins are constraints
    alpha: np.ndarray | None = None
    rhs: np.ndarray | None = None  # required margin of each constraint (1, or 0 when relaxed)
    extra: dict = field(default_factory=dict)

    @property
    def optimal(self) -> bool:
        return self.status == cp.OPTIMAL

    @property
    def infeasible(self) -> bool:
        return self.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)

    @property
    def W(self) -> np.ndarray:
        return self.require().value

    def require(self) -> "SVMSolution":
        """This solution, or an exception saying why there is none."""
        if self.infeasible:
            raise InfeasibleSVMError(f"the {self.norm} max-margin problem is infeasible (solver status {self.status!r})")
        if not self.optimal:
            raise RuntimeError(f"the {self.norm} max-margin problem was not solved to tolerance (status {self.status!r})")
        return self

    @property
    def accuracy(self) -> float:
        """The relative accuracy the solver was asked for (its stated tolerance)."""
        return float(self.extra.get("solver_tol", SOLVER_TOL))

    @property
    def rank(self) -> int:
        """``numerical_rank`` of the solution at the solver's stated accuracy."""
        return numerical_rank(self.W, accuracy=self.accuracy)


@dataclass(frozen=True)
class JointSVMSolution:
    """The relaxed joint (v, p) problem: v^mm, its support inputs, and the relaxed p-SVM."""

    v: SVMSolution
    p: SVMSolution
    v_support: np.ndarray  # [n] bool: inputs with Y_i v^mmᵀ x_{iα_i} = 1


# ---------------------------------------------------------------------------------------------- checks
def _as_array(name: str, a, ndim: int) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != ndim:
        raise SVMInputError(name, f"array of shape {arr.shape}", f"a {ndim}-D array")
    if not np.all(np.isfinite(arr)):
        raise SVMInputError(name, "array with NaN/inf", "finite values")
    return arr


def check_tokens(X: Tokens, Z: Queries | None = None, alpha: Selection | None = None
                 ) -> tuple[Tokens, Queries | None, Selection | None]:
    """X [n, T, d] with T ≥ 2, Z [n, d], alpha [n] integers in [0, T)."""
    X = _as_array("X", X, 3)
    n, T, d = X.shape
    if n < 1 or d < 1:
        raise SVMInputError("X", f"shape {X.shape}", "[n, T, d] with n ≥ 1 and d ≥ 1")
    if T < 2:
        raise SVMInputError("X", f"shape {X.shape}", "at least T = 2 tokens per input (with T = 1 there is nothing to select)")
    if Z is not None:
        Z = _as_array("Z", Z, 2)
        if Z.shape != (n, d):
            raise SVMInputError("Z", f"shape {Z.shape}", f"[n, d] = [{n}, {d}] (one query per input)")
    if alpha is not None:
        a = np.asarray(alpha)
        if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer):
            raise SVMInputError("alpha", a, f"an integer array of shape [{n}] (one selected token per input)")
        if a.min() < 0 or a.max() >= T:
            raise SVMInputError("alpha", a, f"token indices in [0, {T})")
        alpha = a.astype(np.int64)
    return X, Z, alpha


def nonselected_mask(n: int, T: int, alpha: Selection) -> Bool[np.ndarray, "n T"]:
    """[n, T] bool, True where t ≠ α_i (the tokens that carry a constraint)."""
    mask = np.ones((n, T), dtype=bool)
    mask[np.arange(n), alpha] = False
    return mask


def att_svm_rows(X: Tokens, Z: Queries, alpha: Selection) -> tuple[Float[np.ndarray, "m d*d"], Bool[np.ndarray, "n T"]]:
    """G [m, d²] with rows vec((x_{iα_i} − x_it) z_iᵀ) (row-major), so that G·vec(W) are the margins; and the mask."""
    n, T, d = X.shape
    mask = nonselected_mask(n, T, alpha)
    ii, tt = np.nonzero(mask)
    diffs = X[ii, alpha[ii]] - X[ii, tt]
    return np.einsum("md,me->mde", diffs, Z[ii]).reshape(len(ii), d * d), mask


def attention_margins(W: Float[np.ndarray, "d d"], X: Tokens, Z: Queries, alpha: Selection) -> Float[np.ndarray, "n T"]:
    """[n, T]: (x_{iα_i} − x_it)ᵀ W z_i (0 at t = α_i)."""
    scores = np.einsum("ntd,de,ne->nt", X, W, Z)
    return scores[np.arange(len(alpha)), alpha][:, None] - scores


# ---------------------------------------------------------------------------------------------- solver
def solver_tolerances(solver: str, tol: float | None) -> tuple[float, ...]:
    """The tolerances tried in turn: CLARABEL 1e-9 then 1e-8 (see SOLVER_TOLS), SCS 1e-9; or ``(tol,)``."""
    if solver not in SOLVERS:
        raise SVMInputError("solver", solver, f"one of {SOLVERS}")
    if tol is None:
        return SOLVER_TOLS if solver == "CLARABEL" else (SCS_TOL,)
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise SVMInputError("tol", tol, "a float in (0, 1), or None for the solver's accurate default")
    return (float(tol),)


def solve_margin_program(G: Float[np.ndarray, "m k"], h: Float[np.ndarray, "m"], shape: tuple[int, ...], norm: str,
                         E: Float[np.ndarray, "m_eq k"] | None = None, e: Float[np.ndarray, "m_eq"] | None = None,
                         solver: str = "CLARABEL", tol: float | None = None) -> dict[str, Any]:
    """min ‖u‖ (Frobenius/Euclidean or nuclear) s.t. G·vec(u) ≥ h and E·vec(u) = e, with ``solver``.

    The Euclidean norm is minimized as ½‖u‖², so the multipliers satisfy u = Gᵀλ + Eᵀμ; the nuclear
    norm as ‖u‖_⋆, so Gᵀλ + Eᵀμ ∈ ∂‖u‖_⋆. Returns status, value, lam, mu, the norm of the solution and
    the tolerance used.
    """
    if norm not in NORMS:
        raise SVMInputError("norm", norm, f"one of {NORMS}")
    tols = solver_tolerances(solver, tol)
    if norm == "nuc" and len(shape) != 2:
        raise SVMInputError("norm", norm, "'fro' for a vector unknown (the nuclear norm needs a matrix)")
    U = cp.Variable(shape)
    u = cp.vec(U, order="C") if len(shape) == 2 else U
    constraints = []
    if G.shape[0]:
        constraints.append(G @ u >= h)
    if E is not None and E.shape[0]:
        constraints.append(E @ u == e)
    objective = cp.Minimize(0.5 * cp.sum_squares(u) if norm == "fro" else cp.normNuc(U))
    problem = cp.Problem(objective, constraints)
    for tol in tols:
        options = clarabel_options(tol) if solver == "CLARABEL" else scs_options(tol)
        try:
            with warnings.catch_warnings():  # an inaccurate first try is retried, and reported if it stays so
                warnings.simplefilter("ignore", UserWarning)
                problem.solve(solver=solver, **options)
        except cp.error.SolverError as exc:  # numerical breakdown: report, never hide
            return dict(status=f"solver_error: {exc}", value=None, lam=None, mu=None, objective=float("nan"), tol=tol)
        if problem.status != cp.OPTIMAL_INACCURATE:
            break
    status = problem.status
    if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or U.value is None:
        return dict(status=status, value=None, lam=None, mu=None, objective=float("nan"), tol=tol)
    value = np.asarray(U.value, dtype=np.float64)
    lam = np.asarray(constraints[0].dual_value, dtype=np.float64).reshape(-1) if G.shape[0] else np.zeros(0)
    mu = None
    if E is not None and E.shape[0]:
        mu = np.asarray(constraints[-1].dual_value, dtype=np.float64).reshape(-1)
    size = np.linalg.norm(value) if norm == "fro" else np.linalg.svd(value, compute_uv=False).sum()
    return dict(status=status, value=value, lam=lam, mu=mu, objective=float(size), tol=tol)


def _scatter(values: np.ndarray | None, mask: np.ndarray) -> np.ndarray | None:
    if values is None:
        return None
    out = np.zeros(mask.shape)
    out[mask] = values
    return out


# ---------------------------------------------------------------------------------------------- problems
def solve_att_svm(X: Tokens, Z: Queries, alpha: Selection, norm: str = "fro", solver: str = "CLARABEL",
                  tol: float | None = None) -> SVMSolution:
    """Att-SVM (``norm='fro'``) or Att-SVM⋆ (``norm='nuc'``) for the selection α.

    X [n, T, d] tokens, Z [n, d] queries (self-attention: Z = X[:, 0]), alpha [n] selected tokens.
    ``solver`` and ``tol``: see ``solve_margin_program`` (default CLARABEL at 1e-9).
    """
    X, Z, alpha = check_tokens(X, Z, alpha)
    if Z is None or alpha is None:
        raise SVMInputError("Z/alpha", None, "both queries Z [n, d] and the selection alpha [n] are required")
    n, T, d = X.shape
    G, mask = att_svm_rows(X, Z, alpha)
    res = solve_margin_program(G, np.ones(G.shape[0]), (d, d), norm, solver=solver, tol=tol)
    W = res["value"]
    margins = attention_margins(W, X, Z, alpha) if W is not None else None
    return SVMSolution(status=res["status"], norm=norm, value=W, objective=res["objective"],
                       duals=_scatter(res["lam"], mask), margins=margins, constrained=mask, alpha=alpha,
                       rhs=mask.astype(np.float64), extra=dict(G=G, solver_tol=res["tol"], solver=solver))


def solve_p_svm(K: Tokens, alpha: Selection, margin: Float[np.ndarray, "n"] | None = None) -> SVMSolution:
    """p-SVM with fixed keys K [n, T, d]: min ‖p‖ s.t. pᵀ(k_{iα_i} − k_it) ≥ margin_i (default 1 for all i)."""
    K, _, alpha = check_tokens(K, None, alpha)
    if alpha is None:
        raise SVMInputError("alpha", None, "the selection alpha [n] is required")
    n, T, d = K.shape
    margin = np.ones(n) if margin is None else np.asarray(margin, dtype=np.float64)
    if margin.shape != (n,):
        raise SVMInputError("margin", margin, f"a vector of shape [{n}] (required margin per input)")
    mask = nonselected_mask(n, T, alpha)
    ii, tt = np.nonzero(mask)
    G = K[ii, alpha[ii]] - K[ii, tt]
    res = solve_margin_program(G, margin[ii], (d,), "fro")
    p = res["value"]
    margins = None
    if p is not None:
        s = K @ p
        margins = s[np.arange(n), alpha][:, None] - s
    return SVMSolution(status=res["status"], norm="fro", value=p, objective=res["objective"],
                       duals=_scatter(res["lam"], mask), margins=margins, constrained=mask, alpha=alpha,
                       rhs=mask * margin[:, None], extra=dict(G=G, solver_tol=res["tol"]))


def solve_v_svm(X_selected: Float[np.ndarray, "n d"], Y: Float[np.ndarray, "n"]) -> SVMSolution:
    """v-SVM on the selected tokens X_selected [n, d] with labels Y [n] ∈ {±1}: min ‖v‖ s.t. Y_i vᵀx_i ≥ 1."""
    Xs = _as_array("X_selected", X_selected, 2)
    Y = _as_array("Y", Y, 1)
    if Y.shape != (Xs.shape[0],) or not np.all(np.isin(Y, (-1.0, 1.0))):
        raise SVMInputError("Y", Y, f"labels in {{-1, +1}} of shape [{Xs.shape[0]}]")
    G = Y[:, None] * Xs
    res = solve_margin_program(G, np.ones(len(Y)), (Xs.shape[1],), "fro")
    v = res["value"]
    mask = np.ones(len(Y), dtype=bool)
    return SVMSolution(status=res["status"], norm="fro", value=v, objective=res["objective"], duals=res["lam"],
                       margins=None if v is None else G @ v, constrained=mask, rhs=np.ones(len(Y)), extra=dict(G=G, solver_tol=res["tol"]))


# A v-SVM constraint counts as active when its margin is within this of 1: CLARABEL stops at 1e-9
# relative residuals, so an active margin sits at 1 ± O(1e-9·‖x‖‖v‖); 1e-6 is far above that and far
# below the gap to the next margin on generic data (which is O(1)).
SUPPORT_TOL = 1e-6


def solve_joint_relaxed(X: Tokens, Y: Float[np.ndarray, "n"], alpha: Selection, K: Tokens | None = None
                        ) -> JointSVMSolution:
    """Relaxed joint (v, p) problem of "Max-Margin Token Selection in Attention Mechanism".

    v^mm is the v-SVM on the selected tokens x_{iα_i}; the p-SVM then asks margin 1 only of the inputs
    that are support vectors of v^mm (Y_i v^mmᵀ x_{iα_i} = 1) and margin 0 of the others. Keys K
    default to the tokens X (W = I).
    """
    X, _, alpha = check_tokens(X, None, alpha)
    if alpha is None:
        raise SVMInputError("alpha", None, "the selection alpha [n] is required")
    K = X if K is None else check_tokens(K)[0]
    if K.shape[:2] != X.shape[:2]:
        raise SVMInputError("K", f"shape {K.shape}", f"[n, T, ·] = [{X.shape[0]}, {X.shape[1]}, ·] like X")
    v = solve_v_svm(X[np.arange(len(alpha)), alpha], Y)
    if not v.optimal:
        raise InfeasibleSVMError(f"the v-SVM of the relaxed joint problem failed (status {v.status!r})")
    support = v.margins <= 1.0 + SUPPORT_TOL
    p = solve_p_svm(K, alpha, margin=support.astype(np.float64))
    return JointSVMSolution(v=v, p=p, v_support=support)


# ---------------------------------------------------------------------------------------------- metrics
def correlation(A: Float[np.ndarray, "*shape"], B: Float[np.ndarray, "*shape"]) -> float:
    """⟨A, B⟩ / (‖A‖_F ‖B‖_F): 1 when A and B point the same way. A zero matrix has no direction: an error."""
    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    if A.shape != B.shape:
        raise SVMInputError("B", f"array of shape {B.shape}", f"the shape of A, {A.shape}")
    for name, M in (("A", A), ("B", B)):
        if not np.all(np.isfinite(M)):
            raise SVMInputError(name, "array with NaN/inf", "finite values")
        if not np.any(M):
            raise SVMInputError(name, "the zero matrix", "a nonzero matrix (the zero matrix has no direction)")
    return float(np.sum(A * B) / (np.linalg.norm(A) * np.linalg.norm(B)))


def numerical_rank(W: Float[np.ndarray, "d d"], accuracy: float | None = None) -> int:
    """Rank judged by the largest relative spectral gap above the accuracy of W.

    With σ_1 ≥ σ_2 ≥ … the singular values of W and floor = accuracy·σ_1, the singular values at or
    below the floor are zero (W is not known better than that), and the rank is the k maximizing
    σ_k / σ_{k+1} over the remaining ones, with σ_{k+1} := floor after the last of them. A zero
    matrix has rank 0.

    ``accuracy`` is the relative accuracy of W: for a solver's solution its stated tolerance (see
    ``SVMSolution.rank``); by default d·ε, the round-off of an SVD in float64. Why a floor and not
    the bare largest gap: with σ = (1, .233, .120, 1e-8) from a solver that is accurate to 1e-8, the
    gap .120 → 1e-8 and the gap 1e-8 → round-off are both ~1e7, and the last singular value is solver
    noise; at accuracy 1e-8 it sits on the floor and the rank is 3.
    """
    s = np.linalg.svd(np.asarray(W, dtype=np.float64), compute_uv=False)
    if accuracy is not None and not (isinstance(accuracy, (int, float)) and 0 < accuracy < 1):
        raise SVMInputError("accuracy", accuracy, "a relative accuracy in (0, 1), or None for float64 round-off")
    if s.size == 0 or s[0] == 0.0:
        return 0
    accuracy = s.size * np.finfo(np.float64).eps if accuracy is None else float(accuracy)
    floor = max(accuracy * s[0], np.finfo(np.float64).tiny)
    kept = s[s > floor]
    extended = np.append(kept, floor)
    return int(np.argmax(extended[:-1] / extended[1:]) + 1)
