"""Graph search on random DAGs ("Transformers Struggle to Learn to Search", Saparov et al., ICLR 2025).

Given a shuffled edge list, a start vertex and a goal vertex, predict the next vertex on a path from
start to goal. The vocabulary follows from the maximum input size N: vertex ids 1..mv with
mv = (N − 5) // 3 (id 0 is reserved), then the path, edge, padding and query tokens. A sequence is

    PAD … PAD  E u₁ v₁  E u₂ v₂ …  E u_m v_m  Q s g  P s     → predict a useful child of s

left-padded to length N (m ≤ mv edges, so 3m + 5 ≤ N always fits). Vertex ids are a random
injection into 1..mv and the edge order is shuffled, so ids and positions carry no topology.

Distributions:
- ``naive``: V ~ U{3..mv−1}; each vertex i ≥ 1 takes one parent with probability 1/2, otherwise
  U{1..3} (at most i), uniformly among earlier vertices; start and goal uniform with d(s, g) ≥ 2.
  Lookahead decays roughly exponentially, so large L is almost never seen.
- ``balanced``: L ~ U{0..L_max}; a path of length L from the start to the goal, k − 1 distractor
  branches of length L or L + 1 from the start, a prefix chain into the start, a few extra vertices
  wired by preferential attachment (weight α + degree, α = 1/2) without creating cycles; rejected
  unless the measured lookahead equals L. This makes every L equally likely.
- ``star``: equal-length spokes from the start; the goal ends spoke 0.

Labels: every useful next step (a child from which the goal is reachable); one drawn uniformly is the
training target, and accuracy counts any useful step. Held-out test sets keep only examples whose
start has ≥ 2 children and exactly one useful step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from theory.graph_search import lookahead, reaches, useful_steps
from toy_models.config import ConfigError

from .base import Batch, register_task

Distribution = Literal["naive", "balanced", "star"]
PREFERENTIAL_ALPHA = 0.5


@dataclass(frozen=True)
class Vocab:
    """Token ids for maximum input size N."""

    max_input_size: int

    @property
    def max_vertex(self) -> int:
        return (self.max_input_size - 5) // 3

    @property
    def path(self) -> int:
        return self.max_vertex + 1

    @property
    def edge(self) -> int:
        return self.max_vertex + 2

    @property
    def pad(self) -> int:
        return self.max_vertex + 3

    @property
    def query(self) -> int:
        return self.max_vertex + 4

    @property
    def size(self) -> int:
        return self.max_vertex + 5

    @property
    def default_max_lookahead(self) -> int:
        return (self.max_vertex - 1) // 2


@dataclass(frozen=True)
class Graph:
    """A DAG on vertices 0..V−1 with a start and a goal (before ids are assigned)."""

    adj: np.ndarray
    start: int
    goal: int


@dataclass(frozen=True)
class Example:
    tokens: list[int]  # length N, left-padded
    label: int  # the sampled useful next vertex (token id)
    useful: list[int]  # every useful next vertex (token ids)
    lookahead: int
    out_degree: int  # of the start: chance accuracy is 1/out_degree when one step is useful


# ---------------------------------------------------------------------------------------- graphs
def naive_graph(rng: random.Random, vocab: Vocab) -> Graph:
    mv = vocab.max_vertex
    while True:
        V = rng.randint(3, mv - 1)
        adj = np.zeros((V, V), dtype=bool)
        for i in range(1, V):
            n_parents = 1 if rng.random() < 0.5 else rng.randint(1, 3)
            for p in rng.sample(range(i), min(n_parents, i)):
                adj[p, i] = True
        if adj.sum() > mv:
            continue
        s, g = rng.sample(range(V), 2)
        if reaches(adj, g)[s] and not adj[s, g]:  # a path of length > 1
            return Graph(adj, s, g)


def star_graph(rng: random.Random, vocab: Vocab, max_lookahead: int) -> Graph:
    mv = vocab.max_vertex
    spoke_len = rng.randint(1, max_lookahead)
    spokes = rng.randint(2, max(2, (mv - 1) // spoke_len))
    V = 1 + spokes * spoke_len
    adj = np.zeros((V, V), dtype=bool)
    for s in range(spokes):
        chain = [0] + [1 + s * spoke_len + j for j in range(spoke_len)]
        for a, b in zip(chain, chain[1:]):
            adj[a, b] = True
    return Graph(adj, 0, spoke_len)


def balanced_graph(rng: random.Random, vocab: Vocab, max_lookahead: int, L: int | None = None) -> tuple[Graph, int]:
    """A graph whose measured lookahead is L (drawn uniformly from 0..max_lookahead unless given)."""
    mv = vocab.max_vertex
    max_edges = mv
    # L is drawn once and the construction retried: re-drawing L after a rejection would favour the
    # lookaheads that are easy to build and break the uniform histogram.
    lk = rng.randint(0, max_lookahead) if L is None else L
    while True:
        graph = _balanced_candidate(rng, lk, mv, max_edges)
        if graph is not None and lookahead(graph.adj, graph.start, graph.goal) == lk:
            return graph, lk


def _balanced_candidate(rng: random.Random, L: int, mv: int, max_edges: int) -> Graph | None:
    edges: list[tuple[int, int]] = []
    order: list[int] = []  # a topological order; every edge goes forwards in it

    def chain(length: int, first: int) -> list[int]:
        nodes = [first] + [len(order) + i for i in range(length)]
        order.extend(nodes[1:])
        edges.extend(zip(nodes, nodes[1:]))
        return nodes

    order.append(0)  # the start
    if L == 0:
        path = chain(rng.randint(1, 3), 0)
        branch_lengths: list[int] = []
    else:
        k = rng.randint(2, max(2, (max_edges - 1) // L))
        branch_lengths = [L + rng.randint(0, 1) for _ in range(k - 1)]
        while branch_lengths and L + 1 + sum(branch_lengths) > mv:
            branch_lengths.pop()
        if not branch_lengths:
            return None
        path = chain(L, 0)
        for length in branch_lengths:
            chain(length, 0)
    goal = path[-1]
    room = min(mv - len(order), max_edges - len(edges))
    if room < 0:
        return None
    prefix = rng.randint(0, room)
    prefix_nodes = [len(order) + i for i in range(prefix)]
    order[:0] = prefix_nodes
    edges.extend(zip(prefix_nodes, prefix_nodes[1:] + [0]) if prefix_nodes else [])
    n_extra = min(rng.randint(0, 5), mv - len(order))
    for _ in range(n_extra):
        _add_extra_vertex(rng, order, edges, max_edges)
    V = len(order)
    adj = np.zeros((V, V), dtype=bool)
    for a, b in edges:
        adj[a, b] = True
    return Graph(adj, 0, goal)


def _add_extra_vertex(rng: random.Random, order: list[int], edges: list[tuple[int, int]], max_edges: int) -> None:
    """Insert a vertex at a random place in the topological order with preferential-attachment edges."""
    v = len(order)
    position = rng.randint(0, len(order))
    order.insert(position, v)
    rank = {u: i for i, u in enumerate(order)}
    indeg: dict[int, int] = {}
    outdeg: dict[int, int] = {}
    for a, b in edges:
        outdeg[a] = outdeg.get(a, 0) + 1
        indeg[b] = indeg.get(b, 0) + 1
    earlier = [u for u in order if rank[u] < rank[v]]
    later = [u for u in order if rank[u] > rank[v]]
    for pool, n, degree, outgoing in ((later, rng.randint(0, 3), indeg, True),
                                      (earlier, rng.randint(0, 3), outdeg, False)):
        for u in _preferential_sample(rng, pool, n, degree):
            if len(edges) >= max_edges:
                return
            edges.append((v, u) if outgoing else (u, v))


def _preferential_sample(rng: random.Random, pool: list[int], n: int, degree: dict[int, int]) -> list[int]:
    chosen: list[int] = []
    candidates = list(pool)
    for _ in range(min(n, len(candidates))):
        weights = [PREFERENTIAL_ALPHA + degree.get(u, 0) for u in candidates]
        pick = rng.choices(range(len(candidates)), weights=weights)[0]
        chosen.append(candidates.pop(pick))
    return chosen


# ---------------------------------------------------------------------------------------- encoding
def encode(rng: random.Random, graph: Graph, vocab: Vocab, L: int | None = None) -> Example:
    """Random ids, shuffled edges, left padding; label drawn uniformly among the useful steps."""
    V = graph.adj.shape[0]
    ids = rng.sample(range(1, vocab.max_vertex + 1), V)
    edges = [(ids[a], ids[b]) for a, b in zip(*np.nonzero(graph.adj))]
    rng.shuffle(edges)
    body: list[int] = []
    for u, v in edges:
        body += [vocab.edge, u, v]
    s, g = ids[graph.start], ids[graph.goal]
    body += [vocab.query, s, g, vocab.path, s]
    if len(body) > vocab.max_input_size:
        raise ValueError(f"example needs {len(body)} tokens > max_input_size={vocab.max_input_size}")
    to_goal = reaches(graph.adj, graph.goal)
    useful = [ids[c] for c in useful_steps(graph.adj, graph.start, graph.goal, to_goal).tolist()]
    if L is None:
        L = lookahead(graph.adj, graph.start, graph.goal, to_goal)
    return Example(
        tokens=[vocab.pad] * (vocab.max_input_size - len(body)) + body,
        label=rng.choice(useful),
        useful=sorted(useful),
        lookahead=L,
        out_degree=int(graph.adj[graph.start].sum()),
    )


def is_test_example(example: Example) -> bool:
    """Held-out examples: the start has at least two children and exactly one useful step."""
    return example.out_degree >= 2 and len(example.useful) == 1


# ---------------------------------------------------------------------------------------- task
@register_task("graph_search")
@dataclass(frozen=True)
class GraphSearchConfig:
    """Next-step prediction on DAGs; see the module docstring for the distributions."""

    max_input_size: int = 32
    distribution: Distribution = "balanced"
    max_lookahead: int | None = None  # None: ((N − 5)//3 − 1)//2, the largest that fits
    test_examples_per_lookahead: int = 0  # reserved test inputs that training never sees
    test_seed: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.max_input_size, int) or self.max_input_size < 14:
            raise ConfigError("max_input_size", self.max_input_size, "an integer ≥ 14 (at least 3 vertex ids)")
        if self.distribution not in ("naive", "balanced", "star"):
            raise ConfigError("distribution", self.distribution, "one of 'naive', 'balanced', 'star'")
        limit = Vocab(self.max_input_size).default_max_lookahead
        if self.max_lookahead is not None and not (isinstance(self.max_lookahead, int) and 1 <= self.max_lookahead <= limit):
            raise ConfigError("max_lookahead", self.max_lookahead,
                              f"an integer in [1, {limit}] for max_input_size={self.max_input_size}, or None")
        if not isinstance(self.test_examples_per_lookahead, int) or self.test_examples_per_lookahead < 0:
            raise ConfigError("test_examples_per_lookahead", self.test_examples_per_lookahead, "a non-negative integer")

    def build(self) -> "GraphSearchTask":
        return GraphSearchTask(self)


class GraphSearchTask:
    def __init__(self, cfg: GraphSearchConfig):
        self.cfg = cfg
        self.vocab = Vocab(cfg.max_input_size)
        self.max_lookahead = cfg.max_lookahead or self.vocab.default_max_lookahead
        self.collisions = 0  # training examples dropped because they equal a reserved test input
        self._reserved: set[tuple[int, ...]] | None = None

    def model_fields(self) -> dict:
        return {"input_kind": "tokens", "d_vocab": self.vocab.size, "d_vocab_out": self.vocab.size,
                "n_ctx": self.cfg.max_input_size}

    # ------------------------------------------------------------------ examples
    def example(self, rng: random.Random, L: int | None = None) -> Example:
        if self.cfg.distribution == "naive":
            return encode(rng, naive_graph(rng, self.vocab), self.vocab)
        if self.cfg.distribution == "star":
            return encode(rng, star_graph(rng, self.vocab, self.max_lookahead), self.vocab)
        graph, lk = balanced_graph(rng, self.vocab, self.max_lookahead, L)
        return encode(rng, graph, self.vocab, lk)

    def test_set(self, L: int, n: int, seed: int | None = None) -> list[Example]:
        """n balanced examples with lookahead L that pass ``is_test_example``."""
        rng = random.Random(f"test-{self.cfg.test_seed if seed is None else seed}-{L}")
        out: list[Example] = []
        while len(out) < n:
            graph, lk = balanced_graph(rng, self.vocab, self.max_lookahead, L)
            ex = encode(rng, graph, self.vocab, lk)
            if is_test_example(ex):
                out.append(ex)
        return out

    def reserved_inputs(self) -> set[tuple[int, ...]]:
        if self._reserved is None:
            n = self.cfg.test_examples_per_lookahead
            self._reserved = {tuple(ex.tokens) for L in range(1, self.max_lookahead + 1)
                              for ex in (self.test_set(L, n) if n else [])}
        return self._reserved

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        rng = random.Random(int(torch.randint(0, 2**62, (1,), generator=generator)))
        reserved = self.reserved_inputs()
        examples: list[Example] = []
        while len(examples) < batch_size:
            ex = self.example(rng)
            if reserved and tuple(ex.tokens) in reserved:
                self.collisions += 1
                continue
            examples.append(ex)
        return collate(examples, self.vocab)

    # ------------------------------------------------------------------ loss and metrics
    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(output[:, -1], batch["targets"])

    def metrics(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        last = output[:, -1]
        pred = last.argmax(-1)
        correct = batch["useful"].gather(1, pred[:, None])[:, 0]
        return {
            "loss": float(F.cross_entropy(last, batch["targets"])),
            "accuracy": float(correct.float().mean()),
            "chance_accuracy": float((1.0 / batch["out_degree"].float()).mean()),
        }


def collate(examples: list[Example], vocab: Vocab) -> Batch:
    tokens = torch.tensor([ex.tokens for ex in examples], dtype=torch.long)
    useful = torch.zeros(len(examples), vocab.size, dtype=torch.bool)
    for i, ex in enumerate(examples):
        useful[i, ex.useful] = True
    return {
        "inputs": tokens,
        "padding_mask": (tokens != vocab.pad).long(),
        "targets": torch.tensor([ex.label for ex in examples], dtype=torch.long),
        "useful": useful,
        "lookahead": torch.tensor([ex.lookahead for ex in examples], dtype=torch.long),
        "out_degree": torch.tensor([ex.out_degree for ex in examples], dtype=torch.long),
    }
