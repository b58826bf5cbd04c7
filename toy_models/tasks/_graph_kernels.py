"""Compiled (numba) generation and encoding of graph-search examples.

The one implementation of the three distributions of "Transformers Struggle to Learn to Search"
(Saparov et al., ICLR 2025) described in ``toy_models.tasks.graph_search``; that module is the public
face and only converts between these arrays and Python objects. The procedures are the authors'
(``generate_graph``, ``generate_graph_with_lookahead``, ``generate_training_set`` and
``lookahead_depth`` in ``generator.cpp``, and ``generate_star_graph_data`` in ``train.py`` of the
public repository asaparov/learning_to_search, read for their facts). The plain-Python oracles the
tests compare against are ``theory.graph_search.lookahead`` / ``reaches`` / ``useful_steps`` and the
test's own re-implementation of the authors' procedure.

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
PREFERENTIAL_ALPHA = 0.5  # attachment weight α + degree (the authors' generator uses α = 1/2)
MAX_ATTEMPTS = 1_000_000  # per example; valid configs accept within a handful, so hitting it is a bug
MAX_PATHS = 64  # the authors reject a graph whose shortest-path enumeration lists more paths
PATH_CAP = MAX_PATHS + 1  # path counts saturate here: anything above MAX_PATHS is rejected anyway

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_HASH0 = np.uint64(0x243F6A8885A308D3)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0

# lookahead error codes (generation never produces them; the Python wrappers turn them into errors)
NO_CHILDREN, GOAL_UNREACHABLE = -1, -2
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
def _dist_to_goal(adj, V, goal, dg, queue):
    """dg[v] = directed distance v → goal (−1: unreachable) by one backward BFS; returns the number
    of vertices reached, which ``queue[:n]`` lists in non-decreasing distance (goal first)."""
    for v in range(V):
        dg[v] = -1
    dg[goal] = 0
    queue[0] = goal
    head, n = 0, 1
    while head < n:
        x = queue[head]
        head += 1
        for p in range(V):
            if adj[p, x] and dg[p] < 0:
                dg[p] = dg[x] + 1
                queue[n] = p
                n += 1
    return n


@register_jitable
def _path_counts(adj, V, dg, queue, n_reached, count, enum):
    """Per vertex v that reaches the goal: count[v] = the number of shortest paths v → goal, and
    enum[v] = the number of paths the authors' enumeration lists from v (both capped at PATH_CAP).

    The authors find the shortest paths by walking predecessor pointers back from the goal with a
    stack and no visited set, so a vertex with P shortest paths to the goal is popped P times, and
    each pop appends it once more to the forward-pointer list of each of its shortest-path parents;
    the forward enumeration then lists a path once per copy: enum[v] = Σ_c count[c]·enum[c] over the
    shortest-path children c of v (enum[goal] = 1), which exceeds count[v] once two shortest paths
    share a vertex below a fork. Processing ``queue`` in BFS order visits every child before its
    parents on shortest paths.
    """
    for i in range(n_reached):
        v = queue[i]
        if i == 0:
            count[v] = 1
            enum[v] = 1
            continue
        c_sum, e_sum = 0, 0
        for w in range(V):
            if adj[v, w] and dg[w] == dg[v] - 1:
                c_sum = min(c_sum + count[w], PATH_CAP)
                e_sum = min(e_sum + count[w] * enum[w], PATH_CAP)
        count[v] = c_sum
        enum[v] = e_sum


@register_jitable
def _lookahead(adj, V, cur, goal, first, front, nxt, tag, ntag, seen, innext):
    """The authors' ``lookahead_depth(cur, first, goal)``, the search depth before the step to
    ``first`` (a child of ``cur`` from which the goal is reachable: the caller checks) is certain;
    see ``theory.graph_search.lookahead``. NO_CHILDREN when ``cur`` has none."""
    n_front = 0
    for v in range(V):
        seen[v] = False
        innext[v] = False
    for c in range(V):
        if adj[cur, c]:
            front[n_front] = c
            n_front += 1
            tag[c] = c == first
            seen[c] = True
    if n_front == 0:
        return NO_CHILDREN
    depth = 0
    while n_front > 0:
        all_first = True
        goal_in = False
        for i in range(n_front):
            u = front[i]
            if not tag[u]:
                all_first = False
            if u == goal:
                goal_in = True
        if all_first:
            return depth
        depth += 1
        if goal_in:
            return depth
        n_next = 0
        for i in range(n_front):
            u = front[i]
            for w in range(V):
                if adj[u, w]:
                    if not seen[w]:
                        seen[w] = True
                        innext[w] = True
                        ntag[w] = tag[u]
                        nxt[n_next] = w
                        n_next += 1
                    elif innext[w] and tag[u]:  # re-reached this round from the first step's branch
                        ntag[w] = True
        for i in range(n_next):
            w = nxt[i]
            innext[w] = False
            tag[w] = ntag[w]
            front[i] = w
        n_front = n_next
    return depth


# ---------------------------------------------------------------------------------------- workspace
@register_jitable
def _workspace(mv):
    cap = 8 * mv + 8  # a balanced graph's extra vertices add up to 6 edges each before the edge cap rejects it
    ints = np.empty((13, cap), dtype=np.int64)
    bools = np.empty((6, cap), dtype=np.bool_)
    weights = np.empty(cap, dtype=np.float64)
    adj = np.empty((mv + 1, mv + 1), dtype=np.bool_)
    return ints, bools, weights, adj


# Rows of the ``ints`` workspace.
_SRC, _DST, _QUEUE, _DG, _COUNT, _ENUM, _FRONT, _NEXT, _IDS, _PERM, _INDEG, _OUTDEG, _CHOSEN = range(13)
# Rows of the ``bools`` workspace.
_TAG, _NTAG, _SEEN, _INNEXT, _MARK, _USEFUL = range(6)


@register_jitable
def _clear_adj(adj, V):
    for u in range(V):
        for v in range(V):
            adj[u, v] = False


@register_jitable
def _add_edge(src, dst, adj, m, u, v):
    src[m] = u
    dst[m] = v
    adj[u, v] = True
    return m + 1


@register_jitable
def _measure(adj, V, cur, goal, first, ints, bools):
    return _lookahead(adj, V, cur, goal, first, ints[_FRONT], ints[_NEXT], bools[_TAG], bools[_NTAG],
                      bools[_SEEN], bools[_INNEXT])


# ---------------------------------------------------------------------------------------- graphs
@register_jitable
def _naive(state, mv, ints, adj):
    """One draw of the authors' ``generate_graph``: V ~ U{3..mv−1}; vertex i ≥ 1 takes 1 parent
    w.p. 1/2, else U{1..3} (at most i), a uniform subset of 0..i−1; start uniform on 0..V−2, goal
    uniform on 0..V−2 without the start. Returns (V, m, start, goal); the caller rejects."""
    src, dst, chosen = ints[_SRC], ints[_DST], ints[_CHOSEN]
    V = _randint(state, 3, mv - 1)
    _clear_adj(adj, V)
    m = 0
    for i in range(1, V):
        k = 1 if _below(state, 2) == 0 else _randint(state, 1, 3)
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
            m = _add_edge(src, dst, adj, m, p, i)
    s = _below(state, V - 1)
    g = _below(state, V - 2)
    if g >= s:
        g += 1
    return V, m, s, g


@register_jitable
def _star(state, mv, L_max, ints, adj):
    """The authors' star data: a (spoke length, spoke count) pair uniform over length 1..L_max and
    count 1..⌊(mv−1)/length⌋; spoke 0 (built first, so it is the start's first child) ends at the goal."""
    src, dst = ints[_SRC], ints[_DST]
    n_pairs = 0
    for length in range(1, L_max + 1):
        n_pairs += (mv - 1) // length
    r = _below(state, n_pairs)
    length = 1
    while r >= (mv - 1) // length:
        r -= (mv - 1) // length
        length += 1
    spokes = r + 1
    V = 1 + spokes * length
    _clear_adj(adj, V)
    m = 0
    nxt = 1
    for _s in range(spokes):
        prev = 0
        for _j in range(length):
            m = _add_edge(src, dst, adj, m, prev, nxt)
            prev = nxt
            nxt += 1
    return V, m, 0, length


@register_jitable
def _weighted_pick(state, weights, n, k, chosen):
    """k distinct indices of 0..n−1 without replacement, each pick ∝ weights (zeros never picked);
    the authors' repeated ``sample_categorical`` with the picked weight zeroed. Returns how many."""
    for j in range(k):
        total = 0.0
        for i in range(n):
            total += weights[i]
        if total <= 0.0:
            return j
        r = _uniform(state) * total
        pick = -1
        acc = 0.0
        for i in range(n):
            if weights[i] > 0.0:
                pick = i  # the last positive weight guards the float round-off of the cumulative sum
                acc += weights[i]
                if r < acc:
                    break
        chosen[j] = pick
        weights[pick] = 0.0
    return k


@register_jitable
def _balanced(state, L, mv, max_edges, ints, bools, weights, adj):
    """One draw of the authors' ``generate_graph_with_lookahead`` for requested lookahead L; returns
    (V, m, goal) with start 0, or V = −1 when the draw has more than ``max_edges`` edges (rejected).

    k = U{1,2} (L = 0) or U{2..⌊(max_edges−1)/L⌋} branches; a vertex budget
    V = max(2, min(L·k + 1 + U{0..5}, mv, max_edges + 1), 1 + k·L); the path 0 → 1 → … → L (L = 0:
    the single edge 0 → 1, the goal), k − 1 branches of L or L + 1 edges from the start (L + 1 only
    while the budget allows); a prefix chain of U{0..budget left} vertices into the start; every
    vertex left in the budget then takes U{0..3} children among the earlier vertices (∝ 1/2 + in-degree)
    and U{0..3} parents (U{1..3} without children) among the earlier ones that are not its
    descendants (∝ 1/2 + out-degree). The degrees are the authors' bookkeeping: an added vertex's own
    children and parents are not counted in its degree, only later picks of it.
    """
    src, dst = ints[_SRC], ints[_DST]
    indeg, outdeg, chosen, stack = ints[_INDEG], ints[_OUTDEG], ints[_CHOSEN], ints[_QUEUE]
    mark = bools[_MARK]
    if L == 0:
        k = _randint(state, 1, 2)
    else:
        k = _randint(state, 2, (max_edges - 1) // L)
    V = min(L * k + 1 + _randint(state, 0, 5), mv, max_edges + 1)
    V = max(2, V, 1 + k * L)
    _clear_adj(adj, V)
    m = _add_edge(src, dst, adj, 0, 0, 1)
    for i in range(1, L):
        m = _add_edge(src, dst, adj, m, i, i + 1)
    if L == 0:
        index = 2
    else:
        index = 1 + L
        for j in range(k - 1):
            m = _add_edge(src, dst, adj, m, 0, index)
            index += 1
            room = V - index - (k - j - 1) * L + 2  # ≥ 1: one more edge only while the budget allows
            length = L + _below(state, min(2, room))
            for _i in range(1, length):
                m = _add_edge(src, dst, adj, m, index - 1, index)
                index += 1
    prefix = _below(state, V - index + 1)
    prev = 0
    for _i in range(prefix):
        m = _add_edge(src, dst, adj, m, index, prev)
        prev = index
        index += 1
    for v in range(V):
        indeg[v] = 0
        outdeg[v] = 0
    for i in range(m):
        outdeg[src[i]] += 1
        indeg[dst[i]] += 1
    for v in range(index, V):
        n_children = _randint(state, 0, 3)
        n_parents = _randint(state, 1 if n_children == 0 else 0, 3)
        n_children = min(n_children, v)
        n_parents = min(n_parents, v)
        for j in range(v):
            weights[j] = PREFERENTIAL_ALPHA + indeg[j]
        got = _weighted_pick(state, weights, v, n_children, chosen)
        for j in range(got):
            m = _add_edge(src, dst, adj, m, v, chosen[j])
            indeg[chosen[j]] += 1
        # the new vertex's descendants (through its children) may not become its parents: no cycles
        for j in range(v):
            mark[j] = False
        n_desc = 0
        top = 0
        for j in range(got):
            if not mark[chosen[j]]:
                mark[chosen[j]] = True
                n_desc += 1
                stack[top] = chosen[j]
                top += 1
        while top > 0:
            top -= 1
            x = stack[top]
            for w in range(v):
                if adj[x, w] and not mark[w]:
                    mark[w] = True
                    n_desc += 1
                    stack[top] = w
                    top += 1
        for j in range(v):
            weights[j] = 0.0 if mark[j] else PREFERENTIAL_ALPHA + outdeg[j]
        got = _weighted_pick(state, weights, v, min(n_parents, v - n_desc), chosen)
        for j in range(got):
            m = _add_edge(src, dst, adj, m, chosen[j], v)
            outdeg[chosen[j]] += 1
    if m > max_edges:
        return -1, m, 0
    return V, m, max(1, L)


@register_jitable
def _graph(state, dist, mv, L_max, L_fixed, ints, bools, weights, adj):
    """One accepted graph of the distribution, with ``dg`` (distance to the goal), ``count`` and ``enum``
    filled; returns (V, m, start, goal). Rejections redraw everything, as the authors' loop does
    (the goal unreachable, more than 64 enumerated shortest paths, more than mv edges)."""
    dg, queue = ints[_DG], ints[_QUEUE]
    for _ in range(MAX_ATTEMPTS):
        if dist == BALANCED:
            L = _randint(state, 0, L_max) if L_fixed < 0 else L_fixed
            V, m, g = _balanced(state, L, mv, mv, ints, bools, weights, adj)
            s = 0
            if V < 0:
                continue
        elif dist == NAIVE:
            V, m, s, g = _naive(state, mv, ints, adj)
            if m > mv:
                continue
        else:
            V, m, s, g = _star(state, mv, L_max, ints, adj)
        n = _dist_to_goal(adj, V, g, dg, queue)
        if dg[s] < 1:
            continue
        _path_counts(adj, V, dg, queue, n, ints[_COUNT], ints[_ENUM])
        if ints[_ENUM][s] > MAX_PATHS:
            continue
        return V, m, s, g
    raise RuntimeError("graph generator: no acceptable graph within MAX_ATTEMPTS draws")


# ---------------------------------------------------------------------------------------- encoding
@register_jitable
def _encode(state, V, m, start, goal, N, mv, grouped, ints, bools, adj, tokens, useful):
    """Random ids (a uniform injection into 1..mv), the edge list (uniformly shuffled, or ``grouped``:
    vertices in uniformly random order, each listing its out-edges in the order they were built, as
    the authors' star data), left padding. Fills ``useful`` (multi-hot over token ids of the start's
    children that reach the goal); returns (out-degree of the start, number of useful steps)."""
    src, dst, ids, perm = ints[_SRC], ints[_DST], ints[_IDS], ints[_PERM]
    dg = ints[_DG]
    for i in range(mv):
        ids[i] = i + 1
    for i in range(V):  # partial Fisher–Yates: ids[0..V−1] is a uniform injection
        j = i + _below(state, mv - i)
        ids[i], ids[j] = ids[j], ids[i]
    pad = N - (3 * m + 5)
    for t in range(pad):
        tokens[t] = mv + 3
    t = pad
    if grouped:
        for i in range(V):
            perm[i] = i
        for i in range(V - 1, 0, -1):
            j = _below(state, i + 1)
            perm[i], perm[j] = perm[j], perm[i]
        for i in range(V):
            u = perm[i]
            for e in range(m):
                if src[e] == u:
                    tokens[t] = mv + 2
                    tokens[t + 1] = ids[u]
                    tokens[t + 2] = ids[dst[e]]
                    t += 3
    else:
        for i in range(m):
            perm[i] = i
        for i in range(m - 1, 0, -1):
            j = _below(state, i + 1)
            perm[i], perm[j] = perm[j], perm[i]
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
            if dg[c] >= 0:
                useful[ids[c]] = True
                n_useful += 1
    return degree, n_useful


@register_jitable
def _label(state, V, start, ints, adj):
    """A useful step drawn uniformly (token id), as the authors' ``choice(useful_steps)``."""
    dg, ids = ints[_DG], ints[_IDS]
    n_useful = 0
    for c in range(V):
        if adj[start, c] and dg[c] >= 0:
            n_useful += 1
    pick = _below(state, n_useful)
    for c in range(V):
        if adj[start, c] and dg[c] >= 0:
            if pick == 0:
                return ids[c]
            pick -= 1
    return -1


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
def sample_examples(state, dist, N, mv, L_max, L_fixed, test_only, grouped, res_hash, res_rows,
                    tokens, labels, useful, lookaheads, out_degree):
    """Fill rows 0..B−1 of the outputs; returns the number of candidates dropped because they equal a
    reserved (sorted-by-hash) test input.

    Training (``L_fixed < 0``, not ``test_only``) follows the authors' ``generate_training_set`` with
    ``distance_from_start = 1``: each accepted graph gives one example per path its enumeration lists
    (``enum[start]`` of ``_path_counts``: the same input, a fresh uniformly drawn useful step as the
    label, and the lookahead measured along that path's first step), in order of the first step;
    balanced examples whose lookahead exceeds L_max are dropped (the authors' zero frequency cap), and
    the batch ends wherever it fills. ``L_fixed ≥ 0`` (balanced only) builds graphs with that
    requested lookahead and keeps one example whose measured lookahead is L_fixed; ``test_only``
    keeps only held-out-style examples (out-degree ≥ 2 and exactly one useful step), one per graph.
    """
    ints, bools, weights, adj = _workspace(mv)
    row = np.empty(N, dtype=np.int64)
    hot = np.empty(useful.shape[1], dtype=np.bool_)
    count, enum, dg = ints[_COUNT], ints[_ENUM], ints[_DG]
    collisions = 0
    b = 0
    B = tokens.shape[0]
    for _attempt in range(MAX_ATTEMPTS * max(B, 1)):
        if b >= B:
            break
        V, m, s, g = _graph(state, dist, mv, L_max, L_fixed, ints, bools, weights, adj)
        degree, n_useful = _encode(state, V, m, s, g, N, mv, grouped, ints, bools, adj, row, hot)
        if test_only and not (degree >= 2 and n_useful == 1):
            continue
        single = test_only or L_fixed >= 0
        if res_hash.shape[0] > 0 and _is_reserved(row, res_hash, res_rows):
            collisions += 1 if single else enum[s]
            continue
        for c in range(V):
            if b >= B:
                break
            if not (adj[s, c] and dg[c] == dg[s] - 1):
                continue
            L = _measure(adj, V, s, g, c, ints, bools)
            if single and L_fixed >= 0 and L != L_fixed:
                continue
            if dist == BALANCED and L > L_max:
                continue
            copies = 1 if single else count[c] * enum[c]
            for _k in range(copies):
                if b >= B:
                    break
                tokens[b] = row
                useful[b] = hot
                labels[b] = _label(state, V, s, ints, adj)
                lookaheads[b] = L
                out_degree[b] = degree
                b += 1
            if single:
                break
    if b < B:
        raise RuntimeError("sample_examples: no acceptable example within MAX_ATTEMPTS draws")
    return collisions


@njit(cache=True)
def sample_graph(state, dist, mv, L_max, L_fixed):
    """One accepted graph before encoding: (src, dst, V, start, goal, requested L or −1) in
    generation order; with ``L_fixed ≥ 0`` (balanced) one whose lowest-index shortest first step has
    lookahead L."""
    ints, bools, weights, adj = _workspace(mv)
    dg = ints[_DG]
    for _ in range(MAX_ATTEMPTS):
        V, m, s, g = _graph(state, dist, mv, L_max, L_fixed, ints, bools, weights, adj)
        if L_fixed < 0:
            return ints[_SRC, :m].copy(), ints[_DST, :m].copy(), V, s, g, -1
        for c in range(V):  # the lowest-index child on a shortest path decides
            if adj[s, c] and dg[c] == dg[s] - 1:
                if _measure(adj, V, s, g, c, ints, bools) == L_fixed:
                    return ints[_SRC, :m].copy(), ints[_DST, :m].copy(), V, s, g, L_fixed
                break
    raise RuntimeError("sample_graph: no graph with the requested lookahead within MAX_ATTEMPTS draws")


@njit(cache=True)
def encode_graph(state, adj_in, start, goal, N, mv, L, tokens, useful):
    """Encode a given graph (adjacency [V, V], edges shuffled); L < 0 measures the lookahead along
    the first (lowest-index) child of the start on a shortest path to the goal. Returns
    (label, L, out_degree, n_useful), or L set to a negative error code with nothing encoded."""
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
    dg = ints[_DG]
    _dist_to_goal(adj, V, goal, dg, ints[_QUEUE])
    degree = 0
    first = -1
    for c in range(V):
        if adj[start, c]:
            degree += 1
            if first < 0 and dg[start] > 0 and dg[c] == dg[start] - 1:
                first = c
    if degree == 0:
        return -1, NO_CHILDREN, 0, 0
    if first < 0:
        return -1, GOAL_UNREACHABLE, 0, 0
    measured = _measure(adj, V, start, goal, first, ints, bools)
    degree, n_useful = _encode(state, V, m, start, goal, N, mv, False, ints, bools, adj, tokens, useful)
    label = _label(state, V, start, ints, adj)
    return label, (measured if L < 0 else L), degree, n_useful


@njit(cache=True)
def measured_lookahead(adj_in, cur, goal, first):
    """The compiled lookahead on a given adjacency [V, V] along the child ``first`` (negative: an error
    code: NO_CHILDREN; GOAL_UNREACHABLE when ``first`` is not a child of ``cur`` reaching the goal)."""
    V = adj_in.shape[0]
    ints, bools, weights, adj = _workspace(max(V, 1))
    for u in range(V):
        for v in range(V):
            adj[u, v] = adj_in[u, v]
    dg = ints[_DG]
    _dist_to_goal(adj, V, goal, dg, ints[_QUEUE])
    has_child = False
    for c in range(V):
        if adj[cur, c]:
            has_child = True
    if not has_child:
        return NO_CHILDREN
    if not (0 <= first < V and adj[cur, first] and dg[first] >= 0):
        return GOAL_UNREACHABLE
    return _measure(adj, V, cur, goal, first, ints, bools)


@njit(cache=True)
def enumerated_paths(adj_in, start, goal):
    """(count, enum) of ``_path_counts`` at the start: shortest paths start → goal, and how many the
    authors' enumeration lists (capped at PATH_CAP), for tests."""
    V = adj_in.shape[0]
    ints, bools, weights, adj = _workspace(max(V, 1))
    for u in range(V):
        for v in range(V):
            adj[u, v] = adj_in[u, v]
    n = _dist_to_goal(adj, V, goal, ints[_DG], ints[_QUEUE])
    _path_counts(adj, V, ints[_DG], ints[_QUEUE], n, ints[_COUNT], ints[_ENUM])
    if ints[_DG][start] < 0:
        return 0, 0
    return ints[_COUNT][start], ints[_ENUM][start]


# ---------------------------------------------------------------------------------------- for tests
@njit(cache=True)
def draw_below(state, n, count):
    """``count`` draws of the bounded-integer helper (the helpers are not callable from Python)."""
    out = np.empty(count, dtype=np.int64)
    for i in range(count):
        out[i] = _below(state, n)
    return out


@njit(cache=True)
def draw_weighted(state, weights_in, k, count):
    """``count`` independent draws of k indices without replacement ∝ weights, one per row (−1: none)."""
    n = weights_in.shape[0]
    weights = np.empty(n, dtype=np.float64)
    chosen = np.empty(max(k, 1), dtype=np.int64)
    out = np.full((count, k), -1, dtype=np.int64)
    for i in range(count):
        for j in range(n):
            weights[j] = weights_in[j]
        got = _weighted_pick(state, weights, n, k, chosen)
        for j in range(got):
            out[i, j] = chosen[j]
    return out
