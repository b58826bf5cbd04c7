"""Per-layer reachability probe for graph-search transformers.

"Transformers Struggle to Learn to Search" (Saparov et al., ICLR 2025) finds that a trained searcher
stores, at each vertex-holding position, the set of vertices reachable from that vertex (or reaching
it), and that every layer merges these sets along edges, so that the radius they cover doubles with
depth ("exponential path-merging"): after l merge layers the set of a vertex u is
M_l(u) = {v : d(u, v) ≤ 2^l} (``theory.graph_search.path_merge``), where a layer-per-hop search
would cover d(u, v) ≤ l.

The probe reads that set from the residual stream. At layer l (x_l: block l's input; x_L the last
block's output) and each position t holding a vertex token u_t:

1. **Targets.** y_{t,j} = 1[d(u_t, j) ≥ 1] ("forward": j is reachable from u_t) or 1[d(j, u_t) ≥ 1]
   ("backward": j reaches u_t), for every vertex id j, with d the exact BFS distance of the
   sequence's own graph. The vertex itself (d = 0) is left out: its token is in the stream from
   the start.
2. **Readout.** A multi-label logistic regression p_{t,j} = σ(w_jᵀ z_t + b_j) on the standardized
   stream z_t, fit by L-BFGS with an L2 penalty on probe-training graphs, is applied to held-out
   graphs; j is decoded as in the set when p_{t,j} > 1/2.
3. **Scores.** Precision and recall of the decoded sets against the exact ones, and the recall at
   each exact distance k, recall_k(l) = P(decoded | d = k).
4. **Radius.** A readout trained on full reachability also guesses from priors (a vertex whose
   stream says "large graph" probably reaches much of it), and a threshold turns such guesses into
   decoded vertices at every distance. The radius therefore ranks within a row, where the prior is
   shared: AUC_k(l) = P(z_{t,j} > z_{t,j'}) + ½P(=) over pairs of one row with d(u_t, j) = k and j'
   unreachable (z the probe's logits), and

       r(l) = Σ_{k ≥ 1} (2·AUC_k(l) − 1),

   the number of distance shells the stream separates from unreachable vertices. j' ranges over
   vertices *of the sequence's graph* only: a stream that merely collects the ids present in the
   sequence must not count as reaching them. Given what the
   stream holds, the ids of the vertices it does not hold are exchangeable (ids are a uniformly random
   injection), so a shell the stream does not carry has E[AUC_k] = ½ exactly and adds 0 on average;
   for sets that are exactly {j : 1 ≤ d(u, j) ≤ R}, r = #{shells k ≤ R present}. ``fit_growth``
   compares r(l) with a·2^l + b (doubling) and a·l + b (one hop per layer).

A position holds a set of its own: a vertex appears at several positions (as a source and a target
of edges), and a path-merger's sets at different positions of one vertex can differ, so recall of a
perfect merger can stay below 1 at a position; the radius still shows how far each set reaches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float, Int, Shaped
from torch import Tensor

from theory.graph_search import UNREACHABLE

from ._common import forward_kwargs, resid_hook_names
from .graph_tokens import ROLES, decode_graph

DIRECTIONS = ("forward", "backward")
ABSENT = -2  # distance entry of an id that is not a vertex of the sequence's graph (−1: in it, unreachable)
EDGE_ROLES = ("edge_source", "edge_target")


@dataclass
class ReachData:
    """Residual streams at the vertex-holding positions of a set of sequences, with exact distances.

    ``acts[l]`` is [rows, d_model] at layer boundary l (0 = embeddings, n_layers = last block's output);
    ``dist_forward[r, j]`` = d(u_r, j) and ``dist_backward[r, j]`` = d(j, u_r) over vertex ids
    j = 0..max_vertex (column 0 unused; −1 where there is no path; ``ABSENT`` = −2 where j is not a
    vertex of the sequence's graph).
    """

    acts: list[np.ndarray]
    token: np.ndarray
    example: np.ndarray
    position: np.ndarray
    role: np.ndarray
    dist_forward: np.ndarray
    dist_backward: np.ndarray
    n_ids: int = field(init=False)

    def __post_init__(self) -> None:
        self.n_ids = self.dist_forward.shape[1]

    @property
    def n_layers(self) -> int:
        return len(self.acts) - 1

    def subset(self, keep: np.ndarray) -> "ReachData":
        """The rows where ``keep`` (bool [rows]) holds."""
        return ReachData(acts=[a[keep] for a in self.acts], token=self.token[keep], example=self.example[keep],
                         position=self.position[keep], role=self.role[keep], dist_forward=self.dist_forward[keep],
                         dist_backward=self.dist_backward[keep])

    def with_roles(self, roles) -> "ReachData":
        """The rows whose position plays one of ``roles`` (``probes.graph_tokens.ROLES``)."""
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            raise ValueError(f"roles={unknown!r} are not allowed: any of {', '.join(map(repr, ROLES))}")
        return self.subset(np.isin(self.role, list(roles)))

    def distances(self, direction: str) -> np.ndarray:
        _check_direction(direction)
        return self.dist_forward if direction == "forward" else self.dist_backward

    def targets(self, direction: str) -> np.ndarray:
        """bool [rows, n_ids − 1] over vertex ids 1..max_vertex: d ≥ 1 (reachable, the vertex itself excluded)."""
        return self.distances(direction)[:, 1:] >= 1


@torch.no_grad()
def collect(model, tokens: Int[Tensor, "n N"], vocab, padding_mask: Shaped[Tensor, "n N"] | None = None,
            batch_size: int = 256, **kwargs) -> ReachData:
    """Run ``model`` on graph-search ``tokens`` [n, N] and keep the residual stream x_0 … x_L at every
    vertex-holding position, with the exact forward and backward distances of that position's vertex."""
    names = resid_hook_names(model)
    acts: list[list[np.ndarray]] = [[] for _ in names]
    token, example, position, role, dist_f, dist_b = [], [], [], [], [], []
    for lo in range(0, tokens.shape[0], batch_size):
        chunk = tokens[lo:lo + batch_size]
        extra = {} if padding_mask is None else {"padding_mask": padding_mask[lo:lo + batch_size]}
        _, cache = model.run_with_cache(chunk, names_filter=names, **forward_kwargs(model, {**kwargs, **extra}))
        for i, seq in enumerate(chunk.tolist()):
            g = decode_graph(seq, vocab)
            d = g.distances
            present = g.adj.any(0) | g.adj.any(1)
            present[[g.start, g.goal]] = True
            d = np.where(present[None, :] & present[:, None], d, ABSENT)
            pos = g.vertex_positions
            u = np.asarray(seq)[pos]
            for layer, name in enumerate(names):
                acts[layer].append(cache[name][i, pos].double().cpu().numpy())
            token.append(u)
            example.append(np.full(len(pos), lo + i))
            position.append(pos)
            role.append(np.asarray(g.roles))
            dist_f.append(d[u])
            dist_b.append(d[:, u].T)
    return ReachData(acts=[np.concatenate(a) for a in acts], token=np.concatenate(token),
                     example=np.concatenate(example), position=np.concatenate(position),
                     role=np.concatenate(role), dist_forward=np.concatenate(dist_f),
                     dist_backward=np.concatenate(dist_b))


# ---------------------------------------------------------------------------------------- the readout
@dataclass(frozen=True)
class LinearProbe:
    """p = σ(((x − μ)/σ_x) W + b) per vertex id 1..max_vertex; decoded where p > 1/2."""

    mean: np.ndarray
    scale: np.ndarray
    W: np.ndarray
    b: np.ndarray

    def logits(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.W + self.b

    def decode(self, x: np.ndarray) -> np.ndarray:
        """bool [rows, max_vertex]: the decoded set (logit > 0 ⇔ p > 1/2)."""
        return self.logits(x) > 0


def fit_probe(x: Float[np.ndarray, "rows d"], y: Bool[np.ndarray, "rows K"], l2: float = 1e-3,
              max_iter: int = 200) -> LinearProbe:
    """Multi-label logistic regression of y [rows, K] (bool) on x [rows, d], float64, L-BFGS.

    Loss: mean over rows and labels of the binary cross-entropy + l2·‖W‖²_F / 2 (no penalty on b).
    Features are standardized with the training rows' mean and std (a constant feature gets std 1),
    so one l2 suits every layer's scale. Deterministic: zero start, full batch.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"fit_probe needs x [rows, d] and y [rows, K] with the same rows ≥ 1, got {x.shape}, {y.shape}")
    mean = x.mean(0)
    scale = x.std(0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    X = torch.from_numpy((x - mean) / scale)
    Y = torch.from_numpy(y.astype(np.float64))
    W = torch.zeros(X.shape[1], Y.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(Y.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(X @ W + b, Y) + 0.5 * l2 * W.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return LinearProbe(mean=mean, scale=scale, W=W.detach().numpy(), b=b.detach().numpy())


# ---------------------------------------------------------------------------------------- scores
def set_scores(logits: Float[np.ndarray, "rows max_vertex"], dist: Int[np.ndarray, "rows max_vertex+1"],
               max_distance: int | None = None, groups: Int[np.ndarray, "rows"] | None = None,
               min_groups: int = 1) -> dict[str, float]:
    """Scores of a probe's logits [rows, max_vertex] (vertex ids 1..max_vertex) against exact distances
    dist [rows, max_vertex + 1] (column 0 unused, −1 unreachable, ``ABSENT`` not in the graph, 0 the
    row's own vertex, never scored).

    ``precision`` and ``recall`` of the decoded sets (logit > 0) against {j : d ≥ 1}; per distance k
    ``recall_k`` and the within-row ``auc_k`` against the row's unreachable vertices of the graph
    (d = −1; NaN where no pair lies at distance k); ``radius`` = Σ_k (2·auc_k − 1) over the shells
    whose pairs come from at least ``min_groups`` distinct ``groups`` (graphs; every row its own group
    when None), so that a far shell seen in a handful of graphs does not add its noise;
    ``k_max`` the largest shell counted.
    """
    z = np.asarray(logits, dtype=np.float64)
    d = np.asarray(dist)[:, 1:]
    if z.shape != d.shape:
        raise ValueError(f"logits {z.shape} and dist[:, 1:] {d.shape} must have one shape [rows, max_vertex]")
    groups = np.arange(len(z)) if groups is None else np.asarray(groups)
    decoded = z > 0
    scored = d != 0  # the vertex itself is neither a hit nor a false alarm
    truth = d >= 1
    hits = int((decoded & truth).sum())
    n_decoded = int((decoded & scored).sum())
    n_true = int(truth.sum())
    out: dict[str, float] = {
        "precision": hits / n_decoded if n_decoded else float("nan"),
        "recall": hits / n_true if n_true else float("nan"),
    }
    k_max = int(d.max()) if max_distance is None else max_distance
    unreachable = d == UNREACHABLE
    # greater[r, j, j'] = 1[z_rj > z_rj'] + ½·1[z_rj = z_rj'], compared only with unreachable j'.
    greater = (z[:, :, None] > z[:, None, :]) + 0.5 * (z[:, :, None] == z[:, None, :])
    wins = (greater * unreachable[:, None, :]).sum(-1)  # [rows, j]: wins of j over the row's unreachable ids
    n_unreachable = unreachable.sum(-1, keepdims=True)  # [rows, 1]
    radius, counted = 0.0, 0
    for k in range(1, k_max + 1):
        at_k = d == k
        pairs_per_row = (at_k * n_unreachable).sum(-1)
        pairs = float(pairs_per_row.sum())
        out[f"recall_{k}"] = float((decoded & at_k).sum() / at_k.sum()) if at_k.any() else float("nan")
        auc = float((wins * at_k).sum() / pairs) if pairs else float("nan")
        out[f"auc_{k}"] = auc
        if pairs and len(np.unique(groups[pairs_per_row > 0])) >= min_groups:
            radius += 2 * auc - 1
            counted = k
    out["radius"] = radius
    out["k_max"] = float(counted)
    return out


def reach_profile(train: ReachData, test: ReachData, l2: float = 1e-3, directions=DIRECTIONS,
                  roles=EDGE_ROLES, min_graphs: int = 20, max_iter: int = 200) -> pd.DataFrame:
    """One row per (layer, direction): precision, recall, recall_k, auc_k and radius of the probe fit on ``train``
    and scored on ``test`` (held-out graphs), at the positions playing ``roles``.

    Layer 0 (token and position embeddings only) is the floor: ids are random, so nothing there tells
    which other vertices a vertex reaches, but a position's role can: the query's start reaches most
    of its graph, so at ``query_start`` even layer 0 decodes a set from that prior. Edge positions
    (the default) carry no such prior, and they are where the paper's merges happen. The radius counts
    the shells seen in at least ``min_graphs`` test graphs (``set_scores``).
    """
    if train.n_layers != test.n_layers or train.n_ids != test.n_ids:
        raise ValueError("train and test ReachData come from different models or vocabularies")
    train, test = train.with_roles(roles), test.with_roles(roles)
    k_max = int(max(test.dist_forward.max(), test.dist_backward.max()))
    rows = []
    for direction in directions:
        dist = test.distances(direction)
        for layer in range(test.n_layers + 1):
            probe = fit_probe(train.acts[layer], train.targets(direction), l2=l2, max_iter=max_iter)
            scores = set_scores(probe.logits(test.acts[layer]), dist, k_max, groups=test.example,
                                min_groups=min_graphs)
            rows.append({"layer": layer, "direction": direction, **scores})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------- growth
def fit_growth(layers, radius) -> dict[str, float]:
    """Least-squares fits r ≈ a·2^l + b (doubling) and r ≈ a·l + b (linear) over the given layers.

    Returns each fit's (a, b), its root-mean-square residual, and ``doubling_minus_linear_rms`` (< 0
    when doubling fits better). Needs at least 3 layers (two parameters per fit).
    """
    l = np.asarray(layers, dtype=np.float64)
    r = np.asarray(radius, dtype=np.float64)
    if l.shape != r.shape or l.ndim != 1 or l.size < 3:
        raise ValueError(f"fit_growth needs ≥ 3 (layer, radius) pairs of one shape, got {l.shape} and {r.shape}")
    out: dict[str, float] = {}
    for name, basis in (("doubling", 2.0 ** l), ("linear", l)):
        A = np.stack([basis, np.ones_like(l)], axis=1)
        (a, b), *_ = np.linalg.lstsq(A, r, rcond=None)
        out[f"{name}_a"], out[f"{name}_b"] = float(a), float(b)
        out[f"{name}_rms"] = float(np.sqrt(np.mean((A @ np.array([a, b]) - r) ** 2)))
    out["doubling_minus_linear_rms"] = out["doubling_rms"] - out["linear_rms"]
    return out


def growth_aic(layers, radius) -> float:
    """AIC(linear) − AIC(doubling) of the least-squares fits of ``fit_growth`` with Gaussian residuals:
    both models have two parameters, so the difference is n·log(RSS_linear / RSS_doubling) (> 0 favours
    doubling; ≥ 2 is "substantially" by the usual AIC reading). A perfect fit's RSS is floored at
    1e-12·n so the logarithm stays finite."""
    l = np.asarray(layers, dtype=np.float64)
    r = np.asarray(radius, dtype=np.float64)
    fit = fit_growth(l, r)
    floor = 1e-12 * l.size
    rss = {name: max(l.size * fit[f"{name}_rms"] ** 2, floor) for name in ("doubling", "linear")}
    return float(l.size * np.log(rss["linear"] / rss["doubling"]))


def layer_logits(train: ReachData, test: ReachData, direction: str, l2: float = 1e-3, roles=EDGE_ROLES,
                 max_iter: int = 200) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """The held-out logits of a probe fit per layer on ``train`` (edge positions), with the test rows'
    exact distances and graph index: what ``radius_by_layer`` rescores on resampled graphs."""
    _check_direction(direction)
    train, test = train.with_roles(roles), test.with_roles(roles)
    logits = [fit_probe(train.acts[l], train.targets(direction), l2=l2, max_iter=max_iter).logits(test.acts[l])
              for l in range(test.n_layers + 1)]
    return logits, test.distances(direction), np.asarray(test.example)


def radius_by_layer(logits: list[Float[np.ndarray, "rows max_vertex"]], dist: Int[np.ndarray, "rows max_vertex+1"],
                    graphs: Int[np.ndarray, "rows"], keep: Int[np.ndarray, "n_keep"] | None = None,
                    k_max: int | None = None, min_graphs: int = 20) -> np.ndarray:
    """r(l) of ``set_scores`` per layer on the rows of the graphs listed in ``keep`` (with repeats, for a
    bootstrap over graphs: a graph drawn twice counts twice and gets fresh group labels)."""
    if keep is None:
        rows, groups = np.arange(len(graphs)), graphs
    else:
        parts = [(np.flatnonzero(graphs == g), i) for i, g in enumerate(keep)]
        rows = np.concatenate([p for p, _ in parts])
        groups = np.concatenate([np.full(len(p), i) for p, i in parts])
    k_max = int(dist.max()) if k_max is None else k_max
    return np.array([set_scores(z[rows], dist[rows], k_max, groups=groups, min_groups=min_graphs)["radius"]
                     for z in logits])


def unsaturated_layers(radius, k_max: float, fraction: float = 0.9) -> np.ndarray:
    """Layers up to and including the first whose radius reaches ``fraction``·k_max (the graphs' largest
    distance caps the radius; growth past it says nothing about the law)."""
    r = np.asarray(radius, dtype=np.float64)
    hit = np.flatnonzero(r >= fraction * k_max)
    last = int(hit[0]) if hit.size else r.size - 1
    return np.arange(last + 1)


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r} is not allowed: one of {', '.join(map(repr, DIRECTIONS))}")


__all__ = ["ABSENT", "DIRECTIONS", "EDGE_ROLES", "LinearProbe", "ReachData", "collect", "fit_growth", "fit_probe",
           "growth_aic", "layer_logits", "radius_by_layer", "reach_profile", "set_scores", "unsaturated_layers"]
