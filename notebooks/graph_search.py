# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Graph search: a trained searcher, its attention, and what its layers know
#
# "Transformers Struggle to Learn to Search" (Saparov et al., ICLR 2025) trains a small transformer
# to output the next vertex on a path from a start to a goal in a directed acyclic graph given as a
# shuffled edge list, and finds that, trained on a distribution that covers every lookahead, it
# learns an algorithm the authors call **exponential path merging**: every vertex position holds the
# set of vertices reachable from it (or reaching it), and every layer merges sets along edges, so the
# radius covered doubles with depth.
#
# The flow: config → one example graph, its exact BFS quantities → a trained searcher and its accuracy
# per lookahead → its attention on the example → the per-layer reachability probe → attention-weight
# patching. The searcher is the figures' quick-scale one (N = 23, 3 layers, 8000 steps;
# ``theorybench train graph_search_balanced``) at full scale, and at quick scale when the run store
# already holds it (after ``make figures``); otherwise (the tests) a small one trained here in about a
# minute (N = 20, 600 steps), which has learned one-hop decisions but not yet two-hop ones.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from probes.attention_patching import explain, summary
from probes.graph_tokens import decode_graph
from probes.reachability import reach_profile
from theory.graph_search import bfs_distances, lookahead, path_merge, useful_steps
from theorybench.registry import default_scale
from theorybench.runstore import Run, run_dir, store_root
from theorybench.studies.graph_search import common as gs_common
from theorybench.studies.graph_search import experiments as gs
from theorybench.studies.graph_search import reach_radius
from theorybench.studies.graph_search.sizes import SIZES
from theorybench.style import apply_style
from toy_models.tasks.graph_search import collate

apply_style()
# Models of ~10⁵ weights: intra-op threads cost more than they save on a shared CPU.
torch.set_num_threads(1)
SCALE = default_scale()
figure_cfg = gs.searcher_experiment("quick", "balanced")
# One run store for notebooks, the command line and figures: $THEORYBENCH_RUNS, else the repository's runs/.
print(f"run store: {store_root()}")
stored = Run(dir=run_dir(figure_cfg), config=figure_cfg.resolved()).status == "done"
cfg = figure_cfg if SCALE == "full" or stored else gs.walkthrough_experiment("quick")
print(f"scale={SCALE}: N={cfg.task.max_input_size}, {cfg.model.n_layers} layers, d_model={cfg.model.d_model}, "
      f"{cfg.train.steps} steps × {cfg.train.batch_size} examples ({cfg.optim.name}, lr {cfg.optim.lr})")

# %% [markdown]
# ## 1. One example, and the exact quantities it is read against
#
# A held-out test example has a start with at least two children of which exactly one can still
# reach the goal. Its tokens are `PAD … E u v … Q s g P s`; vertex ids are a random injection into
# 1..(N−5)//3 and edges are shuffled, so neither ids nor positions carry the topology.

# %%
task = cfg.task.build()
vocab = task.vocab
example = task.test_set(min(2, task.max_lookahead), 1)[0]
g = decode_graph(example.tokens, vocab)
names = {vocab.pad: "·", vocab.edge: "E", vocab.query: "Q", vocab.path: "P"}
print("tokens:", " ".join(names.get(t, str(t)) for t in example.tokens))
edges = [(int(u), int(v)) for u, v in zip(*np.nonzero(g.adj))]
print("edges:", edges, f" start {g.start}, goal {g.goal}")
dist = bfs_distances(g.adj)
print("useful next steps:", useful_steps(g.adj, g.start, g.goal).tolist(), " label:", example.label,
      " lookahead L =", lookahead(g.adj, g.start, g.goal), " chance 1/outdeg =", 1 / example.out_degree)
for t in range(3):  # path merging: M_t[u, v] ⇔ d(u, v) ≤ 2^t, exactly
    assert np.array_equal(path_merge(g.adj, t), (dist >= 0) & (dist <= 2 ** t))
print("M_t = M_{t-1}∘M_{t-1} matches d(u, v) ≤ 2^t for t = 0, 1, 2")

# %%
fig, ax = plt.subplots(figsize=(4.2, 3.2))
vertices = sorted({u for e in edges for u in e})
depth = {v: max(0, int(dist[g.start, v])) if dist[g.start, v] >= 0 else -1 for v in vertices}
rows: dict[int, int] = {}
xy = {}
for v in vertices:
    xy[v] = (depth[v], rows.setdefault(depth[v], 0))
    rows[depth[v]] += 1
for u, v in edges:
    ax.annotate("", xy=xy[v], xytext=xy[u], arrowprops=dict(arrowstyle="->", color="0.4"))
for v, (x, y) in xy.items():
    color = "C2" if v == g.goal else "C1" if v == g.start else "C0"
    ax.scatter([x], [y], s=300, color=color, zorder=3)
    ax.text(x, y, str(v), ha="center", va="center", color="white", zorder=4)
ax.set_xlabel("distance from the start (−1: not reachable)")
ax.set_ylabel("vertex (stacked)")
ax.set_title("the example graph: start orange, goal green")
plt.show()

