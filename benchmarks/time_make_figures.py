"""Wall time of a whole ``make figures SCALE=quick`` on a fresh clone (issue 15's 30-minute budget).

Not a ``bench_*.py``: ``make bench`` does not run it (it takes up to half an hour). Run it on a quiet
machine, from the repository root:

    .venv/bin/python benchmarks/time_make_figures.py            # quick scale, 30-minute budget
    .venv/bin/python benchmarks/time_make_figures.py --help

What it does:

1. ``git clone`` of this checkout's HEAD into a temporary folder: committed code only, no runs, no
   figures (uncommitted edits are not timed; it says so when there are some).
2. ``make`` in the clone uses this checkout's ``.venv`` (``VENV=…``, untouched; ``PYTHONPATH`` points at
   the clone so that the clone's code is what runs) unless ``--install``, which times ``make install``
   in the clone too.
3. ``make figures SCALE=<scale>`` in the clone with an empty run store (``THEORYBENCH_RUNS`` in the
   temporary folder), its output shown as it comes, each line stamped with the seconds since start.
4. A summary: total wall time; the pre-training phase (from the first ``pretrain:`` line to the last);
   each figure's own wall time (its JSON's provenance); cores and load average before and after; the
   verdict against ``--budget-min`` (exit status 1 over budget, unless ``--no-check``).

``--keep`` leaves the temporary folder (clone, runs, figures) for inspection.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUDGET_MIN = 30.0


def clone(into: Path) -> Path:
    target = into / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(target)], check=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=True).stdout.strip()
    if dirty:
        print("note: this checkout has uncommitted changes; the clone times the committed code only")
    return target


def run_streamed(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[int, list[tuple[float, str]]]:
    """Run ``cmd``, echoing each output line with its time since start; the lines and exit status."""
    start = time.monotonic()
    lines: list[tuple[float, str]] = []
    with open(log, "w") as out, subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                                 stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for raw in proc.stdout:
            for line in raw.rstrip("\n").split("\r"):  # progress bars redraw with carriage returns
                if line.strip():
                    t = time.monotonic() - start
                    lines.append((t, line))
                    out.write(f"{t:8.1f}s  {line}\n")
                    print(f"{t:8.1f}s  {line}", flush=True)
    return proc.returncode, lines


def figure_times(figures_dir: Path) -> list[tuple[str, float, int]]:
    """(figure, its wall seconds, runs read) from each figure's JSON provenance."""
    out = []
    for path in sorted(figures_dir.glob("*.json")):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        prov = entry.get("provenance") or {}
        if "wall_s" in prov:
            out.append((entry.get("name", path.stem), float(prov["wall_s"]), len(prov.get("runs", []))))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="quick", help="SCALE passed to make figures (default quick)")
    parser.add_argument("--budget-min", type=float, default=BUDGET_MIN,
                        help=f"the wall-time budget in minutes (default {BUDGET_MIN:g})")
    parser.add_argument("--install", action="store_true",
                        help="time `make install` in the clone too, instead of reusing this checkout's .venv")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (clone, runs, figures)")
    parser.add_argument("--no-check", action="store_true", help="report only; exit 0 whatever the time")
    args = parser.parse_args(argv)
    venv = REPO / ".venv"
    if not args.install and not (venv / "bin" / "python").exists():
        parser.error(f"{venv} does not exist: run `make install` first, or pass --install")

    tmp = Path(tempfile.mkdtemp(prefix="time-make-figures-"))
    try:
        target = clone(tmp)
        env = {**os.environ, "THEORYBENCH_RUNS": str(tmp / "runs"), "TORCHINDUCTOR_COMPILE_THREADS": "1"}
        env.pop("THEORYBENCH_DEVICE", None)  # the CPU, as on a fresh laptop
        make = ["make", "figures", f"SCALE={args.scale}"]
        if not args.install:
            stamp = tmp / "installed.stamp"
            stamp.touch()  # newer than the clone's pyproject.toml: make skips the install
            make += [f"VENV={venv}", f"STAMP={stamp}"]  # this checkout's venv, left untouched
            env["PYTHONPATH"] = str(target)  # the clone's code, not the checkout the venv was installed from
        load_before = os.getloadavg()
        print(f"make figures SCALE={args.scale} in {target} on {os.cpu_count()} cores, load average "
              f"{load_before[0]:.1f}; run store {tmp / 'runs'}")
        start = time.monotonic()
        status, lines = run_streamed(make, target, env, tmp / "make.log")
        wall = time.monotonic() - start
        load_after = os.getloadavg()

        print(f"\nexit status {status}; wall time {wall / 60:.1f} min ({wall:.0f} s); load average "
              f"{load_before[0]:.1f} before, {load_after[0]:.1f} after; log {tmp / 'make.log'}")
        pre = [t for t, line in lines if line.startswith("pretrain:")]
        if pre:
            print(f"pre-training in the process pool: {pre[-1] - pre[0]:.0f} s "
                  f"(from {pre[0]:.0f} s to {pre[-1]:.0f} s after start)")
        times = figure_times(target / ("results/medium" if args.scale == "medium" else "figures"))
        if times:
            print(f"\n{'figure':<45}{'wall s':>8}{'runs':>6}")
            for name, seconds, runs in sorted(times, key=lambda row: -row[1]):
                print(f"{name:<45}{seconds:>8.1f}{runs:>6}")
        over = wall > 60 * args.budget_min
        print(f"\nbudget {args.budget_min:g} min: {'EXCEEDED' if over else 'met'}")
        if status != 0:
            return status
        return 0 if args.no_check or not over else 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
