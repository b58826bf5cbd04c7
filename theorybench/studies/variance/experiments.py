"""Variance growth in training: every norm placement trained on the Markov language, read by the probes.

Two sweeps (``theorybench sweep NAME``; the figures in ``variance_training_figures`` read their members
with ``get_or_train``):

- ``variance_training_depth``: none / Post / Pre / Peri / Mix-LN at each of SIZES["depths"], at the
  learning rate SIZES["lr"], over SIZES["seeds"] seeds; at the largest depth also the *snapshot* runs
  (below) at SIZES["snapshots"] steps.
- ``variance_training_lr``: Post-, Pre- and Peri-LN (``LR_PLACEMENTS``) at the smallest depth and each of
  SIZES["lrs"], over SIZES["lr_seeds"] seeds (enough for a test of the divergence rates), SIZES["lr_steps"]
  steps each.

Initialization is ``fan_in`` (see ``run_config``), and the variance is compared as its growth relative to
initialization (``growth_from_init``): placements start at different variances, so absolute values
after training compare starting points as much as training.

Snapshots. The trainer keeps one checkpoint per run (the latest), so a statistic *along* training is
read from prefix runs: with a constant learning rate (no schedule that depends on the total step
count) and the data stream seeded by the run seed, a run of s steps is bit for bit the first s steps
of a longer run of the same config (``tests/test_variance_training.py`` checks the per-step losses).
The prefix runs cost Σ snapshots extra steps. Step 0 is the initialization, rebuilt from the config.
(On a GPU whose kernels are not deterministic a prefix run is an equivalent run rather than the same
one. A trainer option that saved the weights at given steps would make prefix runs unnecessary.)

Definitions (all per run, on the training config's own data):

- hidden-state variance of x_l: ``probes.residual_stats`` "variance" (per-token variance over the
  d_model coordinates, mean over tokens) on a fixed probe batch drawn from the task with
  ``PROBE_SEED``; growth per block = its least-squares slope against l = 0 … L.
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

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from theorybench.registry import ExperimentSpec, SweepSpec, register_experiment, register_sweep

# tiny: the test suite's renders. quick: `make figures` (about 4 min on one core: the depth sweep 5 placements ×
# 3 seeds × (100 + 43 snapshot) steps, the lr sweep 3 lrs × 3 placements × 6 seeds × 100 steps, at ~30 ms a
# step). medium: where the divergence and growth claims are decided: depth sweep 2 depths × 5 × 4 seeds × 300
# steps plus snapshots (~15k steps), lr sweep 3 × 3 × 12 seeds × 200 steps (~22k steps, fewer where runs
# diverge): ~20 min on one core, estimated from the measured step times, not run end to end here.
SIZES = {
    "tiny": dict(d_model=16, n_heads=2, n_states=8, seq_len=8, batch=8, depths=(2,), lr=1e-2, lrs=(1e-2,), seeds=2,
                 steps=6, snapshots=(2,), probe_batch=4, lr_seeds=2, lr_steps=6),
    "quick": dict(d_model=32, n_heads=4, n_states=16, seq_len=16, batch=16, depths=(4,), lr=1e-2,
                  lrs=(1e-3, 1e-2, 1e-1), seeds=3, steps=100, snapshots=(3, 10, 30), probe_batch=16, lr_seeds=6,
                  lr_steps=100),
    "medium": dict(d_model=32, n_heads=4, n_states=16, seq_len=16, batch=16, depths=(4, 8), lr=1e-2,
                   lrs=(1e-3, 1e-2, 1e-1), seeds=4, steps=300, snapshots=(3, 10, 30, 100), probe_batch=32,
                   lr_seeds=12, lr_steps=200),
    "full": dict(d_model=128, n_heads=4, n_states=64, seq_len=64, batch=32, depths=(6, 12, 24), lr=3e-3,
                 lrs=(3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1), seeds=5, steps=2000, snapshots=(10, 30, 100, 300, 1000),
                 probe_batch=32, lr_seeds=16, lr_steps=2000),
}
PLACEMENTS = ("none", "post", "pre", "peri", "mix")
LR_PLACEMENTS = ("post", "pre", "peri")  # divergence against lr: Pre- vs Peri-LN (and Post-LN, Xiong et al.)
# The step-to-step noise of the batch loss is ~2.3% of its level at quick size (measured over the last 50
# steps of the 15 depth-4 runs at lr 1e-2: 1.7%–2.9%), so a 15% jump is ≥ 5 noise σ: a spike, not noise.
# A larger batch has less noise; the factor is kept so that "spike" means the same jump at every scale.
SPIKE_FACTOR = 1.15
SPIKE_WINDOW = 10
SPIKE_MIN_HISTORY = 5
PROBE_SEED = 20240601  # the probe batch: the same sequences for every run


def check_size(size: dict) -> dict:
    """Refuse a size the sweeps cannot run, naming the key, the value and what is allowed."""
    from toy_models.config import ConfigError

    depths = tuple(size["depths"])
    if not depths or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in depths):
        raise ConfigError("depths", size["depths"], "a non-empty tuple of positive integers (blocks per model)")
    for key in ("seeds", "steps", "probe_batch", "batch", "lr_seeds", "lr_steps"):
        if not isinstance(size[key], int) or size[key] < 1:
            raise ConfigError(key, size[key], "a positive integer")
    if not all(isinstance(s, int) and 0 < s < size["steps"] for s in size["snapshots"]):
        raise ConfigError("snapshots", size["snapshots"], f"steps strictly between 0 and steps={size['steps']}")
    return size


# ------------------------------------------------------------------------------------------ configs
def run_config(size: dict, placement: str, depth: int, lr: float, seed: int, steps: int | None = None):
    """One training run: the Markov language, fan_in init, AdamW at a constant ``lr``, per-step logging.

    fan_in, not GPT-2's std 0.02: at width 32 GPT-2 init gives sublayer outputs of variance ~1e-5 ≈ norm_eps,
    where Peri-LN's output norms neither give unit variance nor leave gradients alone (they scale them by
    ~1/√(2ε) ≈ 200×: an effective-learning-rate confound); with fan_in they see > 1e3·ε
    (``theory.variance.peri_eps_ratio``, tests/test_variance_eps_regime.py).

    ``steps`` below ``size["steps"]`` makes the snapshot (prefix) run of that many steps."""
    from theorybench.experiment import ExperimentConfig, OptimConfig, TrainConfig
    from toy_models import TransformerConfig
    from toy_models.tasks.markov import MarkovConfig

    steps = size["steps"] if steps is None else steps
    suffix = "" if steps == size["steps"] else f"-t{steps}"
    return ExperimentConfig(
        name=f"variance_train-{placement}-L{depth}-lr{lr:g}-s{seed}{suffix}",
        task=MarkovConfig(n_states=size["n_states"], seq_len=size["seq_len"]),
        # The kernel attention path: the same function, faster; probes that read patterns switch to the reference path.
        model=TransformerConfig(n_layers=depth, d_model=size["d_model"], n_heads=size["n_heads"], norm_placement=placement,
                                init="fan_in", attn_path="kernel"),
        optim=OptimConfig(lr=lr),  # constant schedule: a prefix run is the start of the full run
        train=TrainConfig(steps=steps, batch_size=size["batch"], eval_every=steps, checkpoint_every=steps, log_every=1),
        seed=seed,
    )


def depth_members(scale: str) -> list:
    """Every placement × depth × seed at the main learning rate, plus snapshot runs at the largest depth."""
    size = check_size(SIZES[scale])
    out = []
    for depth in size["depths"]:
        for placement in PLACEMENTS:
            for seed in range(size["seeds"]):
                out.append(run_config(size, placement, depth, size["lr"], seed))
                if depth == max(size["depths"]):
                    out += [run_config(size, placement, depth, size["lr"], seed, s) for s in size["snapshots"]]
    return out


def lr_members(scale: str) -> list:
    """LR_PLACEMENTS × learning rate × lr_seeds seeds at the smallest depth, lr_steps steps (divergence and
    spikes against lr; more seeds than the depth sweep, for a test of the divergence rates)."""
    size = check_size(SIZES[scale])
    return [lr_run_config(size, placement, lr, seed)
            for lr in size["lrs"] for placement in LR_PLACEMENTS for seed in range(size["lr_seeds"])]


def lr_run_config(size: dict, placement: str, lr: float, seed: int):
    """A member of the lr sweep (its own name: its step count may differ from the depth sweep's)."""
    cfg = run_config(dict(size, steps=size["lr_steps"], snapshots=()), placement, min(size["depths"]), lr, seed)
    return dataclasses.replace(cfg, name=cfg.name.replace("variance_train-", "variance_train_lr-"))


def single_run(scale: str):
    """One Pre-LN run of the training study at the largest depth and main lr (override any field)."""
    size = check_size(SIZES[scale])
    return run_config(size, "pre", max(size["depths"]), size["lr"], 0)


register_experiment(ExperimentSpec("variance_train", "variance", single_run))
DEPTH_SWEEP = register_sweep(SweepSpec("variance_training_depth", "variance", depth_members))
LR_SWEEP = register_sweep(SweepSpec("variance_training_lr", "variance", lr_members))


# ------------------------------------------------------------------------------------------ runs
def runs_root() -> Path:
    """$THEORYBENCH_RUNS if set now (tests point it at a temporary folder), else the run store's default."""
    from theorybench.runstore import DEFAULT_ROOT

    return Path(os.environ["THEORYBENCH_RUNS"]) if os.environ.get("THEORYBENCH_RUNS") else DEFAULT_ROOT


def fetch(cfg, root: Path | None = None):
    """The run of ``cfg`` (trained if absent). A run that hits a NaN/Inf is a result: it is returned with
    status "failed" (the first time ``get_or_train`` raises the trainer's NonFiniteError, which the
    run store has recorded; asking again returns the recorded run)."""
    from theorybench.runstore import get_or_train
    from theorybench.train import NonFiniteError

    root = runs_root() if root is None else root
    try:
        return get_or_train(cfg, root, progress=False, allow_failed=True)
    except NonFiniteError:
        return get_or_train(cfg, root, progress=False, allow_failed=True)


def fetch_all(configs: list, desc: str, root: Path | None = None) -> dict:
    """{config name: run} for every member, with a progress bar on a terminal."""
    import sys

    from tqdm import tqdm

    return {c.name: fetch(c, root) for c in tqdm(configs, desc=desc, disable=not sys.stderr.isatty(), unit="run")}


def model_at(cfg, step: int, root: Path | None = None):
    """The model of ``cfg`` after ``step`` updates: its initialization at 0, else the final weights of the
    run (or prefix run) of that many steps; None if that run stopped on a NaN/Inf before its end."""
    from toy_models import Transformer

    if step == 0:
        return Transformer(cfg.resolved().model).eval()
    prefix = dataclasses.replace(cfg, name=_prefix_name(cfg.name, step, cfg.train.steps),
                                 train=dataclasses.replace(cfg.train, steps=step, eval_every=step, checkpoint_every=step))
    run = fetch(prefix, root)
    return run.load_model() if run.status == "done" else None


def _prefix_name(name: str, step: int, full_steps: int) -> str:
    return name if step == full_steps else f"{name}-t{step}"


# ------------------------------------------------------------------------------------------ measurement
def probe_batch(size: dict) -> dict:
    """The fixed batch every model is probed on (drawn from the task with PROBE_SEED)."""
    from toy_models.tasks.markov import MarkovConfig

    task = MarkovConfig(n_states=size["n_states"], seq_len=size["seq_len"]).build()
    return task.sample(size["probe_batch"], torch.Generator().manual_seed(PROBE_SEED))


def measure(model, batch: dict, gradients: bool = False) -> dict[str, np.ndarray | float]:
    """Per-layer statistics of one model on one batch.

    variance, mean_square, max_abs, max_to_median, kurtosis: [L + 1] over x_0 … x_L; angular: [L];
    n_massive: count of Sun et al.'s massive entries; sink_mass: the largest first-token attention mass
    over heads, per layer [L]; with ``gradients``, block_grad_norm [L] (‖∇‖ of all of block l's
    parameters together) and resid_grad_norm [L] (‖∂loss/∂x_l‖), for the task's cross-entropy."""
    from probes import attention_sinks, gradient_norms, massive_activations, residual_stats

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
    from theorybench.train import EVAL_SEED

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
        from theorybench.runstore import FAILED_FILE

        step = json.loads((run.dir / FAILED_FILE).read_text())["step"]
        return dict(diverged=True, kind="non-finite", spikes=spikes, eval_loss=math.nan, bayes_loss=math.nan,
                    unigram_loss=math.nan, failed_step=float(step))
    last = metrics.iloc[-1]
    unigram = eval_unigram_loss(run)
    collapsed = bool(last["eval_loss"] >= unigram)
    return dict(diverged=collapsed, kind="no better than unigram" if collapsed else "trained", spikes=spikes,
                eval_loss=float(last["eval_loss"]), bayes_loss=float(last["eval_bayes_loss"]), unigram_loss=unigram,
                failed_step=math.nan)


# ------------------------------------------------------------------------------------------ statistics
def growth_from_init(trained, init) -> np.ndarray:
    """log Var after training − log Var at initialization, elementwise (per seed, per layer): the growth of
    the hidden-state variance relative to its own start, comparable across placements whose initial
    variances differ (Pre-LN's and Peri-LN's differ by ~8.6 nats at GPT-2 init)."""
    return np.log(np.asarray(trained, dtype=float)) - np.log(np.asarray(init, dtype=float))


def fisher_exact_p(k_a: int, n_a: int, k_b: int, n_b: int) -> float:
    """Two-sided Fisher exact test of equal rates k_a/n_a and k_b/n_b (scipy's conditional test)."""
    from scipy import stats  # here: scipy.stats costs the command line ~0.8 s at start-up

    return float(stats.fisher_exact([[k_a, n_a - k_a], [k_b, n_b - k_b]])[1])


def paired_difference_ci(a, b, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of a − b over paired seeds and its Student-t interval: mean ± t_{(1+level)/2, n−1} · sd/√n.

    Seeds pair the runs: seed s draws the same data stream for every placement."""
    from scipy import stats

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return (float(d.mean()) if len(d) else math.nan), math.nan, math.nan
    half = stats.t.ppf((1 + level) / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


__all__ = ["SIZES", "PLACEMENTS", "DEPTH_SWEEP", "LR_SWEEP", "run_config", "depth_members", "lr_members", "fetch",
           "fetch_all", "model_at", "probe_batch", "measure", "loss_spikes", "outcome", "lr_run_config", "LR_PLACEMENTS",
           "eval_unigram_loss", "paired_difference_ci", "growth_from_init", "fisher_exact_p", "runs_root", "check_size"]
