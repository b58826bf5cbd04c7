"""Graph search ("Transformers Struggle to Learn to Search", Saparov et al., ICLR 2025): data coverage,
trained searchers, and what their layers compute.

Figures:

- ``graph_search_lookahead_coverage``: the lookahead histogram of naive random DAGs and of the
  balanced distribution, and the chance accuracy 1/outdeg(start) per lookahead L.
- ``graph_search_accuracy_by_lookahead``: held-out accuracy per test lookahead L of searchers trained
  on naive, star and balanced data (heatmap), with the chance floor beside every accuracy.
- ``graph_search_reach_radius``: the per-layer reachability probe (``probes.reachability``) on the
  balanced-trained searcher: the radius of the decoded reachable sets per layer, against the doubling
  (2^l, path merging) and linear (l, one hop per layer) laws.
- ``graph_search_size_sweep``: the fraction of seeds that learn the task at a fixed budget as the
  graph size grows (the paper: harder with size, not fixed by scale). Its runs are the sweep
  ``graph_search_size_sweep`` (sizes × seeds), trained or reused with ``get_or_train``.

The searcher (``searcher_model``) is the paper's: Pre-LN, frozen one-hot tokens and one-hot positions
concatenated (d_model = vocabulary + 16 + N), one attention head of full width, ReLU MLP of width
d_model, no causal mask, logits = the token coordinates of the final LayerNorm's output (W_U = W_Eᵀ,
frozen), loss at the last position. The paper's optimizer acts as sign-momentum (β = 0.965, weight
decay 0.1, ``theorybench.optim.SignMomentum``); AdamW is offered beside it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from theorybench.registry import ExperimentSpec, FigureResult, FigureSpec, SweepSpec, register_experiment, \
    register_figure, register_sweep
from theorybench.threads import single_thread

DISTRIBUTIONS = ("naive", "star", "balanced")
OPTIMIZERS = ("sign_momentum", "adamw")
HIDDEN_DIMS = 16  # free residual coordinates beside the one-hot tokens and positions (the paper's default)
PROBE_SEEDS = (11, 12)  # graph seeds of the probe's training and held-out test graphs

# "tiny" is what the test suite renders (tests/test_studies.py); "quick" and "full" are the user scales.
# Per scale: the coverage figure's size, the searcher (N, layers), its training (optimizer, lr, batch,
# steps), the held-out test examples per L, the probe's graphs, and the size sweep.
SIZES = {
    "quick": dict(max_input_size=64, examples=1500,
                  N=23, layers=3, optimizer="adamw", lr=3e-3, warmup=50, batch=32, steps=8000, test_per_L=300,
                  probe_graphs=(400, 300),
                  sweep=dict(sizes=(17, 20, 23, 26), seeds=(0, 1, 2), layers=3, steps=3000, batch=32)),
    "full": dict(max_input_size=128, examples=20000,
                 N=128, layers=6, optimizer="sign_momentum", lr=1e-5, warmup=0, batch=1024, steps=860_000,
                 test_per_L=1000, probe_graphs=(2000, 1000),
                 sweep=dict(sizes=(32, 50, 68, 86, 104, 128), seeds=tuple(range(8)), layers=8, steps=200_000,
                            batch=1024)),
    "tiny": dict(max_input_size=32, examples=200,
                 N=20, layers=2, optimizer="adamw", lr=3e-3, warmup=5, batch=16, steps=20, test_per_L=24,
                 probe_graphs=(40, 30),
                 sweep=dict(sizes=(17, 20), seeds=(0, 1), layers=1, steps=10, batch=16)),
}


# ---------------------------------------------------------------------------------------- searcher
def searcher_model(max_input_size: int, n_layers: int, hidden: int = HIDDEN_DIMS):
    """The paper's searcher for inputs of size N = ``max_input_size``: width vocabulary + hidden + N.

    Initialization ``fan_in`` (every matrix ~ N(0, 1/fan_in)) is the scale of PyTorch's default
    nn.Linear init that the paper's code keeps; with GPT-2's 0.02 the one-head attention starts so
    flat that a quick-scale run stalls on the uniform-guess plateau. Training runs the fused attention
    kernel (``attn_path="kernel"``, ~12% faster here); the probes ask for the reference path where they
    read attention patterns.
    """
    from toy_models import TransformerConfig
    from toy_models.tasks.graph_search import Vocab

    vocab = Vocab(max_input_size).size
    d = vocab + hidden + max_input_size
    return TransformerConfig(
        n_layers=n_layers, d_model=d, n_heads=1, d_head=d, d_mlp=d, n_ctx=max_input_size, d_vocab=vocab,
        d_vocab_out=vocab, act_fn="relu", attention_dir="bidirectional", norm_placement="pre",
        embed="onehot", pos="onehot", output="onehot", unembed_bias=False, init="fan_in", attn_path="kernel")


def optimizer(name: str, lr: float, warmup_steps: int = 0):
    """Sign-momentum as the paper's run (β = 0.965, weight decay 0.1), or AdamW with the same decay."""
    from theorybench.experiment import OptimConfig

    if name == "sign_momentum":
        return OptimConfig(name="sign_momentum", lr=lr, betas=(0.965, 0.99), weight_decay=0.1,
                           warmup_steps=warmup_steps)
    if name == "adamw":
        return OptimConfig(name="adamw", lr=lr, betas=(0.9, 0.999), weight_decay=0.1, warmup_steps=warmup_steps)
    raise KeyError(f"optimizer={name!r} is not allowed: one of {', '.join(map(repr, OPTIMIZERS))}")


