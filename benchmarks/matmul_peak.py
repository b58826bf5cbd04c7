"""The machine's measured float32 matmul peak: the best FLOP/s of a large square sgemm.

C = A B with A, B ∈ R^{n×n} costs 2n³ FLOPs (n³ multiply-adds). The peak is the best of several
timed repeats (after one warm-up), the number achieved model FLOP/s are compared against in
benchmarks/bench_model.py. Run: ``.venv/bin/python benchmarks/matmul_peak.py``.
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def matmul_peak_flops(n: int = 4096, repeats: int = 3, threads: int | None = None) -> float:
    """Best float32 FLOP/s of an n×n by n×n matmul over ``repeats`` timed runs."""
    if threads is not None:
        torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen)
    b = torch.randn(n, n, generator=gen)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)  # warm-up: thread pool and caches
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096, help="matrix size (default 4096; smaller sizes under-report the peak)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    peak = matmul_peak_flops(args.n, args.repeats, args.threads)
    print(f"float32 matmul peak ({args.n}×{args.n}, {torch.get_num_threads()} threads): {peak / 1e9:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
