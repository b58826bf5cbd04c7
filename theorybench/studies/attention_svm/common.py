"""What the directional-convergence and rank-and-saturation figures share: the runs they both read.

"Transformers as Support Vector Machines" and "Max-Margin Token Selection in Attention Mechanism"
(Tarzanagh, Li, Thrampoulidis, Oymak, 2023). One layer f(X) = vᵀ Xᵀ softmax(X W z), logistic loss,
normalized GD (η = 0.1) on W directly or on W = K Qᵀ, data of the ``equal_scores`` geometry (the
condition of the paper's global-convergence result, so the selected tokens α are the optimal ones).
The runs (one per seed and parameterization: the sweep ``attention_svm_seed_runs`` of
``experiments``) come from the run store, trained there if absent; both figures read them, cached per
size in this process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from probes.attention_svm import correlation_curve as _correlation_curve
from probes.attention_svm import selected_mass as _selected_mass
from theorybench.runs import get_or_train
from theorybench.threads import single_thread
from theorybench.train import load_snapshot_weights
from toy_models.tasks.attention_svm_data import AttentionSVMData

from .experiments import PARAMETERIZATIONS, seed_run_config
from .sizes import SeedRunSizes

PAPER_STEPS = 1000  # the paper's iterations: convergence criteria are not judged on shorter runs
NORM_LABELS = {"fro": "Frobenius Att-SVM", "nuc": "nuclear Att-SVM⋆"}
MATCHING_NORM = {"W": "fro", "KQ": "nuc"}  # the solution each parameterization is predicted to reach

CITE = ("'Transformers as Support Vector Machines' and 'Max-Margin Token Selection in Attention Mechanism' "
        "(Tarzanagh, Li, Thrampoulidis, Oymak 2023)")
TF_SVM = "Transformers as Support Vector Machines (Tarzanagh, Li, Thrampoulidis, Oymak 2023)"


@dataclass(frozen=True)
class SeedRun:
    """One data seed: the instance, both SVM solutions for α = opt, and the W(k) trajectory per parameterization."""

    seed: int
    inst: object  # toy_models.tasks.attention_svm_data.AttentionSVMInstance
    svm: dict  # norm -> theory.attention_svm.SVMSolution
    W: dict  # parameterization -> [steps+1, d, d]


@functools.lru_cache(maxsize=2)
def measure(sizes: SeedRunSizes) -> tuple[SeedRun, ...]:
    """Solve both Att-SVMs and read (or train) both parameterizations' runs for seeds 0 … seeds−1 of
    ``sizes`` (cached: both figures share them)."""
    # here, not at the top: theory.attention_svm loads cvxpy (≈ 0.6 s of the command line's start-up)
    from theory.attention_svm import solve_att_svm

    runs = []
    with single_thread():  # d×d = 10×10 tensors: extra intra-op threads only cost
        for seed in tqdm(range(sizes.seeds), desc="attention-SVM seeds", leave=False, disable=None):
            inst = AttentionSVMData(n=sizes.n, T=sizes.T, d=sizes.d, seed=seed).generate()
            svm = {norm: solve_att_svm(inst.X, inst.Z, inst.opt, norm).require() for norm in NORM_LABELS}
            W = {par: trajectory(get_or_train(seed_run_config(sizes, par, seed))) for par in PARAMETERIZATIONS}
            runs.append(SeedRun(seed, inst, svm, W))
    return tuple(runs)


def trajectory(run) -> np.ndarray:
    """W(k) = K(k) Q(k)ᵀ at every step k = 0 … steps of a run [steps+1, d, d], from its snapshots."""
    weights = load_snapshot_weights(run)
    return np.stack([(w["attn.W_K"][0] @ w["attn.W_Q"][0].T).numpy() for _, w in sorted(weights.items())])


def correlation_curve(W: np.ndarray, W_svm: np.ndarray) -> np.ndarray:
    """corr(W(k), W_svm) for every k of a trajectory [K, d, d]; nan where W(k) = 0 (k = 0: both inits give W = 0)."""
    return _correlation_curve(W, W_svm)


def selected_mass(W: np.ndarray, inst) -> np.ndarray:
    """Mean over inputs of softmax(X_i W(k) z_i) at the optimal token, for every k: [K]."""
    return _selected_mass(W, inst.X, inst.Z, inst.opt)


def mean_sd(curves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    stack = np.stack(curves)
    return stack.mean(axis=0), stack.std(axis=0, ddof=1)


def norm_colors() -> dict[str, str]:
    # matplotlib here, not at the top: the command line imports every study and should start fast
    import matplotlib.pyplot as plt

    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {"fro": cycle[0], "nuc": cycle[1]}
