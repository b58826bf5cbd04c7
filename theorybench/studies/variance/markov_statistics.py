"""The Markov-language runs' per-model statistics, outcomes and events (figures ``trained_growth``,
``massive_activations_training``, ``gradient_norms_early_training``).

Initialization is ``fan_in`` (``experiments.training_run_config``),
and the variance is compared as its growth relative to initialization (``growth_from_init``):
placements start at different variances, so absolute values after training compare starting points as
much as training. Definitions (all per run, on the training config's own data):

- hidden-state variance of x_l: ``probes.residual_stats`` "variance" (per-token variance over the
  d_model coordinates, mean over tokens) on a fixed probe batch drawn from the task with
  ``TRAINING_PROBE_SEED``; growth per block = its least-squares slope against l = 0 … L.
- largest activation: max |x| over the residual stream x_0 … x_L (``probes.massive_activations``),
  with its ratio to the median |x| of that layer; "massive" = |x| > 100 and > 1000 × median ("Massive
  Activations in Large Language Models", Sun et al. 2024).
- loss spike at step t: loss_t > SPIKE_FACTOR × median(loss_{t−w} … loss_{t−1}), w = SPIKE_WINDOW
  (≥ SPIKE_MIN_HISTORY earlier steps needed); consecutive spiking steps count as one spike.
- diverged: the run stopped on a NaN/Inf (``NonFiniteError``; kept as a result), or its final eval
  loss is no better than the unigram loss on the same eval batches, −mean log π(target), the best
  loss of any predictor that ignores the context: the run has learned nothing of the chain, whether
  it blew up or never started.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from probes import attention_sinks, gradient_norms, massive_activations, residual_stats
from theorybench.train import EVAL_SEED
from toy_models.tasks.markov import MarkovConfig

from .sizes import TrainingSizes
from .trained_runs import model_at

# The caption tail of the Markov figures: where and how they were measured (the text the figures' JSON keeps).
TRAINING_CAPTION_SETUP = (" Measured on the toy transformer trained on a synthetic Markov language (fan_in init, so that "
                          "Peri-LN's output norms are out of the ε regime; AdamW at a constant learning rate, no warm-up), "
                          "over paired seeds; the definitions are in theorybench/studies/variance/markov_statistics.py.")

# The step-to-step noise of the batch loss is ~2.3% of its level at quick size (measured over the last 50
# steps of the 15 depth-4 runs at lr 1e-2: 1.7%–2.9%), so a 15% jump is ≥ 5 noise σ: a spike, not noise.
# A larger batch has less noise; the factor is kept so that "spike" means the same jump at every scale.
SPIKE_FACTOR = 1.15
SPIKE_WINDOW = 10
SPIKE_MIN_HISTORY = 5
TRAINING_PROBE_SEED = 20240601  # the probe batch: the same sequences for every run


def training_probe_batch(sizes: TrainingSizes) -> dict:
    """The fixed batch every Markov-language model is probed on (drawn from the task with TRAINING_PROBE_SEED)."""
    task = MarkovConfig(n_states=sizes.n_states, seq_len=sizes.seq_len).build()
    return task.sample(sizes.probe_batch, torch.Generator().manual_seed(TRAINING_PROBE_SEED))


def training_statistics(model, batch: dict, gradients: bool = False) -> dict[str, np.ndarray | float]:
    """Per-layer statistics of one model on one batch.

    variance, mean_square, max_abs, max_to_median, kurtosis: [L + 1] over x_0 … x_L; angular: [L];
    n_massive: count of Sun et al.'s massive entries; sink_mass: the largest first-token attention mass
    over heads, per layer [L]; with ``gradients``, block_grad_norm [L] (‖∇‖ of all of block l's
    parameters together) and resid_grad_norm [L] (‖∂loss/∂x_l‖), for the task's cross-entropy."""
    tokens, targets = batch["inputs"], batch["targets"]
    stats = residual_stats(model, tokens)
    per_layer, hits = massive_activations(model, tokens)
    sinks = attention_sinks(model, tokens)

    def series(df, quantity):
        return df[df["quantity"] == quantity].sort_values("layer")["value"].to_numpy()

    out: dict[str, np.ndarray | float] = {q: series(stats, q) for q in ("variance", "mean_square")}
    out["angular"] = series(stats, "angular_distance")
    out.update({q: series(per_layer, q) for q in ("max_abs", "max_to_median", "kurtosis")})
    out["n_massive"] = float(len(hits))
    out["sink_mass"] = sinks.groupby("layer")["value"].max().sort_index().to_numpy()
    if gradients:
        loss = lambda logits: torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())  # noqa: E731
        grads = gradient_norms(model, tokens, loss_fn=loss)
        params = grads[grads["quantity"] == "param_grad_norm"]
        out["block_grad_norm"] = np.sqrt(params.assign(sq=params["value"] ** 2).groupby("layer")["sq"].sum()
                                         .sort_index().to_numpy())
        out["resid_grad_norm"] = series(grads, "resid_grad_norm")
    return out