def searcher_experiment(scale: str, distribution: str, optimizer_name: str | None = None, *,
                        max_input_size: int | None = None, n_layers: int | None = None, steps: int | None = None,
                        batch: int | None = None, seed: int = 0, name: str | None = None):
    """The ExperimentConfig of a searcher trained on ``distribution`` at ``scale`` (SIZES), with any
    of N, layers, steps, batch overridden (the size sweep does). Test inputs (``test_per_L`` per
    lookahead) are reserved: training never sees them."""
    from theorybench.experiment import ExperimentConfig, TrainConfig
    from toy_models.tasks.graph_search import GraphSearchConfig

    if distribution not in DISTRIBUTIONS:
        raise KeyError(f"distribution={distribution!r} is not allowed: one of {', '.join(map(repr, DISTRIBUTIONS))}")
    size = SIZES[scale]
    N = max_input_size or size["N"]
    steps = steps or size["steps"]
    task = GraphSearchConfig(max_input_size=N, distribution=distribution, test_examples_per_lookahead=size["test_per_L"])
    every = max(1, steps // 20)
    return ExperimentConfig(
        name=name or f"graph_search_{distribution}",
        task=task,
        model=searcher_model(N, n_layers or size["layers"]),
        optim=optimizer(optimizer_name or size["optimizer"], size["lr"], size["warmup"]),
        train=TrainConfig(steps=steps, batch_size=batch or size["batch"], eval_every=every, eval_batches=4,
                          checkpoint_every=every, log_every=every),
        seed=seed)


WALKTHROUGH = dict(N=20, layers=3, steps=600, batch=32)  # the notebook's searcher at quick scale (~1 min)


def walkthrough_experiment(scale: str = "quick"):
    """A small balanced searcher (``WALKTHROUGH``) that trains in about a minute: the notebook's when the
    figures' searcher is not in the run store, and the fast training test's."""
    w = WALKTHROUGH
    return searcher_experiment(scale, "balanced", max_input_size=w["N"], n_layers=w["layers"], steps=w["steps"],
                               batch=w["batch"], name="graph_search_walkthrough")


def _register_experiments() -> None:
    def make(distribution: str, optimizer_name: str | None):
        def build(scale: str):
            return searcher_experiment(scale, distribution, optimizer_name,
                                       name=f"graph_search_{distribution}" + (f"_{optimizer_name}" if optimizer_name else ""))
        which = f"the scale's optimizer (quick: {SIZES['quick']['optimizer']}, full: {SIZES['full']['optimizer']})" \
            if optimizer_name is None else optimizer_name
        build.__doc__ = (f"Searcher trained on {distribution} DAGs with {which} (quick: N={SIZES['quick']['N']}, "
                         f"{SIZES['quick']['layers']} layers; full: N=128, 6 layers, ≈1.3M parameters).")
        return build

    for distribution in DISTRIBUTIONS:
        register_experiment(ExperimentSpec(f"graph_search_{distribution}", "graph_search", make(distribution, None)))
    for opt in OPTIMIZERS:  # the paper's optimizer and AdamW side by side, at either scale
        register_experiment(ExperimentSpec(f"graph_search_balanced_{opt}", "graph_search", make("balanced", opt)))


_register_experiments()


def runs_root() -> Path:
    """Where this family's runs live: $THEORYBENCH_RUNS, read when called (so tests can redirect it), else runs/."""
    from theorybench.runstore import DEFAULT_ROOT

    return Path(os.environ.get("THEORYBENCH_RUNS", DEFAULT_ROOT))


def trained(cfg):
    """The finished run of ``cfg`` (trained now if absent), under ``runs_root()``."""
    from theorybench.runstore import get_or_train

    return get_or_train(cfg, root=runs_root())


# ---------------------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class LookaheadScore:
    """Held-out accuracy at one lookahead: n examples, k correct, and the chance E[1/outdeg] on them."""

    L: int
    n: int
    correct: int
    chance: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.n

    def wilson_lower(self, z: float = 3.0) -> float:
        """Wilson score lower bound of the accuracy at z standard errors."""
        p, n = self.accuracy, self.n
        centre = p + z * z / (2 * n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return float((centre - half) / (1 + z * z / n))


@torch.no_grad()
def accuracy_by_lookahead(model, task_cfg, n: int, lookaheads=None) -> list[LookaheadScore]:
    """Accuracy of ``model`` on the held-out balanced test set of each lookahead L ≥ 1 (``test_set``:
    start with ≥ 2 children, exactly one useful step), with the chance accuracy 1/outdeg on the same examples."""
    from toy_models.tasks.graph_search import GraphSearchConfig, collate

    task = GraphSearchConfig(max_input_size=task_cfg.max_input_size, max_lookahead=task_cfg.max_lookahead,
                             test_seed=task_cfg.test_seed).build()
    model.eval()
    out = []
    for L in lookaheads or range(1, task.max_lookahead + 1):
        batch = collate(task.test_set(L, n), task.vocab)
        logits = model(batch["inputs"], padding_mask=batch["padding_mask"])[:, -1]
        correct = batch["useful"].gather(1, logits.argmax(-1, keepdim=True))[:, 0]
        out.append(LookaheadScore(L=L, n=n, correct=int(correct.sum()),
                                  chance=float((1.0 / batch["out_degree"].double()).mean())))
    return out


# ---------------------------------------------------------------------------------------- figure 0
def lookahead_coverage(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt
    from scipy import stats

    from toy_models.tasks.graph_search import GraphSearchConfig

    size = SIZES[scale]
    samples = {}
    for dist in ("naive", "balanced"):
        task = GraphSearchConfig(max_input_size=size["max_input_size"], distribution=dist).build()
        batch = task.sample(size["examples"], torch.Generator().manual_seed(0))
        samples[dist] = (batch["lookahead"].numpy(), batch["out_degree"].numpy())
    L_max = task.max_lookahead
    edges = np.arange(L_max + 2) - 0.5
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9.6, 3.8))
    for dist, (L, _) in samples.items():
        ax.hist(L, bins=edges, alpha=0.6, label=dist, density=True)
    ax.set_xlabel("lookahead L")
    ax.set_ylabel("fraction of examples")
    ax.set_title(f"Lookahead, N = {size['max_input_size']} ({size['examples']} examples each)")
    ax.legend()
    L, deg = samples["balanced"]
    chance = [np.mean(1.0 / deg[L == k]) if (L == k).any() else np.nan for k in range(L_max + 1)]
    ax2.plot(range(L_max + 1), chance, "o-")
    ax2.set_xlabel("lookahead L")
    ax2.set_ylabel("chance accuracy  E[1 / outdeg(start)]")
    ax2.set_ylim(0, 1.05)
    ax2.set_title("Balanced distribution: chance accuracy per L")
    naive_L = samples["naive"][0]
    counts = np.bincount(L, minlength=L_max + 1)
    return FigureResult(fig, {
        "naive: fraction with L ≥ 5": round(float(np.mean(naive_L >= 5)), 4),
        "naive: largest L seen": int(naive_L.max()),
        "balanced: χ² uniformity p-value": round(float(stats.chisquare(counts).pvalue), 4),
        "balanced: chance accuracy at L ≥ 1": round(float(np.mean(1.0 / deg[L >= 1])), 3),
    })


register_figure(FigureSpec(
    name="graph_search_lookahead_coverage",
    family="graph_search",
    claim=("Naive random DAGs almost never require a long search (lookahead decays roughly exponentially), "
           "so the balanced distribution samples every lookahead 0..L_max uniformly ('Transformers Struggle "
           "to Learn to Search', Saparov et al., ICLR 2025)."),
    make=lookahead_coverage,
))


# ---------------------------------------------------------------------------------------- figure 1
def accuracy_heatmap(scale: str) -> FigureResult:
    with single_thread():
        return _accuracy_heatmap(scale)


def _accuracy_heatmap(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt

    size = SIZES[scale]
    scores = {}
    for dist in DISTRIBUTIONS:
        cfg = searcher_experiment(scale, dist)
        scores[dist] = accuracy_by_lookahead(trained(cfg).load_model(), cfg.task, size["test_per_L"])
    Ls = [s.L for s in scores["balanced"]]
    chance = np.array([s.chance for s in scores["balanced"]])
    acc = np.array([[s.accuracy for s in scores[d]] for d in DISTRIBUTIONS])
    grid = np.vstack([acc, chance])
    rows = [f"trained on {d}" for d in DISTRIBUTIONS] + ["chance  E[1/outdeg]"]
    fig, ax = plt.subplots(figsize=(1.2 + 0.75 * len(Ls), 3.4))
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.grid(False)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if grid[i, j] < 0.6 else "black")
    ax.axhline(len(DISTRIBUTIONS) - 0.5, color="white", linewidth=2)
    ax.set_xticks(range(len(Ls)), [str(L) for L in Ls])
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("test lookahead L (held-out balanced examples, one useful step)")
    ax.set_ylabel("training distribution")
    ax.set_title(f"Accuracy by lookahead, N = {size['N']}, {size['layers']} layers, "
                 f"{size['test_per_L']} examples per L")
    fig.colorbar(im, ax=ax, label="accuracy")
    numbers: dict[str, float | str] = {}
    for d in DISTRIBUTIONS:
        numbers[f"{d}: accuracy (chance) by L"] = ", ".join(
            f"L{s.L} {s.accuracy:.2f} ({s.chance:.2f})" for s in scores[d])
        numbers[f"{d}: min over L of accuracy − chance"] = round(float(np.min(acc[DISTRIBUTIONS.index(d)] - chance)), 3)
    return FigureResult(fig, numbers)


register_figure(FigureSpec(
    name="graph_search_accuracy_by_lookahead",
    family="graph_search",
    claim=("Given the right training distribution the transformer learns to search: trained on balanced "
           "lookaheads it is accurate at every test lookahead, while naive-trained accuracy falls toward "
           "chance as the lookahead grows and star training does not transfer ('Transformers Struggle to "
           "Learn to Search', Saparov et al., ICLR 2025)."),
    make=accuracy_heatmap,
))


# ---------------------------------------------------------------------------------------- figure 2
def probe_data(model, task_cfg, n_train: int, n_test: int):
    """The reachability probe's training and held-out graphs (balanced, seeds ``PROBE_SEEDS``), run
    through ``model``: two ``probes.reachability.ReachData``."""
    from probes.reachability import collect
    from toy_models.tasks.graph_search import GraphSearchConfig

    task = GraphSearchConfig(max_input_size=task_cfg.max_input_size, max_lookahead=task_cfg.max_lookahead).build()
    out = []
    for n, seed in zip((n_train, n_test), PROBE_SEEDS):
        batch = task.sample(n, torch.Generator().manual_seed(seed))
        out.append(collect(model, batch["inputs"], task.vocab, padding_mask=batch["padding_mask"]))
    return out


def reach_radius(scale: str) -> FigureResult:
    with single_thread():
        return _reach_radius(scale)


def _reach_radius(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt

    from probes.reachability import fit_growth, reach_profile, unsaturated_layers

    size = SIZES[scale]
    cfg = searcher_experiment(scale, "balanced")
    model = trained(cfg).load_model()
    train, test = probe_data(model, cfg.task, *size["probe_graphs"])
    prof = reach_profile(train, test)
    n_layers = cfg.model.n_layers
    layers = np.arange(n_layers + 1)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10.5, 3.9))
    numbers: dict[str, float | str] = {}
    best, best_gain = None, -np.inf
    for direction, marker in (("forward", "o"), ("backward", "s")):
        p = prof[prof["direction"] == direction].sort_values("layer")
        r = p["radius"].to_numpy()
        ax.plot(layers, r, marker + "-", label=f"probe: {direction} ({'reachable from u' if direction == 'forward' else 'reaching u'})")
        numbers[f"{direction}: radius by layer"] = ", ".join(f"{x:.2f}" for x in r)
        numbers[f"{direction}: radius gained per layer (doubling: 1, 2, 4, …; one hop: 1, 1, 1, …)"] = ", ".join(
            f"{x:.2f}" for x in np.diff(r))
        numbers[f"{direction}: precision, recall at the last layer"] = (
            f"{p['precision'].iloc[-1]:.2f}, {p['recall'].iloc[-1]:.2f}")
        if r[-1] - r[0] > best_gain:
            best, best_gain = direction, r[-1] - r[0]
    k_max = float(prof["k_max"].max())
    p = prof[prof["direction"] == best].sort_values("layer")
    r = p["radius"].to_numpy()
    fit_layers = unsaturated_layers(r, k_max)
    fine = np.linspace(0, n_layers, 100)
    if len(fit_layers) >= 3:
        fit = fit_growth(fit_layers, r[fit_layers])
        ax.plot(fine, np.minimum(fit["doubling_a"] * 2.0 ** fine + fit["doubling_b"], k_max), ":", color="0.3",
                label=f"fit a·2^l + b (rms {fit['doubling_rms']:.2f})")
        ax.plot(fine, np.minimum(fit["linear_a"] * fine + fit["linear_b"], k_max), "--", color="0.6",
                label=f"fit a·l + b (rms {fit['linear_rms']:.2f})")
        numbers[f"{best}: fit rms, doubling vs linear (layers 0..{fit_layers[-1]})"] = (
            f"{fit['doubling_rms']:.3f} vs {fit['linear_rms']:.3f}")
    else:
        numbers[f"{best}: growth fit"] = f"not made: the radius saturates by layer {fit_layers[-1]} (needs 3 layers)"
    ax.axhline(k_max, color="0.8", linewidth=1, label=f"cap: {k_max:.0f} distance shells in the test graphs")
    ax.set_xticks(layers)
    ax.set_xlabel("layer l (0 = embeddings)")
    ax.set_ylabel("decoded reach radius  Σ_k (2·AUC_k − 1)")
    ax.set_title(f"Reach radius (edge positions, {size['probe_graphs'][1]} held-out graphs)")
    ax.legend(fontsize=7)
    aucs = np.array([[p[f"auc_{k}"].iloc[i] for k in range(1, int(k_max) + 1)] for i in range(len(p))])
    im = ax2.imshow(aucs.T, origin="lower", vmin=0.5, vmax=1, cmap="magma", aspect="auto",
                    extent=(-0.5, n_layers + 0.5, 0.5, k_max + 0.5))
    ax2.grid(False)
    ax2.set_xticks(layers)
    ax2.set_yticks(range(1, int(k_max) + 1))
    ax2.set_xlabel("layer l")
    ax2.set_ylabel(f"distance k ({best})")
    ax2.set_title("AUC_k: distance k vs unreachable")
    fig.colorbar(im, ax=ax2, label="within-row AUC")
    numbers["largest distance counted (k_max)"] = k_max
    return FigureResult(fig, numbers)


