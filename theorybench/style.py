"""One plot style for every figure: paper-like, colour-blind safe, readable when printed small.

``apply_style()`` sets it (and the headless Agg backend outside Jupyter); ``band(ax, x, mean, std,
label)`` draws a mean line with a shaded mean ± std band, the way the papers show spread over seeds.
"""

from __future__ import annotations

import sys

import matplotlib
import numpy as np

_RC = {
    "figure.figsize": (4.5, 3.2),
    "figure.dpi": 120,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "pdf.fonttype": 42,  # embed TrueType, so text in the PDF stays editable and searchable
}


def apply_style(headless: bool | None = None) -> None:
    """Seaborn "paper" context, white grid, colour-blind palette.

    headless: use the Agg backend (no display needed). Default: yes, unless running in a Jupyter
    kernel, where the inline backend must stay so that figures show in the notebook.
    """
    import seaborn as sns  # imported here: seaborn pulls in pandas and scipy

    if headless is None:
        headless = "ipykernel" not in sys.modules
    if headless:
        matplotlib.use("Agg")
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.1, rc=_RC)


def band(ax, x, mean, std, label: str, color=None, alpha: float = 0.25):
    """Plot ``mean`` against ``x`` with a shaded band mean ± std (e.g. over seeds); returns the line."""
    x, mean, std = (np.asarray(v, dtype=float) for v in (x, mean, std))
    if not (x.shape == mean.shape == std.shape and x.ndim == 1):
        raise ValueError(f"band needs 1-D x, mean and std of one length, got shapes {x.shape}, {mean.shape}, {std.shape}")
    if np.any(std < 0):
        raise ValueError("band: std must be non-negative")
    (line,) = ax.plot(x, mean, label=label, color=color)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=alpha, linewidth=0)
    return line


__all__ = ["apply_style", "band"]
