"""Exact reachability references for graph search ("Transformers Struggle to Learn to Search",
Saparov et al., ICLR 2025).

A graph is a Boolean adjacency matrix ``adj[u, v] = True`` for an edge u → v on vertices 0..V−1.
All quantities here are exact (integers and Booleans), so tests compare them with equality.

- BFS distance d(u, v): the fewest edges on a directed path u → v (``UNREACHABLE`` if none).
- k-hop reach: R_k = (I ∨ A)^k in the Boolean semiring, so R_k[u, v] ⇔ d(u, v) ≤ k.
- Path-merging doubling: M_0 = I ∨ A, M_{t+1} = M_t ∘ M_t (Boolean product), so
  M_t[u, v] ⇔ d(u, v) ≤ 2^t. A transformer that merges reachable sets along edges at every layer
  ("exponential path-merging", the algorithm the paper finds) covers 2^t hops after t merge layers;
  a layer-per-hop BFS covers t.
- Decision rule: the useful next steps from ``cur`` towards ``goal`` are the children c with
  goal ∈ R_∞(c) (or c = goal).
- Lookahead L(cur, goal, first): the BFS depth needed before the step to ``first`` is certain (see
  ``lookahead``).
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Bool, Int

Adjacency = Bool[np.ndarray, "V V"]  # adj[u, v]: an edge u → v

UNREACHABLE = -1


def _check_adj(adj: np.ndarray) -> np.ndarray:
    adj = np.asarray(adj)
    if adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
        raise ValueError(f"adjacency must be a square [V, V] matrix, got shape {adj.shape}")
    return adj.astype(bool)


def bool_matmul(a: Bool[np.ndarray, "n m"], b: Bool[np.ndarray, "m k"]) -> Bool[np.ndarray, "n k"]:
    """Boolean matrix product: (a ∘ b)[u, v] = ∨_w a[u, w] ∧ b[w, v]."""
    return (a.astype(np.int64) @ b.astype(np.int64)) > 0


def bfs_distances(adj: Adjacency) -> Int[np.ndarray, "V V"]:
    """All-pairs directed BFS distances [V, V] (``UNREACHABLE`` where there is no path), d(u, u) = 0."""
    adj = _check_adj(adj)
    V = adj.shape[0]
    dist = np.full((V, V), UNREACHABLE, dtype=np.int64)
    np.fill_diagonal(dist, 0)
    frontier = np.eye(V, dtype=bool)
    seen = frontier.copy()
    for k in range(1, V):
        frontier = bool_matmul(frontier, adj) & ~seen
        if not frontier.any():
            break
        dist[frontier] = k
        seen |= frontier
    return dist


def reach_within(adj: Adjacency, k: int) -> Bool[np.ndarray, "V V"]:
    """R_k = (I ∨ A)^k: R_k[u, v] ⇔ d(u, v) ≤ k."""
    adj = _check_adj(adj)
    if k < 0:
        raise ValueError(f"k must be ≥ 0, got {k}")
    step = adj | np.eye(adj.shape[0], dtype=bool)
    out = np.eye(adj.shape[0], dtype=bool)
    for _ in range(k):
        out = bool_matmul(out, step)
    return out


def path_merge(adj: Adjacency, t: int) -> Bool[np.ndarray, "V V"]:
    """M_t of the doubling recursion M_{t+1} = M_t ∘ M_t, M_0 = I ∨ A: M_t[u, v] ⇔ d(u, v) ≤ 2^t."""
    adj = _check_adj(adj)
    if t < 0:
        raise ValueError(f"t must be ≥ 0, got {t}")
    m = adj | np.eye(adj.shape[0], dtype=bool)
    for _ in range(t):
        m = bool_matmul(m, m)
    return m


def reachable(adj: Adjacency) -> Bool[np.ndarray, "V V"]:
    """R_∞: reachable[u, v] ⇔ there is a directed path u → v (including u = v); Warshall's closure."""
    reach = _check_adj(adj) | np.eye(np.asarray(adj).shape[0], dtype=bool)
    for k in range(reach.shape[0]):
        reach |= reach[:, k : k + 1] & reach[k : k + 1, :]
    return reach