register_figure(FigureSpec(
    name="graph_search_reach_radius",
    family="graph_search",
    claim=("A trained searcher stores at each vertex the set of vertices reachable from it (or reaching it) "
           "and merges these sets along edges layer by layer, so the radius they cover grows exponentially "
           "with depth (path merging, 2^l) rather than one hop per layer ('Transformers Struggle to Learn "
           "to Search', Saparov et al., ICLR 2025)."),
    make=reach_radius,
))


# ---------------------------------------------------------------------------------------- figure 3
LEARNED = 0.9  # a seed has learned when its held-out accuracy is ≥ this at every test lookahead


def size_sweep_members(scale: str):
    """Balanced searchers of one depth and budget at growing graph sizes, several seeds each."""
    sweep = SIZES[scale]["sweep"]
    return [searcher_experiment(scale, "balanced", max_input_size=N, n_layers=sweep["layers"],
                                steps=sweep["steps"], batch=sweep["batch"], seed=seed, name=f"graph_search_size_N{N}")
            for N in sweep["sizes"] for seed in sweep["seeds"]]


SIZE_SWEEP = register_sweep(SweepSpec("graph_search_size_sweep", "graph_search", size_sweep_members))


def size_sweep(scale: str) -> FigureResult:
    with single_thread():
        return _size_sweep(scale)


