"""The graph-search family's runs ("Transformers Struggle to Learn to Search", Saparov et al., ICLR
2025): the searcher's config builders, its registered experiments, and the size sweep.

The searcher (``searcher_model``) is the paper's: Pre-LN, frozen one-hot tokens and one-hot positions
concatenated (d_model = vocabulary + 16 + N), one attention head of full width, ReLU MLP of width
d_model, no causal mask, logits = the token coordinates of the final LayerNorm's output (W_U = W_Eᵀ,
frozen), loss at the last position. The paper's optimizer acts as sign-momentum (β = 0.965, weight
decay 0.1, ``theorybench.optim.SignMomentum``); AdamW is offered beside it.
"""

from __future__ import annotations

from theorybench.experiment import ExperimentConfig, OptimConfig, TrainConfig
from theorybench.registry import ExperimentSpec, SweepSpec, register_experiment, register_sweep
from theorybench.runs import get_or_train
from toy_models import TransformerConfig
from toy_models.tasks.graph_search import GraphSearchConfig, Vocab

from .sizes import SIZES, WALKTHROUGH, Curriculum, GraphSearchSizes

DISTRIBUTIONS = ("naive", "star", "balanced")
OPTIMIZERS = ("sign_momentum", "adamw")
HIDDEN_DIMS = 16  # free residual coordinates beside the one-hot tokens and positions (the paper's default)


def searcher_model(max_input_size: int, n_layers: int, hidden: int = HIDDEN_DIMS) -> TransformerConfig:
    """The paper's searcher for inputs of size N = ``max_input_size``: width vocabulary + hidden + N.

    Initialization ``fan_in`` (every matrix ~ N(0, 1/fan_in)) is the scale of PyTorch's default
    nn.Linear init that the paper's code keeps; with GPT-2's 0.02 the one-head attention starts so
    flat that a quick-scale run stalls on the uniform-guess plateau. Training runs the fused attention
    kernel (``attn_path="kernel"``, ~12% faster here); the probes ask for the reference path where they
    read attention patterns.
    """
    vocab = Vocab(max_input_size).size
    d = vocab + hidden + max_input_size
    return TransformerConfig(
        n_layers=n_layers, d_model=d, n_heads=1, d_head=d, d_mlp=d, n_ctx=max_input_size, d_vocab=vocab,
        d_vocab_out=vocab, act_fn="relu", attention_dir="bidirectional", norm_placement="pre",
        embed="onehot", pos="onehot", output="onehot", unembed_bias=False, init="fan_in", attn_path="kernel")


def optimizer(name: str, lr: float, warmup_steps: int = 0) -> OptimConfig:
    """Sign-momentum as the paper's run (β = 0.965, weight decay 0.1), or AdamW with the same decay."""
    if name == "sign_momentum":
        return OptimConfig(name="sign_momentum", lr=lr, betas=(0.965, 0.99), weight_decay=0.1,
                           warmup_steps=warmup_steps)
    if name == "adamw":
        return OptimConfig(name="adamw", lr=lr, betas=(0.9, 0.999), weight_decay=0.1, warmup_steps=warmup_steps)
    raise KeyError(f"optimizer={name!r} is not allowed: one of {', '.join(map(repr, OPTIMIZERS))}")


def searcher_experiment(scale: str, distribution: str, optimizer_name: str | None = None,
                        **overrides) -> ExperimentConfig:
    """The ExperimentConfig of a searcher trained on ``distribution`` at ``scale``: ``searcher_config``
    with ``SIZES[scale]``."""
    return searcher_config(SIZES[scale], distribution, optimizer_name, **overrides)


