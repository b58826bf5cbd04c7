"""Attention-weight patching: which attention operations a graph searcher's answer depends on, and
whether they compose into path merging.

After "Transformers Struggle to Learn to Search" (Saparov et al., ICLR 2025), Sec. 5 (their
``activation_patch_output_logit`` and path-merge explanation), simplified as stated below.

1. **Operations.** An operation (l, dst, src) is attention weight A_l[dst, src] of layer l. It is
   patched either to 0 ("zero") or to its row's maximum max_s A_l[dst, s] ("max"), with no
   renormalization, and the model is re-run from layer l on (earlier layers are unchanged by
   construction). Let Δ = z_a − z_a' be the drop of the answer logit z_a (a = the clean argmax
   at the last position).
2. **Important operations.** "positive" when zeroing gives Δ > θ, "negative" when maxing does
   (θ = 0.4 in the paper, on logits that are LayerNorm outputs as here).
3. **Computation graph.** Nodes are (layer boundary, position); the root is the last position after
   the last layer. Going down from the root, the nodes at boundary l are those at l + 1 (residual
   stream) plus the sources of the important operations of layer l whose destination is a node at
   l + 1; operations not reached this way are dropped.
4. **Path-merge explanation** (simplified: operations are classified by the exact graph, not by the
   paper's input perturbations). Each node carries a set of known edges K and of known vertices V,
   starting from the position's own token (V = {u}) at boundary 0. A kept operation dst ← src merges
   src's sets into dst's when it is
   - a *position step*: src and dst are the two vertices of one edge triple "E u v" (K gains u → v);
   - a *token match*: V(src) ∩ V(dst) ≠ ∅ (two sets sharing a vertex are joined, the merge step
     of path merging);
   - a *query copy*: src is the query's start or goal (the paper special-cases these as well).
   Any other kept operation is "unexplained". An example is **explained as path merging** when the
   root's known edges contain a directed path from the start through the predicted child to the goal.
5. **Control.** With many important operations a loose criterion explains anything, so
   ``random_ops_control`` keeps each op's layer and destination but draws its source at random: the
   fraction it explains is the chance level of the criterion at that number of operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from jaxtyping import Float, Int, Shaped
from torch import Tensor

from theory.graph_search import useful_steps

from toy_models.attention import build_allowed

from .graph_tokens import decode_graph

KINDS = ("position_step", "token_match", "query_copy", "unexplained")


@dataclass
class ExampleGraph:
    """The attribution of one example: its important operations, the kept ones, and the explanation."""

    answer: int  # the predicted token
    correct: bool
    ops: list[dict] = field(default_factory=list)  # every important op: layer, dst, src, kind ("positive"/"negative"), drop
    kept: list[dict] = field(default_factory=list)  # the ops on the computation graph, each with its "merge" class
    explained: bool = False


@torch.no_grad()
def answer_drops(model, tokens: Int[Tensor, "T"], padding_mask: Shaped[Tensor, "T"] | None = None, chunk: int = 256
                 ) -> tuple[int, list[Float[Tensor, "T T"]], list[dict[str, Float[Tensor, "T T"]]]]:
    """Answer-logit drops of every allowed operation of every layer, for one sequence tokens [T].

    Returns (answer, clean pattern per layer [T, T], drops) with drops[l] = {"zero": [T, T], "max": [T, T]}
    (NaN where a key is not allowed). In the last layer only the last row can change the answer, so
    other rows are skipped (NaN).
    """
    if model.cfg.n_heads != 1:
        raise ValueError(f"attention patching here needs one head per layer, got n_heads={model.cfg.n_heads}")
    tokens = tokens.reshape(1, -1)
    T = tokens.shape[1]
    mask = None if padding_mask is None else padding_mask.reshape(1, -1)
    names = [f"blocks.{l}.hook_resid_pre" for l in range(model.cfg.n_layers)] + \
            [f"blocks.{l}.attn.hook_pattern" for l in range(model.cfg.n_layers)]
    logits, cache = model.run_with_cache(tokens, padding_mask=mask, attn_path="reference", names_filter=names)
    answer = int(logits[0, -1].argmax())
    clean = float(logits[0, -1, answer])
    allowed_keys = torch.ones(T, dtype=torch.bool) if mask is None else mask[0].bool()
    patterns, drops = [], []
    for layer in range(model.cfg.n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"][0, 0]
        patterns.append(pattern.clone())
        rows = [T - 1] if layer == model.cfg.n_layers - 1 else list(range(T))
        pairs = [(d, s) for d in rows for s in range(T) if allowed_keys[s]]
        out = {kind: torch.full((T, T), float("nan"), dtype=torch.float64) for kind in ("zero", "max")}
        row_max = pattern.max(-1).values
        for kind in ("zero", "max"):
            for lo in range(0, len(pairs), chunk):
                batch = pairs[lo:lo + chunk]
                dst = torch.tensor([d for d, _ in batch])
                src = torch.tensor([s for _, s in batch])
                value = torch.zeros(len(batch)) if kind == "zero" else row_max[dst]
                z = _run_from(model, layer, cache[f"blocks.{layer}.hook_resid_pre"], mask, dst, src, value)
                out[kind][dst, src] = clean - z[:, answer].double()
        drops.append(out)
    return answer, patterns, drops


def _run_from(model, layer: int, resid: torch.Tensor, mask, dst, src, value) -> torch.Tensor:
    """Last-position logits of copies of the run, from ``layer`` on, each with one pattern entry set."""
    B = len(dst)
    T = resid.shape[1]
    x = resid.expand(B, -1, -1).clone()
    allowed = build_allowed(model.cfg.attention_dir, None if mask is None else mask.expand(B, -1), None, B, T, x.device)
    rows = torch.arange(B)

    def patch(pattern, hook):
        pattern = pattern.clone()
        pattern[rows, 0, dst, src] = value.to(pattern.dtype)
        return pattern

    with model.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_pattern", patch)]):
        for block in model.blocks[layer:]:
            x = block(x, allowed, "reference")
    if model.ln_final is not None:
        x = model.ln_final(x)
    return model.unembed(x)[:, -1]


def computation_graph(tokens, vocab, answer: int, drops, threshold: float = 0.4) -> ExampleGraph:
    """Important ops (drop > ``threshold``), the ones reached from the root, and the path-merge test."""
    ops = []
    for layer, d in enumerate(drops):
        for kind, key in (("positive", "zero"), ("negative", "max")):
            hit = np.argwhere(np.nan_to_num(d[key].numpy(), nan=-np.inf) > threshold)
            ops += [dict(layer=layer, dst=int(a), src=int(b), kind=kind, drop=float(d[key][a, b])) for a, b in hit]
    return graph_from_ops(tokens, vocab, answer, ops, len(drops))


def graph_from_ops(tokens, vocab, answer: int, ops: list[dict], n_layers: int) -> ExampleGraph:
    """Steps 3 and 4 of the module docstring for a given list of important ops."""
    tokens = [int(t) for t in (tokens.tolist() if hasattr(tokens, "tolist") else tokens)]
    g = decode_graph(tokens, vocab)
    T = len(tokens)
    nodes = {T - 1}
    kept = []
    for layer in reversed(range(n_layers)):
        here = [dict(op) for op in ops if op["layer"] == layer and op["dst"] in nodes]
        kept += here
        nodes |= {op["src"] for op in here}
    kept.sort(key=lambda op: (op["layer"], op["dst"], op["src"]))
    triple = _edge_triples(g, tokens)
    query = {int(g.vertex_positions[i]) for i, r in enumerate(g.roles) if r in ("query_start", "query_goal")}
    vertex_positions = set(g.vertex_positions.tolist())
    V = [{tokens[p]} if p in vertex_positions else set() for p in range(T)]
    K: list[set] = [set() for _ in range(T)]
    for layer in range(n_layers):
        V_new, K_new = [set(v) for v in V], [set(k) for k in K]  # the residual stream keeps what it had
        for op in (o for o in kept if o["layer"] == layer):
            s, t = op["src"], op["dst"]
            if triple.get(s) is not None and triple.get(s) == triple.get(t):
                op["merge"] = "position_step"
                K_new[t].add(triple[s])
            elif V[s] & V[t]:
                op["merge"] = "token_match"
            elif s in query:
                op["merge"] = "query_copy"
            else:
                op["merge"] = "unexplained"
                continue
            V_new[t] |= V[s]
            K_new[t] |= K[s]
        V, K = V_new, K_new
    graph = ExampleGraph(answer=answer, correct=answer in _useful(g), ops=list(ops), kept=kept)
    graph.explained = _has_path(K[T - 1], g.start, answer, g.goal)
    return graph


def random_ops_control(tokens, vocab, graph: ExampleGraph, n_layers: int, rng: np.random.Generator,
                       padding_mask=None) -> ExampleGraph:
    """The same example with every important op's source replaced by a uniformly random allowed key
    (layer, destination and count kept): how often the explanation succeeds by chance, given as many ops."""
    tokens = [int(t) for t in (tokens.tolist() if hasattr(tokens, "tolist") else tokens)]
    keys = np.arange(len(tokens)) if padding_mask is None else np.flatnonzero(np.asarray(padding_mask))
    ops = [dict(op, src=int(rng.choice(keys))) for op in graph.ops]
    return graph_from_ops(tokens, vocab, graph.answer, ops, n_layers)


def explain(model, tokens: Int[Tensor, "n T"], vocab, padding_mask: Shaped[Tensor, "n T"] | None = None,
            threshold: float = 0.4, control_seed: int | None = None) -> list[ExampleGraph]:
    """``computation_graph`` of every sequence of tokens [n, T]; with ``control_seed``, the
    ``random_ops_control`` graphs of the same examples instead (same ops count, random sources)."""
    out = []
    rng = None if control_seed is None else np.random.default_rng(control_seed)
    for i in range(tokens.shape[0]):
        mask = None if padding_mask is None else padding_mask[i]
        answer, _, drops = answer_drops(model, tokens[i], mask)
        graph = computation_graph(tokens[i], vocab, answer, drops, threshold)
        if rng is not None:
            graph = random_ops_control(tokens[i], vocab, graph, len(drops), rng, mask)
        out.append(graph)
    return out


def summary(graphs: list[ExampleGraph]) -> dict[str, float]:
    """Fraction explained as path merging, mean important / kept ops, and the share of each merge class."""
    kept = [op for g in graphs for op in g.kept]
    out = {
        "examples": float(len(graphs)),
        "fraction_explained": float(np.mean([g.explained for g in graphs])) if graphs else float("nan"),
        "fraction_explained_among_correct": float(np.mean([g.explained for g in graphs if g.correct]))
        if any(g.correct for g in graphs) else float("nan"),
        "important_ops_per_example": float(np.mean([len(g.ops) for g in graphs])) if graphs else float("nan"),
        "kept_ops_per_example": float(np.mean([len(g.kept) for g in graphs])) if graphs else float("nan"),
    }
    for kind in KINDS:
        out[f"share_{kind}"] = float(np.mean([op["merge"] == kind for op in kept])) if kept else float("nan")
    return out


def _edge_triples(g, tokens: list[int]) -> dict[int, tuple[int, int]]:
    """position → the edge (u, v) (tokens) of its triple, for the two vertex positions of every 'E u v'.

    Two positions of one triple map to one edge; two triples of one edge cannot occur (edges are distinct)."""
    out: dict[int, tuple[int, int]] = {}
    pos, roles = g.vertex_positions.tolist(), g.roles
    for i, r in enumerate(roles):
        if r == "edge_source":
            out[pos[i]] = out[pos[i + 1]] = (tokens[pos[i]], tokens[pos[i + 1]])
    return out


def _useful(g) -> set[int]:
    return set(useful_steps(g.adj, g.current, g.goal).tolist())


def _has_path(edges, start: int, first: int, goal: int) -> bool:
    """Whether the known edges (token pairs) hold a directed path start → first ⇝ goal."""
    succ: dict[int, set[int]] = {}
    for u, v in edges:
        succ.setdefault(u, set()).add(v)
    if first not in succ.get(start, set()):
        return False
    seen, frontier = {first}, [first]
    while frontier:
        u = frontier.pop()
        if u == goal:
            return True
        for v in succ.get(u, ()):
            if v not in seen:
                seen.add(v)
                frontier.append(v)
    return False


__all__ = ["ExampleGraph", "KINDS", "answer_drops", "computation_graph", "explain", "graph_from_ops",
           "random_ops_control", "summary"]
