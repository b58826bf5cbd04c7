"""Figure ``graph_search_reach_radius``: the reachability probe (``probes.reachability``) on the
balanced-trained searcher, beside the same architecture at random initialization: the radius of the
decoded reachable sets per layer against the doubling (2^l, path merging) and linear (l, one hop per
layer) laws, compared by AIC, with intervals from a bootstrap over the held-out graphs ("Transformers
Struggle to Learn to Search", Saparov et al., ICLR 2025, Sec. 5)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from probes.reachability import collect, fit_growth, growth_aic, layer_logits, radius_by_layer, unsaturated_layers
from theorybench.claims import Claim, Criterion, Measurement, not_measured
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.threads import single_thread
from toy_models import Transformer
from toy_models.tasks.graph_search import GraphSearchConfig

from .common import PAPER
from .experiments import searcher_config, trained
from .sizes import SIZES, GraphSearchSizes

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
    task = GraphSearchConfig(max_input_size=task_cfg.max_input_size, max_lookahead=task_cfg.max_lookahead).build()
    out = []
    for n, seed in zip((n_train, n_test), PROBE_SEEDS):
        batch = task.sample(n, torch.Generator().manual_seed(seed))
        out.append(collect(model, batch["inputs"], task.vocab, padding_mask=batch["padding_mask"]))
    return out


def random_init_model(cfg, seed: int = 0):
    """The searcher's architecture at its initialization, untrained: the probe's control."""
    torch.manual_seed(seed)
    return Transformer(cfg.resolved().model).eval()


def reach_measurements(trained_radius: np.ndarray, control_radius: np.ndarray, boot_trained: np.ndarray,
                       boot_control: np.ndarray, k_max: float) -> dict[str, Measurement]:
    """The reach criteria from per-layer radii (full sample) and their bootstrap resamples [n_boot, layers],
    the control's resampled on the same graphs. ΔAIC over the layers before the radius saturates
    (``unsaturated_layers``), measured only with ≥ ``MIN_LAYERS_FOR_LAW`` layers before saturation."""
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


@dataclass(frozen=True)
class ReachData:
    """Per model ("trained", "random init"): the reach radius per layer on every held-out graph
    (``radius``) and on each bootstrap resample of the graphs, the same resamples for both (``boot``,
    [resample, layer]); the largest distance shell; the searcher's layers."""

    radius: dict[str, np.ndarray]
    boot: dict[str, np.ndarray]
    k_max: int
    n_layers: int
    test_graphs: int


def _radii(model, cfg, sizes: GraphSearchSizes, rng):
    train, test = probe_data(model, cfg.task, *sizes.probe_graphs)
    logits, dist, graphs = layer_logits(train, test, "forward")
    k_max = int(dist.max())
    full = radius_by_layer(logits, dist, graphs, k_max=k_max)
    ids = np.unique(graphs)
    draws = [rng.choice(ids, size=len(ids)) for _ in range(N_BOOT)]
    return full, draws, (logits, dist, graphs, k_max)


def measure(sizes: GraphSearchSizes) -> ReachData:
    """The probe's radii for the balanced searcher trained with ``sizes`` and for its random initialization."""
    cfg = searcher_config(sizes, "balanced")
    models = {"trained": trained(cfg).load_model(), "random init": random_init_model(cfg)}
    rng = np.random.default_rng(0)
    radius, boot = {}, {}
    draws = None
    for name, model in models.items():
        full, own_draws, (logits, dist, graphs, k_max) = _radii(model, cfg, sizes, rng)
        draws = draws or own_draws  # one set of resampled graphs for both: a paired comparison
        radius[name] = full
        boot[name] = np.array([radius_by_layer(logits, dist, graphs, keep, k_max) for keep in draws])
    return ReachData(radius, boot, k_max, cfg.model.n_layers, sizes.probe_graphs[1])


def _fit(data: ReachData) -> tuple[np.ndarray, dict | None]:
    """The unsaturated layers of the trained radius and, with ≥ 3 of them, the doubling and linear fits."""
    fit_layers = unsaturated_layers(data.radius["trained"], data.k_max)
    return fit_layers, fit_growth(fit_layers, data.radius["trained"][fit_layers]) if len(fit_layers) >= 3 else None


def plot(data: ReachData):
    # matplotlib here, not at the top: the command line imports every study and should start fast
    import matplotlib.pyplot as plt

    radius, boot, k_max, n_layers = data.radius, data.boot, data.k_max, data.n_layers
    layers = np.arange(n_layers + 1)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, marker in (("trained", "o"), ("random init", "s")):
        lo, hi = np.quantile(boot[name], [0.025, 0.975], axis=0)
        ax.errorbar(layers, radius[name], yerr=[radius[name] - lo, hi - radius[name]], fmt=marker + "-", capsize=3,
                    label=f"{name} (95% bootstrap over graphs)")
    _, fit = _fit(data)
    if fit is not None:
        fine = np.linspace(0, n_layers, 100)
        ax.plot(fine, np.minimum(fit["doubling_a"] * 2.0 ** fine + fit["doubling_b"], k_max), ":", color="0.3",
                label="fit a·2^l + b")
        ax.plot(fine, np.minimum(fit["linear_a"] * fine + fit["linear_b"], k_max), "--", color="0.6",
                label="fit a·l + b")
    ax.axhline(k_max, color="0.8", linewidth=1, label=f"cap: {k_max} distance shells")
    ax.set_xticks(layers)
    ax.set_xlabel("layer l (0 = embeddings)")
    ax.set_ylabel("decoded reach radius  Σ_k (2·AUC_k − 1)")
    ax.set_title(f"Forward reach at edge positions, {data.test_graphs} held-out graphs")
    ax.legend(fontsize=7)
    return fig


def numbers(data: ReachData) -> dict[str, float | str]:
    out: dict[str, float | str] = {
        "trained: radius by layer": ", ".join(f"{x:.2f}" for x in data.radius["trained"]),
        "random init: radius by layer": ", ".join(f"{x:.2f}" for x in data.radius["random init"]),
        "largest distance shell (k_max)": float(data.k_max),
    }
    _, fit = _fit(data)
    if fit is not None:
        out["fit rms, doubling vs linear"] = f"{fit['doubling_rms']:.3f} vs {fit['linear_rms']:.3f}"
    return out


def reach_radius(scale: str) -> FigureResult:
    sizes = SIZES[scale]
    with single_thread():
        data = measure(sizes)
    return FigureResult(plot(data), numbers(data), measured=reach_measurements(
        data.radius["trained"], data.radius["random init"], data.boot["trained"], data.boot["random init"],
        float(data.k_max)))


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