def searcher_config(sizes: GraphSearchSizes, distribution: str, optimizer_name: str | None = None, *,
                    max_input_size: int | None = None, n_layers: int | None = None, steps: int | None = None,
                    batch_size: int | None = None, seed: int = 0, name: str | None = None,
                    max_lookahead: int | None = None, curriculum: Curriculum | None = None) -> ExperimentConfig:
    """The ExperimentConfig of a searcher trained on ``distribution`` with ``sizes``, with any of N,
    layers, steps, batch size and the largest lookahead overridden (the size sweep fixes the largest
    lookahead across sizes), and optionally the authors' lookahead curriculum (balanced only). Test inputs
    (``test_examples_per_lookahead`` per lookahead) are reserved: training never sees them."""
    if distribution not in DISTRIBUTIONS:
        raise KeyError(f"distribution={distribution!r} is not allowed: one of {', '.join(map(repr, DISTRIBUTIONS))}")
    N = max_input_size or sizes.max_input_size
    steps = steps or sizes.steps
    stages = {} if curriculum is None else dict(curriculum_start=curriculum.start,
                                                curriculum_threshold=curriculum.threshold,
                                                curriculum_every=curriculum.every)
    task = GraphSearchConfig(max_input_size=N, distribution=distribution, max_lookahead=max_lookahead,
                             test_examples_per_lookahead=sizes.test_examples_per_lookahead, **stages)
    every = max(1, steps // 20)
    return ExperimentConfig(
        name=name or f"graph_search_{distribution}",
        task=task,
        model=searcher_model(N, n_layers or sizes.n_layers),
        optim=optimizer(optimizer_name or sizes.optim.name, sizes.optim.lr, sizes.optim.warmup_steps),
        train=TrainConfig(steps=steps, batch_size=batch_size or sizes.batch_size, eval_every=every, eval_batches=4,
                          checkpoint_every=every, log_every=every),
        seed=seed)


def walkthrough_experiment(scale: str = "quick") -> ExperimentConfig:
    """A small balanced searcher (``WALKTHROUGH``) that trains in about a minute: the notebook's when the
    figures' searcher is not in the run store, and the fast training test's."""
    w = WALKTHROUGH
    return searcher_experiment(scale, "balanced", max_input_size=w.max_input_size, n_layers=w.n_layers,
                               steps=w.steps, batch_size=w.batch_size, name="graph_search_walkthrough")


def _register_experiments() -> None:
    def make(distribution: str, optimizer_name: str | None):
        def build(scale: str):
            return searcher_experiment(scale, distribution, optimizer_name,
                                       name=f"graph_search_{distribution}" + (f"_{optimizer_name}" if optimizer_name else ""))
        which = f"the scale's optimizer (quick: {SIZES['quick'].optim.name}, full: {SIZES['full'].optim.name})" \
            if optimizer_name is None else optimizer_name
        build.__doc__ = (f"Searcher trained on {distribution} DAGs with {which} (quick: N={SIZES['quick'].max_input_size}, "
                         f"{SIZES['quick'].n_layers} layers; full: N=128, 6 layers, ≈1.3M parameters).")
        return build

    for distribution in DISTRIBUTIONS:
        register_experiment(ExperimentSpec(f"graph_search_{distribution}", "graph_search", make(distribution, None)))
    for opt in OPTIMIZERS:  # the paper's optimizer and AdamW side by side, at either scale
        register_experiment(ExperimentSpec(f"graph_search_balanced_{opt}", "graph_search", make("balanced", opt)))


_register_experiments()


def size_sweep_members(scale: str) -> list[ExperimentConfig]:
    """Balanced searchers of one depth, budget and largest lookahead at growing graph sizes, several seeds each."""
    return size_sweep_configs(SIZES[scale])


def size_sweep_configs(sizes: GraphSearchSizes) -> list[ExperimentConfig]:
    """The size sweep's members with ``sizes``: every input size of ``sizes.sweep`` × every seed."""
    sweep = sizes.sweep
    return [searcher_config(sizes, "balanced", max_input_size=N, n_layers=sweep.n_layers, steps=sweep.steps,
                                batch_size=sweep.batch_size, seed=seed, max_lookahead=sweep.max_lookahead,
                                name=f"graph_search_size_N{N}")
            for N in sweep.max_input_sizes for seed in sweep.seeds]


SIZE_SWEEP = register_sweep(SweepSpec("graph_search_size_sweep", "graph_search", size_sweep_members))


def searcher_configs(sizes: GraphSearchSizes) -> dict[tuple[str, int], ExperimentConfig]:
    """The searchers the accuracy figure compares: one per (training distribution, seed of ``sizes``)."""
    return {(dist, seed): searcher_config(sizes, dist, seed=seed) for dist in DISTRIBUTIONS for seed in sizes.seeds}


def searcher_members(scale: str) -> list[ExperimentConfig]:
    """Searchers trained on every distribution at every seed the accuracy figure reads."""
    return list(searcher_configs(SIZES[scale]).values())


SEARCHERS = register_sweep(SweepSpec("graph_search_searchers", "graph_search", searcher_members))


def trained(cfg: ExperimentConfig):
    """The finished run of ``cfg`` (trained now if absent) in the run store (``$THEORYBENCH_RUNS`` read now)."""
    return get_or_train(cfg)
