"""The figure pipeline behind ``make figures``: run each registered figure maker, save it as PNG and
PDF, judge its claims (``theorybench.claims``), and write the index ``README.md``, which shows each
figure beside its claims, their verdicts, and the numbers measured for it.

Before drawing, ``make_figures`` trains what the figures will read (``pretrain``): every member of the
registered sweeps of the requested figures' families that the run store lacks, in the local process
pool on every core (``theorybench.sweep_local``), so the figure makers find their runs done instead
of training them one after another on one thread.

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
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from . import provenance, registry
from .claims import ClaimVerdict, LedgerError, judge_all
from .progress import ProgressLines, duration, show_progress
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
    scales = sorted({e.scale for e in entries})
    absent = [f for f in FAMILIES if not any(e.family == f for e in entries)]
    if entries and absent:
        lines += [f"Not yet run here{' at scale ' + ', '.join(f'`{s}`' for s in scales) if scales else ''}: "
                  + ", ".join(f"`{f}`" for f in absent) + " (their claims: `theorybench claims FAMILY`).", ""]
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


def make_figures(names: Iterable[str] | None = None, scale: str = "quick", out_dir: Path | None = None,
                 train_first: bool = True) -> list[IndexEntry]:
    """Make the named figures (all registered ones by default) and rewrite the index.

    Every name and the scale are checked before any figure is made. ``train_first``: train the runs
    of the figures' families' sweeps in the process pool first (``pretrain``); without it each figure
    maker trains what it lacks itself, in this process. The index lists the figures made now and
    those made earlier into ``out_dir`` (default: ``default_out(scale)``) that are still registered.
    Each figure's provenance (commit, machine, wall time, runs read) goes into its JSON."""
    # Here, not at the top: the command line imports this module at start-up (default_out), and the
    # style pulls in matplotlib.
    from tqdm.auto import tqdm

    from .style import apply_style

    registry.load_studies()
    registry.check_scale(scale)
    specs = [registry.get_figure(n) for n in names] if names else list(registry.figures().values())
    out_dir = Path(out_dir) if out_dir is not None else default_out(scale)
    if train_first:
        pretrain(specs, scale)
    apply_style()
    commit, host = provenance.code_commit(), provenance.machine()
    made = {}
    lines = ProgressLines("figures", len(specs), None)  # a line per figure where no bar is drawn (a log file)
    for spec in tqdm(specs, desc="figures", unit="fig", disable=None):  # disable=None: quiet when not a terminal
        start = time.perf_counter()
        with provenance.recording_runs() as runs:
            result = spec.make(scale)
        record = {**commit, "machine": host, "wall_s": round(time.perf_counter() - start, 2), "runs": list(runs),
                  "sizes_hash": figure_sizes_hash(spec, scale)}
        made[spec.name] = save_figure(result, spec, out_dir, scale, record)
        lines.finished(f"{spec.name} in {duration(record['wall_s'])}")
    shown = dict(made)
    for name in registry.figures():
        earlier = None if name in shown else _read_entry(out_dir / f"{name}.json")
        if earlier is not None:
            shown[name] = earlier
    write_index(list(shown.values()), out_dir)
    return list(made.values())


