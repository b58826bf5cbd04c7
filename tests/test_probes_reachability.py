"""The per-layer reachability probe against exact sets, on models whose answer is known.

The known-answer models below are ``HookedRootModule``s that write, at every vertex-holding position
and layer l, the exact set {j : 1 ≤ d(u, j) ≤ R(l)} of the position's vertex u (as a multi-hot block
of the stream, mixed by a fixed random rotation so no coordinate is a label). R(l) = 2^l − 1 is a
path-merger (the radius doubles, plus one, per layer), R(l) = l a layer-per-hop BFS. Such sets are
linearly separable in the stream, so the probe must decode them exactly: precision = recall = 1 and
radius = Σ_{k ≤ k_max} 1[k ≤ R(l)], with no tolerance beyond float64 rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from probes.graph_tokens import decode_graph
from probes.reachability import ABSENT, EDGE_ROLES, collect, fit_growth, reach_profile, set_scores, unsaturated_layers
from theory.graph_search import useful_steps
from toy_models.tasks.graph_search import GraphSearchConfig

N = 50  # 15 vertex ids, lookahead ≤ 7: enough graphs with distances up to 7 (checked below)


class _Cfg:
    def __init__(self, n_layers):
        self.n_layers = n_layers


class ExactReachModel(HookedRootModule):
    """Stream at layer l, position t = Q [onehot(token) | onehot(t) | multi-hot {j : 1 ≤ d(u_t, j) ≤ R(l)}]."""

    def __init__(self, vocab, radius, n_layers: int, direction: str = "forward", seed: int = 0):
        super().__init__()
        self.vocab, self.radius, self.direction = vocab, radius, direction
        self.cfg = _Cfg(n_layers)
        n_ids = vocab.max_vertex + 1
        self.width = vocab.size + vocab.max_input_size + n_ids
        q, _ = torch.linalg.qr(torch.randn(self.width, self.width, generator=torch.Generator().manual_seed(seed),
                                           dtype=torch.float64))
        self.rotation = q
        self.blocks = nn.ModuleList(_Block() for _ in range(n_layers))
        self.setup()

    def forward(self, tokens, padding_mask=None):
        B, T = tokens.shape
        n_ids = self.vocab.max_vertex + 1
        base = torch.zeros(B, T, self.width, dtype=torch.float64)
        base[torch.arange(B)[:, None], torch.arange(T)[None], tokens] = 1.0
        base[:, torch.arange(T), self.vocab.size + torch.arange(T)] = 1.0
        dists = [decode_graph(seq, self.vocab) for seq in tokens.tolist()]
        for layer in range(self.cfg.n_layers + 1):
            x = base.clone()
            for b, g in enumerate(dists):
                d = g.distances if self.direction == "forward" else g.distances.T
                for t in g.vertex_positions.tolist():
                    row = d[int(tokens[b, t])]
                    x[b, t, self.vocab.size + T:] = torch.from_numpy((row >= 1) & (row <= self.radius(layer))).double()
            x = x @ self.rotation
            if layer < self.cfg.n_layers:
                self.blocks[layer].hook_resid_pre(x)
            else:
                self.blocks[layer - 1].hook_resid_post(x)
        return x


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.hook_resid_pre, self.hook_resid_post = HookPoint(), HookPoint()


def _sequences(n: int, seed: int):
    task = GraphSearchConfig(max_input_size=N, distribution="balanced").build()
    batch = task.sample(n, torch.Generator().manual_seed(seed))
    return task, batch


@pytest.fixture(scope="module")
def graphs():
    task, train = _sequences(160, 0)
    _, test = _sequences(200, 1)
    return task, train, test


def test_decoded_graph_gives_the_generators_labels():
    task, batch = _sequences(32, 5)
    for i in range(32):
        g = decode_graph(batch["inputs"][i].tolist(), task.vocab)
        assert g.start == g.current
        assert useful_steps(g.adj, g.start, g.goal).tolist() == torch.nonzero(batch["useful"][i]).flatten().tolist()
        assert len(g.vertex_positions) == 2 * int(g.adj.sum()) + 3


def test_malformed_sequences_are_refused_with_the_position():
    task, batch = _sequences(1, 5)
    seq = batch["inputs"][0].tolist()
    bad = seq[:-1] + [task.vocab.edge]
    with pytest.raises(ValueError, match="Q s g P s"):
        decode_graph(bad, task.vocab)
    first = next(i for i, t in enumerate(seq) if t != task.vocab.pad)
    bad = list(seq)
    bad[first + 1] = task.vocab.query
    with pytest.raises(ValueError, match=f"position {first + 1}"):
        decode_graph(bad, task.vocab)


def test_set_scores_on_a_hand_made_chain():
    # Chain 1 → 2 → 3 plus a vertex 4 that 1 does not reach, id 5 not in the graph; the row is vertex 1.
    dist = np.array([[ABSENT, 0, 1, 2, -1, ABSENT]])
    exact = set_scores(np.array([[-1.0, 2.0, 2.0, -1.0, 5.0]]), dist)  # id 5 scores high: absent, not counted
    assert (exact["precision"], exact["recall"], exact["recall_1"], exact["recall_2"]) == (2 / 3, 1, 1, 1)
    assert (exact["auc_1"], exact["auc_2"], exact["radius"], exact["k_max"]) == (1, 1, 2, 2)
    one_hop = set_scores(np.array([[-1.0, 2.0, -1.0, -1.0, -1.0]]), dist)  # id 3 ties with unreachable 4
    assert (one_hop["precision"], one_hop["recall"], one_hop["auc_1"], one_hop["auc_2"]) == (1, 0.5, 1, 0.5)
    assert one_hop["radius"] == 1
    self_only = set_scores(np.array([[3.0, -1.0, -1.0, -1.0, -1.0]]), dist)  # the vertex itself is not scored
    assert np.isnan(self_only["precision"]) and self_only["recall"] == 0


def _shell_tolerance(te, k: int) -> float:
    """4 standard deviations of a shell's pooled AUC when the stream does not carry that shell.

    Given the probe, each test graph g contributes a within-graph AUC a_g ∈ [0, 1] with E[a_g] = ½ (the
    ids the stream does not hold are exchangeable: a uniformly random injection), independently across
    graphs; pooled with weights w_g (its pairs), SD ≤ ½·√(Σ w_g²)/Σ w_g (a [0, 1] variable has SD ≤ ½).
    """
    d = te.dist_forward[:, 1:]
    pairs = (d == k).sum(1) * (d == -1).sum(1)
    w = np.bincount(te.example, weights=pairs)
    return 4 * 0.5 * np.sqrt((w ** 2).sum()) / w.sum()


@pytest.mark.parametrize("law,radius", [("doubling", lambda l: 2 ** l - 1), ("linear", lambda l: l)])
def test_probe_recovers_exact_sets_and_the_growth_law(graphs, law, radius):
    task, train, test = graphs
    n_layers = 3
    model = ExactReachModel(task.vocab, radius, n_layers)
    tr = collect(model, train["inputs"], task.vocab).with_roles(EDGE_ROLES)
    te = collect(model, test["inputs"], task.vocab).with_roles(EDGE_ROLES)
    prof = reach_profile(tr, te, directions=("forward",))
    k_max = int(prof["k_max"].iloc[0])
    assert k_max >= 2 ** n_layers - 1, "the test graphs must be deep enough to tell the laws apart"
    for _, row in prof.iterrows():
        R = radius(row["layer"])
        slack = 0.0
        for k in range(1, k_max + 1):
            if k <= R:  # carried shells: every member decoded, and ranked above every unreachable vertex
                assert row[f"recall_{k}"] == 1.0 and row[f"auc_{k}"] == 1.0, (row["layer"], k)
            else:
                tol = _shell_tolerance(te, k)
                assert abs(row[f"auc_{k}"] - 0.5) <= tol, (row["layer"], k, row[f"auc_{k}"], tol)
                slack += 2 * tol
        assert abs(row["radius"] - min(R, k_max)) <= slack
    layers = unsaturated_layers(prof["radius"], k_max)
    fit = fit_growth(layers, prof["radius"].to_numpy()[layers])
    assert (fit["doubling_minus_linear_rms"] < 0) == (law == "doubling"), fit


def test_fit_growth_on_exact_radii():
    doubling = fit_growth([0, 1, 2, 3], [0, 1, 3, 7])
    linear = fit_growth([0, 1, 2, 3], [0, 1, 2, 3])
    # float64 least squares on O(10) numbers: residuals ~1e-15; the other law misses by O(1)
    assert doubling["doubling_rms"] < 1e-12 and (doubling["doubling_a"], doubling["doubling_b"]) == pytest.approx((1, -1))
    assert linear["linear_rms"] < 1e-12 and doubling["linear_rms"] > 0.3 and linear["doubling_rms"] > 0.1


def test_backward_sets_are_the_forward_sets_of_the_reversed_graph(graphs):
    task, train, test = graphs
    model = ExactReachModel(task.vocab, lambda l: l, 2, direction="backward")
    tr = collect(model, train["inputs"][:80], task.vocab)
    te = collect(model, test["inputs"][:60], task.vocab)
    prof = reach_profile(tr, te, directions=("backward",))
    last = prof[prof["layer"] == 2].iloc[0]
    assert (last["recall_1"], last["auc_1"], last["recall_2"], last["auc_2"]) == (1, 1, 1, 1)


def test_fit_growth_refuses_too_few_layers_and_finds_the_saturation():
    with pytest.raises(ValueError, match="≥ 3"):
        fit_growth([0, 1], [0, 1])
    assert unsaturated_layers([0, 1, 3, 7, 7], k_max=7).tolist() == [0, 1, 2, 3]
    assert unsaturated_layers([0, 1, 2], k_max=7).tolist() == [0, 1, 2]


def test_growth_aic_favours_the_law_that_made_the_radius():
    """Equal parameter counts, so ΔAIC = n·log(RSS_linear/RSS_doubling): positive for a doubling radius,
    negative for a linear one, and larger in size the cleaner the data."""
    from probes.reachability import growth_aic

    layers = np.arange(6)
    noise = np.array([0.05, -0.03, 0.02, -0.04, 0.03, -0.01])
    assert growth_aic(layers, 2.0 ** layers + noise) > 10
    assert growth_aic(layers, 1.5 * layers + noise) < -10
