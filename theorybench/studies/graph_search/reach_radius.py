"""Graph search, what the trained searcher computes ("Transformers Struggle to Learn to Search",
Saparov et al., ICLR 2025): the per-layer reach of its vertex representations, and attention patching.

Figures:

- ``graph_search_reach_radius``: the reachability probe (``probes.reachability``) on the
  balanced-trained searcher of ``graph_search``, beside the same architecture at random
  initialization: the radius of the decoded reachable sets per layer against the doubling (2^l, path
  merging) and linear (l, one hop per layer) laws, compared by AIC, with intervals from a bootstrap
  over the held-out graphs.
- ``graph_search_path_merging``: attention-weight patching (``probes.attention_patching``) on held-out
  examples of every test lookahead: how often the operations the answer depends on compose into path
  merging, beside the control that draws each operation's source at random.
"""

from __future__ import annotations

import numpy as np
import torch

from theorybench.claims import Claim, Criterion, Measurement, binomial_interval, not_measured, paired_difference
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.threads import single_thread

from .graph_search import PAPER, SIZES, searcher_experiment, trained

PROBE_SEEDS = (11, 12)  # graph seeds of the probe's training and held-out test graphs
N_BOOT = 200  # bootstrap resamples of the held-out graphs
MIN_LAYERS_FOR_LAW = 5  # doubling and linear growth differ visibly only over ≥ 4 merge layers
DOUBLING_AIC = 2.0  # AIC(linear) − AIC(doubling) ≥ 2: the usual "substantially better supported"
REACH_GAIN = 1.0  # trained radius gain over the random-initialization control, in distance shells

REACH_CLAIMS = (
    Claim(key="reach_grows_exponentially",
          statement=("Each vertex representation holds the vertices it reaches, and the radius it covers grows "
                     "exponentially with depth (path merging) rather than one hop per layer"),
          source=f"{PAPER}, Sec. 5 and Fig. 4 (exponential path merging)",
          criteria=(Criterion(key="reach_doubling_aic",
                              quantity="AIC(linear) − AIC(doubling) of the per-layer reach radius",
                              op=">=", threshold=DOUBLING_AIC),
                    Criterion(key="reach_gain_vs_random_init",
                              quantity="radius gained from layer 0 to the last: trained − random initialization (shells)",
                              op=">=", threshold=REACH_GAIN))),
)


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


def random_init_model(cfg, seed: int = 0):
    """The searcher's architecture at its initialization, untrained: the probe's control."""
    from toy_models import Transformer

    torch.manual_seed(seed)
    return Transformer(cfg.resolved().model).eval()


def reach_measurements(trained_radius: np.ndarray, control_radius: np.ndarray, boot_trained: np.ndarray,
                       boot_control: np.ndarray, k_max: float) -> dict[str, Measurement]:
    """The reach criteria from per-layer radii (full sample) and their bootstrap resamples [n_boot, layers],
    the control's resampled on the same graphs. ΔAIC over the layers before the radius saturates
    (``unsaturated_layers``), measured only with ≥ ``MIN_LAYERS_FOR_LAW`` layers before saturation."""
    from probes.reachability import growth_aic, unsaturated_layers

    out: dict[str, Measurement] = {}
    gain = lambda r: r[..., -1] - r[..., 0]  # noqa: E731
    diff = gain(boot_trained) - gain(boot_control)
    value = float(gain(trained_radius) - gain(control_radius))
    lo, hi = np.quantile(diff, [0.025, 0.975])
    out["reach_gain_vs_random_init"] = Measurement(value, min(lo, value), max(hi, value),
                                                   "percentile bootstrap over held-out graphs", n=len(diff))
    layers = unsaturated_layers(trained_radius, k_max)
    if len(layers) < MIN_LAYERS_FOR_LAW:
        out["reach_doubling_aic"] = not_measured(
            f"{len(layers)} layer(s) before the radius saturates at the graphs' {k_max:.0f} distance shells; the "
            f"law needs ≥ {MIN_LAYERS_FOR_LAW} (≥ 5 layers and graphs whose distances exceed 2^(layers−1): the "
            "full scale)")
        return out
    aic = np.array([growth_aic(layers, r[layers]) for r in boot_trained])
    value = growth_aic(layers, trained_radius[layers])
    lo, hi = np.quantile(aic, [0.025, 0.975])
    out["reach_doubling_aic"] = Measurement(value, min(lo, value), max(hi, value),
                                            f"percentile bootstrap over held-out graphs, layers 0..{layers[-1]}",
                                            n=len(aic))
    return out


