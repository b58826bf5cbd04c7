"""The figure pipeline behind ``make figures``: run each registered figure maker, save it as PNG and
PDF under ``figures/``, and write ``figures/README.md``, which shows each figure beside the paper
claim it reproduces and the numbers measured for it.

Each saved figure also leaves ``<name>.json`` (family, claim, scale, numbers), so that making one
figure again rewrites the index without losing the others.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from . import registry
from .registry import FAMILIES, FigureResult, FigureSpec

DEFAULT_OUT = Path("figures")
INDEX_NAME = "README.md"


@dataclass(frozen=True)
class IndexEntry:
    """One figure as the index shows it."""

    name: str
    family: str
    claim: str
    scale: str
    numbers: dict[str, float | str]


def save_figure(result: FigureResult, spec: FigureSpec, out_dir: Path = DEFAULT_OUT, scale: str = "quick") -> IndexEntry:
    """Write ``<name>.png``, ``<name>.pdf`` and ``<name>.json`` under ``out_dir``; close the figure."""
    _check_labelled(result.figure, spec.name)
    numbers = _check_numbers(result.numbers, spec.name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Fixed metadata: the same figure gives the same PDF bytes, so reruns do not show as changes.
    result.figure.savefig(out_dir / f"{spec.name}.png", metadata={"Software": None})
    result.figure.savefig(out_dir / f"{spec.name}.pdf", metadata={"CreationDate": None, "Producer": None})
    _close(result.figure)
    entry = IndexEntry(spec.name, spec.family, spec.claim, scale, numbers)
    _write_text(out_dir / f"{spec.name}.json", json.dumps(dataclasses.asdict(entry), indent=2, sort_keys=True) + "\n")
    return entry


def write_index(entries: Sequence[IndexEntry], out_dir: Path = DEFAULT_OUT) -> Path:
    """Write ``out_dir/README.md``: per family, each figure (image), its claim and its numbers."""
    lines = ["# Figures", "",
             "Made by `make figures` (`theorybench figures`). Each figure stands beside the paper claim it",
             "reproduces and the numbers measured for it. Files are named after their family.", ""]
    if not entries:
        lines += ["No figures yet: no study family has registered one "
                  f"(families: {', '.join(f'`{f}`' for f in FAMILIES)}). See the top-level README, "
                  "\"How to add a study\".", ""]
    for family in FAMILIES:
        group = sorted((e for e in entries if e.family == family), key=lambda e: e.name)
        if group:
            lines += [f"## {family}", ""]
        for e in group:
            lines += [f"### {e.name}", "", f"![{e.name}]({e.name}.png)", "",
                      f"**Claim.** {e.claim}", "", f"[PDF]({e.name}.pdf) · scale: `{e.scale}`", ""]
            if e.numbers:
                lines += ["| measured | value |", "|---|---|"]
                lines += [f"| {key} | {_format(value)} |" for key, value in e.numbers.items()]
                lines.append("")
    path = Path(out_dir) / INDEX_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_text(path, "\n".join(lines))
    return path


def make_figures(names: Iterable[str] | None = None, scale: str = "quick", out_dir: Path = DEFAULT_OUT) -> list[IndexEntry]:
    """Make the named figures (all registered ones by default) and rewrite the index.

    Every name and the scale are checked before any figure is made. The index lists the figures
    made now and those made earlier into ``out_dir`` that are still registered."""
    from tqdm.auto import tqdm

    from .style import apply_style

    registry.load_studies()
    registry.check_scale(scale)
    specs = [registry.get_figure(n) for n in names] if names else list(registry.figures().values())
    out_dir = Path(out_dir)
    apply_style()
    made = {}
    for spec in tqdm(specs, desc="figures", unit="fig", disable=None):  # disable=None: quiet when not a terminal
        made[spec.name] = save_figure(spec.make(scale), spec, out_dir, scale)
    shown = dict(made)
    for name in registry.figures():
        earlier = None if name in shown else _read_entry(out_dir / f"{name}.json")
        if earlier is not None:
            shown[name] = earlier
    write_index(list(shown.values()), out_dir)
    return list(made.values())


# ---------------------------------------------------------------------------------------- helpers
def _check_labelled(fig, name: str) -> None:
    """Paper figures have labelled axes: at least one x label and one y label (on an axes or the figure)."""
    has_x = bool(fig.get_supxlabel()) or any(ax.get_xlabel() for ax in fig.axes)
    has_y = bool(fig.get_supylabel()) or any(ax.get_ylabel() for ax in fig.axes)
    if not (has_x and has_y):
        raise ValueError(f"figure {name!r} has no {'x' if not has_x else 'y'} axis label; label what is plotted")


def _check_numbers(numbers: dict, name: str) -> dict[str, float | str]:
    clean = {}
    for key, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"figure {name!r}: number {key!r}={value!r} must be a float, int or str")
        clean[str(key)] = value if isinstance(value, str) else float(value)
    return clean


def _format(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(value) if not math.isfinite(value) else f"{value:.4g}"


def _read_entry(path: Path) -> IndexEntry | None:
    try:
        return IndexEntry(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):  # missing or from an older format: the figure is simply remade next time
        return None


def _write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so an interrupted write never leaves half an index."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


__all__ = ["DEFAULT_OUT", "IndexEntry", "make_figures", "save_figure", "write_index"]
