"""Graph-search data generation throughput, examples per second per core, by distribution and N.

The target of the graph-search issue is ≥ 20,000 balanced examples/s per core at N = 128, enough to
stream fresh data every batch. Run: ``.venv/bin/python benchmarks/bench_graph_generator.py``.

One process, one thread (numba kernels are serial; torch is held to one thread), so every rate is per
core. Each rate is the best of ``--repeats`` timed ``task.sample(n)`` calls with different seeds:
other processes on a shared machine only ever slow a run down, so the best repeat is the closest to
the rate of an idle core. The load average is printed before and after so a reader can judge.

Also timed: the first call of a process (loading the compiled kernels from numba's ``__pycache__``,
or compiling them when the cache is missing or stale), and, in a subprocess with an empty cache
directory, a compile from scratch (what the first run after a fresh checkout pays, once).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch

TARGET_PER_CORE = 20_000
SIZES = (32, 64, 128)
DISTRIBUTIONS = ("balanced", "naive", "star")

_FIRST_CALL = """
import time, torch
torch.set_num_threads(1)
from toy_models.tasks.graph_search import GraphSearchConfig
task = GraphSearchConfig(max_input_size=128).build()
start, cpu = time.perf_counter(), time.process_time()
task.sample(1, torch.Generator().manual_seed(0))  # the training path: sample_examples
print(time.perf_counter() - start, time.process_time() - cpu)
"""


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def best_rate(task, n: int, repeats: int) -> float:
    best = 0.0
    for r in range(repeats):
        gen = torch.Generator().manual_seed(100 + r)
        start = time.perf_counter()
        task.sample(n, gen)
        best = max(best, n / (time.perf_counter() - start))
    return best


def cold_compile_seconds() -> tuple[float, float]:
    """(wall, CPU) seconds of the first sample in a fresh interpreter whose numba cache is empty."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, OMP_NUM_THREADS="1")
        out = subprocess.run([sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True, check=True)
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per row; the best is reported")
    parser.add_argument("--n", type=int, default=20_000, help="examples per timed call")
    parser.add_argument("--no-cold", action="store_true", help="skip the compile-from-scratch subprocess")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(load())

    from toy_models.tasks.graph_search import GraphSearchConfig

    start, cpu = time.perf_counter(), time.process_time()
    GraphSearchConfig(max_input_size=128).build().sample(1, torch.Generator().manual_seed(0))
    print(f"first sample in this process (kernels loaded from cache, or compiled if it is stale): "
          f"wall {time.perf_counter() - start:.2f} s, CPU {time.process_time() - cpu:.2f} s")
    if not args.no_cold:
        wall, cpu = cold_compile_seconds()
        print(f"first sample with an empty numba cache (compiles; once per checkout): wall {wall:.1f} s, CPU {cpu:.1f} s")

    print(f"\nbest of {args.repeats} × {args.n} examples, one thread")
    print(f"{'N':>5} {'distribution':>22} {'examples/s':>11} {'÷ target':>9}")
    results = {}
    rows = [(N, dist, {}) for N in SIZES for dist in DISTRIBUTIONS]
    # Training drops examples equal to a held-out input: a hashed lookup per candidate.
    rows.append((128, "balanced", {"test_examples_per_lookahead": 1000}))
    for N, dist, extra in rows:
        task = GraphSearchConfig(max_input_size=N, distribution=dist, **extra).build()
        task.sample(64, torch.Generator().manual_seed(1))  # builds the reserved set, if any
        rate = best_rate(task, args.n, args.repeats)
        name = dist + (f" + {len(task.reserved_inputs())} reserved" if extra else "")
        results[N, name] = rate
        print(f"{N:>5} {name:>22} {rate:>11.0f} {rate / TARGET_PER_CORE:>9.2f}")
    rate = results[128, "balanced"]
    verdict = "MET" if rate >= TARGET_PER_CORE else "MISSED"
    print(f"\ntarget ≥ {TARGET_PER_CORE} balanced examples/s per core at N = 128: {verdict} "
          f"({rate:.0f}, {rate / TARGET_PER_CORE:.2f} × target)")
    print(load())


if __name__ == "__main__":
    main()
