"""The ICL family's trained runs: the config builders, and the experiments and sweeps they register.

Every trained run of the family is a Pre-LN causal softmax transformer on interleaved prompts
x_1, y_1, …, x_N, y_N, x_q ("What Can Transformers Learn In-Context? A Case Study of Simple Function
Classes", Garg et al. 2022), built by ``transformer_experiment`` from a ``sizes.Transformer``:

- ``icl_garg_transformer`` / sweep ``icl_garg_seeds``: noiseless linear regression (``sizes.GARG``), read
  by ``icl_estimator_errors``, ``icl_probe_r2`` (seed 0) and ``icl_ood_shifts``;
- sweep ``icl_task_diversity``: one run per pretraining task count M (``sizes.TASK_DIVERSITY``);
- ``icl_<class>_transformer`` / sweep ``icl_<class>_seeds`` for the classes sparse_linear, decision_tree
  and relu_network (``sizes.FUNCTION_CLASSES``): the same model and optimizer on the class's prompts.

The builders take a size (``garg_configs``, ``diversity_configs``, ``class_configs``); the registered
specs build them at a scale. The trained-LSA figure trains in its own loop (``lsa_trained_vs_gd``).
"""

from __future__ import annotations

from functools import partial

from theorybench.experiment import ExperimentConfig, OptimConfig, TrainConfig
from theorybench.registry import ExperimentSpec, SweepSpec, register_experiment, register_sweep
from toy_models import TransformerConfig
from toy_models.tasks.decision_tree import DecisionTreeConfig
from toy_models.tasks.icl_regression import ICLRegressionConfig
from toy_models.tasks.relu_network import ReluNetworkConfig
from toy_models.tasks.sparse_linear import SparseLinearConfig

from .sizes import (FUNCTION_CLASSES, GARG, TASK_DIVERSITY, FunctionClass, FunctionClasses, Garg, TaskDiversity,
                    Transformer)

GARG_NAME = "icl_garg_transformer"
CLASSES = ("sparse_linear", "decision_tree", "relu_network")
LABELS = {"sparse_linear": "sparse linear", "decision_tree": "decision-tree", "relu_network": "two-layer ReLU network"}


