"""Statistics the variance figures share: growth relative to initialization, paired and exact tests,
intervals that say why a comparison cannot be made, and the growth claim two figures test."""

from __future__ import annotations

import math

import numpy as np

from theorybench.claims import Claim, Criterion, Measurement, not_measured, paired_difference, t_interval

LN10 = math.log(10.0)  # "tenfold", in nats


def growth_claim(where: str) -> Claim:
    """Peri-LN's growth claim, measured at the last layer ``where`` (e.g. ", deepest model"): Pre-LN's
    hidden-state variance grows at least tenfold relative to its initialization, Peri-LN's less than
    tenfold, and Pre-LN's more than Peri-LN's ('Peri-LN: Revisiting Layer Normalization in the Transformer
    Architecture', Kim et al. 2025). The tenfold reading of "grows" / "stays bounded" is this project's,
    fixed before any run."""
    return Claim(
        key="pre_grows_peri_bounded",
        statement=("In training, Pre-LN's hidden-state variance grows (at least tenfold at the last layer, relative "
                   "to its initialization) while Peri-LN's stays bounded (less than tenfold), and Pre-LN's grows "
                   "more than Peri-LN's"),
        source="Peri-LN: Revisiting Layer Normalization in the Transformer Architecture (Kim et al. 2025), "
               "hidden-state variance growth in training",
        criteria=(
            Criterion("a_pre_growth", f"Pre-LN: log Var[x_L] after training − at init{where} (nats, mean over seeds)",
                      ">=", LN10),
            Criterion("a_peri_growth", f"Peri-LN: log Var[x_L] after training − at init{where} (nats, mean over "
                      "seeds)", "<=", LN10),
            Criterion("a_pre_minus_peri", f"growth of log Var[x_L], Pre-LN − Peri-LN{where} (paired over seeds)",
                      ">=", 0.0),
        ))


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


def deep_half(values: np.ndarray) -> np.ndarray:
    """Mean over the deeper half of the blocks (blocks ⌊L/2⌋ … L − 1) of [..., L] per-block values."""
    values = np.asarray(values, dtype=float)
    L = values.shape[-1]
    return values[..., L // 2:].mean(-1)


def log_spaced(steps: int, snapshots) -> tuple[int, ...]:
    """Step 0, the snapshots and the last step: the checkpoints a trajectory is read at."""
    return (0, *snapshots, steps)


def geo_mean(values) -> float:
    """Geometric mean of the finite values (NaN: a run that stopped on a NaN/Inf)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(np.exp(np.log(values).mean())) if len(values) else math.nan


def stopped_text(n: int) -> str:
    """What a figure's numbers say where every one of ``n`` runs stopped on a NaN/Inf (instead of "nan")."""
    return f"none: all {n} runs stopped on a NaN/Inf"


def geo_mean_text(values) -> str:
    """``geo_mean`` to 3 significant digits, or ``stopped_text`` where no run left a finite value."""
    g = geo_mean(values)
    return f"{g:.3g}" if math.isfinite(g) else stopped_text(len(np.atleast_1d(values)))


def mean_or_stopped(values) -> float | str:
    """Mean of the finite values to 4 significant digits, or ``stopped_text`` where there is none."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    return float(f"{finite.mean():.4g}") if len(finite) else stopped_text(len(values))


def ci_text(mean: float, lo: float, hi: float) -> str:
    """"mean [low, high] (sign)": the sign is "+" or "−" when the interval excludes 0."""
    sign = "+" if lo > 0 else ("−" if hi < 0 else "0 inside")
    return f"{mean:.3g} [{lo:.3g}, {hi:.3g}] ({sign})"
