"""The ledger as ``theorybench claims`` prints it: every declared claim, its verdict at a scale, its
criterion and measured interval, and whether a stored result still matches the code.

Verdicts are read from the figures' JSON (``figures/`` or ``results/medium/``), never recomputed here,
so printing the ledger trains nothing. A stored result is **stale** when the code no longer builds
what it measured: its figure is gone, its declared claims or criteria changed, its study's sizes at
that scale changed, or a run it read is no longer among the configs its family's sweeps and
experiments build at that scale.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from . import registry
from .figures import IndexEntry, default_out, figure_sizes_hash, read_entries

NOT_RUN = "not yet run"


@dataclass(frozen=True)
class LedgerRow:
    figure: str
    family: str
    claim: str
    verdict: str
    criteria: str
    measured: str
    stale: str = ""


def ledger_rows(family: str | None = None, scale: str = "quick", out_dir: Path | None = None,
                check_stale: bool = True) -> list[LedgerRow]:
    """One row per declared claim of every registered figure (of ``family``), with the stored verdict
    at ``scale`` or "not yet run"; ``stale`` says why a stored result no longer matches the code."""
    registry.load_studies()
    registry.check_scale(scale)
    if family is not None and family not in registry.FAMILIES:
        raise registry.RegistryError(f"family={family!r} is not allowed: one of {', '.join(map(repr, registry.FAMILIES))}")
    entries = read_entries(Path(out_dir) if out_dir is not None else default_out(scale))
    current = _family_config_hashes(scale) if check_stale else {}
    rows = []
    for name, spec in registry.figures().items():
        if family is not None and spec.family != family:
            continue
        entry = entries.get(name)
        if entry is not None and entry.scale != scale:
            entry = None
        stale = "; ".join(stale_reasons(entry, spec, scale, current.get(spec.family, set()))) \
            if entry is not None and check_stale else ""
        verdicts = {v.claim.key: v for v in entry.claim_verdicts()} if entry is not None else {}
        for claim in spec.claims:
            v = verdicts.get(claim.key)
            criteria = "; ".join(c.describe() for c in claim.criteria)
            if v is None:
                rows.append(LedgerRow(name, spec.family, claim.key, NOT_RUN, criteria, "", stale))
            else:
                measured = "; ".join(f"{p.outcome}: {p.measurement.describe()}" for p in v.parts)
                rows.append(LedgerRow(name, spec.family, claim.key, v.verdict, criteria, measured, stale))
    return rows


def stale_reasons(entry: IndexEntry, spec: registry.FigureSpec, scale: str, family_hashes: set[str]) -> list[str]:
    """Why a stored figure result no longer matches the code (empty when it does)."""
    reasons = []
    stored = [v.claim for v in entry.claim_verdicts()]
    if [dataclasses.asdict(c) for c in stored] != [dataclasses.asdict(c) for c in spec.claims]:
        reasons.append("its declared claims or criteria changed")
    recorded = entry.provenance.get("sizes_hash")
    if recorded is not None and recorded != figure_sizes_hash(spec, scale):
        reasons.append(f"its sizes at scale {scale!r} changed")
    gone = [r["name"] for r in entry.provenance.get("runs", []) if r.get("config_hash") not in family_hashes]
    if gone:
        reasons.append(f"{len(gone)} run(s) it read are no longer built by the code (e.g. {gone[0]})")
    return reasons


def format_rows(rows: list[LedgerRow], scale: str) -> str:
    """The ledger as plain text: one block per claim, verdict first."""
    if not rows:
        return f"no declared claims at scale {scale!r}"
    lines = []
    for r in rows:
        flag = f"  [STALE: {r.stale}]" if r.stale else ""
        lines.append(f"{r.verdict.upper():<18} {r.figure} / {r.claim}{flag}")
        lines.append(f"    criterion: {r.criteria}")
        if r.measured:
            lines.append(f"    measured:  {r.measured}")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    lines.append("")
    lines.append(f"scale {scale}: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
                 + (f"; {sum(bool(r.stale) for r in rows)} stale" if any(r.stale for r in rows) else ""))
    return "\n".join(lines)


def _family_config_hashes(scale: str) -> dict[str, set[str]]:
    """Config hashes of every sweep member and experiment of each family at ``scale``."""
    hashes: dict[str, set[str]] = {}
    for spec in registry.sweeps().values():
        hashes.setdefault(spec.family, set()).update(c.config_hash() for c in spec.members(scale))
    for spec in registry.experiments().values():
        try:
            cfg = spec.build(scale)
        except (KeyError, ValueError):  # an experiment without this scale builds nothing to compare
            continue
        hashes.setdefault(spec.family, set()).add(cfg.config_hash())
    return hashes


__all__ = ["NOT_RUN", "LedgerRow", "format_rows", "ledger_rows", "stale_reasons"]
