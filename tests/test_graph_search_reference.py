"""An independent plain-Python re-implementation of the authors' data procedure, for the tests (this
module holds no tests itself; ``test_graph_search_authors`` imports it).

"Transformers Struggle to Learn to Search" (Saparov et al., ICLR 2025): the naive (``simple``),
balanced (``crafted``) and star training distributions as the authors' public code builds them
(``generate_graph``, ``generate_graph_with_lookahead``, ``generate_example``,
``generate_training_set`` and ``lookahead_depth`` in ``generator.cpp``; ``generate_star_graph_data``
in ``train.py``; repository asaparov/learning_to_search), written from those facts step by step with
Python's ``random`` and plain lists, deliberately unlike the compiled generator it checks (no path
counting: the shortest paths are enumerated the authors' way, duplicates included).

Each function returns example records (dicts) with the summary statistics the generator tests compare:
``lookahead``, ``edges``, ``vertices`` (vertices that appear in an edge), ``out_degree`` (of the start),
``useful`` (children of the start that reach the goal), ``adjacent`` (the goal is a child of the
start) and ``graph`` (an id shared by the examples of one graph).
"""

from __future__ import annotations

import random
from collections import deque

MAX_PATHS = 64


class Graph:
    def __init__(self, n: int):
        self.children: list[list[int]] = [[] for _ in range(n)]
        self.parents: list[list[int]] = [[] for _ in range(n)]

    def add(self, u: int, v: int) -> None:
        self.children[u].append(v)
        self.parents[v].append(u)

    def edges(self) -> list[tuple[int, int]]:
        return [(u, v) for u, cs in enumerate(self.children) for v in cs]


def _reachable(g: Graph, a: int, b: int) -> bool:
    stack, seen = [a], {a}
    while stack:
        x = stack.pop()
        if x == b:
            return True
        for c in g.children[x]:
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return False


def enumerated_paths(g: Graph, start: int, goal: int) -> list[list[int]] | None:
    """The authors' shortest-path listing: distances from the start, predecessor pointers followed back
    from the goal with a stack and no visited set (each pop appends forward pointers again), then every
    path along the forward pointers; None when the goal is unreachable or more than 64 paths are listed."""
    dist = {start: 0}
    queue = deque([start])
    while queue:
        x = queue.popleft()
        for c in g.children[x]:
            if c not in dist:
                dist[c] = dist[x] + 1
                queue.append(c)
    if goal not in dist or goal == start:
        return None
    forward: dict[int, list[int]] = {}
    stack = [goal]
    while stack:
        cur = stack.pop()
        if cur == start:
            continue
        prev = [p for p in g.parents[cur] if p in dist and dist[p] + 1 == dist[cur]]
        for p in prev:
            forward.setdefault(p, []).append(cur)
        stack.extend(prev)
    paths, partial = [], [[start]]
    while partial:
        path = partial.pop()
        if path[-1] == goal:
            paths.append(path)
            if len(paths) > MAX_PATHS:
                return None
            continue
        for nxt in forward[path[-1]]:
            partial.append(path + [nxt])
    return paths


def lookahead_depth(g: Graph, vertex: int, next_vertex: int, goal: int) -> int:
    """The authors' ``lookahead_depth``: a list of (vertex, branch) pairs expanded round by round."""
    frontier = [(c, c) for c in g.children[vertex]]
    visited = set(g.children[vertex])
    lookahead = 0
    while frontier:
        if all(branch == next_vertex for _, branch in frontier):
            return lookahead
        lookahead += 1
        new = []
        for v, branch in frontier:
            if v == goal:
                return lookahead
            for c in g.children[v]:
                if c not in visited:
                    new.append((c, branch))
                    visited.add(c)
                elif branch == next_vertex:
                    new = [(w, next_vertex) if w == c else (w, b) for w, b in new]
        frontier = new
    return lookahead


def _records(g: Graph, start: int, goal: int, paths, graph_id: int) -> list[dict]:
    edges = g.edges()
    used = {x for e in edges for x in e}
    useful = [c for c in g.children[start] if _reachable(g, c, goal)]
    return [dict(lookahead=lookahead_depth(g, start, p[1], goal), edges=len(edges), vertices=len(used),
                 out_degree=len(g.children[start]), useful=len(useful), adjacent=goal in g.children[start],
                 graph=graph_id) for p in paths]


