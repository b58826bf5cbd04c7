"""The variance family's runs: config builders, registered experiments and sweeps.

Sink task (sweep ``variance_sinks``; figures ``sink_growth``, ``sink_massive_activations``): the
Bigram-Backcopy language ("Active-Dormant Attention Heads", Guo et al. 2024;
``toy_models.tasks.bigram_backcopy``), whose Bayes predictor needs attention only after a trigger, so
heads have a reason to do nothing elsewhere. Model variants (``SINK_VARIANTS``), each over
``SinkSizes.seeds`` seeds on the same data streams (seed s draws the same batches for every variant:
paired seeds):

- ``pre``, ``peri``, ``mix``: Pre-, Peri- and Mix-LN (α = 0.25: one Post-LN block at depth 4);
- ``pre_clip``: Pre-LN with the clipped softmax (ζ = 1, γ = −α_c/T with α_c = CLIP_ALPHA, the
  length-scaled parametrization of "Quantizable Transformers", Bondarenko et al. 2023; α_c is this
  project's choice, not re-tuned);
- ``pre_gate``: Pre-LN with the per-head sigmoid gate of the same paper.

Initialization is ``fan_in``: at d_model 64 every Peri-LN output norm sees a sublayer output of variance
> 1e3·ε at init (``theory.variance.peri_eps_ratio``: min 6.2e3, checked in
tests/test_variance_eps_regime.py), so Peri-LN's norms give unit-variance updates and pass gradients
unscaled, which GPT-2 init at width 32 (ratio ~1) did not: no effective-learning-rate confound.

Markov language (sweeps ``variance_training_depth`` and ``variance_training_lr``; figures
``trained_growth``, ``massive_activations_training``, ``gradient_norms_early_training``):

- ``variance_training_depth``: none / Post / Pre / Peri / Mix-LN at each depth of ``TrainingSizes.n_layers``,
  at the learning rate ``lr``, over ``seeds`` seeds; at the largest depth also the *snapshot* runs
  (below) at ``snapshots`` steps.
- ``variance_training_lr``: Post-, Pre- and Peri-LN (``LR_PLACEMENTS``) at the smallest depth and each of
  ``lrs``, over ``lr_seeds`` seeds (enough for a test of the divergence rates), ``lr_steps`` steps each.

Snapshots. The trainer keeps one checkpoint per run (the latest), so a statistic *along* training is
read from prefix runs: with a constant learning rate (no schedule that depends on the total step
count) and the data stream seeded by the run seed, a run of s steps is bit for bit the first s steps
of a longer run of the same config (``tests/test_variance_training.py`` checks the per-step losses).
The prefix runs cost Σ snapshots extra steps. Step 0 is the initialization, rebuilt from the config.
(On a GPU whose kernels are not deterministic a prefix run is an equivalent run rather than the same
one. A trainer option that saved the weights at given steps would make prefix runs unnecessary.)
"""

from __future__ import annotations

import dataclasses

from theorybench.experiment import ExperimentConfig, OptimConfig, TrainConfig
from theorybench.registry import ExperimentSpec, SweepSpec, register_experiment, register_sweep
from toy_models import TransformerConfig
from toy_models.config import ConfigError
from toy_models.tasks.bigram_backcopy import BigramBackcopyConfig
from toy_models.tasks.markov import MarkovConfig

from .sizes import SINK_SIZES, TRAINING_SIZES, SinkSizes, TrainingSizes

# Legend names of the placements and sink-task variants.
LABELS = {"none": "no norm", "post": "Post-LN", "pre": "Pre-LN", "peri": "Peri-LN", "mix": "Mix-LN (α = 0.25)",
          "pre_clip": "Pre-LN + clipped softmax", "pre_gate": "Pre-LN + gated attention"}

# ------------------------------------------------------------------------------------------ sink task
CLIP_ALPHA = 2.0
SINK_VARIANTS = ("pre", "peri", "mix", "pre_clip", "pre_gate")
SNAPSHOT_VARIANTS = ("pre", "peri")
SINK_LOG_EVERY = 10


def sink_model_fields(sizes: SinkSizes, variant: str) -> dict:
    """TransformerConfig fields of one variant (placement and attention options)."""
    if variant not in SINK_VARIANTS:
        raise ConfigError("variant", variant, f"one of {', '.join(map(repr, SINK_VARIANTS))}")
    placement = variant.split("_")[0]
    extra = {}
    if variant == "pre_clip":
        extra = dict(clip_gamma=-CLIP_ALPHA / sizes.seq_len, clip_zeta=1.0)
    elif variant == "pre_gate":
        extra = dict(attn_gate=True)
    return dict(norm_placement=placement, mix_alpha=0.25, **extra)


def sink_task_config(sizes: SinkSizes) -> BigramBackcopyConfig:
    return BigramBackcopyConfig(n_tokens=sizes.n_tokens, n_triggers=sizes.n_triggers, seq_len=sizes.seq_len)


def sink_run_config(sizes: SinkSizes, variant: str, seed: int, steps: int | None = None) -> ExperimentConfig:
    """One run: fan_in init, AdamW at a constant lr (a prefix run is the start of the full run)."""
    steps = sizes.steps if steps is None else steps
    suffix = "" if steps == sizes.steps else f"-t{steps}"
    return ExperimentConfig(
        name=f"variance_sinks-{variant}-s{seed}{suffix}",
        task=sink_task_config(sizes),
        model=TransformerConfig(n_layers=sizes.n_layers, d_model=sizes.d_model, n_heads=sizes.n_heads,
                                init="fan_in", attn_path="kernel", **sink_model_fields(sizes, variant)),
        optim=OptimConfig(lr=sizes.lr),
        # log_every must not depend on steps: a prefix run's config is the full run's with only the step
        # counts changed (trained_runs.model_at builds it that way).
        train=TrainConfig(steps=steps, batch_size=sizes.batch_size, eval_every=steps, checkpoint_every=steps,
                          log_every=SINK_LOG_EVERY),
        seed=seed,
    )


