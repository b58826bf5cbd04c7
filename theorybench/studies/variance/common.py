"""Norm placement in training on a task with a sink token: Bigram-Backcopy with BOS.

The runs (sweep ``variance_sinks``; the figures in ``variance_sinks_figures`` read them with
``get_or_train``): the Bigram-Backcopy language ("Active-Dormant Attention Heads", Guo et al. 2024;
``toy_models.tasks.bigram_backcopy``), whose Bayes predictor needs attention only after a trigger, so
heads have a reason to do nothing elsewhere. Model variants (``VARIANTS``), each over SIZES["seeds"]
seeds on the same data streams (seed s draws the same batches for every variant: paired seeds):

- ``pre``, ``peri``, ``mix``: Pre-, Peri- and Mix-LN (α = 0.25: one Post-LN block at depth 4);
- ``pre_clip``: Pre-LN with the clipped softmax (ζ = 1, γ = −α_c/T with α_c = CLIP_ALPHA, the
  length-scaled parametrization of "Quantizable Transformers", Bondarenko et al. 2023; α_c is this
  project's choice, not re-tuned);
- ``pre_gate``: Pre-LN with the per-head sigmoid gate of the same paper.

Initialization is ``fan_in``: at d_model 64 every Peri-LN output norm sees a sublayer output of variance
> 1e3·ε at init (``theory.variance.peri_eps_ratio``: min 6.2e3, checked in
tests/test_variance_eps_regime.py), so Peri-LN's norms give unit-variance updates and pass gradients
unscaled, which GPT-2 init at width 32 (ratio ~1) did not: no effective-learning-rate confound.

Measurements over training come from log-spaced snapshots (prefix runs of a constant-lr run, as in
``variance_training``; step 0 is the initialization) for the variants in SNAPSHOT_VARIANTS, and from
the final weights for all. Per model, on a fixed probe batch (``PROBE_SEED``), ``measure`` gives per
layer x_0 … x_L: the variance (mean per-token variance over coordinates), the largest |x| and its ratio
to the layer's median |x| on the BOS token and on the other tokens, the kurtosis (Bondarenko's metric),
and per block the BOS attention mass of the most BOS-attending head with that head's value-norm ratio
(BOS value norm / other value norms), and the angular distance arccos(cos(x_l, x_{l+1}))/π (Mix-LN's
measure, Li et al. 2024).
"""

from __future__ import annotations

import numpy as np
import torch

from probes import angular_distance, attention_sinks, kurtosis
from probes._common import resid_hook_names
from theorybench.experiment import ExperimentConfig, OptimConfig, TrainConfig
from theorybench.registry import ExperimentSpec, SweepSpec, register_experiment, register_sweep
from toy_models import TransformerConfig
from toy_models.config import ConfigError
from toy_models.tasks.bigram_backcopy import BigramBackcopyConfig

# tiny: the test suite's renders (seconds). quick: `make figures` (about 5 min on one core: 5 variants ×
# 3 seeds × 200 steps at ~75 ms a step, plus 80 snapshot steps for Pre and Peri). medium: where the claims
# are decided: 5 × 4 × 1,500 steps plus 4 × 2 × 715 snapshot steps ≈ 36k steps ≈ 45 min on one core,
# ~23 min on two (estimated from ~75 ms a step measured on the loaded 2-core machine; not run end to end
# here). 1,500 steps at lr 3e-3 is where the pilot saw Pre-LN's largest activation grow ×145.
SIZES = {
    "tiny": dict(d_model=16, n_heads=2, n_layers=4, n_tokens=12, n_triggers=2, seq_len=8, batch=8, lr=3e-3,
                 seeds=2, steps=6, snapshots=(2,), probe_batch=4),
    "quick": dict(d_model=64, n_heads=4, n_layers=4, n_tokens=64, n_triggers=4, seq_len=32, batch=32, lr=3e-3,
                  seeds=3, steps=200, snapshots=(20, 60), probe_batch=32),
    "medium": dict(d_model=64, n_heads=4, n_layers=4, n_tokens=64, n_triggers=4, seq_len=32, batch=32, lr=3e-3,
                   seeds=4, steps=1500, snapshots=(15, 50, 150, 500), probe_batch=64),
    "full": dict(d_model=128, n_heads=4, n_layers=8, n_tokens=128, n_triggers=4, seq_len=64, batch=64, lr=3e-3,
                 seeds=8, steps=10000, snapshots=(10, 30, 100, 300, 1000, 3000), probe_batch=64),
}
CLIP_ALPHA = 2.0
VARIANTS = ("pre", "peri", "mix", "pre_clip", "pre_gate")
SNAPSHOT_VARIANTS = ("pre", "peri")
LABELS = {"pre": "Pre-LN", "peri": "Peri-LN", "mix": "Mix-LN (α = 0.25)", "pre_clip": "Pre-LN + clipped softmax",
          "pre_gate": "Pre-LN + gated attention"}
PROBE_SEED = 20241201
LOG_EVERY = 10