def naive(rng: random.Random, max_input_size: int, n: int) -> list[dict]:
    mv = (max_input_size - 5) // 3
    out: list[dict] = []
    graph_id = 0
    while len(out) < n:
        V = rng.randrange(3, mv)
        g = Graph(V)
        for i in range(1, V):
            k = 1 if rng.randrange(2) == 0 else rng.randrange(1, 4)
            for p in rng.sample(range(i), min(k, i)):
                g.add(p, i)
        start = rng.randrange(V - 1)
        goal = start
        while goal == start:
            goal = rng.randrange(V - 1)
        paths = enumerated_paths(g, start, goal)
        if paths is None or len(g.edges()) > mv:
            continue
        out += _records(g, start, goal, paths, graph_id)
        graph_id += 1
    return out[:n]


def _weighted_sample(rng: random.Random, weights: list[float], k: int) -> list[int]:
    weights = list(weights)
    picked = []
    for _ in range(k):
        total = sum(weights)
        if total <= 0:
            break
        r, acc = rng.random() * total, 0.0
        for i, w in enumerate(weights):
            acc += w
            if w > 0 and r < acc:
                break
        picked.append(i)
        weights[i] = 0.0
    return picked


def balanced_graph(rng: random.Random, mv: int, L: int):
    max_edges = mv
    k = rng.randrange(1, 3) if L == 0 else rng.randrange(2, (max_edges - 1) // L + 1)
    V = min(L * k + 1 + rng.randrange(0, 6), mv, max_edges + 1)
    V = max(2, V, 1 + k * L)
    g = Graph(V)
    g.add(0, 1)
    for i in range(1, L):
        g.add(i, i + 1)
    index = 2 if L == 0 else 1 + L
    if L > 0:
        for j in range(k - 1):
            g.add(0, index)
            index += 1
            length = L + rng.randrange(min(2, V - index - (k - j - 1) * L + 2))
            for _ in range(1, length):
                g.add(index - 1, index)
                index += 1
    prev = 0
    for _ in range(rng.randrange(V - index + 1)):
        g.add(index, prev)
        prev = index
        index += 1
    indeg = [len(p) for p in g.parents]
    outdeg = [len(c) for c in g.children]
    for v in range(index, V):
        n_children = rng.randrange(0, 4)
        n_parents = rng.randrange(1 if n_children == 0 else 0, 4)
        n_children, n_parents = min(n_children, v), min(n_parents, v)
        for c in _weighted_sample(rng, [0.5 + indeg[j] for j in range(v)], n_children):
            g.add(v, c)
            indeg[c] += 1
        desc = set()
        stack = list(g.children[v])
        while stack:
            x = stack.pop()
            if x not in desc:
                desc.add(x)
                stack += g.children[x]
        weights = [0.0 if j in desc else 0.5 + outdeg[j] for j in range(v)]
        for p in _weighted_sample(rng, weights, min(n_parents, v - len(desc))):
            g.add(p, v)
            outdeg[p] += 1
    return g, 0, max(1, L)


def balanced(rng: random.Random, max_input_size: int, n: int) -> list[dict]:
    mv = (max_input_size - 5) // 3
    L_max = (mv - 1) // 2
    out: list[dict] = []
    graph_id = 0
    while len(out) < n:
        g, start, goal = balanced_graph(rng, mv, rng.randrange(L_max + 1))
        paths = enumerated_paths(g, start, goal)
        if paths is None or len(g.edges()) > mv:
            continue
        out += [r for r in _records(g, start, goal, paths, graph_id) if r["lookahead"] <= L_max]
        graph_id += 1
    return out[:n]


def star_pairs(max_input_size: int, L_max: int) -> list[tuple[int, int]]:
    """The authors' uniform set of (spoke length, spoke count) pairs."""
    mv = (max_input_size - 5) // 3
    return [(length, count) for length in range(1, L_max + 1) for count in range(1, (mv - 1) // length + 1)]
