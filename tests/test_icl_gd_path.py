"""k-step GD for all k at once (``theory.icl.gd_path``) against the one-trajectory predictor, and the
per-k step tuning against a brute-force search over the same grid.

Tolerance: both sides run the same float64 recursion w ← w − η P (g w − m) with sums over d ≤ 5 terms
in a different order; for η inside the stable range (≤ 1/λ_max here) the recursion contracts, so the
rounding differences stay at ~k·d·u relative to the largest |ŷ| along the way (u = 1.1e-16): 1e-10 for
k ≤ 12 leaves a margin of ~1e4.
"""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from theory.icl import predictors as P
from theory.icl.gd_path import gd_plus_plus, gd_trajectories, step_grid, tuned_gd_path, tuned_gd_plus_plus

F64 = torch.float64


def _prompts(B, N, d, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(B, N, d, generator=g, dtype=F64)
    w = torch.randn(B, d, generator=g, dtype=F64)
    x_q = torch.randn(B, d, generator=g, dtype=F64)
    y = (X @ w[..., None])[..., 0] + 0.1 * torch.randn(B, N, generator=g, dtype=F64)
    return X, y, x_q, (x_q * w).sum(-1)


@settings(max_examples=20, deadline=None)
@given(N=st.integers(1, 10), d=st.integers(1, 5), k_max=st.integers(0, 12), seed=st.integers(0, 2**31 - 1),
       frac=st.floats(0.05, 1.0), precondition=st.booleans())
def test_every_step_of_the_trajectories_is_k_step_gd(N, d, k_max, seed, frac, precondition):
    X, y, x_q, _ = _prompts(4, N, d, seed)
    lam = float(torch.linalg.eigvalsh(X.transpose(1, 2) @ X / N)[:, -1].max())
    etas = torch.tensor([frac / lam, 0.5 * frac / lam], dtype=F64)
    Pm = torch.diag(torch.linspace(0.5, 1.0, d, dtype=F64)) if precondition else None
    traj = gd_trajectories(X, y, x_q, etas, k_max, Pm)
    assert traj.shape == (2, k_max + 1, 4)
    for g, eta in enumerate(etas.tolist()):
        for k in range(k_max + 1):
            ref = P.preconditioned_gd(X, y, x_q, eta, k, Pm).y_hat
            scale = float(ref.abs().max()) + 1.0
            assert float((traj[g, k] - ref).abs().max()) <= 1e-10 * scale, (g, k)


def test_tuned_path_picks_the_best_grid_step_for_each_k():
    """The tuned error at every k equals the least error over the grid found by running ``predictors.gd``
    once per (η, k): an off-by-one in k or a wrong axis of the argmin gives another step's error."""
    X, y, x_q, y_q = _prompts(300, 7, 4, seed=3)
    etas = step_grid(X, size=12)
    tuned = tuned_gd_path(X, y, x_q, y_q, k_max=6, etas=etas)
    for k in range(1, 7):
        errors = [float(((P.gd(X, y, x_q, float(e), k).y_hat - y_q) ** 2).mean()) for e in etas]
        best = min(range(len(errors)), key=errors.__getitem__)
        assert abs(float(tuned.mse[k]) - errors[best]) <= 1e-10 * errors[best]
        assert float(tuned.eta[k]) == float(etas[best])
    assert float(tuned.mse[0]) == float((y_q**2).mean())  # zero steps predict 0


def test_diverging_steps_are_never_chosen_and_many_steps_approach_least_squares():
    """Noiseless, N = 3d: least squares is exact, and tuned GD's error must shrink towards it as k grows
    (tuned k+Δ-step GD can at least use k-step GD's step, and each stable step contracts the error on every
    prompt) — checked between k = 1, 10 and 40 with the grid's steps, some of which diverge."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(500, 12, 4, generator=g, dtype=F64)
    w = torch.randn(500, 4, generator=g, dtype=F64)
    x_q = torch.randn(500, 4, generator=g, dtype=F64)
    y, y_q = (X @ w[..., None])[..., 0], (x_q * w).sum(-1)
    tuned = tuned_gd_path(X, y, x_q, y_q, k_max=40)
    assert torch.isfinite(tuned.mse).all()
    assert tuned.mse[40] < tuned.mse[10] < tuned.mse[1] < tuned.mse[0]
    assert float(tuned.mse[40]) < 0.05 * float(tuned.mse[1])


@settings(max_examples=15, deadline=None)
@given(N=st.integers(1, 10), d=st.integers(1, 5), k=st.integers(1, 4), seed=st.integers(0, 2**31 - 1),
       frac=st.floats(0.05, 1.0))
def test_gd_plus_plus_without_data_updates_is_gd(N, d, k, seed, frac):
    """γ = 0 leaves the data tokens as they are: every layer of GD++ is then a GD step (the residual bookkeeping
    of the construction); with γ ≠ 0 the first layer is still one GD step (the data update acts afterwards)."""
    X, y, x_q, _ = _prompts(3, N, d, seed)
    lam = float(torch.linalg.eigvalsh(X.transpose(1, 2) @ X / N)[:, -1].max())
    eta = frac / lam
    preds = gd_plus_plus(X, y, x_q, [eta] * k, [0.0] * k)
    for t in range(k + 1):
        ref = P.gd(X, y, x_q, eta, t).y_hat
        assert float((preds[t] - ref).abs().max()) <= 1e-10 * (float(ref.abs().max()) + 1.0)
    moved = gd_plus_plus(X, y, x_q, [eta] * k, [0.3] * k)
    assert float((moved[1] - P.gd(X, y, x_q, eta, 1).y_hat).abs().max()) <= 1e-10 * (float(moved[1].abs().max()) + 1)


def test_tuned_gd_plus_plus_is_no_worse_than_tuned_gd_and_linear_in_the_query():
    """Nelder–Mead starts at tuned GD with γ = 0, so its error cannot exceed tuned GD's; and ŷ = ŵᵀx_q with the
    returned ŵ (GD++ is linear in the query) to rounding."""
    X, y, x_q, y_q = _prompts(400, 12, 4, seed=5)
    tuned = tuned_gd_plus_plus(X, y, x_q, y_q, steps=2)
    plain = tuned_gd_path(X, y, x_q, y_q, k_max=2)
    assert tuned["mse"] <= float(plain.mse[2])
    assert torch.allclose((tuned["w_hat"] * x_q).sum(-1), tuned["y_hat"], rtol=1e-10, atol=1e-12)
