"""The sink task's per-model statistics and the runs they are read from (figures ``sink_growth``,
``sink_massive_activations``).

Measurements over training come
from log-spaced snapshots (prefix runs of a constant-lr run, as for the Markov runs; step 0 is the
initialization) for the variants in ``experiments.SNAPSHOT_VARIANTS``, and from the final weights for
all. Per model, on a fixed probe batch (``SINK_PROBE_SEED``), ``sink_statistics`` gives per layer
x_0 … x_L: the variance (mean per-token variance over coordinates), the largest |x| and its ratio to
the layer's median |x| on the BOS token and on the other tokens, the kurtosis (Bondarenko's metric),
and per block the BOS attention mass of the most BOS-attending head with that head's value-norm ratio
(BOS value norm / other value norms), and the angular distance arccos(cos(x_l, x_{l+1}))/π (Mix-LN's
measure, Li et al. 2024).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from probes import angular_distance, attention_sinks, kurtosis
from probes._common import resid_hook_names

from .experiments import LABELS, sink_task_config
from .sizes import SinkSizes
from .trained_runs import fetch_all, model_at

# The caption tail of the sink figures: where and how they were measured (the text the figures' JSON keeps).
SINK_CAPTION_SETUP = (" Measured on the toy transformer trained on Bigram-Backcopy with a BOS token (Guo et al., "
                      "'Active-Dormant Attention Heads'), fan_in init (Peri-LN's output norms out of the ε regime), AdamW "
                      "at a constant learning rate, paired seeds; definitions in theorybench/studies/variance/"
                      "sink_statistics.py.")

SINK_PROBE_SEED = 20241201


def sink_probe_batch(sizes: SinkSizes) -> dict:
    """The fixed batch every sink-task model is probed on (drawn from the task with SINK_PROBE_SEED)."""
    return sink_task_config(sizes).build().sample(sizes.probe_batch, torch.Generator().manual_seed(SINK_PROBE_SEED))


@torch.no_grad()
def sink_statistics(model, batch: dict) -> dict[str, np.ndarray]:
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


# A claim about *trained* sink-task models is decided only on runs that learned the task: copying after a
# trigger is the part of the Bayes solution that needs attention, so every run compared must copy correctly
# at ≥ 90% of the post-trigger positions of the eval set; otherwise its measurements are not_measured
# ("undertrained"), which the ledger reports as inconclusive, not as a failure of the claim.
TRAINED_COPY_ACCURACY = 0.9


class SinkRuns:
    """The sink sweep's runs of ``sizes`` (trained where the run store lacks them) and ``sink_statistics``
    of every (variant, seed, step), computed once."""

    def __init__(self, sizes: SinkSizes, configs: list):
        self.sizes = sizes
        self.batch = sink_probe_batch(sizes)
        self.runs = fetch_all(configs, desc="variance_sinks")
        self.cache: dict = {}

    def at(self, variant: str, seed: int, step: int):
        key = (variant, seed, step)
        if key not in self.cache:
            cfg = self.runs[f"variance_sinks-{variant}-s{seed}"].config
            model = model_at(cfg, step)
            self.cache[key] = None if model is None else sink_statistics(model, self.batch)
        return self.cache[key]

    def copy_accuracy(self, variant: str) -> np.ndarray:
        """[seeds] final eval copy accuracy (NaN for a run that stopped on a NaN/Inf)."""
        out = []
        for s in range(self.sizes.seeds):
            run = self.runs[f"variance_sinks-{variant}-s{s}"]
            ok = run.status == "done" and "eval_copy_accuracy" in run.metrics
            out.append(float(run.metrics["eval_copy_accuracy"].dropna().iloc[-1]) if ok else math.nan)
        return np.array(out)

    def stack(self, variant: str, quantity: str, step: int | None = None) -> np.ndarray:
        """[seeds, ...] of one quantity; NaN rows for runs that stopped on a NaN/Inf."""
        step = self.sizes.steps if step is None else step
        rows = [self.at(variant, s, step) for s in range(self.sizes.seeds)]
        shape = next((r[quantity].shape for r in rows if r is not None), ())
        return np.array([r[quantity] if r is not None else np.full(shape, np.nan) for r in rows])


def undertrained(copy_accuracy: dict[str, np.ndarray], *variants: str) -> str | None:
    """Why the sink-task runs of ``variants`` cannot decide a claim about trained models (None when they
    can), from their per-seed eval copy accuracies."""
    bad = {v: copy_accuracy[v] for v in variants if not np.all(copy_accuracy[v] >= TRAINED_COPY_ACCURACY)}
    if not bad:
        return None
    return "undertrained: eval copy accuracy " + "; ".join(
        f"{LABELS[v]} {', '.join(f'{x:.2f}' for x in a)}" for v, a in bad.items()) + \
        f" (needs ≥ {TRAINED_COPY_ACCURACY} on every seed)"


def sink_setup(sizes: SinkSizes) -> str:
    """The sink runs' setup, for figure titles."""
    return (f"Bigram-Backcopy with BOS ({sizes.n_tokens} tokens, {sizes.n_triggers} triggers, length "
            f"{sizes.seq_len}), depth {sizes.n_layers}, d_model {sizes.d_model}, fan_in init, AdamW at lr "
            f"{sizes.lr:g}, {sizes.steps} steps, {sizes.seeds} seeds")
