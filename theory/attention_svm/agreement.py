"""Do two solvers return the same max-margin solution? Tolerances from their stated accuracy.

For the margin problems of ``problems`` — min ‖u‖ s.t. G·vec(u) ≥ h with h > 0 (the Att-SVM has
h = 1) — each solver X stops at a stated tolerance ε_X: duality gap ≤ ε_X(1 + f) (the absolute +
relative gap criteria of CLARABEL and SCS, f the objective) and constraint residuals ≤ ε_X·scale.

Feasibility repair. A returned point may violate constraints by its feasibility residual;
ũ = s·u with s = max(1, max_j h_j / (Gu)_j) is feasible, and ‖ũ − u‖ = (s − 1)‖u‖ (s is measured).

Frobenius (objective f = ½‖u‖²). It is 1-strongly convex and u* is the projection of 0 onto the
feasible set, so every feasible ũ has ‖ũ − u*‖² ≤ ‖ũ‖² − ‖u*‖² = 2(f(ũ) − f*). With the stated gap,
    ‖u_A − u_B‖ ≤ Σ_X [ (s_X − 1)‖u_X‖ + √(2 ε_X (1 + f_X)) ]                     (difference_tol)
    |f(ũ_A) − f(ũ_B)| ≤ Σ_X [ ε_X (1 + f_X) ] + the repair's (s_X² − 1) f_X          (objective_tol)
The square root is the price of turning a gap into a distance (≈ 4e-5 relative at ε = 1e-9); the
measured differences are ~1e-9 (see the tests). The same bound with the gap certified a posteriori
by weak duality, D(λ) = λᵀh − ½‖Gᵀλ‖² ≤ f* for the solvers' λ ≥ 0, is ``certified_distance``.

Nuclear (f = ‖W‖_⋆, not strongly convex: a gap alone bounds no distance).
- objectives: as above, |f(W̃_A) − f(W̃_B)| ≤ Σ_X [ε_X (1 + f_X) + (s_X − 1) f_X].
- the part of a solution beyond rank r, certified: with λ' = λ / max(1, ‖mat(Gᵀλ)‖₂) (so that
  M' = mat(Gᵀλ') has ‖M'‖₂ ≤ 1 and LB = λ'ᵀh ≤ f* by weak duality), M' = Σ_k μ_k a_k b_kᵀ,
  U = [a_1…a_r], V = [b_1…b_r] (r = the reference solution's rank) and ν = μ_{r+1}, the dual-norm
  witness U diag(μ_1..r) Vᵀ + (polar factor of P_U⊥ W P_V⊥) gives for every feasible W
      ‖W‖_⋆ ≥ ⟨M', W⟩ + (1 − ν)‖P_U⊥ W P_V⊥‖_⋆ ≥ LB + (1 − ν)‖P_U⊥ W P_V⊥‖_⋆,
  so ‖P_U⊥ W̃_X P_V⊥‖_⋆ ≤ (‖W̃_X‖_⋆ − LB)/(1 − ν): the singular values a solution carries outside
  the certified rank-r subspaces are bounded by its suboptimality — what rank plots rely on.
- the whole difference: for an SDP solved to complementarity ε the solution error is O(√ε) when
  strict complementarity is lost (error bounds of singularity degree 1, Sturm 2000, "Error bounds for
  linear matrix inequalities"), with the conditioning σ_1/σ_r as constant — the scaling of the
  nuclear stationarity tolerance in ``kkt``:
      ‖W_A − W_B‖_F / ‖W_A‖_F ≤ (√ε_A + √ε_B) · √(2 σ_1 (1 + ‖W_A‖_⋆)) / σ_r            (difference_tol)

Every tolerance gets ROUNDOFF added: float64 sums of at most a few hundred O(1) terms are exact to
~1e-13, so 1e-12 separates round-off from a real violation. And every tolerance is capped at
``kkt.MAX_TOL`` (1e-3 relative): σ_1/σ_r and 1/(1 − ν) can be arbitrarily large, and a bound above
0.1 % would let two different solutions "agree". Ranks are read at solution A's stated accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kkt import MAX_TOL
from .problems import SOLVER_TOL, SVMInputError, SVMSolution


ROUNDOFF = 1e-12


@dataclass(frozen=True)
class Agreement:
    """Two solutions of the same margin problem, compared (see the module docstring for every bound)."""

    norm: str
    difference: float  # ‖u_A − u_B‖_F / ‖u_A‖_F
    difference_tol: float  # from the stated tolerances (relative)
    objective_difference: float  # |f(ũ_A) − f(ũ_B)| / f(ũ_A), f = ½‖u‖² or ‖W‖_⋆, after feasibility repair
    objective_tol: float  # from the stated tolerances (relative)
    certified_distance: float  # Frobenius: a-posteriori bound on ‖u_A − u_B‖ / ‖u_A‖ from weak duality (nan for nuclear)
    off_rank_mass: float  # nuclear: max_X ‖P_U⊥ W̃_X P_V⊥‖_⋆ / ‖W̃_A‖_⋆ (nan for Frobenius)
    off_rank_tol: float  # nuclear: its certified bound, relative (nan for Frobenius)
    rank: int  # rank of solution A (spectral gap); defines U, V for the nuclear norm
    tols: tuple[float, float]  # ε_A, ε_B: the solvers' stated tolerances

    @property
    def passed(self) -> bool:
        ok = self.difference <= self.difference_tol and self.objective_difference <= self.objective_tol
        if self.norm == "nuc":
            ok = ok and self.off_rank_mass <= self.off_rank_tol
        return bool(ok)

    def summary(self) -> str:
        out = (f"agreement[{self.norm}, ε = {self.tols[0]:g}, {self.tols[1]:g}] {'PASS' if self.passed else 'FAIL'}: "
               f"difference {self.difference:.1e} (tol {self.difference_tol:.1e}), "
               f"objective {self.objective_difference:.1e} (tol {self.objective_tol:.1e})")
        if self.norm == "nuc":
            out += f", mass beyond rank {self.rank} {self.off_rank_mass:.1e} (certified ≤ {self.off_rank_tol:.1e})"
        else:
            out += f", certified distance ≤ {self.certified_distance:.1e}"
        return out


def _capped(tol: float) -> float:
    return float(min(MAX_TOL, tol) + ROUNDOFF)


def _repair(G: np.ndarray, h: np.ndarray, u: np.ndarray) -> float:
    """s ≥ 1 with s·u feasible for G·u ≥ h (h > 0); inf when some margin is ≤ 0 (no scaling helps)."""
    margins = G @ u
    if np.any(margins <= 0):
        return float("inf")
    return float(max(1.0, np.max(h / margins)))


def _nuclear(W: np.ndarray) -> float:
    return float(np.linalg.svd(W, compute_uv=False).sum())


def compare(a: SVMSolution, b: SVMSolution) -> Agreement:
    """Compare solution ``b`` with the reference ``a`` (the same problem, e.g. SCS against CLARABEL)."""
    a, b = a.require(), b.require()
    if a.norm != b.norm or a.value.shape != b.value.shape:
        raise SVMInputError("b", f"a {b.norm} solution of shape {b.value.shape}",
                            f"a {a.norm} solution of shape {a.value.shape} (the same problem as a)")
    G, mask = a.extra["G"], a.constrained
    h = a.rhs[mask]
    if not np.array_equal(G, b.extra["G"]) or not np.array_equal(h, b.rhs[b.constrained]):
        raise SVMInputError("b", "a solution of other constraints", "a solution of the same constraints as a")
    if np.any(h <= 0):
        raise SVMInputError("a", "constraints with right-hand side ≤ 0", "h > 0 (the Att-SVM's margins of 1)")
    eps = (float(a.extra.get("solver_tol", SOLVER_TOL)), float(b.extra.get("solver_tol", SOLVER_TOL)))
    ua, ub = a.value.reshape(-1), b.value.reshape(-1)
    scales = (_repair(G, h, ua), _repair(G, h, ub))
    duals = [np.maximum(s.duals[mask], 0.0) for s in (a, b) if s.duals is not None]
    difference = float(np.linalg.norm(ua - ub) / np.linalg.norm(ua))
    nan = float("nan")
    if a.norm == "fro":
        f = [0.5 * s * s * (u @ u) for s, u in zip(scales, (ua, ub))]
        dist = sum((s - 1) * np.linalg.norm(u) + np.sqrt(2 * e * (1 + fx)) for s, u, e, fx in zip(scales, (ua, ub), eps, f))
        obj_tol = sum(e * (1 + fx) + (s * s - 1) * fx / (s * s) for s, e, fx in zip(scales, eps, f))
        D = max(float(lam @ h - 0.5 * np.sum((G.T @ lam) ** 2)) for lam in duals)
        certified = sum((s - 1) * np.linalg.norm(u) + np.sqrt(max(0.0, 2 * fx - 2 * D)) for s, u, fx in zip(scales, (ua, ub), f))
        norm_a = np.linalg.norm(ua)
        return Agreement(norm="fro", difference=difference, difference_tol=_capped(dist / norm_a),
                         objective_difference=float(abs(f[0] - f[1]) / f[0]), objective_tol=_capped(obj_tol / f[0]),
                         certified_distance=float(certified / norm_a) + ROUNDOFF, off_rank_mass=nan, off_rank_tol=nan,
                         rank=a.rank, tols=eps)
    shape = a.value.shape
    Ws = [s * sol.value for s, sol in zip(scales, (a, b))]
    f = [_nuclear(W) for W in Ws]
    obj_tol = sum(e * (1 + fx) + (s - 1) / s * fx for s, e, fx in zip(scales, eps, f))
    best = None
    for lam in duals:
        M = (G.T @ lam).reshape(shape)
        scale = max(1.0, float(np.linalg.norm(M, 2)))
        LB = float(lam @ h) / scale
        if best is None or LB > best[0]:
            best = (LB, M / scale)
    LB, M = best
    r = a.rank
    Um, mu, Vmt = np.linalg.svd(M)
    nu = float(mu[r]) if r < len(mu) else 0.0
    PU = np.eye(shape[0]) - Um[:, :r] @ Um[:, :r].T
    PV = np.eye(shape[1]) - Vmt[:r].T @ Vmt[:r]
    off = max(_nuclear(PU @ W @ PV) for W in Ws)
    off_tol = (max(f) - LB) / (1 - nu) if nu < 1 else float("inf")
    sv = np.linalg.svd(a.value, compute_uv=False)
    prior = (np.sqrt(eps[0]) + np.sqrt(eps[1])) * np.sqrt(2 * sv[0] * (1 + sv.sum())) / sv[r - 1] if r else float("inf")
    return Agreement(norm="nuc", difference=difference, difference_tol=_capped(prior),
                     objective_difference=float(abs(f[0] - f[1]) / f[0]), objective_tol=_capped(obj_tol / f[0]),
                     certified_distance=nan, off_rank_mass=float(off / f[0]), off_rank_tol=_capped(off_tol / f[0]),
                     rank=r, tols=eps)
