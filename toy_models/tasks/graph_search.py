"""Graph search on random DAGs ("Transformers Struggle to Learn to Search", Saparov et al., ICLR 2025).

Given a shuffled edge list, a start vertex and a goal vertex, predict the next vertex on a path from
start to goal. The vocabulary follows from the maximum input size N: vertex ids 1..mv with
mv = (N − 5) // 3 (id 0 is reserved), then the path, edge, padding and query tokens. A sequence is

    PAD … PAD  E u₁ v₁  E u₂ v₂ …  E u_m v_m  Q s g  P s     → predict a useful child of s

left-padded to length N (m ≤ mv edges, so 3m + 5 ≤ N always fits). Vertex ids are a uniformly random
injection into 1..mv and the edge order is a uniformly random permutation, so ids and positions carry
no topology.

Distributions (the authors' procedures, read from ``generator.cpp`` and ``train.py`` of their public
repository asaparov/learning_to_search; facts, not code):

- ``naive`` (their ``simple``): V ~ U{3..mv−1}; each vertex i ≥ 1 takes one parent with probability
  1/2, otherwise U{1..3} (at most i), uniformly among earlier vertices; start uniform on 0..V−2 and
  goal uniform on 0..V−2 without the start; redrawn unless the goal is reachable, the enumeration
  lists at most 64 shortest paths and there are at most mv edges. The goal may be a child of the
  start (about half of all examples at N = 128). Lookahead decays roughly exponentially.
- ``balanced`` (their ``crafted``): L ~ U{0..L_max}; k branches (U{1,2} at L = 0, else
  U{2..⌊(mv−1)/L⌋}); a vertex budget min(L·k + 1 + U{0..5}, mv) shared by the path of length L to
  the goal, k − 1 distractor branches of L or L + 1 edges from the start, a prefix chain of
  U{0..budget left} vertices into the start, and extra vertices wired by preferential attachment
  (weight α + degree, α = 1/2) without creating cycles (``_graph_kernels._balanced``). Extra
  vertices can shorten or join branches, so the measured lookahead can differ from the requested L;
  examples carry the measured one. The paper-era frequency caps compare integer ratios and never bind
  (the reference notes: fixed in the authors' repository in Oct 2025, after the paper), so the
  histogram is only roughly uniform: at N = 128 the rarest lookahead (18) has 0.64× and the commonest
  1.33× the uniform share (200,000 examples).
- ``star``: a (spoke length, spoke count) pair uniform over length 1..L_max and count
  1..⌊(mv−1)/length⌋ (a single spoke allowed); the goal ends spoke 0. Its edges are listed grouped by
  source vertex (vertices in random order, each vertex's edges in the order they were built, so the
  start's first listed edge leads to the goal), as the authors' star data; ``star_edges="shuffled"``
  is a deliberate deviation (off by default) that shuffles them like the other distributions.

Examples per graph: the authors emit one example per path their shortest-path enumeration lists
(``distance_from_start = 1``): the same input, the label a useful step drawn uniformly each time, the
lookahead measured along that path's first step. Their enumeration lists a path once per copy of a
predecessor pointer, so graphs whose shortest paths share a vertex below a fork give more examples than
they have paths; this is reproduced (``_graph_kernels._path_counts``).

Lookahead (their ``lookahead_depth``, ``theory.graph_search.lookahead``): a BFS from the start's
children tagged by the first step they descend from; L is the number of rounds until every frontier
vertex descends from the path's first step, or until the goal is in the frontier. It is 0 only when the
start has one child: when two children are both useful, the one not on the path counts as a distractor.

Not reproduced (each an O(1/batch) or test-set detail): the integer-division caps do bind in one
place, at the start of each batch: the first example is kept whatever its lookahead and, while every
kept example has one lookahead, that lookahead is excluded; their held-out sets list edges
grouped by source vertex (here they are shuffled like training) and cap all (not only shortest) paths
at 64.

Curriculum (off by default; ``curriculum_start``): the authors' ``--curriculum y`` (their ``train.py``).
Training starts with the largest lookahead at ``curriculum_start`` (theirs: 1) and raises it by one,
up to ``max_lookahead``, each time the accuracy on the training batch just trained on, measured after
the update with the model in eval mode, exceeds ``curriculum_threshold`` (strictly; theirs 0.99 in the
paper-era code, 0.98 later). They check once per 2^18 examples (the last batch of each data block);
``curriculum_every`` optimizer steps here. At each stage the balanced lookahead is drawn from 0..stage,
graph sizes unchanged (their mode ``y`` keeps the full edge budget). The held-out test sets and the
trainer's evaluation batches stay at the final ``max_lookahead``. The authors restart the current data
block at a stage change and do not count it as an epoch; here a step is a step. Their stored size-sweep
runs name no curriculum in their checkpoint paths (see ``theorybench/studies/graph_search/size_sweep.py``).

Labels: every useful next step (a child from which the goal is reachable); one drawn uniformly is the
training target, and accuracy counts any useful step. Held-out test sets keep only examples whose
start has ≥ 2 children and exactly one useful step, with the requested measured lookahead; training
drops any example equal to one of them.

Generation is compiled with numba (``toy_models.tasks._graph_kernels``, the only implementation of
the distributions) with its own SplitMix64 state, seeded from the caller's ``torch.Generator`` (or
``random.Random``), so a seed fixes the data stream.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from toy_models.config import ConfigError

from . import _graph_kernels as K
from .base import Batch, register_task

Distribution = Literal["naive", "balanced", "star"]
StarEdges = Literal["grouped", "shuffled"]
PREFERENTIAL_ALPHA = K.PREFERENTIAL_ALPHA
_DIST_CODE = {"naive": K.NAIVE, "balanced": K.BALANCED, "star": K.STAR}
# The smallest N each distribution can fill: balanced and star need 3 ids (a start with two
# one-edge branches); naive draws V ~ U{3..mv−1}, so it needs mv ≥ 4.
MIN_INPUT_SIZE = {"balanced": 14, "star": 14, "naive": 17}


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


def _state(rng: random.Random) -> np.ndarray:
    return K.new_state(rng.getrandbits(64))


# ---------------------------------------------------------------------------------------- graphs
def _graph(rng: random.Random, dist: int, vocab: Vocab, max_lookahead: int, L: int) -> tuple[Graph, int]:
    src, dst, V, s, g, _ = K.sample_graph(_state(rng), dist, vocab.max_vertex, max_lookahead, L)
    adj = np.zeros((V, V), dtype=bool)
    adj[src, dst] = True
    return Graph(adj, int(s), int(g)), L


def naive_graph(rng: random.Random, vocab: Vocab) -> Graph:
    """One naive graph (see the module docstring); vertices in generation order."""
    if vocab.max_input_size < MIN_INPUT_SIZE["naive"]:
        raise ConfigError("max_input_size", vocab.max_input_size, f"≥ {MIN_INPUT_SIZE['naive']} for naive graphs")
    return _graph(rng, K.NAIVE, vocab, 1, -1)[0]


def star_graph(rng: random.Random, vocab: Vocab, max_lookahead: int) -> Graph:
    """Spokes of one length in 1..max_lookahead from start 0; the goal ends the first spoke."""
    _check_lookahead("max_lookahead", max_lookahead, vocab, low=1)
    return _graph(rng, K.STAR, vocab, max_lookahead, -1)[0]


def balanced_graph(rng: random.Random, vocab: Vocab, max_lookahead: int, L: int | None = None) -> tuple[Graph, int | None]:
    """One balanced graph (requested lookahead drawn uniformly from 0..max_lookahead); with ``L`` given,
    one whose lookahead along the start's first shortest-path child (lowest index) is L. Returns the
    graph and L (None when not given: measure it with ``theory.graph_search.lookahead``)."""
    _check_lookahead("max_lookahead", max_lookahead, vocab, low=1)
    if L is not None:
        _check_lookahead("L", L, vocab, low=0, high=max_lookahead)
    graph, _ = _graph(rng, K.BALANCED, vocab, max_lookahead, -1 if L is None else L)
    return graph, L


def _check_lookahead(name: str, value, vocab: Vocab, low: int, high: int | None = None) -> None:
    high = vocab.default_max_lookahead if high is None else high
    if not (isinstance(value, (int, np.integer)) and low <= value <= high):
        raise ConfigError(name, value, f"an integer in [{low}, {high}] for max_input_size={vocab.max_input_size}")


# ---------------------------------------------------------------------------------------- encoding
def encode(rng: random.Random, graph: Graph, vocab: Vocab, L: int | None = None) -> Example:
    """Random ids, shuffled edges, left padding; label drawn uniformly among the useful steps.

    ``L`` is the lookahead to record (when None: measured along the start's lowest-index child on a
    shortest path to the goal). The same compiled encoder produces every generated example, so
    encoding a hand-made graph here gives what training would see (with shuffled edges).
    """
    adj = np.ascontiguousarray(graph.adj, dtype=bool)
    V, m = adj.shape[0], int(adj.sum())
    if V > vocab.max_vertex or m > vocab.max_vertex:
        raise ValueError(f"a graph with {V} vertices and {m} edges does not fit max_input_size="
                         f"{vocab.max_input_size}: at most {vocab.max_vertex} of each")
    tokens = np.empty(vocab.max_input_size, dtype=np.int64)
    useful = np.empty(vocab.size, dtype=np.bool_)
    label, lk, degree, _ = K.encode_graph(_state(rng), adj, graph.start, graph.goal, vocab.max_input_size,
                                          vocab.max_vertex, -1 if L is None else L, tokens, useful)
    if lk == K.NO_CHILDREN:
        raise ValueError(f"vertex {graph.start} has no children: there is no next step")
    if lk < 0:
        raise ValueError(f"goal {graph.goal} is not reachable from vertex {graph.start}")
    return Example(tokens.tolist(), int(label), np.flatnonzero(useful).tolist(), int(lk), int(degree))


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
    star_edges: StarEdges = "grouped"  # the authors' star edge order; "shuffled" is a deliberate deviation
    curriculum_start: int | None = None  # None: no curriculum; else the first stage's largest lookahead (authors: 1)
    curriculum_threshold: float = 0.99  # the stage rises when the checked training accuracy exceeds it (strict >)
    curriculum_every: int = 1  # optimizer steps between checks

    def omitted_fields(self) -> tuple[str, ...]:
        """Fields left out of the config's dict (and hash, ``ExperimentConfig.to_dict``): the curriculum's while
        it is off. They came after runs had been stored, and without a curriculum a config trains what it did."""
        return ("curriculum_start", "curriculum_threshold", "curriculum_every") if self.curriculum_start is None else ()

    @property
    def largest_lookahead(self) -> int:
        """``max_lookahead``, or where it is None the largest that fits: ((N − 5)//3 − 1)//2."""
        return self.max_lookahead or Vocab(self.max_input_size).default_max_lookahead

    def __post_init__(self) -> None:
        if self.distribution not in _DIST_CODE:
            raise ConfigError("distribution", self.distribution, "one of 'naive', 'balanced', 'star'")
        low = MIN_INPUT_SIZE[self.distribution]
        if not isinstance(self.max_input_size, int) or self.max_input_size < low:
            raise ConfigError("max_input_size", self.max_input_size,
                              f"an integer ≥ {low} for distribution={self.distribution!r} (N = {low} gives "
                              f"{(low - 5) // 3} vertex ids; smaller N fits no graph of this distribution)")
        limit = Vocab(self.max_input_size).default_max_lookahead
        if self.max_lookahead is not None and not (isinstance(self.max_lookahead, int) and 1 <= self.max_lookahead <= limit):
            raise ConfigError("max_lookahead", self.max_lookahead,
                              f"an integer in [1, {limit}] for max_input_size={self.max_input_size}, or None")
        if not isinstance(self.test_examples_per_lookahead, int) or self.test_examples_per_lookahead < 0:
            raise ConfigError("test_examples_per_lookahead", self.test_examples_per_lookahead, "a non-negative integer")
        if not isinstance(self.test_seed, int):
            raise ConfigError("test_seed", self.test_seed, "an integer")
        if self.star_edges not in ("grouped", "shuffled"):
            raise ConfigError("star_edges", self.star_edges, "'grouped' (the authors' order) or 'shuffled'")
        self._check_curriculum()

    def _check_curriculum(self) -> None:
        top = self.largest_lookahead
        if self.curriculum_start is None:
            defaults = {f.name: f.default for f in fields(self)}
            for name in ("curriculum_threshold", "curriculum_every"):
                default = defaults[name]
                if getattr(self, name) != default:
                    raise ConfigError(name, getattr(self, name), f"left at its default ({default}) unless "
                                      "curriculum_start is set: without a curriculum it has no effect")
            return
        if self.distribution != "balanced":
            raise ConfigError("curriculum_start", self.curriculum_start,
                              f"None for distribution={self.distribution!r}: the curriculum raises the balanced "
                              "distribution's largest lookahead")
        if not (isinstance(self.curriculum_start, int) and 1 <= self.curriculum_start <= top):
            raise ConfigError("curriculum_start", self.curriculum_start,
                              f"None or an integer in [1, {top}] (the largest lookahead, max_lookahead)")
        if not (isinstance(self.curriculum_threshold, (int, float)) and 0 < self.curriculum_threshold < 1):
            raise ConfigError("curriculum_threshold", self.curriculum_threshold, "a number in (0, 1)")
        if not (isinstance(self.curriculum_every, int) and self.curriculum_every >= 1):
            raise ConfigError("curriculum_every", self.curriculum_every, "an integer ≥ 1 (optimizer steps between checks)")

    def build(self) -> "GraphSearchTask":
        return GraphSearchTask(self)


@dataclass(frozen=True)
class _Arrays:
    """A batch as numpy arrays, straight from the compiled generator."""

    tokens: np.ndarray  # int64 [B, N]
    labels: np.ndarray  # int64 [B]
    useful: np.ndarray  # bool [B, vocab]
    lookahead: np.ndarray  # int64 [B]
    out_degree: np.ndarray  # int64 [B]

    def examples(self) -> list[Example]:
        return [Example(self.tokens[i].tolist(), int(self.labels[i]), np.flatnonzero(self.useful[i]).tolist(),
                        int(self.lookahead[i]), int(self.out_degree[i])) for i in range(len(self.labels))]


class GraphSearchTask:
    def __init__(self, cfg: GraphSearchConfig):
        self.cfg = cfg
        self.vocab = Vocab(cfg.max_input_size)
        self.max_lookahead = cfg.largest_lookahead
        self.collisions = 0  # training examples dropped because they equal a reserved test input
        self._reserved: set[tuple[int, ...]] | None = None
        self._reserved_arrays: tuple[np.ndarray, np.ndarray] | None = None
        # The curriculum's stage: None (the final max_lookahead) until training starts (``set_step``), so
        # that the trainer's evaluation batches, drawn before step 1, are of the final distribution.
        self.stage: int | None = None
        self.observed_accuracy = float("nan")  # the last checked training accuracy
        self.observe_every = cfg.curriculum_every if cfg.curriculum_start is not None else None

    # ------------------------------------------------------------------ curriculum (the trainer's hooks)
    def set_step(self, step: int) -> None:
        """Training has started: the curriculum, if any, enters its first stage (kept on later calls)."""
        if self.cfg.curriculum_start is not None and self.stage is None:
            self.stage = self.cfg.curriculum_start

    def observe(self, step: int, metrics: dict[str, float]) -> None:
        """The trainer's check every ``observe_every`` steps: ``metrics`` of the batch of ``step``, after
        its update, in eval mode. The stage rises by one when the accuracy exceeds the threshold."""
        if self.stage is None:
            return
        self.observed_accuracy = float(metrics["accuracy"])
        if self.observed_accuracy > self.cfg.curriculum_threshold and self.stage < self.max_lookahead:
            self.stage += 1

    def state_dict(self) -> dict[str, float]:
        """What a resume needs and what the trainer logs per row (``task_stage``, ``task_observed_accuracy``):
        empty without a curriculum."""
        if self.cfg.curriculum_start is None:
            return {}
        return {"stage": float("nan") if self.stage is None else float(self.stage),
                "observed_accuracy": self.observed_accuracy}

    def load_state_dict(self, state: dict[str, float]) -> None:
        if self.cfg.curriculum_start is None:
            return
        self.stage = None if math.isnan(state["stage"]) else int(state["stage"])
        self.observed_accuracy = float(state["observed_accuracy"])

    def model_fields(self) -> dict:
        return {"input_kind": "tokens", "d_vocab": self.vocab.size, "d_vocab_out": self.vocab.size,
                "n_ctx": self.cfg.max_input_size}

    # ------------------------------------------------------------------ examples
    def _generate(self, seed: int, n: int, dist: str | None = None, L: int = -1, test_only: bool = False,
                  reserved: tuple[np.ndarray, np.ndarray] | None = None,
                  L_max: int | None = None) -> tuple[_Arrays, int]:
        N, size = self.cfg.max_input_size, self.vocab.size
        out = _Arrays(np.empty((n, N), np.int64), np.empty(n, np.int64), np.empty((n, size), np.bool_),
                      np.empty(n, np.int64), np.empty(n, np.int64))
        res_hash, res_rows = reserved if reserved is not None else (np.empty(0, np.uint64), np.empty((0, N), np.int64))
        dist = dist or self.cfg.distribution
        grouped = dist == "star" and self.cfg.star_edges == "grouped"
        collisions = K.sample_examples(K.new_state(seed), _DIST_CODE[dist], N, self.vocab.max_vertex,
                                       L_max or self.max_lookahead, L, test_only, grouped, res_hash, res_rows,
                                       out.tokens, out.labels, out.useful, out.lookahead, out.out_degree)
        return out, int(collisions)

    def example(self, rng: random.Random, L: int | None = None) -> Example:
        """One example of the configured distribution; ``L`` fixes the lookahead (balanced only)."""
        if L is not None and self.cfg.distribution == "balanced":
            _check_lookahead("L", L, self.vocab, low=0, high=self.max_lookahead)
        lk = -1 if L is None or self.cfg.distribution != "balanced" else L
        return self._generate(rng.getrandbits(64), 1, L=lk)[0].examples()[0]

    def test_set(self, L: int, n: int, seed: int | None = None) -> list[Example]:
        """n balanced examples with lookahead L that pass ``is_test_example``, one per graph (L ≥ 1: at
        L = 0 the start has one child, so no example has ≥ 2 children)."""
        _check_lookahead("L", L, self.vocab, low=1, high=self.max_lookahead)
        key = f"graph_search-test-{self.cfg.test_seed if seed is None else seed}-{L}".encode()
        stream = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
        return self._generate(stream, n, dist="balanced", L=L, test_only=True)[0].examples()

    def reserved_inputs(self) -> set[tuple[int, ...]]:
        if self._reserved is None:
            n = self.cfg.test_examples_per_lookahead
            self._reserved = {tuple(ex.tokens) for L in range(1, self.max_lookahead + 1)
                              for ex in (self.test_set(L, n) if n else [])}
            rows = np.array(sorted(self._reserved), dtype=np.int64).reshape(-1, self.cfg.max_input_size)
            hashes = K.row_hashes(rows)
            order = np.argsort(hashes, kind="stable")
            self._reserved_arrays = (hashes[order], rows[order])
        return self._reserved

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        reserved = self.reserved_inputs()
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        out, collisions = self._generate(seed, batch_size, reserved=self._reserved_arrays if reserved else None,
                                         L_max=self.stage)
        self.collisions += collisions
        tokens = torch.from_numpy(out.tokens)
        return {
            "inputs": tokens,
            "padding_mask": (tokens != self.vocab.pad).long(),
            "targets": torch.from_numpy(out.labels),
            "useful": torch.from_numpy(out.useful),
            "lookahead": torch.from_numpy(out.lookahead),
            "out_degree": torch.from_numpy(out.out_degree),
        }

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
