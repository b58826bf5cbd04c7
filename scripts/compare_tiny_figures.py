"""Render figures at the tiny scale on two revisions and compare the numbers in their JSON.

    PYTHONPATH=$PWD python scripts/compare_tiny_figures.py BEFORE_REV [AFTER_REV] [--family F ...]

Each revision is checked out into its own temporary ``git worktree`` and renders there, with its own run
store (``$THEORYBENCH_RUNS``) and output folder, in a fresh process (``PYTHONPATH`` = that worktree, so
its packages shadow the installed ones). Without AFTER_REV the second side is the working tree as it is
now, uncommitted edits included. Figures are made one process each, sequentially, without the process
pool, so both sides train the same runs in the same order on one thread.

What is compared, per figure both sides made: every leaf of the figure's JSON (its numbers, the claims
with their criteria, each verdict and measured value with its interval, the runs it read with their
config hashes), except the provenance that names the revision and the machine (commit, dirty flag,
machine, wall time). Numbers are equal when their floats agree to ``--rel`` (default 1e-9: the same
computation on the same machine gives the same bits; the tolerance only absorbs a value printed through
another float path) and strings, verdicts and hashes are equal when identical. A figure made on one side
only, or failing on one side, is a difference too.

``--ignore LEAF`` leaves one JSON leaf out (say why where you use it: the provenance's
``sizes_hash`` changes when the sizes' fields are renamed, which is meant, while the numbers must not);
a LEAF ending in ``*`` leaves out every leaf that starts with what comes before it.

Exit status 0 when nothing differs, 1 when something does (each difference is printed), 2 on a usage
or checkout error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IGNORED_PROVENANCE = ("commit", "dirty", "machine", "wall_s")

# Run in the checked-out revision: list its figures (optionally of some families), then make one.
_LIST = """
import json, sys
from theorybench import registry
registry.load_studies()
families = set(sys.argv[1:])
print(json.dumps([n for n, s in registry.figures().items() if not families or s.family in families]))
"""
_MAKE = """
import sys
from pathlib import Path
from theorybench.figures import make_figures
make_figures([sys.argv[1]], scale="tiny", out_dir=Path(sys.argv[2]), train_first=False)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", metavar="BEFORE_REV")
    parser.add_argument("after", metavar="AFTER_REV", nargs="?", default=None,
                        help="default: the working tree as it is now")
    parser.add_argument("--family", action="append", default=[], help="only this family (repeatable)")
    parser.add_argument("--rel", type=float, default=1e-9, help="relative tolerance on floats (default 1e-9)")
    parser.add_argument("--ignore", action="append", default=[], metavar="LEAF",
                        help="a JSON leaf not to compare, e.g. /provenance/sizes_hash where the sizes' fields were "
                             "renamed on purpose, or a prefix ending in '*' (repeatable; listed in the summary)")
    parser.add_argument("--keep", metavar="DIR", default=None,
                        help="keep each side's figures and run store under DIR (the checkouts are removed)")
    args = parser.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="compare_tiny_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        sides = {}
        for label, rev in (("before", args.before), ("after", args.after)):
            sides[label] = render_side(label, rev, work / label, args.family)
        differences = compare_sides(sides["before"], sides["after"], args.rel, tuple(args.ignore))
    except subprocess.CalledProcessError as err:
        print(f"error: {' '.join(map(str, err.cmd))} failed:\n{err.stderr or ''}", file=sys.stderr)
        return 2
    finally:
        _remove_checkouts(work)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    for line in differences:
        print(line)
    made = sorted(set(sides["before"]) & set(sides["after"]))
    ignored = f" (not compared: {', '.join(args.ignore)})" if args.ignore else ""
    print(f"{len(made)} figure(s) compared at tiny; {len(differences)} difference(s){ignored}")
    return 1 if differences else 0


def render_side(label: str, rev: str | None, where: Path, families: list[str]) -> dict[str, dict | str]:
    """Check out ``rev`` (None: copy the working tree) under ``where/src``, render its figures at tiny
    into ``where/out`` with the run store ``where/runs``; returns figure name → its JSON, or the error
    text of a figure that failed."""
    src = where / "src"
    if rev is None:
        _copy_working_tree(src)
    else:
        _git("worktree", "add", "--detach", str(src), rev)
    out, runs = where / "out", where / "runs"
    env = {**os.environ, "PYTHONPATH": str(src), "THEORYBENCH_RUNS": str(runs), "MPLBACKEND": "Agg",
           "TQDM_DISABLE": "1"}
    names = json.loads(_python(_LIST, families, src, env).stdout)
    results: dict[str, dict | str] = {}
    for name in names:
        print(f"[{label} {rev or 'working tree'}] {name}", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, "-c", _MAKE, name, str(out)], cwd=src, env=env,
                              capture_output=True, text=True)
        path = out / f"{name}.json"
        results[name] = json.loads(path.read_text()) if done.returncode == 0 and path.exists() \
            else f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
    return results


def compare_sides(before: dict, after: dict, rel: float, ignore: tuple[str, ...] = ()) -> list[str]:
    """Every difference between the two sides' figures, one line each (leaves named in ``ignore`` left out; an
    entry ending in '*' names every leaf that starts with the rest)."""
    lines = [f"{name}: made only {side}" for side, a, b in (("before", before, after), ("after", after, before))
             for name in sorted(set(a) - set(b))]
    for name in sorted(set(before) & set(after)):
        a, b = before[name], after[name]
        if isinstance(a, str) or isinstance(b, str):
            if a != b:
                lines.append(f"{name}: before {a if isinstance(a, str) else 'made'}; after {b if isinstance(b, str) else 'made'}")
            continue
        flat_a, flat_b = _leaves(_comparable(a)), _leaves(_comparable(b))
        for key in sorted(k for k in set(flat_a) | set(flat_b) if not _ignored(k, ignore)):
            va, vb = flat_a.get(key, "<absent>"), flat_b.get(key, "<absent>")
            if not _equal(va, vb, rel):
                lines.append(f"{name}: {key}: before {va!r}, after {vb!r}")
    return lines


def _ignored(key: str, ignore: tuple[str, ...]) -> bool:
    return any(key.startswith(i[:-1]) if i.endswith("*") else key == i for i in ignore)


def _comparable(entry: dict) -> dict:
    entry = dict(entry)
    entry["provenance"] = {k: v for k, v in entry.get("provenance", {}).items() if k not in IGNORED_PROVENANCE}
    return entry


def _leaves(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _leaves(item, f"{prefix}/{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _leaves(item, f"{prefix}[{i}]").items()}
    return {prefix: value}


def _equal(a, b, rel: float) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rel, abs_tol=0.0)
    return a == b and type(a) is type(b)


def _copy_working_tree(dest: Path) -> None:
    """Tracked and untracked-but-not-ignored files, as they are now (what `git status` shows)."""
    listed = _git("ls-files", "--cached", "--others", "--exclude-standard", "-z").stdout.split("\0")
    for rel in filter(None, listed):
        source = ROOT / rel
        if source.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)


def _remove_checkouts(work: Path) -> None:
    for side in ("before", "after"):
        src = work / side / "src"
        if (src / ".git").is_file():  # a git worktree (a copied working tree has no .git)
            subprocess.run(["git", "worktree", "remove", "--force", str(src)], cwd=ROOT, capture_output=True)
        shutil.rmtree(src, ignore_errors=True)


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)


def _python(code: str, args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True)


if __name__ == "__main__":
    raise SystemExit(main())
