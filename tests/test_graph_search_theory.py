"""Exact reachability references against an independent implementation (networkx) and hand-made graphs.

Everything here is integer/Boolean, so every comparison is exact equality: no tolerance.
"""

import networkx as nx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from theory.graph_search import (UNREACHABLE, bfs_distances, chance_accuracy, lookahead, path_merge,
                                 reach_within, useful_steps)


@st.composite
def dags(draw, max_vertices=12):
    V = draw(st.integers(2, max_vertices))
    bits = draw(st.lists(st.booleans(), min_size=V * V, max_size=V * V))
    adj = np.triu(np.array(bits, dtype=bool).reshape(V, V), k=1)  # upper-triangular: acyclic
    perm = np.array(draw(st.permutations(range(V))))
    return adj[np.ix_(perm, perm)]  # hide the topological order


@given(dags())
def test_bfs_distances_match_networkx(adj):
    g = nx.DiGraph(); g.add_nodes_from(range(adj.shape[0])); g.add_edges_from(zip(*np.nonzero(adj)))
    want = np.full(adj.shape, UNREACHABLE)
    for u, lengths in nx.all_pairs_shortest_path_length(g):
        for v, d in lengths.items():
            want[u, v] = d
    np.testing.assert_array_equal(bfs_distances(adj), want)


@given(dags(), st.integers(0, 4))
def test_path_merge_covers_exactly_two_to_the_t_hops(adj, t):
    d = bfs_distances(adj)
    np.testing.assert_array_equal(path_merge(adj, t), (d != UNREACHABLE) & (d <= 2**t))


@given(dags(), st.integers(0, 6))
def test_k_hop_reach_covers_exactly_k_hops(adj, k):
    d = bfs_distances(adj)
    np.testing.assert_array_equal(reach_within(adj, k), (d != UNREACHABLE) & (d <= k))


def spider(path_len: int, branch_lens: list[int]) -> tuple[np.ndarray, int]:
    """Start 0 with a path of ``path_len`` edges to the goal and distractor chains of given lengths."""
    edges, nxt = [], 1
    for i, length in enumerate([path_len] + branch_lens):
        prev = 0
        for _ in range(length):
            edges.append((prev, nxt)); prev, nxt = nxt, nxt + 1
        if i == 0:
            goal = prev
    adj = np.zeros((nxt, nxt), dtype=bool)
    for a, b in edges:
        adj[a, b] = True
    return adj, goal


@given(st.integers(1, 6), st.lists(st.integers(1, 7), min_size=1, max_size=4))
def test_lookahead_is_min_of_path_and_longest_distractor(path_len, branch_lens):
    """The paper's definition L = min(|P|, max_i |S_i|) on trees, where it is unambiguous."""
    adj, goal = spider(path_len, branch_lens)
    assert lookahead(adj, 0, goal) == min(path_len, max(branch_lens))


def test_lookahead_is_zero_only_with_a_single_child():
    adj, goal = spider(3, [])
    assert lookahead(adj, 0, goal) == 0
    diamond = np.zeros((4, 4), dtype=bool)  # two useful children: the other one is a distractor
    diamond[0, 1] = diamond[0, 2] = diamond[1, 3] = diamond[2, 3] = True
    assert lookahead(diamond, 0, 3, first=1) == lookahead(diamond, 0, 3, first=2) == 1


def test_a_vertex_reached_from_both_branches_in_one_round_is_credited_to_the_first_steps():
    # 0→1→2→3 (goal) and 0→4→5 with 4→2: both children reach the goal in two steps. Along first = 4,
    # vertex 2 is reached in round 1 from 1 (a distractor here) and from 4; the retagging credits it to
    # 4's branch, so round 1's frontier {2, 5} is all first-step: L = 1. Without the retagging it would
    # stay a distractor until the goal appears in round 2: L = 3. Along first = 1, 2 is 1's anyway and
    # 5 is the distractor's, so the goal decides: L = 2.
    adj = np.zeros((6, 6), dtype=bool)
    for a, b in [(0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (4, 2)]:
        adj[a, b] = True
    assert set(useful_steps(adj, 0, 3).tolist()) == {1, 4}
    assert lookahead(adj, 0, 3, first=4) == 1
    assert lookahead(adj, 0, 3, first=1) == 2
    with pytest.raises(ValueError, match="pass first="):
        lookahead(adj, 0, 3)
    with pytest.raises(ValueError, match="first=5 is not a child"):
        lookahead(adj, 0, 3, first=5)


def test_useful_steps_and_chance():
    adj, goal = spider(2, [2, 3])
    assert useful_steps(adj, 0, goal).tolist() == [1]
    assert chance_accuracy(adj, 0) == pytest.approx(1 / 3)


def test_refusals():
    adj, goal = spider(2, [2])
    with pytest.raises(ValueError, match="no children"):
        lookahead(adj, goal, 0)
    with pytest.raises(ValueError, match="not reachable"):
        lookahead(adj, 3, goal)
    with pytest.raises(ValueError, match="square"):
        bfs_distances(np.zeros((2, 3)))


@given(dags(), st.data())
def test_reaches_is_a_column_of_the_closure(adj, data):
    from theory.graph_search import reachable, reaches
    goal = data.draw(st.integers(0, adj.shape[0] - 1))
    d = bfs_distances(adj)
    np.testing.assert_array_equal(reachable(adj), d != UNREACHABLE)
    np.testing.assert_array_equal(reaches(adj, goal), d[:, goal] != UNREACHABLE)
