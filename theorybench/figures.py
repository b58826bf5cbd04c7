"""The figure pipeline behind ``make figures``: run each registered figure maker, save it as PNG and
PDF, judge its claims (``theorybench.claims``), and write the index ``README.md``, which shows each
figure beside its claims, their verdicts, and the numbers measured for it.

Figures go to ``figures/`` (``tiny``, ``quick``, ``full``) or ``results/medium/`` (``medium``: the
scale whose results are committed). Each saved figure also leaves ``<name>.json`` (family, caption,
scale, numbers, verdicts, provenance), so that making one figure again rewrites the index without
losing the others, and ``theorybench claims`` can print the ledger without re-running anything.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from . import provenance, registry
from .claims import ClaimVerdict, LedgerError, judge_all
from .registry import FAMILIES, FigureResult, FigureSpec

DEFAULT_OUT = Path("figures")
# The medium scale decides the CPU-feasible claims; its results are committed, with provenance.
COMMITTED_SCALES = {"medium": Path("results") / "medium"}
INDEX_NAME = "README.md"


def default_out(scale: str) -> Path:
    """Where figures of ``scale`` go: ``results/<scale>`` for committed scales, else ``figures/``."""
    return COMMITTED_SCALES.get(scale, DEFAULT_OUT)


@dataclass(frozen=True)
class IndexEntry:
    """One figure as the index shows it."""

    name: str
    family: str
    claim: str
    scale: str
    numbers: dict[str, float | str]
    verdicts: list[dict] = field(default_factory=list)  # ClaimVerdict.to_dict() per declared claim
    provenance: dict = field(default_factory=dict)

    def claim_verdicts(self) -> list[ClaimVerdict]:
        return [ClaimVerdict.from_dict(v) for v in self.verdicts]


def save_figure(result: FigureResult, spec: FigureSpec, out_dir: Path = DEFAULT_OUT, scale: str = "quick",
                provenance: dict | None = None) -> IndexEntry:
    """Judge the figure's claims, write ``<name>.png``, ``<name>.pdf`` and ``<name>.json`` under
    ``out_dir``, and close the figure. A declared criterion the maker did not measure, or a
    measurement no criterion reads, is refused before anything is written."""
    _check_labelled(result.figure, spec.name)
    numbers = _check_numbers(result.numbers, spec.name)
    verdicts = judge_claims(result, spec)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Fixed metadata: the same figure gives the same PDF bytes, so reruns do not show as changes.
    result.figure.savefig(out_dir / f"{spec.name}.png", metadata={"Software": None})
    result.figure.savefig(out_dir / f"{spec.name}.pdf", metadata={"CreationDate": None, "Producer": None})
    _close(result.figure)
    entry = IndexEntry(spec.name, spec.family, spec.claim, scale, numbers, [v.to_dict() for v in verdicts],
                       dict(provenance or {}))
    _write_text(out_dir / f"{spec.name}.json", json.dumps(dataclasses.asdict(entry), indent=2, sort_keys=True) + "\n")
    return entry


def judge_claims(result: FigureResult, spec: FigureSpec) -> list[ClaimVerdict]:
    """The verdict of each claim the figure declared, from the measurements its maker returned."""
    declared = {c.key for claim in spec.claims for c in claim.criteria}
    extra = sorted(set(result.measured) - declared)
    if extra:
        raise LedgerError(f"figure {spec.name!r} measured {extra}, which no declared criterion reads; "
                          f"declared criteria: {sorted(declared) or 'none'}")
    return judge_all(spec.claims, result.measured, spec.name)


def write_index(entries: Sequence[IndexEntry], out_dir: Path = DEFAULT_OUT) -> Path:
    """Write ``out_dir/README.md``: a table of every claim's verdict, then per family each figure
    (image), its caption, its claims with verdict, criterion and measured interval, and its numbers."""
    lines = ["# Figures", "",
             "Made by `make figures` (`theorybench figures`). Each figure stands beside the claims it tests,",
             "each with its verdict, the criterion fixed in code before the run, and the measured value with",
             "its interval (`theorybench claims` prints the same ledger). Files are named after their family.", ""]
    lines += _verdict_table(entries)
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
                      f"**Claim.** {e.claim}", ""]
            verdicts = e.claim_verdicts()
            for v in verdicts:
                lines += v.markdown()
            if verdicts:
                lines.append("")
            lines += [f"[PDF]({e.name}.pdf) · scale: `{e.scale}`{_provenance_line(e.provenance)}", ""]
            if e.numbers:
                lines += ["| measured | value |", "|---|---|"]
                lines += [f"| {key} | {_format(value)} |" for key, value in e.numbers.items()]
                lines.append("")
    path = Path(out_dir) / INDEX_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_text(path, "\n".join(lines))
    return path


def make_figures(names: Iterable[str] | None = None, scale: str = "quick", out_dir: Path | None = None) -> list[IndexEntry]:
    """Make the named figures (all registered ones by default) and rewrite the index.

    Every name and the scale are checked before any figure is made. The index lists the figures
    made now and those made earlier into ``out_dir`` (default: ``default_out(scale)``) that are still
    registered. Each figure's provenance (commit, machine, wall time, runs read) goes into its JSON."""
    from tqdm.auto import tqdm

    from .style import apply_style

    registry.load_studies()
    registry.check_scale(scale)
    specs = [registry.get_figure(n) for n in names] if names else list(registry.figures().values())
    out_dir = Path(out_dir) if out_dir is not None else default_out(scale)
    apply_style()
    commit, host = provenance.code_commit(), provenance.machine()
    made = {}
    for spec in tqdm(specs, desc="figures", unit="fig", disable=None):  # disable=None: quiet when not a terminal
        start = time.perf_counter()
        with provenance.recording_runs() as runs:
            result = spec.make(scale)
        record = {**commit, "machine": host, "wall_s": round(time.perf_counter() - start, 2), "runs": list(runs),
                  "sizes_hash": figure_sizes_hash(spec, scale)}
        made[spec.name] = save_figure(result, spec, out_dir, scale, record)
    shown = dict(made)
    for name in registry.figures():
        earlier = None if name in shown else _read_entry(out_dir / f"{name}.json")
        if earlier is not None:
            shown[name] = earlier
    write_index(list(shown.values()), out_dir)
    return list(made.values())


