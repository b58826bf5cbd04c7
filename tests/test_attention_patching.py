"""Attention-weight patching: the re-run from a layer equals a full patched forward, and the
computation graph and its path-merge explanation on a hand-built example whose answer is known."""

import numpy as np
import pytest
import torch

from probes.attention_patching import KINDS, answer_drops, computation_graph, random_ops_control, summary
from theorybench.studies.graph_search.experiments import searcher_model
from toy_models import Transformer
from toy_models.tasks.graph_search import GraphSearchConfig, Vocab

N = 20


@pytest.fixture(scope="module")
def model_and_example():
    torch.manual_seed(0)
    model = Transformer(searcher_model(N, 2).replace(seed=3)).eval()
    task = GraphSearchConfig(max_input_size=N).build()
    batch = task.sample(1, torch.Generator().manual_seed(4))
    return model, task, batch


def test_rerun_from_a_layer_equals_a_full_patched_forward(model_and_example):
    model, task, batch = model_and_example
    tokens, mask = batch["inputs"][0], batch["padding_mask"][0]
    answer, patterns, drops = answer_drops(model, tokens, mask)
    with torch.no_grad():
        clean = model(tokens[None], padding_mask=mask[None])[0, -1, answer]
    T = tokens.shape[0]
    first = int(mask.argmax())
    for layer, dst, src, kind in ((0, T - 1, first + 1, "zero"), (0, first + 2, T - 1, "max"), (1, T - 1, first, "max")):
        value = 0.0 if kind == "zero" else float(patterns[layer][dst].max())

        def patch(pattern, hook):
            pattern = pattern.clone()
            pattern[0, 0, dst, src] = value
            return pattern

        with torch.no_grad(), model.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_pattern", patch)]):
            patched = model(tokens[None], padding_mask=mask[None], attn_path="reference")[0, -1, answer]
        # float32, logits of LayerNorm scale O(1): a different batch shape reorders sums, ~√d·ε ≈ 1e-6
        assert float(drops[layer][kind][dst, src]) == pytest.approx(float(clean - patched), abs=1e-5)


def test_drops_cover_allowed_keys_only_and_the_last_layer_only_its_last_row(model_and_example):
    model, task, batch = model_and_example
    tokens, mask = batch["inputs"][0], batch["padding_mask"][0]
    _, patterns, drops = answer_drops(model, tokens, mask)
    pad = ~mask.bool()
    for layer, d in enumerate(drops):
        for kind in ("zero", "max"):
            assert d[kind][:, pad].isnan().all()
            rows = slice(None) if layer == 0 else slice(-1, None)
            assert not d[kind][rows, ~pad].isnan().any()
    assert drops[1]["zero"][:-1].isnan().all()
    # raising a row's maximum to itself changes nothing: drop 0 up to the same float32 reordering
    for layer, pattern in enumerate(patterns):
        dst = tokens.shape[0] - 1
        src = int(pattern[dst].argmax())
        assert abs(float(drops[layer]["max"][dst, src])) < 1e-5


def _hand_example():
    """E s a  E a g  E s b  Q s g  P s  (s, a, g, b = 1, 2, 3, 4): the path s → a → g and a distractor s → b."""
    v = Vocab(N)
    s, a, g, b = 1, 2, 3, 4
    tokens = [v.edge, s, a, v.edge, a, g, v.edge, s, b, v.query, s, g, v.path, s]
    tokens = [v.pad] * (N - len(tokens)) + tokens
    off = N - 14
    return v, tokens, off, (s, a, g, b)


def _drops(T, n_layers, ops):
    drops = [{k: torch.zeros(T, T, dtype=torch.float64) for k in ("zero", "max")} for _ in range(n_layers)]
    for layer, dst, src, kind, value in ops:
        drops[layer][kind][dst, src] = value
    return drops


def test_path_merging_story_is_explained():
    v, tokens, off, (s, a, g, b) = _hand_example()
    T = len(tokens)
    ops = [
        (0, off + 2, off + 1, "zero", 1.0),   # a's position in "E s a" reads s: edge s → a (position step)
        (0, off + 4, off + 5, "zero", 1.0),   # a's position in "E a g" reads g: edge a → g (position step)
        (1, off + 4, off + 2, "zero", 1.0),   # sets {a, g} and {s, a} share a: merged (token match)
        (1, off + 8, off + 7, "zero", 1.0),   # important, but nothing downstream reads position 8
        (2, T - 1, off + 4, "zero", 1.0),     # the answer position {s} reads {s, a, g}: shares s (token match)
        (2, T - 1, off + 11, "max", 0.2),     # below the 0.4 threshold: not important
    ]
    graph = computation_graph(tokens, v, answer=a, drops=_drops(T, 3, ops))
    assert len(graph.ops) == 5
    kept = {(op["layer"], op["dst"] - off, op["src"] - off): op["merge"] for op in graph.kept}
    assert kept == {(0, 2, 1): "position_step", (0, 4, 5): "position_step", (1, 4, 2): "token_match",
                    (2, T - 1 - off, 4): "token_match"}
    assert graph.correct and graph.explained
    wrong = computation_graph(tokens, v, answer=b, drops=_drops(T, 3, ops))
    assert not wrong.correct and not wrong.explained  # the known path does not start with s → b
    out = summary([graph, wrong])
    assert out["fraction_explained"] == 0.5 and out["fraction_explained_among_correct"] == 1.0
    assert sum(out[f"share_{k}"] for k in KINDS) == pytest.approx(1.0)


def test_a_missing_merge_leaves_the_example_unexplained():
    v, tokens, off, (s, a, g, b) = _hand_example()
    T = len(tokens)
    ops = [(0, off + 2, off + 1, "zero", 1.0), (0, off + 4, off + 5, "zero", 1.0),
           (2, T - 1, off + 4, "zero", 1.0)]  # no layer-1 merge: the answer position gets a → g only
    graph = computation_graph(tokens, v, answer=a, drops=_drops(T, 3, ops))
    # {s} and {a, g} share no vertex: the last copy is unexplained, nothing is merged into the answer
    assert [op["merge"] for op in graph.kept if op["layer"] == 2] == ["unexplained"]
    assert not graph.explained


def test_random_control_keeps_layers_destinations_and_count():
    v, tokens, off, (s, a, g, b) = _hand_example()
    T = len(tokens)
    ops = [(0, off + 2, off + 1, "zero", 1.0), (0, off + 4, off + 5, "zero", 1.0), (1, off + 4, off + 2, "zero", 1.0),
           (2, T - 1, off + 4, "zero", 1.0)]
    graph = computation_graph(tokens, v, answer=a, drops=_drops(T, 3, ops))
    mask = np.array([t != v.pad for t in tokens])
    control = random_ops_control(tokens, v, graph, 3, np.random.default_rng(0), mask)
    assert sorted((op["layer"], op["dst"]) for op in control.ops) == sorted((op["layer"], op["dst"]) for op in graph.ops)
    assert all(mask[op["src"]] for op in control.ops)  # sources are real tokens, never padding
    assert control.answer == graph.answer and control.correct == graph.correct
