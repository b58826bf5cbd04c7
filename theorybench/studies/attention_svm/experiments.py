"""The attention-SVM runs the trainer trains: one per data seed and parameterization, swept.

"Transformers as Support Vector Machines" (Tarzanagh, Li, Thrampoulidis, Oymak, 2023): one attention
layer f(X) = vᵀ Xᵀ softmax(X W z) (``toy_models.single_attention_config``), full-batch normalized GD
θ ← θ − η g/(‖g‖ + ε) on the logistic loss of one instance (``toy_models.tasks.attention_svm_data``,
the ``equal_scores`` geometry), η = 0.1, each trained factor normalized on its own. As the paper's
code: ε is float64's machine ε, and the (K, Q) runs add the ε-ridge ε(‖K‖² + ‖Q‖²) to the loss
(``weight_decay`` 2ε, coupled), which steers K and Q toward balance once the loss gradient is
round-off. Every step's weights are kept (``snapshot_every=1``): the figures read W(k) along k.
"""

from __future__ import annotations

from theorybench.experiment import ExperimentConfig, OptimConfig, TrainConfig
from theorybench.registry import SweepSpec, register_sweep
from toy_models.single_attention_config import SingleAttentionConfig
from toy_models.svm_training import EPS
from toy_models.tasks.attention_svm_data import AttentionSVMData

from .sizes import SEED_RUN_SIZES, SeedRunSizes

LR = 0.1
PARAMETERIZATIONS = {"W": "W trained directly", "KQ": "W = K Qᵀ, K and Q trained"}


def seed_run_config(sizes: SeedRunSizes, parameterization: str, seed: int) -> ExperimentConfig:
    """The run of data seed ``seed`` (its instance, and K(0) for 'KQ') in ``parameterization``, for ``sizes.steps``."""
    ridge = EPS if parameterization == "KQ" else 0.0
    steps = sizes.steps
    return ExperimentConfig(
        name="attention_svm_seed",
        task=AttentionSVMData(n=sizes.n, T=sizes.T, d=sizes.d, seed=seed),
        model=SingleAttentionConfig(parameterization=parameterization, path="direct"),
        optim=OptimConfig(name="normalized_gd", lr=LR, eps=EPS, weight_decay=2 * ridge),
        train=TrainConfig(steps=steps, batch_size=sizes.n, snapshot_every=1, log_every=max(1, steps // 20),
                          eval_every=steps, eval_batches=1, checkpoint_every=max(1, steps // 4)),
        seed=seed)


def seed_run_members(scale: str) -> list[ExperimentConfig]:
    """Both parameterizations at every data seed the convergence and rank figures read."""
    sizes = SEED_RUN_SIZES[scale]
    return [seed_run_config(sizes, par, seed) for seed in range(sizes.seeds) for par in PARAMETERIZATIONS]


SEED_RUNS = register_sweep(SweepSpec("attention_svm_seed_runs", "attention_svm", seed_run_members))
