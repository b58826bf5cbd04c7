"""How much work each graph-search figure does at each scale: one frozen ``GraphSearchSizes`` per scale.

Field names are the configs' own (``GraphSearchConfig.max_input_size``, ``TransformerConfig.n_layers``,
``OptimConfig.name/lr/warmup_steps``, ``TrainConfig.steps/batch_size``, …); a plural names a grid of
that field. "tiny" is what the test suite renders (tests/test_studies.py); "quick" is `make figures`
(≤ 30 min for every family on 2 cores); "medium" is where the CPU-feasible claims are decided; "full" is
the paper's sizes, for a GPU.

Medium budget (estimated from the measured step times of the graph-search pilot, one core: N = 20..32
at 9–16 ms/step, 3 layers, batch 32): accuracy figure 3 distributions × 3 seeds × 8000 steps ≈ 13 min;
size sweep 5 sizes × 8 seeds × 6000 steps ≈ 48 min; patching 2 × 400 examples ≈ 3 min; coverage
< 1 min: ≈ 65 CPU-minutes, ≈ 35–40 min on 2 cores when the sweep runs on the local pool first. The reach
figure reuses the balanced searcher. Measured (2026-12-02, 2 cores shared with other work, one torch thread
per run): about 2 min per size-sweep run and 2.5 min per 8000-step searcher, so ≈ 100 CPU-minutes and
about an hour of wall time for the family; results committed in results/medium/.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Coverage:
    """The lookahead-coverage figure: graphs of ``max_input_size`` tokens, ``examples`` sampled per distribution."""

    max_input_size: int
    examples: int


@dataclass(frozen=True)
class Optim:
    """The searcher's optimizer (``OptimConfig`` fields; ``name`` one of ``experiments.OPTIMIZERS``)."""

    name: str
    lr: float
    warmup_steps: int


@dataclass(frozen=True)
class Curriculum:
    """The authors' lookahead curriculum (``GraphSearchConfig.curriculum_*``): start at largest lookahead
    ``start``, add one when the checked training accuracy exceeds ``threshold``, checked every ``every`` steps."""

    start: int = 1
    threshold: float = 0.99
    every: int = 1


# The authors' paper-era setting: from lookahead 1, above 0.99 on the last batch of every 2^18 examples
# (``every`` = 2^18 / batch steps). No scale's size sweep uses it: their stored size-sweep runs name no
# curriculum (size_sweep.py); ``experiments.searcher_config(..., curriculum=...)`` trains with it.
AUTHORS_CURRICULUM = Curriculum(start=1, threshold=0.99, every=2**18)


@dataclass(frozen=True)
class SizeSweep:
    """The size sweep: balanced searchers at each of ``max_input_sizes``, every seed, one largest lookahead."""

    max_input_sizes: tuple[int, ...]
    seeds: tuple[int, ...]
    max_lookahead: int
    n_layers: int
    steps: int
    batch_size: int


@dataclass(frozen=True)
class GraphSearchSizes:
    """One scale: the coverage figure; the searcher (input size, layers, optimizer, training, seeds: the
    accuracy figure trains every distribution per seed); held-out test examples per lookahead; the
    reachability probe's (training, held-out) graphs; the patching examples per lookahead; the size sweep."""

    coverage: Coverage
    max_input_size: int
    n_layers: int
    optim: Optim
    batch_size: int
    steps: int
    seeds: tuple[int, ...]
    test_examples_per_lookahead: int
    probe_graphs: tuple[int, int]
    patch_examples_per_lookahead: int
    sweep: SizeSweep


SIZES = {
    "tiny": GraphSearchSizes(
        coverage=Coverage(max_input_size=32, examples=2000),
        max_input_size=20, n_layers=2, optim=Optim("adamw", lr=3e-3, warmup_steps=5), batch_size=16, steps=20,
        seeds=(0,), test_examples_per_lookahead=24, probe_graphs=(40, 30), patch_examples_per_lookahead=3,
        sweep=SizeSweep(max_input_sizes=(17, 20), seeds=(0, 1), max_lookahead=1, n_layers=1, steps=10, batch_size=16)),
    "quick": GraphSearchSizes(
        coverage=Coverage(max_input_size=128, examples=200_000),
        max_input_size=23, n_layers=3, optim=Optim("adamw", lr=3e-3, warmup_steps=50), batch_size=32, steps=8000,
        seeds=(0,), test_examples_per_lookahead=300, probe_graphs=(400, 300), patch_examples_per_lookahead=50,
        sweep=SizeSweep(max_input_sizes=(20, 23, 26, 29, 32), seeds=(0, 1), max_lookahead=2, n_layers=3, steps=3000,
                        batch_size=32)),
    "medium": GraphSearchSizes(
        coverage=Coverage(max_input_size=128, examples=200_000),
        max_input_size=23, n_layers=3, optim=Optim("adamw", lr=3e-3, warmup_steps=50), batch_size=32, steps=8000,
        seeds=(0, 1, 2), test_examples_per_lookahead=500, probe_graphs=(400, 300), patch_examples_per_lookahead=200,
        sweep=SizeSweep(max_input_sizes=(20, 23, 26, 29, 32), seeds=tuple(range(8)), max_lookahead=2, n_layers=3,
                        steps=6000, batch_size=32)),
    "full": GraphSearchSizes(
        coverage=Coverage(max_input_size=128, examples=1_000_000),
        max_input_size=128, n_layers=6, optim=Optim("sign_momentum", lr=1e-5, warmup_steps=0), batch_size=1024,
        steps=860_000, seeds=(0, 1, 2), test_examples_per_lookahead=1000, probe_graphs=(2000, 1000),
        patch_examples_per_lookahead=200,
        # N ≥ 56 so that every size fits lookahead 8 (((N − 5)//3 − 1)//2 ≥ 8); 32 and 50 fit only 4 and 7.
        sweep=SizeSweep(max_input_sizes=(56, 74, 92, 110, 128), seeds=tuple(range(8)), max_lookahead=8, n_layers=8,
                        steps=200_000, batch_size=1024)),
}


@dataclass(frozen=True)
class Walkthrough:
    """The notebook's small balanced searcher (about a minute at quick scale)."""

    max_input_size: int
    n_layers: int
    steps: int
    batch_size: int


WALKTHROUGH = Walkthrough(max_input_size=20, n_layers=3, steps=600, batch_size=32)