# %% [markdown]
# ## 2. The searcher and its accuracy per lookahead
#
# Pre-LN, one head of full width, ReLU MLP, frozen one-hot tokens and positions concatenated
# (d_model = vocabulary + 16 + N), no causal mask, loss on the last position only. The run is trained
# once and stored (``get_or_train``); accuracy is measured on held-out test sets of each lookahead that
# training never saw, with the chance accuracy E[1/outdeg] on the same examples.

# %%
run = gs.trained(cfg)
model = run.load_model()
scores = gs_common.accuracy_by_lookahead(model, cfg.task, 200)
for s in scores:
    print(f"L={s.L}: accuracy {s.accuracy:.3f} (3σ Wilson lower bound {s.wilson_lower():.3f}), chance {s.chance:.3f}")

# %% [markdown]
# ## 3. Its attention on the example
#
# One head per layer: row = query position, column = key position. The last position (the current
# vertex s, where the answer is read) is the bottom row.

# %%
batch = collate([example], vocab)
logits, cache = model.run_with_cache(batch["inputs"], padding_mask=batch["padding_mask"], attn_path="reference")
pred = int(logits[0, -1].argmax())
print(f"predicted next vertex {pred}; useful: {example.useful}")
labels = [names.get(t, str(t)) for t in example.tokens]
first = next(i for i, t in enumerate(example.tokens) if t != vocab.pad)
fig, axes = plt.subplots(1, cfg.model.n_layers, figsize=(3.3 * cfg.model.n_layers, 3.4))
for layer, ax in enumerate(np.atleast_1d(axes)):
    pattern = cache[f"blocks.{layer}.attn.hook_pattern"][0, 0, first:, first:].numpy()
    ax.imshow(pattern, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels) - first), labels[first:], fontsize=6)
    ax.set_yticks(range(len(labels) - first), labels[first:], fontsize=6)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.set_title(f"layer {layer}")
plt.show()
last = cache[f"blocks.{cfg.model.n_layers - 1}.attn.hook_pattern"][0, 0, -1]
top = last.argsort(descending=True)[:3].tolist()
print("last layer, last position attends most to:", [(p, labels[p], round(float(last[p]), 2)) for p in top])

# %% [markdown]
# ## 4. The reachability probe, layer by layer
#
# At each layer boundary and each edge position holding vertex u, a logistic readout (fit on
# training graphs, scored on held-out ones) decodes the set of vertices reachable from u (forward)
# or reaching u (backward). Within each row, vertices at exact distance k are ranked against
# unreachable vertices of the same graph (AUC_k), and the radius Σ_k (2·AUC_k − 1) counts the
# distance shells the stream carries: 0 at the embeddings, growing with depth.

# %%
n_train, n_test = SIZES["tiny" if SCALE == "quick" else "quick"].probe_graphs
train_data, test_data = reach_radius.probe_data(model, cfg.task, 4 * n_train, 4 * n_test)
profile = reach_profile(train_data, test_data)
cols = ["layer", "direction", "precision", "recall", "radius"] + [c for c in profile.columns if c.startswith("auc_")]
print(profile[cols].round(3).to_string(index=False))

# %%
fig, ax = plt.subplots(figsize=(4.5, 3.2))
for direction, p in profile.groupby("direction"):
    ax.plot(p["layer"], p["radius"], "o-", label=direction)
ax.set_xlabel("layer l (0 = embeddings)")
ax.set_ylabel("decoded reach radius")
ax.legend()
plt.show()

# %% [markdown]
# ## 5. Attention-weight patching
#
# Each attention weight is set to 0, or raised to its row's maximum, and the model re-run from that
# layer; an operation is important when that lowers the answer's logit by more than 0.4. Kept
# operations (those connected to the answer) are classified by the exact graph: a *position step*
# inside an edge triple, a *token match* between sets that share a vertex, or a copy from the query.
# An example counts as explained by path merging when the answer position ends up knowing a path
# from the start through its answer to the goal. With many important operations that criterion is
# loose, so the same examples are scored again with every important operation's source drawn at
# random (same layers, destinations and count): the control's fraction is the criterion's chance level.

# %%
test = collate(task.test_set(min(2, task.max_lookahead), 8, seed=3), vocab)
graphs = explain(model, test["inputs"], vocab, test["padding_mask"])
control = explain(model, test["inputs"], vocab, test["padding_mask"], control_seed=0)
print("model:  ", {k: round(v, 3) for k, v in summary(graphs).items()})
print("control:", {k: round(v, 3) for k, v in summary(control).items()})
ex_tokens = test["inputs"][0].tolist()
print(f"first example: {len(graphs[0].kept)} kept operations; the 8 with the largest answer-logit drops "
      "(layer: dst ← src, tokens, class):")
for op in sorted(graphs[0].kept, key=lambda op: -op["drop"])[:8]:
    pair = f"{names.get(ex_tokens[op['dst']], ex_tokens[op['dst']])} ← {names.get(ex_tokens[op['src']], ex_tokens[op['src']])}"
    print(f"  {op['layer']}: {op['dst']} ← {op['src']}  ({pair}, {op['kind']}, drop {op['drop']:.2f}, {op['merge']})")
