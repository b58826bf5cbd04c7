"""Compiled (numba) generation and encoding of graph-search examples.

The one implementation of the three distributions of "Transformers Struggle to Learn to Search"
(Saparov et al., ICLR 2025) described in ``toy_models.tasks.graph_search``; that module is the public
face and only converts between these arrays and Python objects. The plain-Python oracles the tests
compare against are ``theory.graph_search.lookahead`` / ``reaches`` / ``useful_steps``.

Randomness: SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
OOPSLA 2014), state s ← s + 0x9E3779B97F4A7C15, output = mix(s). The state is one uint64 in a
length-1 array passed explicitly to every kernel, so a seed drawn from a ``torch.Generator`` fixes the
whole data stream, independent of numba's or numpy's global RNG. Integers in [0, n) are r mod n with
r rejected below 2^64 mod n (so every residue has the same number of preimages: exactly uniform);
floats are (r >> 11) · 2^-53.

Vertices are 0..V−1 in generation order; edges are (src[i], dst[i]) for i < m; ``adj`` is a dense
Boolean workspace whose top-left V×V block is the graph (V ≤ max vertex id ≤ a few dozen, so dense
O(V²) scans are cheaper than building adjacency lists).

Compile cost: the Python-callable kernels (``sample_examples`` and the few below it) are
``njit(cache=True)``: the first call after a fresh checkout compiles them (seconds; measured in
``benchmarks/bench_graph_generator.py``) and writes the machine code to ``__pycache__``, and later
processes load it in a fraction of a second. Helpers are ``register_jitable``: compiled into their
callers with non-literal argument types, so a constant argument (``_randint(state, 1, 3)``) does not
compile a specialisation of its own (with plain ``njit`` helpers the first compile took 1.2–1.5× longer;
forcing ``inline='always'`` made it about 3× longer).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.extending import register_jitable

NAIVE, BALANCED, STAR = 0, 1, 2
PREFERENTIAL_ALPHA = 0.5  # attachment weight α + degree (the paper's generator uses α = 1/2)
MAX_ATTEMPTS = 1_000_000  # per example; valid configs accept within a handful, so hitting it is a bug

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_HASH0 = np.uint64(0x243F6A8885A308D3)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0

# lookahead() error codes (generation never produces them; the Python wrappers turn them into errors)
NO_CHILDREN, GOAL_UNREACHABLE, FRONTIER_EMPTIED = -1, -2, -3
DOES_NOT_FIT = -4  # encode_graph: more vertices or edges than ids


# ---------------------------------------------------------------------------------------- RNG
@register_jitable
def _mix(z):
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@register_jitable
def _next(state):
    state[0] = state[0] + _GOLDEN
    return _mix(state[0])


@register_jitable
def _below(state, n):
    """Uniform integer in [0, n), n ≥ 1."""
    un = np.uint64(n)
    threshold = (np.uint64(0) - un) % un  # 2^64 mod n
    while True:
        r = _next(state)
        if r >= threshold:
            return np.int64(r % un)


@register_jitable
def _randint(state, lo, hi):
    """Uniform integer in [lo, hi] (inclusive, like ``random.randint``)."""
    return lo + _below(state, hi - lo + 1)


@register_jitable
def _uniform(state):
    return np.float64(_next(state) >> _S11) * _TWO_M53


def new_state(seed: int) -> np.ndarray:
    """The RNG state for a seed (any integer; reduced mod 2^64)."""
    return np.array([seed % 2**64], dtype=np.uint64)


# ---------------------------------------------------------------------------------------- BFS
@register_jitable
def _fill_adj(adj, V, m, src, dst):
    for u in range(V):
        for v in range(V):
            adj[u, v] = False
    for i in range(m):
        adj[src[i], dst[i]] = True


@register_jitable
def _reaches(adj, V, goal, to_goal, stack):
    """to_goal[v] ⇔ v has a directed path to goal (goal included): one backward DFS."""
    for v in range(V):
        to_goal[v] = False
    to_goal[goal] = True
    stack[0] = goal
    n = 1
    while n > 0:
        n -= 1
        x = stack[n]
        for p in range(V):
            if adj[p, x] and not to_goal[p]:
                to_goal[p] = True
                stack[n] = p
                n += 1


@register_jitable
def _lookahead(adj, V, cur, goal, to_goal, front, nxt, tag, ntag, seen, innext):
    """The tagged synchronous BFS of ``theory.graph_search.lookahead`` (see its docstring).

    Frontier vertices carry tag True when they descend from a useful child; a vertex first reached
    in a round takes the OR of its frontier parents' tags; seen vertices are never revisited. The
    answer is depth − 1 at the first depth whose frontier is all-correct, or depth when the goal is
    in the frontier. Negative results are the error codes above.
    """
    n_front = 0
    any_right = False
    any_wrong = False
    for v in range(V):
        seen[v] = False
        innext[v] = False
    for c in range(V):
        if adj[cur, c]:
            front[n_front] = c
            n_front += 1
            tag[c] = to_goal[c]
            seen[c] = True
            if to_goal[c]:
                any_right = True
            else:
                any_wrong = True
    if n_front == 0:
        return NO_CHILDREN
    if not any_right:
        return GOAL_UNREACHABLE
    if not any_wrong:
        return 0
    depth = 1
    while True:
        all_correct = True
        goal_in = False
        for i in range(n_front):
            u = front[i]
            if not tag[u]:
                all_correct = False
            if u == goal:
                goal_in = True
        if all_correct:
            return depth - 1
        if goal_in:
            return depth
        n_next = 0
        for i in range(n_front):
            u = front[i]
            for w in range(V):
                if adj[u, w] and not seen[w]:
                    if innext[w]:
                        ntag[w] = ntag[w] or tag[u]
                    else:
                        innext[w] = True
                        ntag[w] = tag[u]
                        nxt[n_next] = w
                        n_next += 1
        for i in range(n_next):
            w = nxt[i]
            seen[w] = True
            innext[w] = False
            tag[w] = ntag[w]
            front[i] = w
        n_front = n_next
        depth += 1
        if n_front == 0:
            return FRONTIER_EMPTIED


# ---------------------------------------------------------------------------------------- workspace
@register_jitable
def _workspace(mv):
    cap = 3 * mv + 8  # naive graphs may draw up to 3 parents per vertex before the edge cap rejects them
    ints = np.empty((12, cap), dtype=np.int64)
    bools = np.empty((6, cap), dtype=np.bool_)
    weights = np.empty(cap, dtype=np.float64)
    adj = np.empty((mv + 1, mv + 1), dtype=np.bool_)
    return ints, bools, weights, adj


# Rows of the ``ints`` workspace.
_SRC, _DST, _ORDER, _INDEG, _OUTDEG, _CAND, _CHOSEN, _LENS, _FRONT, _NEXT, _IDS, _PERM = range(12)
# Rows of the ``bools`` workspace.
_TO_GOAL, _TAG, _NTAG, _SEEN, _INNEXT, _SPARE = range(6)


@register_jitable
def _measure(adj, V, start, goal, ints, bools):
    """Fill to_goal and return the lookahead of (start, goal) on the graph already in ``adj``."""
    _reaches(adj, V, goal, bools[_TO_GOAL], ints[_FRONT])
    return _lookahead(adj, V, start, goal, bools[_TO_GOAL], ints[_FRONT], ints[_NEXT], bools[_TAG],
                      bools[_NTAG], bools[_SEEN], bools[_INNEXT])


# ---------------------------------------------------------------------------------------- graphs
@register_jitable
def _naive(state, mv, ints, bools, adj):
    """V ~ U{3..mv−1}; vertex i ≥ 1 takes 1 parent w.p. 1/2, else U{1..3} (≤ i), uniform among 0..i−1;
    rejected if more than mv edges; (s, g) uniform distinct, kept if g is reachable and not a child."""
    src, dst, chosen = ints[_SRC], ints[_DST], ints[_CHOSEN]
    for _ in range(MAX_ATTEMPTS):
        V = _randint(state, 3, mv - 1)
        m = 0
        for i in range(1, V):
            k = 1 if _uniform(state) < 0.5 else _randint(state, 1, 3)
            k = min(k, i)
            for j in range(k):  # a uniform k-subset of 0..i−1 by rejecting repeats (k ≤ 3)
                while True:
                    p = _below(state, i)
                    fresh = True
                    for q in range(j):
                        if chosen[q] == p:
                            fresh = False
                    if fresh:
                        break
                chosen[j] = p
                src[m] = p
                dst[m] = i
                m += 1
        if m > mv:
            continue
        s = _below(state, V)
        g = _below(state, V - 1)
        if g >= s:
            g += 1
        _fill_adj(adj, V, m, src, dst)
        _reaches(adj, V, g, bools[_TO_GOAL], ints[_FRONT])
        if bools[_TO_GOAL][s] and not adj[s, g]:
            return V, m, s, g
    raise RuntimeError("naive graph: no valid graph within MAX_ATTEMPTS draws")


@register_jitable
def _star(state, mv, L_max, ints, adj):
    """spoke length U{1..L_max}, spokes U{2..max(2, ⌊(mv−1)/length⌋)}; the goal ends spoke 0."""
    src, dst = ints[_SRC], ints[_DST]
    length = _randint(state, 1, L_max)
    spokes = _randint(state, 2, max(2, (mv - 1) // length))
    m = 0
    V = 1
    for _s in range(spokes):
        prev = 0
        for _j in range(length):
            src[m] = prev
            dst[m] = V
            m += 1
            prev = V
            V += 1
    _fill_adj(adj, V, m, src, dst)
    return V, m, 0, length


@register_jitable
def _chain(src, dst, order, m, V, n_order, first, length):
    """Append a chain of ``length`` new vertices hanging from ``first``; returns (m, V, n_order, last)."""
    prev = first
    for _ in range(length):
        src[m] = prev
        dst[m] = V
        order[n_order] = V
        m += 1
        n_order += 1
        prev = V
        V += 1
    return m, V, n_order, prev


@register_jitable
def _preferential(state, order, lo, hi, n, degree, cand, weights, chosen):
    """Up to n distinct vertices from order[lo:hi] without replacement, each pick ∝ α + degree."""
    cnt = hi - lo
    for i in range(cnt):
        cand[i] = order[lo + i]
        weights[i] = PREFERENTIAL_ALPHA + degree[cand[i]]
    n = min(n, cnt)
    for j in range(n):
        total = 0.0
        for i in range(cnt):
            total += weights[i]
        r = _uniform(state) * total
        pick = cnt - 1  # guards the float round-off of the last cumulative sum
        acc = 0.0
        for i in range(cnt):
            acc += weights[i]
            if r < acc:
                pick = i
                break
        chosen[j] = cand[pick]
        cand[pick] = cand[cnt - 1]
        weights[pick] = weights[cnt - 1]
        cnt -= 1
    return n


@register_jitable
def _balanced_candidate(state, L, mv, ints, weights):
    """One construction with lookahead target L; returns (V, m, goal), V = −1 when the draw does not fit.

    Start 0; for L = 0 a chain of U{1..3} edges to the goal; else k ~ U{2..max(2, ⌊(mv−1)/L⌋)},
    a path of L edges to the goal and k − 1 distractor chains of L + U{0,1} edges from the start
    (the trailing ones dropped until the vertices fit); a prefix chain of U{0..room} vertices into
    the start; then U{0..5} extra vertices, each inserted at a uniform place of a topological order
    with U{0..3} children among later vertices (∝ α + indegree) and U{0..3} parents among earlier
    ones (∝ α + outdegree), stopping at mv edges. Every edge goes forwards in the order: acyclic.
    """
    src, dst, order = ints[_SRC], ints[_DST], ints[_ORDER]
    indeg, outdeg, lens = ints[_INDEG], ints[_OUTDEG], ints[_LENS]
    max_edges = mv
    order[0] = 0
    m, V, n_order = 0, 1, 1
    if L == 0:
        m, V, n_order, goal = _chain(src, dst, order, m, V, n_order, 0, _randint(state, 1, 3))
    else:
        k = _randint(state, 2, max(2, (max_edges - 1) // L))
        for i in range(k - 1):
            lens[i] = L + _below(state, 2)
        n_lens = 0
        used = L + 1
        while n_lens < k - 1 and used + lens[n_lens] <= mv:
            used += lens[n_lens]
            n_lens += 1
        if n_lens == 0:
            return -1, 0, 0
        m, V, n_order, goal = _chain(src, dst, order, m, V, n_order, 0, L)
        for b in range(n_lens):
            m, V, n_order, _last = _chain(src, dst, order, m, V, n_order, 0, lens[b])
    room = min(mv - V, max_edges - m)
    if room < 0:
        return -1, 0, 0
    prefix = _randint(state, 0, room)
    for i in range(n_order - 1, -1, -1):
        order[i + prefix] = order[i]
    for i in range(prefix):
        order[i] = V + i
        src[m] = V + i
        dst[m] = V + i + 1 if i < prefix - 1 else 0
        m += 1
    V += prefix
    n_order += prefix
    for v in range(V):
        indeg[v] = 0
        outdeg[v] = 0
    for i in range(m):
        outdeg[src[i]] += 1
        indeg[dst[i]] += 1
    n_extra = min(_randint(state, 0, 5), mv - V)
    cand, chosen = ints[_CAND], ints[_CHOSEN]
    for _e in range(n_extra):
        v = V
        V += 1
        indeg[v] = 0
        outdeg[v] = 0
        pos = _randint(state, 0, n_order)
        for i in range(n_order - 1, pos - 1, -1):
            order[i + 1] = order[i]
        order[pos] = v
        n_order += 1
        n_children = _randint(state, 0, 3)
        n_parents = _randint(state, 0, 3)
        full = False
        n = _preferential(state, order, pos + 1, n_order, n_children, indeg, cand, weights, chosen)
        for j in range(n):
            if m >= max_edges:
                full = True
                break
            src[m], dst[m] = v, chosen[j]
            outdeg[v] += 1
            indeg[chosen[j]] += 1
            m += 1
        if full:
            continue
        n = _preferential(state, order, 0, pos, n_parents, outdeg, cand, weights, chosen)
        for j in range(n):
            if m >= max_edges:
                break
            src[m], dst[m] = chosen[j], v
            outdeg[chosen[j]] += 1
            indeg[v] += 1
            m += 1
    return V, m, goal


@register_jitable
def _balanced(state, L, mv, ints, bools, weights, adj):
    """Retry the construction with the same L until the measured lookahead is L: re-drawing L after
    a rejection would favour the lookaheads that are easy to build and break the uniform histogram."""
    for _ in range(MAX_ATTEMPTS):
        V, m, goal = _balanced_candidate(state, L, mv, ints, weights)
        if V < 0:
            continue
        _fill_adj(adj, V, m, ints[_SRC], ints[_DST])
        if _measure(adj, V, 0, goal, ints, bools) == L:
            return V, m, goal
    raise RuntimeError("balanced graph: no graph with the requested lookahead within MAX_ATTEMPTS draws")


@register_jitable
def _graph(state, dist, mv, L_max, L_fixed, ints, bools, weights, adj):
    """One graph of the distribution, with adj and to_goal filled; returns (V, m, start, goal, L)."""
    if dist == BALANCED:
        L = _randint(state, 0, L_max) if L_fixed < 0 else L_fixed
        V, m, goal = _balanced(state, L, mv, ints, bools, weights, adj)
        return V, m, 0, goal, L
    if dist == NAIVE:
        V, m, s, g = _naive(state, mv, ints, bools, adj)
    else:
        V, m, s, g = _star(state, mv, L_max, ints, adj)
    return V, m, s, g, _measure(adj, V, s, g, ints, bools)


# ---------------------------------------------------------------------------------------- encoding
@register_jitable
def _encode(state, V, m, start, goal, N, mv, ints, bools, adj, tokens, useful):
    """Random ids (a uniform injection into 1..mv), shuffled edges, left padding; returns
    (label, out_degree, number of useful steps) with ``useful`` the multi-hot of useful steps."""
    src, dst, ids, perm = ints[_SRC], ints[_DST], ints[_IDS], ints[_PERM]
    to_goal = bools[_TO_GOAL]
    for i in range(mv):
        ids[i] = i + 1
    for i in range(V):  # partial Fisher–Yates: ids[0..V−1] is a uniform injection
        j = i + _below(state, mv - i)
        ids[i], ids[j] = ids[j], ids[i]
    for i in range(m):
        perm[i] = i
    for i in range(m - 1, 0, -1):
        j = _below(state, i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    pad = N - (3 * m + 5)
    for t in range(pad):
        tokens[t] = mv + 3
    t = pad
    for i in range(m):
        e = perm[i]
        tokens[t] = mv + 2
        tokens[t + 1] = ids[src[e]]
        tokens[t + 2] = ids[dst[e]]
        t += 3
    tokens[t] = mv + 4
    tokens[t + 1] = ids[start]
    tokens[t + 2] = ids[goal]
    tokens[t + 3] = mv + 1
    tokens[t + 4] = ids[start]
    for i in range(useful.shape[0]):
        useful[i] = False
    degree = 0
    n_useful = 0
    for c in range(V):
        if adj[start, c]:
            degree += 1
            if to_goal[c]:
                useful[ids[c]] = True
                n_useful += 1
    pick = _below(state, n_useful)
    label = -1
    for c in range(V):
        if adj[start, c] and to_goal[c]:
            if pick == 0:
                label = ids[c]
                break
            pick -= 1
    return label, degree, n_useful


@register_jitable
def _row_hash(row):
    h = _HASH0
    for t in row:
        h = _mix(h ^ np.uint64(t))
    return h


@njit(cache=True)
def row_hashes(rows):
    """64-bit hashes of token rows (for the reserved-input lookup)."""
    out = np.empty(rows.shape[0], dtype=np.uint64)
    for i in range(rows.shape[0]):
        out[i] = _row_hash(rows[i])
    return out


@register_jitable
def _is_reserved(row, res_hash, res_rows):
    h = _row_hash(row)
    j = np.searchsorted(res_hash, h)
    while j < res_hash.shape[0] and res_hash[j] == h:
        same = True
        for t in range(row.shape[0]):
            if row[t] != res_rows[j, t]:
                same = False
                break
        if same:
            return True
        j += 1
    return False


# ---------------------------------------------------------------------------------------- batches
@njit(cache=True)
def sample_examples(state, dist, N, mv, L_max, L_fixed, test_only, res_hash, res_rows,
                    tokens, labels, useful, lookaheads, out_degree):
    """Fill row b of every output with one example, b = 0..B−1; returns the number of candidates
    dropped because they equal a reserved (sorted-by-hash) test input.

    ``L_fixed ≥ 0`` fixes the balanced lookahead; ``test_only`` keeps only held-out-style examples
    (out-degree ≥ 2 and exactly one useful step).
    """
    ints, bools, weights, adj = _workspace(mv)
    collisions = 0
    for b in range(tokens.shape[0]):
        for attempt in range(MAX_ATTEMPTS + 1):
            if attempt == MAX_ATTEMPTS:
                raise RuntimeError("sample_examples: no acceptable example within MAX_ATTEMPTS draws")
            V, m, s, g, L = _graph(state, dist, mv, L_max, L_fixed, ints, bools, weights, adj)
            label, degree, n_useful = _encode(state, V, m, s, g, N, mv, ints, bools, adj, tokens[b], useful[b])
            if test_only and not (degree >= 2 and n_useful == 1):
                continue
            if res_hash.shape[0] > 0 and _is_reserved(tokens[b], res_hash, res_rows):
                collisions += 1
                continue
            labels[b] = label
            lookaheads[b] = L
            out_degree[b] = degree
            break
    return collisions


@njit(cache=True)
def sample_graph(state, dist, mv, L_max, L_fixed):
    """One graph before encoding: (src, dst, V, start, goal, L) in generation order."""
    ints, bools, weights, adj = _workspace(mv)
    V, m, s, g, L = _graph(state, dist, mv, L_max, L_fixed, ints, bools, weights, adj)
    return ints[_SRC, :m].copy(), ints[_DST, :m].copy(), V, s, g, L


@njit(cache=True)
def encode_graph(state, adj_in, start, goal, N, mv, L, tokens, useful):
    """Encode a given graph (adjacency [V, V]); L < 0 measures it. Returns (label, L, out_degree,
    n_useful), or L set to an error code (negative) with nothing encoded."""
    V = adj_in.shape[0]
    if V > mv or adj_in.sum() > mv:  # the workspace and the token row hold at most mv of each
        return -1, DOES_NOT_FIT, 0, 0
    ints, bools, weights, adj = _workspace(mv)
    m = 0
    for u in range(V):
        for v in range(V):
            adj[u, v] = adj_in[u, v]
            if adj_in[u, v]:
                ints[_SRC, m] = u
                ints[_DST, m] = v
                m += 1
    measured = _measure(adj, V, start, goal, ints, bools)
    if measured < 0:
        return -1, measured, 0, 0
    label, degree, n_useful = _encode(state, V, m, start, goal, N, mv, ints, bools, adj, tokens, useful)
    return label, (measured if L < 0 else L), degree, n_useful


@njit(cache=True)
def measured_lookahead(adj_in, cur, goal):
    """The compiled lookahead on a given adjacency [V, V] (negative: an error code), for tests."""
    V = adj_in.shape[0]
    ints, bools, weights, adj = _workspace(max(V, 1))
    for u in range(V):
        for v in range(V):
            adj[u, v] = adj_in[u, v]
    return _measure(adj, V, cur, goal, ints, bools)


# ---------------------------------------------------------------------------------------- for tests
@njit(cache=True)
def draw_below(state, n, count):
    """``count`` draws of the bounded-integer helper (the helpers are not callable from Python)."""
    out = np.empty(count, dtype=np.int64)
    for i in range(count):
        out[i] = _below(state, n)
    return out


@njit(cache=True)
def draw_preferential(state, order, lo, hi, n, degree, count):
    """``count`` independent preferential samples of n vertices from order[lo:hi], one per row."""
    cand = np.empty(order.shape[0], dtype=np.int64)
    weights = np.empty(order.shape[0], dtype=np.float64)
    out = np.full((count, n), -1, dtype=np.int64)
    for i in range(count):
        got = _preferential(state, order, lo, hi, n, degree, cand, weights, out[i])
        for j in range(got, n):
            out[i, j] = -1
    return out