def model_fields(size: dict, variant: str) -> dict:
    """TransformerConfig fields of one variant (placement and attention options)."""
    if variant not in VARIANTS:
        raise ConfigError("variant", variant, f"one of {', '.join(map(repr, VARIANTS))}")
    placement = variant.split("_")[0]
    extra = {}
    if variant == "pre_clip":
        extra = dict(clip_gamma=-CLIP_ALPHA / size["seq_len"], clip_zeta=1.0)
    elif variant == "pre_gate":
        extra = dict(attn_gate=True)
    return dict(norm_placement=placement, mix_alpha=0.25, **extra)


def task_config(size: dict):
    return BigramBackcopyConfig(n_tokens=size["n_tokens"], n_triggers=size["n_triggers"], seq_len=size["seq_len"])


def run_config(size: dict, variant: str, seed: int, steps: int | None = None):
    """One run: fan_in init, AdamW at a constant lr (a prefix run is the start of the full run)."""
    steps = size["steps"] if steps is None else steps
    suffix = "" if steps == size["steps"] else f"-t{steps}"
    return ExperimentConfig(
        name=f"variance_sinks-{variant}-s{seed}{suffix}",
        task=task_config(size),
        model=TransformerConfig(n_layers=size["n_layers"], d_model=size["d_model"], n_heads=size["n_heads"],
                                init="fan_in", attn_path="kernel", **model_fields(size, variant)),
        optim=OptimConfig(lr=size["lr"]),
        # log_every must not depend on steps: a prefix run's config is the full run's with only the step
        # counts changed (variance_training.model_at builds it that way).
        train=TrainConfig(steps=steps, batch_size=size["batch"], eval_every=steps, checkpoint_every=steps,
                          log_every=LOG_EVERY),
        seed=seed,
    )


def members(scale: str) -> list:
    """Every variant × seed, plus the snapshot (prefix) runs of SNAPSHOT_VARIANTS."""
    size = SIZES[scale]
    out = []
    for variant in VARIANTS:
        for seed in range(size["seeds"]):
            out.append(run_config(size, variant, seed))
            if variant in SNAPSHOT_VARIANTS:
                out += [run_config(size, variant, seed, s) for s in size["snapshots"]]
    return out


register_experiment(ExperimentSpec("variance_sinks_run", "variance", lambda scale: run_config(SIZES[scale], "pre", 0)))
SINK_SWEEP = register_sweep(SweepSpec("variance_sinks", "variance", members))


def probe_batch(size: dict) -> dict:
    return task_config(size).build().sample(size["probe_batch"], torch.Generator().manual_seed(PROBE_SEED))


@torch.no_grad()
def measure(model, batch: dict) -> dict[str, np.ndarray]:
    """Per-layer statistics of one model on the probe batch (definitions in the module docstring).

    [L + 1] over x_0 … x_L: variance, max_abs, bos_ratio (max |x| on BOS / median |x| of the layer),
    other_ratio (the same on the other tokens), kurtosis (mean over tokens). [L]: angular, sink_mass,
    value_ratio."""
    tokens = batch["inputs"]
    names = resid_hook_names(model)
    _, cache = model.run_with_cache(tokens, names_filter=names)
    xs = [cache[n].double() for n in names]
    out: dict[str, list] = {k: [] for k in ("variance", "max_abs", "bos_ratio", "other_ratio", "kurtosis")}
    for x in xs:
        a = x.abs()
        median = float(a.median())
        out["variance"].append(float(x.var(-1, unbiased=False).mean()))
        out["max_abs"].append(float(a.max()))
        out["bos_ratio"].append(float(a[:, 0].max()) / median)
        out["other_ratio"].append(float(a[:, 1:].max()) / median)
        out["kurtosis"].append(float(kurtosis(x).mean()))
    out["angular"] = [angular_distance(xs[i], xs[i + 1]) for i in range(len(xs) - 1)]
    sinks = attention_sinks(model, tokens, value_norms=True)
    mass = sinks[sinks["quantity"] == "sink_mass"]
    ratio = sinks[sinks["quantity"] == "value_norm_ratio"].set_index(["layer", "head"])["value"]
    top = mass.loc[mass.groupby("layer")["value"].idxmax()].sort_values("layer")
    out["sink_mass"] = top["value"].tolist()
    out["value_ratio"] = [float(ratio[(int(r.layer), int(r.head))]) for r in top.itertuples()]
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def growth(trained: np.ndarray, init: np.ndarray) -> np.ndarray:
    """log Var after training − log Var at initialization, elementwise (per seed, per layer): the growth
    relative to init, which compares placements whose initial variances differ."""
    return np.log(np.asarray(trained, dtype=float)) - np.log(np.asarray(init, dtype=float))


def deep_half(values: np.ndarray) -> np.ndarray:
    """Mean over the deeper half of the blocks (blocks ⌊L/2⌋ … L − 1) of [..., L] per-block values."""
    values = np.asarray(values, dtype=float)
    L = values.shape[-1]
    return values[..., L // 2:].mean(-1)


def log_spaced(steps: int, snapshots) -> tuple[int, ...]:
    """Step 0, the snapshots and the last step: the checkpoints a trajectory is read at."""
    return (0, *snapshots, steps)


__all__ = ["SIZES", "VARIANTS", "SNAPSHOT_VARIANTS", "LABELS", "CLIP_ALPHA", "SINK_SWEEP", "model_fields",
           "task_config", "run_config", "members", "probe_batch", "measure", "growth", "deep_half", "log_spaced"]
