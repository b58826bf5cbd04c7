"""How much work each attention-SVM figure does at each scale: one frozen dataclass per figure group and scale.

Field names are those of the functions and data they size (``AttentionSVMData(n, T, d, seed)``: n inputs
of T tokens in R^d; ``steps`` of normalized GD; a plural names a grid). "tiny" is what the test suite
renders (tests/test_studies.py); "quick", "medium" and "full" are the user scales. The committed
``results/medium/`` record the hash of these sizes (``provenance.sizes_hash``: a dataclass hashes as
the dict of its fields): a field renamed here makes them stale.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SeedRunSizes:
    """The directional-convergence and rank-and-saturation figures: ``seeds`` instances of n inputs,
    T tokens, dimension d, each trained for ``steps`` in both parameterizations."""

    n: int
    T: int
    d: int
    steps: int
    seeds: int


@dataclass(frozen=True)
class RankSizes:
    """The rank-versus-d figure: every (n, d) of ``ns`` × ``ds`` with T tokens, ``seeds`` instances each."""

    ns: tuple[int, ...]
    ds: tuple[int, ...]
    T: int
    seeds: int


@dataclass(frozen=True)
class PromptSizes:
    """The prompt-geometry figure: ``inits`` starts on a circle, each trained for ``steps``."""

    inits: int
    steps: int


@dataclass(frozen=True)
class NonlinearSizes:
    """The nonlinear-head figure: per d of ``ds``, instances until ``instances`` are accepted or
    ``max_attempts`` drawn."""

    ds: tuple[int, ...]
    instances: int
    max_attempts: int


# n, T, d, η and 1000 steps are the paper's setup; seeds ≥ 2 so that a standard deviation exists.
# medium: 20 seeds at the paper's 1000 steps (≈ 2 s of CPU per seed and parameterization).
SEED_RUN_SIZES = {
    "tiny": SeedRunSizes(n=6, T=8, d=10, steps=300, seeds=2),
    "quick": SeedRunSizes(n=6, T=8, d=10, steps=1000, seeds=4),
    "medium": SeedRunSizes(n=6, T=8, d=10, steps=1000, seeds=20),
    "full": SeedRunSizes(n=6, T=8, d=10, steps=3000, seeds=20),
}

# medium: the quick grid with 10 seeds (240 instances × 3 solves; quick, 48 instances, took 11 s of CPU).
RANK_SIZES = {
    "tiny": RankSizes(ns=(2, 6), ds=(2, 4, 6, 8), T=8, seeds=1),
    "quick": RankSizes(ns=(2, 6, 12), ds=(2, 3, 4, 6, 8, 10, 12, 14), T=8, seeds=2),
    "medium": RankSizes(ns=(2, 6, 12), ds=(2, 3, 4, 6, 8, 10, 12, 14), T=8, seeds=10),
    "full": RankSizes(ns=(2, 6, 12, 24), ds=(2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 20, 24), T=8, seeds=10),
}

# medium: 24 starts for 5,000 steps (≈ 0.5 s of CPU per path and method, closed-form gradient).
PROMPT_SIZES = {
    "tiny": PromptSizes(inits=6, steps=150),
    "quick": PromptSizes(inits=8, steps=1000),
    "medium": PromptSizes(inits=24, steps=5000),
    "full": PromptSizes(inits=24, steps=5000),
}

# tiny: the test suite's render; quick: ~2 min of one core (measured 109 s of CPU); medium: the
# paper's 500 accepted instances per d, ≈ 12 min of CPU estimated from quick (≈ 19 ms per attempt,
# ≈ 21k attempts at d = 10; not run yet); full: the same (the paper's count).
NONLINEAR_SIZES = {
    "tiny": NonlinearSizes(ds=(4, 6), instances=4, max_attempts=40),
    "quick": NonlinearSizes(ds=(4, 6, 8, 10), instances=100, max_attempts=2500),
    "medium": NonlinearSizes(ds=(4, 6, 8, 10), instances=500, max_attempts=60_000),
    "full": NonlinearSizes(ds=(4, 6, 8, 10), instances=500, max_attempts=60_000),
}