def figure_sizes_hash(spec: FigureSpec, scale: str) -> str | None:
    """Hash of ``SIZES[scale]`` of the figure's module (None where it declares none): a committed result
    whose sizes changed since is stale."""
    sizes = getattr(importlib.import_module(spec.make.__module__), "SIZES", None)
    if not isinstance(sizes, dict) or scale not in sizes:
        return None
    return provenance.sizes_hash(sizes[scale])


def read_entries(out_dir: Path) -> dict[str, IndexEntry]:
    """The figures saved under ``out_dir`` (their JSON), by name; unreadable files are skipped."""
    entries = {}
    for path in sorted(Path(out_dir).glob("*.json")):
        entry = _read_entry(path)
        if entry is not None:
            entries[entry.name] = entry
    return entries


# ---------------------------------------------------------------------------------------- helpers
def _verdict_table(entries: Sequence[IndexEntry]) -> list[str]:
    rows = [(e.name, v["claim"]["key"], v["verdict"]) for e in sorted(entries, key=lambda e: (FAMILIES.index(e.family)
            if e.family in FAMILIES else len(FAMILIES), e.name)) for v in e.verdicts]
    if not rows:
        return []
    counts = {}
    for _, _, verdict in rows:
        counts[verdict] = counts.get(verdict, 0) + 1
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    lines = [f"**Verdicts:** {summary}.", "", "| figure | claim | verdict |", "|---|---|---|"]
    lines += [f"| [{name}](#{name}) | {key} | {verdict} |" for name, key, verdict in rows]
    return lines + [""]


def _provenance_line(p: dict) -> str:
    if not p:
        return ""
    commit = str(p.get("commit", "unknown"))[:10] + (" (modified)" if p.get("dirty") else "")
    cpu = (p.get("machine") or {}).get("processor", "?")
    return f" · commit `{commit}` · {p.get('wall_s', '?')} s on {cpu} · {len(p.get('runs', []))} runs"


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