def transformer_experiment(size: Transformer, seed: int = 0, name: str = "icl_transformer", task=None,
                           **task_fields):
    """The ``ExperimentConfig`` of a Pre-LN causal softmax transformer of ``size`` trained on ``task``.

    ``task`` defaults to interleaved linear-regression prompts (``ICLRegressionConfig``) of ``size.d`` and
    ``size.n_points`` with the size's curriculum and ``task_fields`` (e.g. ``noise_std``, ``n_tasks``).
    AdamW (no decay), linear warm-up then cosine decay to 0; learned positions; init ``size.init``.
    """
    if task is None:
        if "noise_std" in task_fields:
            task_fields["noise_std"] = float(task_fields["noise_std"])
        task = ICLRegressionConfig(d=size.d, n_points=size.n_points, tokenization="interleaved",
                                   **{**curriculum(size), **task_fields})
    model = TransformerConfig(n_layers=size.n_layers, d_model=size.d_model, n_heads=size.n_heads,
                              norm_placement="pre", attention="softmax", attention_dir="causal", pos="learned",
                              init=size.init, attn_path="kernel")
    optim = OptimConfig(name="adamw", lr=size.lr, warmup_steps=size.warmup_steps, schedule="cosine")
    every = max(1, size.steps // 10)
    train = TrainConfig(steps=size.steps, batch_size=size.batch_size, eval_every=every, eval_batches=4,
                        checkpoint_every=every, log_every=max(1, size.steps // 100))
    return ExperimentConfig(name=name, task=task, model=model, optim=optim, train=train, seed=seed)


def curriculum(size: Transformer) -> dict:
    """The task's ``curriculum_*`` fields from ``size`` (none when its curriculum is off)."""
    if size.curriculum_every is None:
        return {}
    return dict(curriculum_every=size.curriculum_every, curriculum_d_start=size.curriculum_d_start,
                curriculum_d_inc=size.curriculum_d_inc, curriculum_n_start=size.curriculum_n_start,
                curriculum_n_inc=size.curriculum_n_inc)


# ---------------------------------------------------------------------------------- the Garg transformer
def garg_configs(size: Garg) -> list:
    """The Garg transformer of ``size`` at every seed (noiseless interleaved linear regression)."""
    return [transformer_experiment(size, seed=s, name=GARG_NAME, noise_std=size.noise_std) for s in range(size.seeds)]


def garg_experiment(scale: str):
    """Softmax transformer trained on noiseless interleaved prompts (Garg et al. 2022), seed 0."""
    return garg_configs(GARG[scale])[0]


def garg_seeds(scale: str):
    """The Garg transformer at every seed the right panel of icl_estimator_errors averages."""
    return garg_configs(GARG[scale])


register_experiment(ExperimentSpec(GARG_NAME, "icl", garg_experiment))
GARG_SWEEP = register_sweep(SweepSpec("icl_garg_seeds", "icl", garg_seeds))


# ---------------------------------------------------------------------------------- task diversity
def member_name(M: int | None) -> str:
    return f"icl_diversity_M{'inf' if M is None else M}"


def diversity_configs(size: TaskDiversity) -> list:
    """One transformer of ``size`` per task count M in ``size.task_counts`` and seed (pool_seed 0)."""
    return [transformer_experiment(size, seed=s, name=member_name(M), noise_std=size.noise_std, n_tasks=M, pool_seed=0)
            for M in size.task_counts for s in range(size.seeds)]


def diversity_members(scale: str):
    """A softmax transformer per pretraining task count M (pool fixed by pool_seed 0; None: w ~ N(0, I))."""
    return diversity_configs(TASK_DIVERSITY[scale])


DIVERSITY_SWEEP = register_sweep(SweepSpec("icl_task_diversity", "icl", diversity_members))


# ---------------------------------------------------------------------------------- function classes
def class_task(cls: str, size: FunctionClass):
    """The task config of class ``cls`` at its size (``sizes.SparseLinear`` / ``DecisionTree`` / ``ReluNetwork``)."""
    common = dict(d=size.d, n_points=size.n_points, **curriculum(size))
    if cls == "sparse_linear":
        return SparseLinearConfig(sparsity=size.sparsity, **common)
    if cls == "decision_tree":
        return DecisionTreeConfig(depth=size.depth, **common)
    return ReluNetworkConfig(hidden=size.hidden, **common)


def class_configs(cls: str, sizes: FunctionClasses) -> list:
    """The transformer of ``transformer_experiment`` (same model, optimizer, schedule) on class ``cls``'s prompts,
    at every seed."""
    size = sizes.of(cls)
    return [transformer_experiment(size, seed=s, name=f"icl_{cls}_transformer", task=class_task(cls, size))
            for s in range(sizes.seeds)]


def class_experiment(cls: str, scale: str, seed: int = 0):
    """Class ``cls``'s transformer at ``scale`` and ``seed``."""
    size = FUNCTION_CLASSES[scale].of(cls)
    return transformer_experiment(size, seed=seed, name=f"icl_{cls}_transformer", task=class_task(cls, size))


def _class_seeds(cls: str, scale: str):
    return class_configs(cls, FUNCTION_CLASSES[scale])


CLASS_SWEEPS = {}
for _cls in CLASSES:
    _first = partial(class_experiment, _cls, seed=0)
    _first.__doc__ = f"Softmax transformer on interleaved {LABELS[_cls]} prompts (Garg et al. 2022), seed 0."
    register_experiment(ExperimentSpec(f"icl_{_cls}_transformer", "icl", _first))
    _all = partial(_class_seeds, _cls)
    _all.__doc__ = f"The {LABELS[_cls]} transformer at every seed its figure averages."
    CLASS_SWEEPS[_cls] = register_sweep(SweepSpec(f"icl_{_cls}_seeds", "icl", _all))
