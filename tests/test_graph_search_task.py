"""The graph-search task: token layout, labels re-derived from the decoded tokens, distributions."""

import random

import numpy as np
import pytest
import torch
from scipy import stats

from theory.graph_search import lookahead, useful_steps
from toy_models.config import ConfigError
from toy_models.tasks.graph_search import GraphSearchConfig, Vocab, is_test_example


def decode(tokens: list[int], vocab: Vocab):
    """Rebuild (adjacency over token ids, start, goal) from a sequence, independently of the generator."""
    body = [t for t in tokens if t != vocab.pad]
    q = body.index(vocab.query)
    edges = [(body[i + 1], body[i + 2]) for i in range(0, q, 3)]
    assert all(body[i] == vocab.edge for i in range(0, q, 3))
    assert body[q:] == [vocab.query, body[q + 1], body[q + 2], vocab.path, body[q + 1]]
    adj = np.zeros((vocab.size, vocab.size), dtype=bool)
    for u, v in edges:
        adj[u, v] = True
    return adj, body[q + 1], body[q + 2], len(edges)


def test_vocabulary_matches_the_paper_layout():
    # Saparov et al.'s code at N = 128: max vertex 41; P, E, PAD, Q = 42, 43, 44, 45; 46 tokens.
    v = Vocab(128)
    assert (v.max_vertex, v.path, v.edge, v.pad, v.query, v.size) == (41, 42, 43, 44, 45, 46)
    assert v.default_max_lookahead == 20


@pytest.mark.parametrize("distribution", ["balanced", "naive", "star"])
def test_examples_decode_to_consistent_labels(distribution):
    task = GraphSearchConfig(max_input_size=41, distribution=distribution).build()
    batch = task.sample(64, torch.Generator().manual_seed(3))
    vocab = task.vocab
    assert batch["inputs"].shape == (64, 41)
    for i in range(64):
        tokens = batch["inputs"][i].tolist()
        adj, s, g, m = decode(tokens, vocab)
        assert m <= vocab.max_vertex and all(1 <= t <= vocab.max_vertex for t in np.flatnonzero(adj.any(0) | adj.any(1)))
        useful = useful_steps(adj, s, g).tolist()
        assert useful == torch.nonzero(batch["useful"][i]).flatten().tolist()
        assert batch["targets"][i].item() in useful
        assert batch["lookahead"][i].item() == lookahead(adj, s, g)
        assert batch["out_degree"][i].item() == adj[s].sum()
        pad = batch["padding_mask"][i]
        assert pad.tolist() == sorted(pad.tolist())  # left padding only


def test_same_seed_same_batch_and_different_seed_differs():
    task = GraphSearchConfig(max_input_size=32).build()
    a = task.sample(16, torch.Generator().manual_seed(0))
    b = task.sample(16, torch.Generator().manual_seed(0))
    c = task.sample(16, torch.Generator().manual_seed(1))
    assert torch.equal(a["inputs"], b["inputs"]) and not torch.equal(a["inputs"], c["inputs"])


def test_balanced_lookahead_is_uniform():
    """χ² goodness of fit to U{0..L_max}; reject only at p < 1e-3 so the test fails by chance once in 1000."""
    task = GraphSearchConfig(max_input_size=32).build()
    L = task.sample(800, torch.Generator().manual_seed(0))["lookahead"].numpy()
    counts = np.bincount(L, minlength=task.max_lookahead + 1)
    assert len(counts) == task.max_lookahead + 1
    assert stats.chisquare(counts).pvalue > 1e-3, counts


def test_test_sets_and_reserved_inputs_are_never_trained_on():
    task = GraphSearchConfig(max_input_size=20, test_examples_per_lookahead=30).build()
    for L in range(1, task.max_lookahead + 1):
        for ex in task.test_set(L, 10):
            assert is_test_example(ex) and ex.lookahead == L
    reserved = task.reserved_inputs()
    batch = task.sample(400, torch.Generator().manual_seed(0))
    assert not any(tuple(row) in reserved for row in batch["inputs"].tolist())
    assert task.collisions > 0  # N = 20 leaves so few graphs that collisions must occur and be dropped


def test_loss_and_metrics_read_the_last_position():
    task = GraphSearchConfig(max_input_size=32).build()
    batch = task.sample(8, torch.Generator().manual_seed(0))
    logits = torch.full((8, 32, task.vocab.size), -10.0)
    logits[torch.arange(8), -1, batch["targets"]] = 10.0
    m = task.metrics(logits, batch)
    assert m["accuracy"] == 1.0 and m["loss"] < 1e-6 and 0 < m["chance_accuracy"] <= 1


@pytest.mark.parametrize("field,value", [("max_input_size", 8), ("distribution", "grid"), ("max_lookahead", 99),
                                          ("test_examples_per_lookahead", -1)])
def test_bad_config_is_refused_with_the_field_named(field, value):
    with pytest.raises(ConfigError, match=field):
        GraphSearchConfig(**{field: value})