def sink_configs(sizes: SinkSizes) -> list[ExperimentConfig]:
    """Every variant × seed, plus the snapshot (prefix) runs of SNAPSHOT_VARIANTS."""
    out = []
    for variant in SINK_VARIANTS:
        for seed in range(sizes.seeds):
            out.append(sink_run_config(sizes, variant, seed))
            if variant in SNAPSHOT_VARIANTS:
                out += [sink_run_config(sizes, variant, seed, s) for s in sizes.snapshots]
    return out


def sink_members(scale: str) -> list[ExperimentConfig]:
    """Every variant × seed, plus the snapshot (prefix) runs of SNAPSHOT_VARIANTS."""
    return sink_configs(SINK_SIZES[scale])


register_experiment(ExperimentSpec("variance_sinks_run", "variance",
                                   lambda scale: sink_run_config(SINK_SIZES[scale], "pre", 0)))
SINK_SWEEP = register_sweep(SweepSpec("variance_sinks", "variance", sink_members))


# ------------------------------------------------------------------------------------------ Markov language
PLACEMENTS = ("none", "post", "pre", "peri", "mix")
LR_PLACEMENTS = ("post", "pre", "peri")  # divergence against lr: Pre- vs Peri-LN (and Post-LN, Xiong et al.)


def training_run_config(sizes: TrainingSizes, placement: str, depth: int, lr: float, seed: int,
                        steps: int | None = None) -> ExperimentConfig:
    """One training run: the Markov language, fan_in init, AdamW at a constant ``lr``, per-step logging.

    fan_in, not GPT-2's std 0.02: at width 32 GPT-2 init gives sublayer outputs of variance ~1e-5 ≈ norm_eps,
    where Peri-LN's output norms neither give unit variance nor leave gradients alone (they scale them by
    ~1/√(2ε) ≈ 200×: an effective-learning-rate confound); with fan_in they see > 1e3·ε
    (``theory.variance.peri_eps_ratio``, tests/test_variance_eps_regime.py).

    ``steps`` below ``sizes.steps`` makes the snapshot (prefix) run of that many steps."""
    steps = sizes.steps if steps is None else steps
    suffix = "" if steps == sizes.steps else f"-t{steps}"
    return ExperimentConfig(
        name=f"variance_train-{placement}-L{depth}-lr{lr:g}-s{seed}{suffix}",
        task=MarkovConfig(n_states=sizes.n_states, seq_len=sizes.seq_len),
        # The kernel attention path: the same function, faster; probes that read patterns switch to the reference path.
        model=TransformerConfig(n_layers=depth, d_model=sizes.d_model, n_heads=sizes.n_heads, norm_placement=placement,
                                init="fan_in", attn_path="kernel"),
        optim=OptimConfig(lr=lr),  # constant schedule: a prefix run is the start of the full run
        train=TrainConfig(steps=steps, batch_size=sizes.batch_size, eval_every=steps, checkpoint_every=steps,
                          log_every=1),
        seed=seed,
    )


def depth_configs(sizes: TrainingSizes) -> list[ExperimentConfig]:
    """Every placement × depth × seed at the main learning rate, plus snapshot runs at the largest depth."""
    out = []
    for depth in sizes.n_layers:
        for placement in PLACEMENTS:
            for seed in range(sizes.seeds):
                out.append(training_run_config(sizes, placement, depth, sizes.lr, seed))
                if depth == max(sizes.n_layers):
                    out += [training_run_config(sizes, placement, depth, sizes.lr, seed, s) for s in sizes.snapshots]
    return out


def depth_members(scale: str) -> list[ExperimentConfig]:
    """Every placement × depth × seed at the main learning rate, plus snapshot runs at the largest depth."""
    return depth_configs(TRAINING_SIZES[scale])


def lr_run_config(sizes: TrainingSizes, placement: str, lr: float, seed: int) -> ExperimentConfig:
    """A member of the lr sweep (its own name: its step count may differ from the depth sweep's)."""
    cfg = training_run_config(dataclasses.replace(sizes, steps=sizes.lr_steps, snapshots=()), placement,
                              min(sizes.n_layers), lr, seed)
    return dataclasses.replace(cfg, name=cfg.name.replace("variance_train-", "variance_train_lr-"))


def lr_configs(sizes: TrainingSizes) -> list[ExperimentConfig]:
    """LR_PLACEMENTS × learning rate × lr_seeds seeds at the smallest depth, lr_steps steps."""
    return [lr_run_config(sizes, placement, lr, seed)
            for lr in sizes.lrs for placement in LR_PLACEMENTS for seed in range(sizes.lr_seeds)]


def lr_members(scale: str) -> list[ExperimentConfig]:
    """LR_PLACEMENTS × learning rate × lr_seeds seeds at the smallest depth, lr_steps steps (divergence and
    spikes against lr; more seeds than the depth sweep, for a test of the divergence rates)."""
    return lr_configs(TRAINING_SIZES[scale])


def single_run(scale: str) -> ExperimentConfig:
    """One Pre-LN run of the training study at the largest depth and main lr (override any field)."""
    sizes = TRAINING_SIZES[scale]
    return training_run_config(sizes, "pre", max(sizes.n_layers), sizes.lr, 0)


register_experiment(ExperimentSpec("variance_train", "variance", single_run))
DEPTH_SWEEP = register_sweep(SweepSpec("variance_training_depth", "variance", depth_members))
LR_SWEEP = register_sweep(SweepSpec("variance_training_lr", "variance", lr_members))
