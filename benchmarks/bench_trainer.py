"""The trainer against a bare training loop on the quick ICL model, side by side in one process (issue 15).

Model and data: the quick-scale trained transformer of the ICL figure (``icl_garg_transformer``: 3
layers, width 32, 4 heads, kernel path, batch 128, interleaved prompts with d = 5 and N = 11), for
``--steps`` steps.

- **trainer**: ``theorybench.train.train`` on that config into a fresh run folder, timed whole: set-up,
  data, steps, its warm-up/cosine schedule, the rows every 30 steps, the evaluations and checkpoints
  every 300 (the cadence of the real 3000-step run), the final checkpoint, metrics and checksums.
  With fewer steps than the real run its one-off costs weigh more: the ratio is, if anything, too high.
- **bare**: what one would write by hand: draw x and w in float32, labels wᵀx in float32, interleave,
  forward, mean squared error at the x positions, backward, AdamW step. Nothing else: no schedule, no
  checks, no logging, no files. Its AdamW is the trainer's (``foreach=True``, the same bits as torch's
  loop over parameters), so the ratio is the trainer's own per-step cost, not a choice of kernel.

The two are timed in alternation (bare, trainer, trainer, bare, …: each repetition swaps the order),
after an untimed warm-up of each, so a change of load on a shared machine hits both alike. Reported:
each repetition's times and ratio trainer / bare, their median and the ratio of the totals. The exit
status is 1 when the median ratio exceeds ``--max-ratio`` (1.15, issue 15), unless ``--no-check``.

``--compile`` adds a third row, the trainer with ``train.compile = true`` (its warm-up absorbs the
compilation; ``TORCHINDUCTOR_COMPILE_THREADS=1`` is set, see shared/references/stack.md).

Threads: ``--threads`` (default 1: what each worker of ``make figures``'s pool gets when there are at
least as many runs as cores).

Run: ``.venv/bin/python benchmarks/bench_trainer.py`` (``--help`` for the options). On a busy machine
the ratio is noisy: run it where nothing else runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")  # before inductor loads: see stack notes §2e

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from theorybench.studies.icl.experiments import garg_experiment  # noqa: E402
from theorybench.train import train  # noqa: E402
from toy_models import Transformer  # noqa: E402
from toy_models.tasks.icl_regression import interleave_tokens  # noqa: E402

MAX_RATIO = 1.15


def quick_icl_config(steps: int, compile: bool = False):
    """The quick ICL run's config with ``steps`` steps and the real run's cadences (rows every 30 steps,
    evaluations and checkpoints every 300)."""
    cfg = dataclasses.replace(garg_experiment("quick"), name="bench_trainer")
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=steps, compile=compile))


def bare_loop(cfg, steps: int) -> None:
    """Sample, forward, loss, backward, AdamW step; nothing else (module docstring)."""
    resolved = cfg.resolved()
    task, B = resolved.task, resolved.train.batch_size
    d, N = task.d, task.n_points
    model = Transformer(resolved.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=resolved.optim.lr, betas=resolved.optim.betas, foreach=True)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x = torch.randn(B, N + 1, d, generator=gen)
        w = torch.randn(B, d, generator=gen)
        y = torch.einsum("bnd,bd->bn", x, w)
        tokens = interleave_tokens(x[:, :N], y[:, :N], x[:, N])
        pred = model(tokens)[:, 0::2, 0]
        loss = (pred - y).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def time_trainer(cfg, root: Path) -> float:
    folder = Path(tempfile.mkdtemp(dir=root))
    start = time.perf_counter()
    train(cfg, folder, progress=False)
    return time.perf_counter() - start


def time_bare(cfg, steps: int) -> float:
    start = time.perf_counter()
    bare_loop(cfg, steps)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="steps per timed run (default 300)")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions of each row (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--compile", action="store_true", help="also time the trainer with train.compile = true")
    parser.add_argument("--max-ratio", type=float, default=MAX_RATIO,
                        help=f"fail when the median trainer / bare ratio exceeds this (default {MAX_RATIO})")
    parser.add_argument("--no-check", action="store_true", help="report only; exit 0 whatever the ratio")
    args = parser.parse_args(argv)
    for name in ("steps", "reps", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}={getattr(args, name)} is not allowed: a positive integer")
    torch.set_num_threads(args.threads)

    cfg = quick_icl_config(args.steps)
    rows = {"bare": lambda: time_bare(cfg, args.steps), "trainer": lambda: time_trainer(cfg, root)}
    if args.compile:
        compiled = quick_icl_config(args.steps, compile=True)
        rows["trainer, compiled"] = lambda: time_trainer(compiled, root)
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        root = Path(tmp)
        print(f"quick ICL model: {cfg.model.n_layers} layers, width {cfg.model.d_model}, batch "
              f"{cfg.train.batch_size}, {args.steps} steps per run; {args.threads} thread(s); "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        warm = quick_icl_config(max(2, args.steps // 10))
        time_bare(warm, warm.train.steps)
        time_trainer(warm, root)
        if args.compile:
            time_trainer(quick_icl_config(max(2, args.steps // 10), compile=True), root)
        times: dict[str, list[float]] = {name: [] for name in rows}
        for rep in range(args.reps):
            order = list(rows) if rep % 2 == 0 else list(reversed(rows))
            for name in order:
                times[name].append(rows[name]())
            ratios = "  ".join(f"{name} / bare {times[name][-1] / times['bare'][-1]:.3f}"
                               for name in rows if name != "bare")
            print(f"rep {rep + 1}: " + "  ".join(f"{name} {times[name][-1]:.2f} s" for name in rows) + f"  ({ratios})")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    bare = times["bare"]
    print(f"\n{'row':<20}{'median s':>10}{'ms/step':>10}{'median ratio':>15}{'ratio of totals':>17}")
    for name in rows:
        ratio = statistics.median(t / b for t, b in zip(times[name], bare))
        total = sum(times[name]) / sum(bare)
        median = statistics.median(times[name])
        print(f"{name:<20}{median:>10.2f}{1000 * median / args.steps:>10.2f}{ratio:>15.3f}{total:>17.3f}")
    ratio = statistics.median(t / b for t, b in zip(times["trainer"], bare))
    verdict = "holds" if ratio <= args.max_ratio else "FAILS"
    print(f"\ntrainer / bare loop = {ratio:.3f} (median of {args.reps}): the target ≤ {args.max_ratio} {verdict}")
    return 0 if args.no_check or ratio <= args.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
