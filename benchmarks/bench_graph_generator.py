"""Graph-search data generation throughput, examples per second per core, by distribution and N.

The target of the graph-search issue is ≥ 20,000 balanced examples/s per core at N = 128, enough to
stream fresh data every batch. Run: ``.venv/bin/python benchmarks/bench_graph_generator.py``.
One process, one thread: the number is per core.
"""

from __future__ import annotations

import time

import torch

from toy_models.tasks.graph_search import GraphSearchConfig

TARGET_PER_CORE = 20_000


def examples_per_second(max_input_size: int, distribution: str, n: int) -> float:
    task = GraphSearchConfig(max_input_size=max_input_size, distribution=distribution).build()
    task.sample(32, torch.Generator().manual_seed(1))  # warm-up: imports, caches
    start = time.perf_counter()
    task.sample(n, torch.Generator().manual_seed(0))
    return n / (time.perf_counter() - start)


def main() -> None:
    torch.set_num_threads(1)
    print(f"{'N':>5} {'distribution':>12} {'examples/s':>11}")
    results = {}
    for N in (32, 64, 128):
        for dist in ("balanced", "naive", "star"):
            rate = examples_per_second(N, dist, 2000 if N < 128 else 1000)
            results[N, dist] = rate
            print(f"{N:>5} {dist:>12} {rate:>11.0f}")
    rate = results[128, "balanced"]
    verdict = "MET" if rate >= TARGET_PER_CORE else "MISSED"
    print(f"\ntarget ≥ {TARGET_PER_CORE} balanced examples/s per core at N = 128: {verdict} "
          f"({rate:.0f}, {rate / TARGET_PER_CORE:.3f} of target)")


if __name__ == "__main__":
    main()
