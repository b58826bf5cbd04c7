"""Read a graph-search sequence back into its graph, independently of the generator.

A sequence ("Transformers Struggle to Learn to Search", Saparov et al., ICLR 2025) is

    PAD … PAD  E u₁ v₁ … E u_m v_m  Q s g  P s

The probes index vertices by their token ids 1..max_vertex, so the graph is an adjacency matrix over
token ids (row and column 0 unused) and the exact sets come from ``theory.graph_search`` on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.graph_search import bfs_distances

ROLES = ("edge_source", "edge_target", "query_start", "query_goal", "current")


@dataclass(frozen=True)
class TokenGraph:
    """The graph of one sequence, over token ids 0..max_vertex (0 unused)."""

    adj: np.ndarray  # bool [n_ids, n_ids]
    start: int
    goal: int
    current: int  # the last token: the vertex whose next step is predicted
    vertex_positions: np.ndarray  # int [k]: positions holding a vertex token
    roles: tuple[str, ...]  # one of ROLES per vertex position

    @property
    def distances(self) -> np.ndarray:
        """d(u, v) over token ids (``theory.graph_search.UNREACHABLE`` = −1 where there is no path)."""
        return bfs_distances(self.adj)


def decode_graph(tokens, vocab) -> TokenGraph:
    """The graph, query and vertex-holding positions of one left-padded sequence (``vocab``: a ``Vocab``).

    Raises ValueError naming the position when the sequence does not follow the layout above.
    """
    tokens = [int(t) for t in tokens]
    first = next((i for i, t in enumerate(tokens) if t != vocab.pad), len(tokens))
    n_ids = vocab.max_vertex + 1
    adj = np.zeros((n_ids, n_ids), dtype=bool)
    positions: list[int] = []
    roles: list[str] = []
    p = first
    while p < len(tokens) and tokens[p] == vocab.edge:
        if p + 2 >= len(tokens):
            raise ValueError(f"edge at position {p} is cut off by the end of the sequence")
        u, v = tokens[p + 1], tokens[p + 2]
        _check_vertex(u, p + 1, vocab)
        _check_vertex(v, p + 2, vocab)
        adj[u, v] = True
        positions += [p + 1, p + 2]
        roles += ["edge_source", "edge_target"]
        p += 3
    tail = tokens[p:]
    if len(tail) != 5 or tail[0] != vocab.query or tail[3] != vocab.path or tail[1] != tail[4]:
        raise ValueError(f"expected 'Q s g P s' at positions {p}..{len(tokens) - 1}, got tokens {tail}")
    for i in (1, 2, 4):
        _check_vertex(tail[i], p + i, vocab)
    positions += [p + 1, p + 2, p + 4]
    roles += ["query_start", "query_goal", "current"]
    return TokenGraph(adj=adj, start=tail[1], goal=tail[2], current=tail[4],
                      vertex_positions=np.asarray(positions, dtype=np.int64), roles=tuple(roles))


def _check_vertex(token: int, position: int, vocab) -> None:
    if not 1 <= token <= vocab.max_vertex:
        raise ValueError(f"position {position} holds token {token}, expected a vertex id in 1..{vocab.max_vertex}")


__all__ = ["ROLES", "TokenGraph", "decode_graph"]