def reaches(adj: Adjacency, goal: int) -> Bool[np.ndarray, "V"]:
    """bool[V]: which vertices have a directed path to ``goal`` (the goal included); one backward BFS.

    Everything the next-step decision needs (useful steps, lookahead) depends on this column of R_∞
    only, so generators call it instead of the all-pairs closure.
    """
    adj = _check_adj(adj)
    found = np.zeros(adj.shape[0], dtype=bool)
    found[goal] = True
    frontier = [goal]
    while frontier:
        parents = np.flatnonzero(adj[:, frontier].any(1) & ~found)
        found[parents] = True
        frontier = parents.tolist()
    return found


def useful_steps(adj: Adjacency, cur: int, goal: int, to_goal: Bool[np.ndarray, "V"] | None = None
                 ) -> Int[np.ndarray, "n_useful"]:
    """Children of ``cur`` from which ``goal`` is reachable (sorted vertex indices)."""
    adj = _check_adj(adj)
    to_goal = reaches(adj, goal) if to_goal is None else to_goal
    children = np.flatnonzero(adj[cur])
    return children[to_goal[children]]


def shortest_first_steps(adj: Adjacency, cur: int, goal: int) -> Int[np.ndarray, "n_first"]:
    """Children of ``cur`` that start a shortest path to ``goal`` (sorted vertex indices)."""
    adj = _check_adj(adj)
    d = bfs_distances(adj)
    children = np.flatnonzero(adj[cur])
    if d[cur, goal] <= 0:
        return children[:0]
    return children[d[children, goal] == d[cur, goal] - 1]


def lookahead(adj: Adjacency, cur: int, goal: int, first: int | None = None) -> int:
    """The search depth needed before the step from ``cur`` to its child ``first`` is certain: the
    lookahead of "Transformers Struggle to Learn to Search" as the authors' ``lookahead_depth``
    measures it along one path's next vertex.

    A synchronous BFS starts from the children of ``cur``; each frontier vertex carries the child it
    descends from, and a vertex reached in the same round from ``first``'s branch and from another is
    credited to ``first``. With d = 0 for the children: L = d at the first round d whose frontier
    descends from ``first`` only (every other branch is exhausted), or L = d + 1 when the goal is in
    round d's frontier (the path has been found), whichever comes first. So L = 0 only when ``first``
    is the only child; a second useful child counts as a distractor. For a path of length |P| and
    distractor chains S_i from ``cur`` this is L = min(|P|, max_i |S_i|), the paper's definition.

    ``first`` defaults to the unique child that starts a shortest path to the goal (ValueError when
    there are several: name one).
    """
    adj = _check_adj(adj)
    children = np.flatnonzero(adj[cur])
    if children.size == 0:
        raise ValueError(f"vertex {cur} has no children: there is no next step")
    to_goal = reaches(adj, goal)
    if not to_goal[children].any():
        raise ValueError(f"goal {goal} is not reachable from vertex {cur}")
    if first is None:
        steps = shortest_first_steps(adj, cur, goal)
        if steps.size != 1:
            raise ValueError(f"{steps.size} children of {cur} start a shortest path to {goal} "
                             f"({steps.tolist()}): pass first= one of them")
        first = int(steps[0])
    if first not in children.tolist() or not to_goal[first]:
        raise ValueError(f"first={first} is not a child of vertex {cur} from which goal {goal} is reachable")
    succ = [np.flatnonzero(row).tolist() for row in adj]
    branch = {int(c): int(c) == first for c in children}  # vertex → descends from ``first``
    seen = set(branch)
    depth = 0
    while branch:
        if all(branch.values()):
            return depth
        depth += 1
        if goal in branch:
            return depth
        nxt: dict[int, bool] = {}
        for u, from_first in branch.items():
            for w in succ[u]:
                if w not in seen:
                    seen.add(w)
                    nxt[w] = from_first
                elif w in nxt and from_first:
                    nxt[w] = True
        branch = nxt
    return depth


def chance_accuracy(adj: Adjacency, cur: int) -> float:
    """Accuracy of guessing a child of ``cur`` uniformly at random when exactly one is useful: 1/outdeg."""
    return 1.0 / int(_check_adj(adj)[cur].sum())
