"""The figures of the families moved into packages (issue 13) give the same numbers at tiny as on the
last commit before the move: ``scripts/compare_tiny_figures.py`` renders each side in its own git
worktree and run store and lists every leaf of the figures' JSON that differs.

Slow: it trains and renders every figure of these families twice (≈ 5 min per family on 2 cores).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BEFORE_MOVE = "a6ef5a6"  # the commit tests/data/config_hashes.json was recorded on
# The sizes of graph_search and variance moved from dicts to dataclasses with the configs' field names
# (N → max_input_size, depth → n_layers, …): their provenance's sizes_hash changes on purpose (no result of
# theirs is committed). attention_svm kept its field names, so its sizes_hash must not change: the
# committed results/medium/ are judged stale by it.
RENAMED_SIZES = ("/provenance/sizes_hash",)
# The attention-SVM runs now train through the trainer and the run store (issue 13): the figures list the runs
# they read (absent before), and K(0) of the (K, Q) runs is drawn from the experiment's model seed,
# derive_seed(seed, "model"), as every trained model's init is, not from the data seed itself, so the (K, Q)
# numbers and the (K, Q) claims (verdicts[1] of both figures) change. The W runs start at W = 0 and must give
# the same bits (and tests/test_attention_svm_trainer.py checks both parameterizations against the former loop
# from the same K(0), bit for bit).
SVM_THROUGH_TRAINER = ("/provenance/runs*", "/numbers/KQ:*", "/verdicts[1]/*")
MOVED_FAMILIES = {"graph_search": RENAMED_SIZES, "attention_svm": SVM_THROUGH_TRAINER, "variance": RENAMED_SIZES}


@pytest.mark.slow
@pytest.mark.parametrize("family", MOVED_FAMILIES)
def test_tiny_figure_numbers_are_unchanged_by_the_move(family):
    ignore = [arg for leaf in MOVED_FAMILIES[family] for arg in ("--ignore", leaf)]
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare_tiny_figures.py"), BEFORE_MOVE,
                           "--family", family, *ignore], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "0 difference(s)" in done.stdout and "0 figure(s)" not in done.stdout, done.stdout