def pretrain(specs: Sequence[FigureSpec], scale: str, root: Path | str | None = None, jobs: int | None = None,
             progress: bool | None = None, say: Callable[[str], None] | None = None,
             poll_s: float = 5.0, mp_context: str | None = None, threads_per_job: int = 1) -> list:
    """Train the runs the figures ``specs`` will read: the members of every registered sweep of their
    families that the run store (``root``, default ``runstore.store_root()``) lacks or holds half
    trained, all in one local process pool (``jobs`` workers, default one per usable core; the device
    from ``$THEORYBENCH_DEVICE`` as ``theorybench sweep`` takes it). Returns the sweep Outcomes.

    A progress line says how many runs remain and about how long they take at the pace so far (a tqdm
    bar at a terminal, else a line to ``say``, default stderr, whenever a run ends). A run two sweeps
    share trains once. A run that fails is reported here and left to its figure, whose maker meets the
    stored failure as it would have met it training; Ctrl-C checkpoints the runs in training and
    raises ``SweepInterrupted`` (the same command resumes them). ``mp_context`` (the pool's start
    method) as in ``theorybench.sweep_local``. ``threads_per_job``: one torch thread per worker by
    default, as the figure makers train (``theorybench.threads.single_thread``: toy-sized work only
    loses to intra-op threads), so a run trained here has the bits a figure maker would have trained."""
    # Here, not at the top: they import torch, which the command line's start-up must not (it imports
    # this module for default_out).
    from .runstore import accept_stale_default, store_root
    from .sweep import SweepInterrupted, default_device_request, expand, statuses, to_run, write_record
    from .sweep_local import run_local, usable_cores

    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    families = {spec.family for spec in specs}
    sweeps = [sweep for sweep in registry.sweeps().values() if sweep.family in families]
    if not sweeps:
        return []
    root, accept_stale = store_root(root), accept_stale_default()
    pending, owner, total = [], {}, 0
    for sweep in sweeps:
        members = expand(sweep, scale, root)
        total += len(members)
        for member in to_run(statuses(members, accept_stale)):
            if member.key not in owner:
                owner[member.key] = sweep.name
                pending.append(member)
    names = ", ".join(sweep.name for sweep in sweeps)
    if not pending:
        say(f"pretrain: nothing to train for {names} (scale {scale}): its {total} runs are in the run store {root}")
        return []
    workers = max(1, min(jobs or usable_cores(), len(pending)))
    say(f"pretrain: {len(pending)} of the {total} runs of {names} (scale {scale}) to train, {workers} at a "
        f"time; run store {root}")
    show_bar = show_progress(progress)
    with _progress_lines(pending, say, poll_s, enabled=not show_bar):
        outcomes = run_local(pending, root, jobs=workers, device=default_device_request(None, scale),
                             progress=show_bar, desc="pretrain", accept_stale=accept_stale, mp_context=mp_context,
                             threads_per_job=threads_per_job)
    records: dict[str, dict[str, dict]] = {}
    for outcome in outcomes:
        records.setdefault(owner[outcome.key], {})[outcome.key] = {"executor": "local", "error": outcome.error}
    for sweep_name, entries in records.items():
        write_record(root, sweep_name, scale, entries, merge=False)
    stopped = [o for o in outcomes if o.status in ("interrupted", "cancelled")]
    if stopped:
        raise SweepInterrupted(f"pretrain: interrupted; {len(stopped)} run(s) stopped at a checkpoint or not "
                               "started; the same command resumes them")
    failed = [o for o in outcomes if o.status != "done"]
    for o in failed:
        say(f"pretrain: {o.key} {o.status}: {o.message}")
    say(f"pretrain: {len(outcomes) - len(failed)} of {len(pending)} runs trained"
        + (f", {len(failed)} failed (their figures report them)" if failed else ""))
    return outcomes


class _progress_lines:
    """While the pool trains ``members``, a line each time runs end: how many remain, and the time
    left at the pace so far (runs differ in size, so it is rough)."""

    def __init__(self, members, say, poll_s: float, enabled: bool):
        self.members, self.say, self.poll_s, self.enabled = list(members), say, poll_s, enabled
        self.stop = threading.Event()

    def __enter__(self):
        if self.enabled:
            self.start = time.monotonic()
            self.thread = threading.Thread(target=self._watch, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.stop.set()
            self.thread.join()

    def _watch(self) -> None:
        from .runstore import DONE_FILE, FAILED_FILE  # here: torch, see pretrain

        reported = 0
        while not self.stop.wait(self.poll_s):
            ended = sum(1 for m in self.members if (m.dir / DONE_FILE).exists() or (m.dir / FAILED_FILE).exists())
            if ended > reported:
                reported, total = ended, len(self.members)
                elapsed = time.monotonic() - self.start
                left = elapsed / ended * (total - ended)
                self.say(f"pretrain: {ended} of {total} runs ended, {total - ended} remain"
                         + (f", about {_minutes(left)} left" if ended < total else ""))


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def figure_sizes_hash(spec: FigureSpec, scale: str) -> str | None:
    """Hash of ``SIZES[scale]`` of the figure's module (None where it declares none): a committed result
    whose sizes changed since is stale. A typed size (a dataclass) is hashed as its ``recorded()`` dict,
    the plain form results were stamped with before sizes were typed, so those results stay current."""
    sizes = getattr(importlib.import_module(spec.make.__module__), "SIZES", None)
    if not isinstance(sizes, dict) or scale not in sizes:
        return None
    size = sizes[scale]
    return provenance.sizes_hash(size.recorded() if hasattr(size, "recorded") else size)


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
    import matplotlib.pyplot as plt  # here: start-up time, see make_figures

    plt.close(fig)


__all__ = ["DEFAULT_OUT", "IndexEntry", "make_figures", "pretrain", "save_figure", "write_index"]
