"""The graph-search task as the trainer sees it: vocabulary, held-out test sets, loss and metrics, config
errors. The generator's properties (labels, lookahead, ids, shuffling, histogram) are in
``test_graph_search_gen.py``."""

import pytest
import torch

from toy_models.config import ConfigError
from toy_models.tasks.graph_search import GraphSearchConfig, Vocab, collate, is_test_example


def test_vocabulary_matches_the_paper_layout():
    # Saparov et al.'s code at N = 128: max vertex 41; P, E, PAD, Q = 42, 43, 44, 45; 46 tokens.
    v = Vocab(128)
    assert (v.max_vertex, v.path, v.edge, v.pad, v.query, v.size) == (41, 42, 43, 44, 45, 46)
    assert v.default_max_lookahead == 20


def test_test_sets_and_reserved_inputs_are_never_trained_on():
    task = GraphSearchConfig(max_input_size=20, test_examples_per_lookahead=30).build()
    for L in range(1, task.max_lookahead + 1):
        for ex in task.test_set(L, 10):
            assert is_test_example(ex) and ex.lookahead == L
    reserved = task.reserved_inputs()
    batch = task.sample(400, torch.Generator().manual_seed(0))
    assert not any(tuple(row) in reserved for row in batch["inputs"].tolist())
    assert task.collisions > 0  # N = 20 leaves so few graphs that collisions must occur and be dropped


def test_collated_test_sets_look_like_training_batches():
    task = GraphSearchConfig(max_input_size=64).build()
    batch = task.sample(4, torch.Generator().manual_seed(0))
    held_out = collate(task.test_set(2, 4), task.vocab)
    assert batch.keys() == held_out.keys()
    for k in batch:
        assert batch[k].dtype == held_out[k].dtype and batch[k].shape == held_out[k].shape, k
    assert (held_out["lookahead"] == 2).all() and (held_out["useful"].sum(1) == 1).all()


def test_loss_and_metrics_read_the_last_position():
    task = GraphSearchConfig(max_input_size=32).build()
    batch = task.sample(8, torch.Generator().manual_seed(0))
    logits = torch.full((8, 32, task.vocab.size), -10.0)
    logits[torch.arange(8), -1, batch["targets"]] = 10.0
    m = task.metrics(logits, batch)
    assert m["accuracy"] == 1.0 and m["loss"] < 1e-6 and 0 < m["chance_accuracy"] <= 1


@pytest.mark.parametrize("field,value", [("max_input_size", 8), ("max_input_size", "64"), ("distribution", "grid"),
                                         ("max_lookahead", 99), ("max_lookahead", 0),
                                         ("test_examples_per_lookahead", -1), ("test_seed", "a")])
def test_bad_config_is_refused_with_the_field_named(field, value):
    with pytest.raises(ConfigError, match=f"{field}={value!r} is not allowed: "):
        GraphSearchConfig(**{field: value})
