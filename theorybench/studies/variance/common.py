"""What several variance figures share: the Monte Carlo and theory at initialization, access to the
trained runs, and the statistics read from them.

At initialization (figures ``residual_growth_at_init``, ``gradient_scale_at_init``). Where the theory
holds. Both use ``fan_in`` init (the scheme of the variance derivations) with
attention scores divided by ATTN_SCALE = 1e4 (times the stream's largest predicted variance for the
residual figure, see ``uniform_attention_config``) instead of √d_head: the theory takes attention as
uniform at init, exact as the score variance → 0. With fan_in and the default scale the scores have
variance 1 and attention is not uniform; the figure measures that gap on the same weights (a Pre-LN
run at the default scale, crosses; at quick scale +4.7% at layer 2, 8.7 paired SE, washing out to
−0.1% by layer 32) and reports it in its numbers. The MLP uses ReLU, whose kernel has a closed form at
every variance (``theory.variance.gaussian``): the un-normalized stream ("none") grows exponentially
and leaves the range where GELU's quadrature is validated. Its per-seed values are a product of 2L
random gains, heavy-tailed at depth: there the sample mean (and its SE) understate the expectation,
which the figure's numbers show (MC / theory and the seed spread at the last layer).

Every placement is run on the same seeds, so their Monte Carlo fluctuations are correlated: a seed set
that runs high at some layer does so for every placement.

Sink task (figures ``sink_growth``, ``sink_massive_activations``). Measurements over training come
from log-spaced snapshots (prefix runs of a constant-lr run, as for the Markov runs; step 0 is the
initialization) for the variants in ``experiments.SNAPSHOT_VARIANTS``, and from the final weights for
all. Per model, on a fixed probe batch (``SINK_PROBE_SEED``), ``sink_statistics`` gives per layer
x_0 … x_L: the variance (mean per-token variance over coordinates), the largest |x| and its ratio to
the layer's median |x| on the BOS token and on the other tokens, the kurtosis (Bondarenko's metric),
and per block the BOS attention mass of the most BOS-attending head with that head's value-norm ratio
(BOS value norm / other value norms), and the angular distance arccos(cos(x_l, x_{l+1}))/π (Mix-LN's
measure, Li et al. 2024).

Markov language (figures ``trained_growth``, ``massive_activations_training``,
``gradient_norms_early_training``). Initialization is ``fan_in`` (``experiments.training_run_config``),
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

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from probes import (angular_distance, attention_sinks, gradient_norms, kurtosis, massive_activations,
                    residual_stats)
from probes._common import resid_hook_names
from theory.variance import variance_profile
from theorybench.claims import Measurement, not_measured, paired_difference, t_interval
from theorybench.progress import show_progress
from theorybench.runs import get_or_train
from theorybench.train import EVAL_SEED
from toy_models import Transformer, TransformerConfig
from toy_models.init import initialize
from toy_models.tasks.markov import MarkovConfig
from toy_models.theory_args import variance_architecture

from .experiments import sink_task_config
from .sizes import SinkSizes, TrainingSizes

LABELS = {"none": "no norm", "post": "Post-LN", "pre": "Pre-LN", "peri": "Peri-LN", "mix": "Mix-LN (α = 0.25)",
          "pre_clip": "Pre-LN + clipped softmax", "pre_gate": "Pre-LN + gated attention"}

# ------------------------------------------------------------------------------------------ at initialization
PLACEMENTS_AT_INIT = ("none", "post", "pre", "peri", "mix")
NORMALIZED = ("post", "pre", "peri", "mix")  # "none": heavy-tailed over seeds at depth (see the module docstring)
ATTN_SCALE = 1e4  # scores ~ N(0, d_head/1e8): attention uniform at init, where the theory is exact
N_CTX, D_VOCAB, N_SEQ = 8, 50, 2
# The caption tail of both figures at initialization: where their theory is exact.
AT_INIT_WHERE = (" Measured at initialization on the toy transformer with fan_in init, near-uniform attention "
          "(score scale 1e4, where the uniform-attention theory is exact) and a ReLU MLP; the gap at the default "
          "1/√d_head score scale is reported among the numbers.")


def base_config(d_model: int, n_layers: int, placement: str, **overrides):
    """The toy model the figures measure: fan_in init, ReLU MLP, near-uniform attention, float64."""
    kw = dict(n_layers=n_layers, d_model=d_model, n_heads=4, n_ctx=N_CTX, d_vocab=D_VOCAB, norm_placement=placement,
              init="fan_in", attn_scale=ATTN_SCALE, act_fn="relu", dtype="float64", mix_alpha=0.25)
    return TransformerConfig(**{**kw, **overrides})


def fixed_tokens() -> torch.Tensor:
    """The sequences every seed is run on (fixed, so that the theory's input kernel is the same)."""
    return torch.randint(0, D_VOCAB, (N_SEQ, N_CTX), generator=torch.Generator().manual_seed(0))


def uniform_attention_config(cfg, tokens: torch.Tensor):
    """``cfg`` with scores divided by ATTN_SCALE · max(1, K_max), K_max the largest predicted per-coordinate
    variance of the stream (the profile does not depend on the score scale): the score variance
    d_head (dσ²_Q K)²/scale² then stays ≤ d_head·1e-8 at every layer, also where an un-normalized
    stream grows exponentially and 1e4 alone would let attention sharpen past layer ~10."""
    k_max = float(np.max(variance_profile(variance_architecture(cfg), tokens.numpy()).per_position))
    return cfg.replace(attn_scale=ATTN_SCALE * max(1.0, k_max))


def theory_per_layer(cfg, tokens: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Predicted mean square at x_0 … x_L and the theory's own finite-width term there (see
    ``VarianceProfile.remainder``: non-zero only at a norm's output, where the seed spread vanishes)."""
    prof = variance_profile(variance_architecture(cfg), tokens.numpy())
    idx = [0] + [i for i, h in enumerate(prof.hooks) if h.endswith("hook_resid_post")]
    return prof.variance[idx], prof.remainder[idx]


def residual_monte_carlo(cfg, tokens: torch.Tensor, n_seeds: int, first_seed: int = 1000) -> np.ndarray:
    """[n_seeds, L + 1]: the mean square of x_0 … x_L (``probes.residual_stats``) per initialization seed."""
    model = Transformer(cfg)
    out = np.empty((n_seeds, cfg.n_layers + 1))
    for s in range(n_seeds):
        initialize(model, cfg.replace(seed=first_seed + s))
        df = residual_stats(model, tokens)
        out[s] = df[df["quantity"] == "mean_square"].sort_values("layer")["value"].to_numpy()
    return out


def last_layer_grad_sq_monte_carlo(cfg, tokens: torch.Tensor, n_seeds: int, first_seed: int = 2000) -> np.ndarray:
    """[n_seeds]: ‖∇W_out‖² of the last MLP (``probes.gradient_norms``) for ℓ = Σ logits·r, r ~ N(0, I)
    drawn afresh per seed (so output gradients of different positions are independent, as the theory assumes)."""
    model, out = Transformer(cfg), np.empty(n_seeds)
    gen = torch.Generator().manual_seed(first_seed)
    for s in range(n_seeds):
        initialize(model, cfg.replace(seed=first_seed + s))
        r = torch.randn(*tokens.shape, cfg.vocab_out, generator=gen, dtype=torch.float64)
        df = gradient_norms(model, tokens, loss_fn=lambda logits: (logits * r).sum())
        row = df[(df["layer"] == cfg.n_layers - 1) & (df["name"] == "mlp.W_out") & (df["quantity"] == "param_grad_norm")]
        out[s] = float(row["value"].iloc[0]) ** 2
    return out


def per_seed_slope(values: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row against the layer index 0 … L: growth per block."""
    layers = np.arange(values.shape[-1])
    return np.polyfit(layers, np.atleast_2d(values).T, 1)[0]


def gap_in_se(mc: np.ndarray, predicted: np.ndarray, remainder: np.ndarray) -> float:
    """Largest |mean − predicted| over layers, in units of (standard error + the theory's finite-width
    term): at a norm's output (Post-LN) the seed spread is ~1e-9 and that term is the only honest scale."""
    mean, se = mc.mean(0), mc.std(0, ddof=1) / math.sqrt(mc.shape[0])
    return float(np.max(np.abs(mean - predicted) / (se + remainder)))


def ratio_with_se(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """√(mean a / mean b) and its standard error (delta method, independent samples a and b)."""
    ma, mb = a.mean(), b.mean()
    ratio = math.sqrt(ma / mb)
    rel = math.hypot(a.std(ddof=1) / math.sqrt(len(a)) / ma, b.std(ddof=1) / math.sqrt(len(b)) / mb)
    return ratio, 0.5 * ratio * rel


# ------------------------------------------------------------------------------------------ trained runs
def fetch(cfg, root: Path | None = None):
    """The run of ``cfg`` in the run store (``root``, default ``$THEORYBENCH_RUNS`` read now), trained if
    absent. A run that hits a NaN/Inf is a result: it is returned with status "failed", its
    ``stored_failure`` the trainer's message and step."""
    return get_or_train(cfg, root, progress=False, allow_failed=True)


def fetch_all(configs: list, desc: str, root: Path | None = None) -> dict:
    """{config name: run} for every member, with a progress bar on a terminal."""
    return {c.name: fetch(c, root) for c in tqdm(configs, desc=desc, disable=not show_progress(None), unit="run")}


def model_at(cfg, step: int, root: Path | None = None):
    """The model of ``cfg`` after ``step`` updates: its initialization at 0, else the final weights of the
    run (or prefix run) of that many steps; None if that run stopped on a NaN/Inf before its end."""
    if step == 0:
        return Transformer(cfg.resolved().model).eval()
    prefix = dataclasses.replace(cfg, name=_prefix_name(cfg.name, step, cfg.train.steps),
                                 train=dataclasses.replace(cfg.train, steps=step, eval_every=step, checkpoint_every=step))
    run = fetch(prefix, root)
    return run.load_model() if run.status == "done" else None


def _prefix_name(name: str, step: int, full_steps: int) -> str:
    return name if step == full_steps else f"{name}-t{step}"


# ------------------------------------------------------------------------------------------ sink-task statistics
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


def deep_half(values: np.ndarray) -> np.ndarray:
    """Mean over the deeper half of the blocks (blocks ⌊L/2⌋ … L − 1) of [..., L] per-block values."""
    values = np.asarray(values, dtype=float)
    L = values.shape[-1]
    return values[..., L // 2:].mean(-1)


def log_spaced(steps: int, snapshots) -> tuple[int, ...]:
    """Step 0, the snapshots and the last step: the checkpoints a trajectory is read at."""
    return (0, *snapshots, steps)


# ------------------------------------------------------------------------------------------ Markov statistics
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


# ------------------------------------------------------------------------------------------ statistics
def growth_from_init(trained, init) -> np.ndarray:
    """log Var after training − log Var at initialization, elementwise (per seed, per layer): the growth of
    the hidden-state variance relative to its own start, comparable across placements whose initial
    variances differ (Pre-LN's and Peri-LN's differ by ~8.6 nats at GPT-2 init)."""
    return np.log(np.asarray(trained, dtype=float)) - np.log(np.asarray(init, dtype=float))


def fisher_exact_p(k_a: int, n_a: int, k_b: int, n_b: int) -> float:
    """Two-sided Fisher exact test of equal rates k_a/n_a and k_b/n_b (scipy's conditional test)."""
    from scipy import stats  # here, not at the top: scipy.stats costs the command line ~0.8 s at start-up

    return float(stats.fisher_exact([[k_a, n_a - k_a], [k_b, n_b - k_b]])[1])


def paired_difference_ci(a, b, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of a − b over paired seeds and its Student-t interval: mean ± t_{(1+level)/2, n−1} · sd/√n.

    Seeds pair the runs: seed s draws the same data stream for every placement."""
    from scipy import stats  # here, not at the top: scipy.stats costs the command line ~0.8 s at start-up

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return (float(d.mean()) if len(d) else math.nan), math.nan, math.nan
    half = stats.t.ppf((1 + level) / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


# ------------------------------------------------------------------------------------------ reading trained runs
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


def over_seeds(values, untrained: str | None = None) -> Measurement:
    """t interval of per-seed values; not_measured when the runs are undertrained or a seed's run stopped
    on a NaN/Inf."""
    if untrained:
        return not_measured(untrained)
    values = np.asarray(values, dtype=float)
    bad = int((~np.isfinite(values)).sum())
    if bad:
        return not_measured(f"{bad} of {len(values)} runs stopped on a NaN/Inf")
    return t_interval(values)


def paired(a, b, untrained: str | None = None) -> Measurement:
    """Paired t interval of a − b over seeds; not_measured as ``over_seeds``."""
    if untrained:
        return not_measured(untrained)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    bad = int((~(np.isfinite(a) & np.isfinite(b))).sum())
    if bad:
        return not_measured(f"{bad} of {len(a)} seed pairs have a run that stopped on a NaN/Inf")
    return paired_difference(a, b)


def sink_setup(sizes: SinkSizes) -> str:
    """The sink runs' setup, for figure titles."""
    return (f"Bigram-Backcopy with BOS ({sizes.n_tokens} tokens, {sizes.n_triggers} triggers, length "
            f"{sizes.seq_len}), depth {sizes.n_layers}, d_model {sizes.d_model}, fan_in init, AdamW at lr "
            f"{sizes.lr:g}, {sizes.steps} steps, {sizes.seeds} seeds")


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


def geo_mean(values) -> float:
    """Geometric mean of the finite values (NaN: a run that stopped on a NaN/Inf)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(np.exp(np.log(values).mean())) if len(values) else math.nan


def ci_text(mean: float, lo: float, hi: float) -> str:
    """"mean [low, high] (sign)": the sign is "+" or "−" when the interval excludes 0."""
    sign = "+" if lo > 0 else ("−" if hi < 0 else "0 inside")
    return f"{mean:.3g} [{lo:.3g}, {hi:.3g}] ({sign})"


# The caption tails of the trained figures: where and how they were measured (the text the figures' JSON keeps).
SINK_CAPTION_SETUP = (" Measured on the toy transformer trained on Bigram-Backcopy with a BOS token (Guo et al., "
                       "'Active-Dormant Attention Heads'), fan_in init (Peri-LN's output norms out of the ε regime), AdamW "
                       "at a constant learning rate, paired seeds; definitions in theorybench/studies/variance_sinks.py.")
TRAINING_CAPTION_SETUP = (" Measured on the toy transformer trained on a synthetic Markov language (fan_in init, so that Peri-LN's "
                          "output norms are out of the ε regime; AdamW at a constant learning rate, no warm-up), over paired seeds; "
                          "the definitions are in theorybench/studies/variance_training.py.")


# ------------------------------------------------------------------------------------------ drawing helpers
def colors(keys) -> dict[str, str]:
    """One colour of the style's cycle per key, in order."""
    # matplotlib here, not at the top: the command line imports every study and should start fast
    import matplotlib.pyplot as plt

    return dict(zip(keys, plt.rcParams["axes.prop_cycle"].by_key()["color"]))


def band(ax, x, rows: np.ndarray, color, label: str, log: bool = False, **kw) -> None:
    """Mean (geometric with ``log``) over rows (seeds) with a min–max band; rows with a NaN (runs that
    stopped on a NaN/Inf) are left out."""
    rows = np.asarray(rows, dtype=float)
    rows = rows[np.all(np.isfinite(rows), axis=1)]
    if len(rows) == 0:
        return
    centre = np.exp(np.log(rows).mean(0)) if log else rows.mean(0)
    ax.plot(x, centre, color=color, label=label, **kw)
    ax.fill_between(x, rows.min(0), rows.max(0), color=color, alpha=0.18, linewidth=0)