def reach_radius(scale: str) -> FigureResult:
    with single_thread():
        return _reach_radius(scale)


def _radii(model, cfg, size, rng):
    from probes.reachability import layer_logits, radius_by_layer

    train, test = probe_data(model, cfg.task, *size["probe_graphs"])
    logits, dist, graphs = layer_logits(train, test, "forward")
    k_max = int(dist.max())
    full = radius_by_layer(logits, dist, graphs, k_max=k_max)
    ids = np.unique(graphs)
    draws = [rng.choice(ids, size=len(ids)) for _ in range(N_BOOT)]
    return full, draws, (logits, dist, graphs, k_max)


def _reach_radius(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt

    from probes.reachability import fit_growth, radius_by_layer, unsaturated_layers

    size = SIZES[scale]
    cfg = searcher_experiment(scale, "balanced")
    models = {"trained": trained(cfg).load_model(), "random init": random_init_model(cfg)}
    rng = np.random.default_rng(0)
    radius, boot = {}, {}
    draws = None
    for name, model in models.items():
        full, own_draws, (logits, dist, graphs, k_max) = _radii(model, cfg, size, rng)
        draws = draws or own_draws  # one set of resampled graphs for both: a paired comparison
        radius[name] = full
        boot[name] = np.array([radius_by_layer(logits, dist, graphs, keep, k_max) for keep in draws])
    n_layers = cfg.model.n_layers
    layers = np.arange(n_layers + 1)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, marker in (("trained", "o"), ("random init", "s")):
        lo, hi = np.quantile(boot[name], [0.025, 0.975], axis=0)
        ax.errorbar(layers, radius[name], yerr=[radius[name] - lo, hi - radius[name]], fmt=marker + "-", capsize=3,
                    label=f"{name} (95% bootstrap over graphs)")
    fit_layers = unsaturated_layers(radius["trained"], k_max)
    numbers: dict[str, float | str] = {
        "trained: radius by layer": ", ".join(f"{x:.2f}" for x in radius["trained"]),
        "random init: radius by layer": ", ".join(f"{x:.2f}" for x in radius["random init"]),
        "largest distance shell (k_max)": float(k_max),
    }
    if len(fit_layers) >= 3:
        fit = fit_growth(fit_layers, radius["trained"][fit_layers])
        fine = np.linspace(0, n_layers, 100)
        ax.plot(fine, np.minimum(fit["doubling_a"] * 2.0 ** fine + fit["doubling_b"], k_max), ":", color="0.3",
                label="fit a·2^l + b")
        ax.plot(fine, np.minimum(fit["linear_a"] * fine + fit["linear_b"], k_max), "--", color="0.6",
                label="fit a·l + b")
        numbers["fit rms, doubling vs linear"] = f"{fit['doubling_rms']:.3f} vs {fit['linear_rms']:.3f}"
    ax.axhline(k_max, color="0.8", linewidth=1, label=f"cap: {k_max} distance shells")
    ax.set_xticks(layers)
    ax.set_xlabel("layer l (0 = embeddings)")
    ax.set_ylabel("decoded reach radius  Σ_k (2·AUC_k − 1)")
    ax.set_title(f"Forward reach at edge positions, {size['probe_graphs'][1]} held-out graphs")
    ax.legend(fontsize=7)
    measured = reach_measurements(radius["trained"], radius["random init"], boot["trained"], boot["random init"],
                                  float(k_max))
    return FigureResult(fig, numbers, measured=measured)


register_figure(FigureSpec(
    name="graph_search_reach_radius",
    family="graph_search",
    claim=("A trained searcher stores at each vertex the set of vertices reachable from it and merges these "
           "sets along edges layer by layer, so the radius they cover grows exponentially with depth (path "
           "merging, 2^l) rather than one hop per layer ('Transformers Struggle to Learn to Search', Saparov "
           "et al., ICLR 2025)."),
    make=reach_radius,
    claims=REACH_CLAIMS,
))


# ---------------------------------------------------------------------------------------- patching
EXPLAINED = 0.5  # "most" correctly answered examples are explained by path merging
OVER_CONTROL = 0.1  # and at least 10 points more often than with random sources

PATCHING_CLAIMS = (
    Claim(key="path_merging_by_patching",
          statement=("The attention operations a trained searcher's answer depends on compose into path merging "
                     "(sets of reachable vertices joined along edges), far more often than chance"),
          source=f"{PAPER}, Sec. 5 (attention-weight patching; explainable fraction)",
          criteria=(Criterion(key="merging_explained",
                              quantity="fraction of correctly answered held-out examples explained as path merging",
                              op=">=", threshold=EXPLAINED),
                    Criterion(key="merging_over_control",
                              quantity="explained − explained with random operation sources (paired per example)",
                              op=">=", threshold=OVER_CONTROL))),
)


def patching_measurements(explained: np.ndarray, control: np.ndarray, correct: np.ndarray) -> dict[str, Measurement]:
    """Criteria from per-example indicators (model explained, control explained, answered correctly):
    the explained fraction among correct answers (Clopper–Pearson) and the paired excess over the
    control among them (t interval over examples; n ≥ 200 per lookahead at medium scale)."""
    e, c = np.asarray(explained, bool)[correct], np.asarray(control, bool)[correct]
    if e.size < 2:
        reason = f"{e.size} correctly answered example(s): nothing to explain"
        return {"merging_explained": not_measured(reason), "merging_over_control": not_measured(reason)}
    out = {"merging_explained": binomial_interval(int(e.sum()), int(e.size))}
    diff = paired_difference(e.astype(float), c.astype(float))
    out["merging_over_control"] = Measurement(diff.value, diff.low, diff.high, "paired t interval over examples",
                                              n=diff.n, level=diff.level)
    return out


def path_merging(scale: str) -> FigureResult:
    with single_thread():
        return _path_merging(scale)


def _path_merging(scale: str) -> FigureResult:
    import matplotlib.pyplot as plt

    from probes.attention_patching import answer_drops, computation_graph, random_ops_control
    from toy_models.tasks.graph_search import GraphSearchConfig, collate

    size = SIZES[scale]
    cfg = searcher_experiment(scale, "balanced")
    model = trained(cfg).load_model()
    task = GraphSearchConfig(max_input_size=cfg.task.max_input_size, max_lookahead=cfg.task.max_lookahead).build()
    rng = np.random.default_rng(0)
    rows = []
    for L in range(1, task.max_lookahead + 1):
        batch = collate(task.test_set(L, size["patch_per_L"], seed=3), task.vocab)
        for i in range(batch["inputs"].shape[0]):
            tokens, mask = batch["inputs"][i], batch["padding_mask"][i]
            answer, _, drops = answer_drops(model, tokens, mask)
            graph = computation_graph(tokens, task.vocab, answer, drops)
            control = random_ops_control(tokens, task.vocab, graph, len(drops), rng, mask)
            rows.append((L, graph.correct, graph.explained, control.explained, len(graph.ops)))
    L_col, correct, explained, control, n_ops = (np.array(c) for c in zip(*rows))
    Ls = list(range(1, task.max_lookahead + 1))
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    numbers: dict[str, float | str] = {}
    for name, values, marker in (("model", explained, "o"), ("random-source control", control, "s")):
        per_L = [binomial_interval(int(values[(L_col == L) & correct].sum()), max(1, int(((L_col == L) & correct).sum())))
                 for L in Ls]
        ax.errorbar(Ls, [m.value for m in per_L], yerr=[[m.value - m.low for m in per_L], [m.high - m.value for m in per_L]],
                    fmt=marker + "-", capsize=3, label=name)
        numbers[f"{name}: explained among correct, by L"] = ", ".join(
            f"L{L} {m.value:.2f} [{m.low:.2f}, {m.high:.2f}]" for L, m in zip(Ls, per_L))
    ax.axhline(EXPLAINED, color="0.7", linestyle=":", linewidth=1, label=f"criterion {EXPLAINED}")
    ax.set_xticks(Ls)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("test lookahead L")
    ax.set_ylabel("fraction explained as path merging (95% CP)")
    ax.set_title(f"Attention patching, {size['patch_per_L']} held-out examples per L")
    ax.legend(fontsize=7)
    numbers["correct answers"] = f"{int(correct.sum())} of {len(correct)}"
    numbers["important operations per example (mean)"] = round(float(n_ops.mean()), 2)
    return FigureResult(fig, numbers, measured=patching_measurements(explained, control, correct))


register_figure(FigureSpec(
    name="graph_search_path_merging",
    family="graph_search",
    claim=("Attention-weight patching finds the mechanism: the operations a balanced-trained searcher's answer "
           "depends on merge reachable sets along edges (path merging), far more often than the same number of "
           "operations with random sources ('Transformers Struggle to Learn to Search', Saparov et al., ICLR 2025)."),
    make=path_merging,
    claims=PATCHING_CLAIMS,
))
