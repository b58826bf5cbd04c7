"""A KKT certificate for a solved max-margin problem  min ‖u‖  s.t.  G·vec(u) ≥ h.

With multipliers λ (cvxpy's dual values of the inequality), the four conditions checked are

- primal feasibility:       G·vec(u) ≥ h                           (violation max(h − Gu, 0))
- dual feasibility:         λ ≥ 0                                   (violation max(−λ, 0))
- complementary slackness:  λ_j (G u − h)_j = 0 for every j
- stationarity:
    * Frobenius / Euclidean (the solver minimizes ½‖u‖²): u = Gᵀλ, i.e. for the Att-SVM
      W = Σ_i Σ_{t≠α_i} λ_it (x_{iα_i} − x_it) z_iᵀ  ("Transformers as Support Vector Machines",
      Tarzanagh et al. 2023, the KKT form behind rank(W^mm) ≤ n);
    * nuclear: M := mat(Gᵀλ) ∈ ∂‖W‖_⋆. With W = U_r Σ V_rᵀ (r by the spectral gap), the subdifferential
      is {U_r V_rᵀ + N : U_rᵀN = 0, N V_r = 0, ‖N‖_2 ≤ 1}; we check ‖U_rᵀM − V_rᵀ‖_F, ‖M V_r − U_r‖_F
      (M acts as the identity between the singular subspaces) and ‖(I−U_rU_rᵀ) M (I−V_rV_rᵀ)‖_2 ≤ 1.
- duality gap: Frobenius ½‖u‖² = λᵀh − ½‖Gᵀλ‖²; nuclear ‖W‖_⋆ = λᵀh.

Tolerances. Default 1e-6, relative to max(1, scale of the quantity), for everything except the
nuclear stationarity: CLARABEL stops at 1e-9 residuals and gap on its internally equilibrated problem
(problems.SOLVER_TOL); undoing the equilibration (diagonal scalings up to ~1e2 on these O(1)-entry
problems) loses up to about three decades (two at the 1e-8 fallback). Measured: ≤ 1e-9 on the
n=6, T=8, d=10 instances.

Nuclear stationarity is different: cvxpy solves ‖W‖_⋆ through the semidefinite lift
S = [[P, W], [Wᵀ, R]] ⪰ 0, whose dual block is Λ = ½[[I, −M], [−Mᵀ, I]] ⪰ 0 (‖Λ‖₂ ≤ 1). An interior
point stops with complementarity ⟨S, Λ⟩ = ε ≤ tol·(1 + ‖W‖_⋆), tol the solver tolerance used, and for PSD matrices
‖SΛ‖_F ≤ √(‖S‖₂‖Λ‖₂ ε) ≤ √(2σ_1 ε); SΛ = 0 is exactly MV = U, UᵀM = Vᵀ on the range of W, and
recovering those from SΛ divides by σ_r. So the residual scales like √ε, not ε:
    tol_stationarity(nuc) = √(2 σ_1(W) · tol · (1 + ‖W‖_⋆)) / σ_r(W).
Measured: 5e-6–3e-5 at SOLVER_TOL = 1e-9 and ≈ 10× less at 1e-10 (the √ scaling); the bound is
≈ 1e-4 on these instances. Every residual is reported, so the actual accuracy stays visible.

Every tolerance is capped at MAX_TOL = 1e-3, whatever the conditioning: σ_1/σ_r can be arbitrarily
large (a solver-noise singular value read as part of the rank once made the bound 5.1e3, a check of
nothing), and a residual of 0.1 % of the solution's scale is a wrong solution at any conditioning we
solve. The rank r itself is read at the solver's stated accuracy (``SVMSolution.rank``), so singular
values at solver noise do not enter σ_r. A certificate can therefore always fail: a solution moved by
more than MAX_TOL (relative) along the constraint rows or off the subgradient is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .problems import SVMInputError, SVMSolution

KKT_TOL = 1e-6
MAX_TOL = 1e-3


@dataclass(frozen=True)
class KKTCertificate:
    norm: str
    primal_violation: float
    dual_violation: float
    complementary_slackness: float
    stationarity: float
    duality_gap: float
    subgradient_spectral_norm: float  # nuclear only: ‖(I−UUᵀ)M(I−VVᵀ)‖_2, must be ≤ 1 (nan for Frobenius)
    rank: int
    tol: float
    stationarity_tol: float


    @property
    def passed(self) -> bool:
        ok = max(self.primal_violation, self.dual_violation, self.complementary_slackness,
                 self.duality_gap) <= self.tol and self.stationarity <= self.stationarity_tol
        if self.norm == "nuc":
            ok = ok and self.subgradient_spectral_norm <= 1.0 + self.tol
        return bool(ok)

    def summary(self) -> str:
        return (f"KKT[{self.norm}] {'PASS' if self.passed else 'FAIL'} (tol {self.tol:g}): primal {self.primal_violation:.1e}, "
                f"dual {self.dual_violation:.1e}, slackness {self.complementary_slackness:.1e}, "
                f"stationarity {self.stationarity:.1e} (tol {self.stationarity_tol:.1e}), gap {self.duality_gap:.1e}, rank {self.rank}")


def certify(solution: SVMSolution, tol: float = KKT_TOL) -> KKTCertificate:
    """Check a solution returned by ``problems`` against its own KKT conditions (see module docstring)."""
    if not (isinstance(tol, (int, float)) and 0 < tol <= MAX_TOL):
        raise SVMInputError("tol", tol, f"a relative tolerance in (0, {MAX_TOL:g}] (MAX_TOL: larger checks nothing)")
    sol = solution.require()
    G = sol.extra["G"]
    u = sol.value.reshape(-1)  # row-major, as the rows of G were built
    lam = sol.duals[sol.constrained]
    h = sol.rhs[sol.constrained]
    slack = G @ u - h
    lam_scale = max(1.0, float(np.max(np.abs(lam), initial=0.0)))

    primal = float(max(0.0, -np.min(slack, initial=0.0)) / max(1.0, float(np.max(np.abs(h), initial=0.0))))
    dual = float(max(0.0, -np.min(lam, initial=0.0)) / lam_scale)
    slackness = float(np.max(np.abs(lam * slack), initial=0.0) / lam_scale)
    g = G.T @ lam
    spectral = float("nan")
    stationarity_tol = tol
    if sol.norm == "fro":
        stationarity = float(np.linalg.norm(u - g) / max(1.0, np.linalg.norm(u)))
        primal_obj = 0.5 * u @ u
        dual_obj = lam @ h - 0.5 * g @ g
        rank = sol.rank if sol.value.ndim == 2 else int(np.any(u != 0))
    else:
        W, M = sol.value, g.reshape(sol.value.shape)
        rank = sol.rank
        Uf, _, Vt = np.linalg.svd(W)
        U, V = Uf[:, :rank], Vt[:rank].T
        stationarity = float(max(np.linalg.norm(U.T @ M - V.T), np.linalg.norm(M @ V - U)))
        PU, PV = np.eye(W.shape[0]) - U @ U.T, np.eye(W.shape[1]) - V @ V.T
        spectral = float(np.linalg.norm(PU @ M @ PV, 2))
        sv = np.linalg.svd(W, compute_uv=False)
        primal_obj = sv.sum()
        dual_obj = lam @ h
        if rank:
            bound = float(np.sqrt(2 * sv[0] * sol.accuracy * (1 + primal_obj)) / sv[rank - 1])
            stationarity_tol = min(MAX_TOL, max(tol, bound))
    gap = float(abs(primal_obj - dual_obj) / max(1.0, abs(primal_obj)))
    return KKTCertificate(norm=sol.norm, primal_violation=primal, dual_violation=dual, complementary_slackness=slackness,
                          stationarity=stationarity, duality_gap=gap, subgradient_spectral_norm=spectral, rank=rank,
                          tol=tol, stationarity_tol=stationarity_tol)
