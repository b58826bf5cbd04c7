"""Property tests of the compiled graph-search generator against the plain-Python oracles.

Every example is decoded from its tokens alone and checked with ``theory.graph_search`` (BFS
reachability, useful steps, the tagged-BFS lookahead) and networkx (acyclicity, isomorphism), so the
compiled generator is never its own judge. Statistical checks fix their seeds; each bound states the
probability that a correct generator would fail it on a random seed.
"""

import random

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from theory.graph_search import lookahead, reaches, shortest_first_steps, useful_steps
from toy_models.tasks import _graph_kernels as K
from toy_models.tasks.graph_search import (MIN_INPUT_SIZE, Graph, GraphSearchConfig, Vocab, balanced_graph, encode,
                                           naive_graph, star_graph)

# p-value floor of the goodness-of-fit tests: a correct generator fails one on a random seed w.p. 1e-3.
ALPHA = 1e-3


def decode(tokens: list[int], vocab: Vocab) -> tuple[list[tuple[int, int]], int, int]:
    """(edges over token ids in input order, start, goal), asserting the layout on the way."""
    n_pad = next(i for i, t in enumerate(tokens) if t != vocab.pad)
    body = tokens[n_pad:]
    assert vocab.pad not in body  # left padding only
    q = len(body) - 5
    assert body[q:] == [vocab.query, body[q + 1], body[q + 2], vocab.path, body[q + 1]]
    assert q % 3 == 0 and all(body[i] == vocab.edge for i in range(0, q, 3))
    edges = [(body[i + 1], body[i + 2]) for i in range(0, q, 3)]
    return edges, body[q + 1], body[q + 2]


def adjacency(edges, size: int) -> np.ndarray:
    adj = np.zeros((size, size), dtype=bool)
    for u, v in edges:
        adj[u, v] = True
    return adj


@st.composite
def task_and_seed(draw):
    dist = draw(st.sampled_from(["balanced", "naive", "star"]))
    N = draw(st.integers(MIN_INPUT_SIZE[dist], 140))
    return GraphSearchConfig(max_input_size=N, distribution=dist).build(), draw(st.integers(0, 2**32))


