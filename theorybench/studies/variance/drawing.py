"""Drawing helpers the variance figures share."""

from __future__ import annotations

import numpy as np


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
