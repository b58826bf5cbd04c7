"""Torch's intra-op thread count for toy-sized work."""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def single_thread():
    """torch on one thread inside the block, then as before.

    The study figures train and sample models with at most a few thousand weights, where intra-op
    threads only add synchronization and, on a shared machine, oversubscribe the cores. Measured on
    2 loaded cores: attention-SVM quick runs 367 s with 2 threads against 38 s with 1; the trained-LSA
    figure 6.5 min against about 1 min; a variance figure more than 10× slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