@given(task_and_seed())
def test_every_example_is_a_dag_with_bfs_labels_and_its_sampled_lookahead(task_seed):
    """Acyclic, ids in 1..mv, ≤ mv distinct edges; useful steps = BFS answer; the recorded lookahead is
    the oracle's lookahead of the decoded graph along one of the start's shortest-path children."""
    task, seed = task_seed
    vocab, dist = task.vocab, task.cfg.distribution
    batch = task.sample(16, torch.Generator().manual_seed(seed))
    for i in range(16):
        edges, s, g = decode(batch["inputs"][i].tolist(), vocab)
        assert len(set(edges)) == len(edges) <= vocab.max_vertex
        assert all(1 <= t <= vocab.max_vertex for e in edges for t in e)
        assert nx.is_directed_acyclic_graph(nx.DiGraph(edges))
        adj = adjacency(edges, vocab.size)
        useful = useful_steps(adj, s, g).tolist()
        assert useful == torch.nonzero(batch["useful"][i]).flatten().tolist()
        assert batch["targets"][i].item() in useful
        assert batch["out_degree"][i].item() == adj[s].sum()
        L = batch["lookahead"][i].item()
        assert L in {lookahead(adj, s, g, first=c) for c in shortest_first_steps(adj, s, g).tolist()}
        if dist == "naive":  # a path from start to goal (the goal may be a child of the start)
            assert reaches(adj, g)[s] and s != g
        if dist == "star":  # equal spokes of one length in 1..L_max; the goal ends one of them
            spokes = adj[s].sum()
            assert (adj.sum(0)[adj.any(0)] == 1).all() and (np.delete(adj.sum(1), s) <= 1).all()
            assert len(edges) % spokes == 0 and 1 <= len(edges) // spokes <= task.max_lookahead
            assert L == (0 if spokes == 1 else len(edges) // spokes)
        if dist == "balanced":
            assert 0 <= L <= task.max_lookahead


@st.composite
def dags(draw, max_vertices=12):
    V = draw(st.integers(2, max_vertices))
    bits = draw(st.lists(st.booleans(), min_size=V * V, max_size=V * V))
    adj = np.triu(np.array(bits, dtype=bool).reshape(V, V), k=1)
    perm = np.array(draw(st.permutations(range(V))))
    return adj[np.ix_(perm, perm)]


@given(dags(), st.data())
def test_compiled_lookahead_and_encoder_match_the_oracle_on_random_dags(adj, data):
    """Arbitrary DAGs (merging branches, shortcuts), not only the generator's shapes; the encoder
    records the lookahead along the start's lowest-index shortest-path child."""
    V = adj.shape[0]
    cur = data.draw(st.integers(0, V - 1))
    goal = data.draw(st.integers(0, V - 1))
    steps = shortest_first_steps(adj, cur, goal).tolist()
    if not steps:  # no children, or the goal unreachable: the kernel returns an error code
        assert K.measured_lookahead(adj, cur, goal, 0) < 0
        return
    want = lookahead(adj, cur, goal, first=steps[0])
    assert K.measured_lookahead(adj, cur, goal, steps[0]) == want
    vocab = Vocab(3 * max(V, int(adj.sum())) + 5)
    ex = encode(random.Random(data.draw(st.integers(0, 2**32))), Graph(adj, cur, goal), vocab)
    edges, s, g = decode(ex.tokens, vocab)
    ids = adjacency(edges, vocab.size)
    assert ex.useful == useful_steps(ids, s, g).tolist() and ex.label in ex.useful
    assert ex.lookahead == want and ex.out_degree == adj[cur].sum()


def spider(path_len: int, branch_lens: list[int]) -> tuple[np.ndarray, int]:
    """Start 0 with a path of ``path_len`` edges to the goal and distractor chains of given lengths."""
    edges, nxt, goal = [], 1, 0
    for i, length in enumerate([path_len] + branch_lens):
        prev = 0
        for _ in range(length):
            edges.append((prev, nxt))
            prev, nxt = nxt, nxt + 1
        goal = prev if i == 0 else goal
    return adjacency(edges, nxt), goal


def test_ids_are_a_uniform_injection_and_edges_a_uniform_shuffle():
    """Encode one fixed graph n times. Injection: the decoded graph is isomorphic to it with start
    and goal in place (so no two vertices share an id). Uniformity: the start's id over 1..mv and the
    position of the start→path edge among the m edges pass χ² at p > ALPHA."""
    adj, goal = spider(3, [3, 4])
    V, m = adj.shape[0], int(adj.sum())
    vocab = Vocab(128)
    rng = random.Random(0)
    n = 60 * vocab.max_vertex  # 60 expected per id bucket: χ² is accurate far above 5 per bucket
    start_ids, edge_pos = [], []
    role = {0: "start", goal: "goal"}
    reference = nx.DiGraph(list(zip(*np.nonzero(adj))))
    nx.set_node_attributes(reference, {v: role.get(v, "") for v in reference}, "role")
    for k in range(n):
        ex = encode(rng, Graph(adj, 0, goal), vocab)
        edges, s, g = decode(ex.tokens, vocab)
        start_ids.append(s)
        edge_pos.append(edges.index((s, ex.label)))
        assert len({t for e in edges for t in e}) == V
        if k < 100:  # isomorphism is the slow part; 100 graphs already exercise every code path
            got = nx.DiGraph(edges)
            nx.set_node_attributes(got, {v: {s: "start", g: "goal"}.get(v, "") for v in got}, "role")
            assert nx.is_isomorphic(got, reference, node_match=lambda a, b: a["role"] == b["role"])
    id_counts = np.bincount(start_ids, minlength=vocab.max_vertex + 1)[1:]
    assert stats.chisquare(id_counts).pvalue > ALPHA, id_counts
    assert stats.chisquare(np.bincount(edge_pos, minlength=m)).pvalue > ALPHA


def test_generated_edges_are_shuffled():
    """Generation emits the start's first edge first; after a uniform shuffle the first listed edge
    leaves the start with probability outdeg(s)/m. Over distinct graphs (one graph's examples share
    its input and are consecutive) the count of such graphs is a sum of independent Bernoulli(p_i), so
    it lies within 5 standard deviations √Σp_i(1−p_i) of Σp_i except w.p. < 1e-6."""
    task = GraphSearchConfig(max_input_size=128).build()
    batch = task.sample(2000, torch.Generator().manual_seed(0))
    rows = batch["inputs"]
    hits, p = [], []
    for i in range(2000):
        if i > 0 and torch.equal(rows[i], rows[i - 1]):
            continue
        edges, s, _ = decode(batch["inputs"][i].tolist(), task.vocab)
        hits.append(edges[0][0] == s)
        p.append(batch["out_degree"][i].item() / len(edges))
    p = np.array(p)
    assert abs(sum(hits) - p.sum()) <= 5 * np.sqrt((p * (1 - p)).sum())


@pytest.mark.parametrize("distribution", ["balanced", "naive", "star"])
def test_a_seed_fixes_the_stream(distribution):
    task = GraphSearchConfig(max_input_size=64, distribution=distribution).build()
    a = task.sample(32, torch.Generator().manual_seed(5))
    b = GraphSearchConfig(max_input_size=64, distribution=distribution).build().sample(32, torch.Generator().manual_seed(5))
    c = task.sample(32, torch.Generator().manual_seed(6))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["inputs"], c["inputs"])
    assert task.example(random.Random(3)) == task.example(random.Random(3))