# ------------------------------------------------------------------------------------------ events
def loss_spikes(losses, factor: float = SPIKE_FACTOR, window: int = SPIKE_WINDOW,
                min_history: int = SPIKE_MIN_HISTORY) -> list[int]:
    """Indices t where a spike starts: losses[t] > factor × median(losses[t − window : t]) with at least
    ``min_history`` earlier values, and losses[t − 1] was not itself spiking."""
    losses = np.asarray(losses, dtype=float)
    if factor <= 1 or window < 1 or not 1 <= min_history <= window:
        raise ValueError(f"need factor > 1 and 1 ≤ min_history ≤ window, got factor={factor}, window={window}, "
                         f"min_history={min_history}")
    spiking = np.zeros(len(losses), dtype=bool)
    for t in range(min_history, len(losses)):
        spiking[t] = losses[t] > factor * np.median(losses[max(0, t - window):t])
    return [t for t in range(len(losses)) if spiking[t] and not (t > 0 and spiking[t - 1])]


def eval_unigram_loss(run) -> float:
    """−mean log π(target) over the run's own eval batches (the trainer's fixed eval set): the loss of the
    best predictor that ignores the context."""
    cfg = run.config
    task = cfg.task.build()
    gen = torch.Generator().manual_seed(EVAL_SEED)  # the trainer draws its eval set from this generator, first
    batches = [task.sample(cfg.train.batch_size, gen) for _ in range(cfg.train.eval_batches)]
    log_pi = torch.from_numpy(np.log(task.stationary))
    return float(np.mean([-log_pi[b["targets"]].mean().item() for b in batches]))


def outcome(run) -> dict[str, float | bool | str]:
    """Per-run outcome: diverged (and how), spike count, final eval loss and its Bayes and unigram refs."""
    metrics = run.metrics
    spikes = len(loss_spikes(metrics["train_loss"].to_numpy())) if len(metrics) else 0
    if run.status == "failed":
        return dict(diverged=True, kind="non-finite", spikes=spikes, eval_loss=math.nan, bayes_loss=math.nan,
                    unigram_loss=math.nan, failed_step=float(run.stored_failure.step))
    last = metrics.iloc[-1]
    unigram = eval_unigram_loss(run)
    collapsed = bool(last["eval_loss"] >= unigram)
    return dict(diverged=collapsed, kind="no better than unigram" if collapsed else "trained", spikes=spikes,
                eval_loss=float(last["eval_loss"]), bayes_loss=float(last["eval_bayes_loss"]), unigram_loss=unigram,
                failed_step=math.nan)


class TrainingRuns:
    """``training_statistics`` of the Markov-language runs of ``sizes``, computed once per (run, step)."""

    def __init__(self, sizes: TrainingSizes):
        self.sizes = sizes
        self.batch = training_probe_batch(sizes)
        self.cache: dict = {}

    def at(self, cfg, step: int, gradients: bool = False):
        key = (cfg.config_hash(), step, gradients)
        if key not in self.cache:
            model = model_at(cfg, step)
            self.cache[key] = None if model is None else training_statistics(model, self.batch, gradients=gradients)
        return self.cache[key]

    def profiles(self, runs: dict, placement: str, depth: int, lr: float, step: int) -> np.ndarray:
        """[seeds, L + 1] variance of x_0 … x_L after ``step`` updates; NaN rows where a run stopped on a NaN/Inf."""
        out = np.full((self.sizes.seeds, depth + 1), np.nan)
        for s in range(self.sizes.seeds):
            stats = self.at(runs[training_run_key(placement, depth, lr, s)].config, step)
            if stats is not None:
                out[s] = stats["variance"]
        return out


def training_run_key(placement: str, depth: int, lr: float, seed: int) -> str:
    """The name of a depth-sweep run (``experiments.training_run_config``)."""
    return f"variance_train-{placement}-L{depth}-lr{lr:g}-s{seed}"


def diverged_reason(runs: dict, names: list[str]) -> str | None:
    """Why these Markov runs cannot decide a claim about trained models (None when they can): a run that
    diverged (NaN/Inf, or no better than the unigram loss) has not learned the chain."""
    bad = [n for n in names if outcome(runs[n])["diverged"]]
    return f"{len(bad)} of {len(names)} runs diverged or learned nothing: {', '.join(bad)}" if bad else None