def _size_sweep(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    from toy_models.tasks.graph_search import Vocab

    size = SIZES[scale]
    sweep = size["sweep"]
    by_size: dict[int, list[float]] = {}
    for cfg in tqdm(SIZE_SWEEP.members(scale), desc="graph_search size sweep", unit="run", disable=None):
        scores = accuracy_by_lookahead(trained(cfg).load_model(), cfg.task, size["test_per_L"])
        by_size.setdefault(cfg.task.max_input_size, []).append(min(s.accuracy for s in scores))
    Ns = sorted(by_size)
    graph_sizes = [Vocab(N).max_vertex for N in Ns]
    frac = [float(np.mean(np.array(by_size[N]) >= LEARNED)) for N in Ns]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9.6, 3.6))
    ax.plot(graph_sizes, frac, "o-")
    ax.set_xticks(graph_sizes)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("largest graph (vertices) = (N − 5) // 3")
    ax.set_ylabel(f"fraction of seeds that learn (min_L accuracy ≥ {LEARNED})")
    ax.set_title(f"{sweep['layers']} layers, {sweep['steps']} steps × {sweep['batch']} examples, "
                 f"{len(sweep['seeds'])} seeds")
    for g, N in zip(graph_sizes, Ns):
        ax2.scatter([g] * len(by_size[N]), by_size[N], color="C0", alpha=0.7)
    ax2.set_xticks(graph_sizes)
    ax2.axhline(LEARNED, color="0.6", linestyle="--", linewidth=1)
    ax2.set_xlabel("largest graph (vertices)")
    ax2.set_ylabel("worst held-out accuracy over test lookaheads")
    ax2.set_title("per seed")
    return FigureResult(fig, {
        "graph sizes (vertices)": ", ".join(map(str, graph_sizes)),
        "fraction of seeds that learn": ", ".join(f"{f:.2f}" for f in frac),
        "median worst-L accuracy by size": ", ".join(f"{np.median(by_size[N]):.2f}" for N in Ns),
    })


register_figure(FigureSpec(
    name="graph_search_size_sweep",
    family="graph_search",
    claim=("As the input graph grows the transformer has greater difficulty learning to search: at a fixed "
           "budget the fraction of seeds that learn falls with graph size ('Transformers Struggle to Learn to "
           "Search', Saparov et al., ICLR 2025)."),
    make=size_sweep,
))