def test_test_sets_are_fixed_by_the_test_seed():
    make = lambda seed: GraphSearchConfig(max_input_size=64, test_seed=seed).build()  # noqa: E731
    assert make(1).test_set(3, 5) == make(1).test_set(3, 5)
    assert make(1).test_set(3, 5) != make(2).test_set(3, 5)


@pytest.mark.parametrize("distribution", ["balanced", "naive", "star"])
def test_smallest_allowed_input_size_generates_and_one_less_is_refused(distribution):
    N = MIN_INPUT_SIZE[distribution]
    batch = GraphSearchConfig(max_input_size=N, distribution=distribution).build().sample(50, torch.Generator().manual_seed(0))
    assert batch["inputs"].shape == (50, N)
    with pytest.raises(ValueError, match=f"max_input_size={N - 1} is not allowed: an integer ≥ {N}"):
        GraphSearchConfig(max_input_size=N - 1, distribution=distribution)


def test_bad_lookahead_requests_and_graphs_are_refused():
    task = GraphSearchConfig(max_input_size=32).build()  # L_max = 4
    for L in (0, 5):
        with pytest.raises(ValueError, match=rf"L={L} is not allowed: an integer in \[1, 4\]"):
            task.test_set(L, 3)
    with pytest.raises(ValueError, match=r"L=5 is not allowed: an integer in \[0, 4\]"):
        task.example(random.Random(0), L=5)
    adj, goal = spider(5, [5, 5])  # 16 vertices > 9 ids at N = 32
    with pytest.raises(ValueError, match="does not fit max_input_size=32"):
        encode(random.Random(0), Graph(adj, 0, goal), task.vocab)
    adj, goal = spider(2, [2])
    with pytest.raises(ValueError, match="not reachable"):
        encode(random.Random(0), Graph(adj, 3, goal), task.vocab)
    with pytest.raises(ValueError, match="no children"):
        encode(random.Random(0), Graph(adj, goal, 0), task.vocab)


def test_held_out_sets_have_the_requested_lookahead_and_one_useful_step_among_several():
    task = GraphSearchConfig(max_input_size=128).build()
    for L in range(1, task.max_lookahead + 1):
        for ex in task.test_set(L, 3):
            edges, s, g = decode(ex.tokens, task.vocab)
            adj = adjacency(edges, task.vocab.size)
            assert lookahead(adj, s, g) == L == ex.lookahead
            assert useful_steps(adj, s, g).tolist() == ex.useful == [ex.label] and adj[s].sum() == ex.out_degree >= 2


def test_graph_level_helpers_return_what_they_promise():
    """``balanced_graph`` / ``naive_graph`` / ``star_graph`` hand out the generator's graphs before
    encoding (vertices in generation order), e.g. for probes that need the exact graph."""
    vocab, rng = Vocab(64), random.Random(0)
    for L in range(vocab.default_max_lookahead + 1):
        graph, got = balanced_graph(rng, vocab, vocab.default_max_lookahead, L)
        first = shortest_first_steps(graph.adj, graph.start, graph.goal)[0]
        assert got == L == lookahead(graph.adj, graph.start, graph.goal, first=first) and graph.start == 0
        assert nx.is_directed_acyclic_graph(nx.DiGraph(list(zip(*np.nonzero(graph.adj)))))
    graph = naive_graph(rng, vocab)
    assert reaches(graph.adj, graph.goal)[graph.start] and graph.start != graph.goal
    graph = star_graph(rng, vocab, 3)
    assert 0 <= lookahead(graph.adj, graph.start, graph.goal) <= 3


def test_bounded_integers_are_uniform():
    """n = 7 does not divide 2^64, so plain r mod 7 would be biased (by 2^-61, too little to see);
    this checks the rejection bound does not skew or drop residues: χ² over 7 buckets at p > ALPHA."""
    draws = K.draw_below(K.new_state(12345), 7, 7000)
    assert draws.min() == 0 and draws.max() == 6
    assert stats.chisquare(np.bincount(draws, minlength=7)).pvalue > ALPHA


def test_weighted_picks_are_in_proportion_to_the_weights_without_replacement():
    """One pick from weights α + degree (degrees 0..4) has P(u) = (α + d_u)/Σ(α + d): χ² at p > ALPHA.
    Three picks are distinct and never a zero-weight index (the descendants the generator excludes)."""
    degree = np.array([0, 1, 2, 3, 4], dtype=np.float64)
    weights = K.PREFERENTIAL_ALPHA + degree
    picks = K.draw_weighted(K.new_state(7), weights, 1, 5000)[:, 0]
    assert stats.chisquare(np.bincount(picks, minlength=5), 5000 * weights / weights.sum()).pvalue > ALPHA
    weights[2] = 0.0
    for row in K.draw_weighted(K.new_state(8), weights, 3, 50):
        assert len(set(row.tolist())) == 3 and 2 not in row.tolist() and row.min() >= 0
    assert (K.draw_weighted(K.new_state(9), np.array([0.0, 1.0]), 2, 5) == [[1, -1]] * 5).all()
