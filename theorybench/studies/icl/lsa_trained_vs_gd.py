"""Trained linear self-attention read against k-step gradient descent, layer by layer.

"Transformers learn in-context by gradient descent" (von Oswald et al. 2023): linear self-attention
(LSA) trained on stacked tokens [x; y] (query [x_q; 0]) computes gradient descent in context: one
layer converges to one GD step with a tuned step size, K layers to K steps. "Trained Transformers
Learn Linear Models In-Context" (Zhang, Frei, Bartlett 2024): one layer converges to ŷ = x_qᵀ Γ⁻¹
(1/N) Σ y_i x_i, for x ~ N(0, I) one GD step with η = N/(N + d + 1).

Figure ``icl_lsa_trained_vs_gd``: LSA models of 1 … L layers trained from RANDOM Q, K, V, O (init
``"random_qkvo"``: fixed identity read-in, von Oswald's read-out ŷ = −(query's y-slot)), several seeds.
After every layer l the query's y-slot, read out as the model reads its last layer, is compared with
step l of L-layer GD++ (von Oswald et al.'s multi-layer match: GD steps that also condition the data
tokens; one layer of it is one GD step), its L steps and data updates tuned for the final error on the
held-out labels (``theory.icl.gd_path``); plain L-step GD is shown beside it: the relative prediction
difference ‖ŷ_l − ŷ_GD,l‖/‖ŷ_GD,l‖ and the mean cosine of the sensitivities ∂ŷ_l/∂x_q with ŵ_GD,l (ŷ_l is
affine in x_q, so its gradient is the layer's implicit weight vector exactly). Every metric is reported
at step 0 and at the end: from a random start the agreement must be learned, not inherited (the ZFB
initialization, kept for the notebook, is already a scaled GD step, so its cosine is 1 at step 0).

Every model is trained by the trainer (``theorybench.train``) into the run store, so runs are cached,
resumed and swept (``theorybench sweep icl_lsa_seeds``): each init is a config whose ``train.init_state``
(``toy_models.initial_states``) sets the fixed read-in/read-out or ZFB's start, whose ``train.frozen``
keeps those fixed, and whose ``train.snapshot_every`` keeps the weights at every evaluation step, from
which the trajectory is measured.
"""

from __future__ import annotations

import numpy as np
import torch

from theory.icl.gd_path import gd_plus_plus, step_grid, tuned_gd_path, tuned_gd_plus_plus
from theorybench.claims import Claim, Criterion, not_measured, t_interval
from theorybench.experiment import ExperimentConfig, OptimConfig, TrainConfig, derive_seed
from theorybench.registry import (ExperimentSpec, FigureResult, FigureSpec, SweepSpec, register_experiment,
                                  register_figure, register_sweep)
from theorybench.runs import get_or_train
from theorybench.runstore import Run
from theorybench.threads import single_thread
from theorybench.train import build_model, load_snapshot, snapshot_steps
from toy_models import ConfigError
from toy_models.constructions.lsa import lsa_config
from toy_models.initial_states import ZFB_INIT_SCALE
from toy_models.tasks.icl_regression import ICLRegressionConfig

from .sizes import TRAINED_LSA as SIZES
from .sizes import TrainedLSA

LSA_INITS = ("random_qkvo", "zfb", "toy_fixed_io", "toy_zfb_shaped", "toy_normal")
FIXED_IO_INIT_STD = 0.3  # generic random Q, K, V, O under the fixed read-in / read-out
NORMAL_INIT_STD = 0.1  # the toy's generic init="normal" that did not converge (kept as the diagnostic)
LSA_LABELS = {"random_qkvo": f"Q,K,V,O from normal({FIXED_IO_INIT_STD}); W_E = I, W_U = −e_y fixed",
              "zfb": "ZFB: W_KQ, W_PV trained from their init",
              "toy_fixed_io": f"toy Q,K,V,O from normal({FIXED_IO_INIT_STD}); W_E = I, W_U = e_y fixed",
              "toy_zfb_shaped": "toy, all weights trained, ZFB-shaped init",
              "toy_normal": f"toy, all weights trained, normal({NORMAL_INIT_STD}) init"}
# Per init: the model's init scheme and σ, the initial state set on top (toy_models.initial_states) and the
# parameters kept fixed (train.frozen).
READ_IN_OUT = ("embed.*", "unembed.W_U")
INIT_SETUPS = {
    "random_qkvo": ("normal", FIXED_IO_INIT_STD, "lsa_gd_readout", READ_IN_OUT),
    "zfb": ("zero", None, "lsa_zfb", READ_IN_OUT + ("blocks.0.attn.W_K", "blocks.0.attn.W_V")),
    "toy_fixed_io": ("normal", FIXED_IO_INIT_STD, "lsa_identity_readout", READ_IN_OUT),
    "toy_zfb_shaped": ("zero", None, "lsa_zfb_shaped", ()),
    "toy_normal": ("normal", NORMAL_INIT_STD, None, ()),
}
GD_GRID = 400  # step-size grid of the tuned GD references: adjacent steps differ by ~1.8 %

# Claims, fixed before any run. Thresholds: with ŷ_GD the optimum of the linear-moment class, a perturbation
# inside the class has excess risk E[(ŷ − ŷ_GD)²] = rel_diff² E[ŷ_GD²], so rel_diff ≤ 0.1 is within 1 % of
# E[ŷ_GD²] of the optimum; for sensitivities ŵ = ŵ_GD + δ with ‖δ_⊥‖/‖ŵ_GD‖ = r, cos = 1 − r²/2 + O(r⁴), so
# cos ≥ 0.99 allows the same ~10 % off-direction error. MOVED: the relative difference must fall by at least
# 0.5 from its step-0 value (a random start sits at ≈ 1 or above): the agreement is learned, not inherited.
REL_DIFF_MAX = 0.1
COSINE_MIN = 0.99
MOVED_MIN = 0.5
# Precondition: a K-layer LSA can represent K layers of GD++ (one head: score x_jᵀx_i, values −η into the
# y-slot and −γ x_i into the x-slots), so a trained model whose held-out MSE is above UNDERTRAINED_RATIO × the
# tuned K-layer GD++'s has not finished training; its claims are then not measured.
UNDERTRAINED_RATIO = 1.1
SOURCE = "Transformers learn in-context by gradient descent (von Oswald et al. 2023)"
CLAIMS = (
    Claim(key="one_layer_is_one_gd_step",
          statement="One linear self-attention layer trained from random Q, K, V, O computes one GD step with a tuned "
                    "step size (for isotropic x also the Zhang–Frei–Bartlett optimum)",
          source=SOURCE + ", fig. 2; Trained Transformers Learn Linear Models In-Context (Zhang, Frei, Bartlett 2024)",
          criteria=(Criterion(key="rel_diff_1", quantity="‖ŷ − ŷ_GD‖/‖ŷ_GD‖ after training, 1 layer (per seed)",
                              op="<=", threshold=REL_DIFF_MAX),
                    Criterion(key="cosine_1", quantity="mean cos(∂ŷ/∂x_q, ŵ_GD) after training, 1 layer (per seed)",
                              op=">=", threshold=COSINE_MIN),
                    Criterion(key="moved_1", quantity="relative difference at step 0 minus after training, 1 layer",
                              op=">=", threshold=MOVED_MIN))),
    Claim(key="layers_are_gd_steps",
          statement="A K-layer linear self-attention model trained from random Q, K, V, O computes K steps of GD++ (GD "
                    "steps that also condition the data tokens), layer by layer",
          source=SOURCE + ", section 3 (multi-layer, GD++)",
          criteria=(Criterion(key="rel_diff_deep",
                              quantity="largest over layers l of ‖ŷ_l − ŷ_ref,l‖/‖ŷ_ref,l‖ (step l of L-layer GD++, "
                                       "tuned), deepest model (per seed)", op="<=", threshold=REL_DIFF_MAX),
                    Criterion(key="moved_deep", quantity="last layer's relative difference at step 0 minus after "
                                                         "training, deepest model", op=">=", threshold=MOVED_MIN))),
)


def lsa_learner(d: int, N: int, init: str, seed: int = 0, dtype: str = "float32", n_layers: int = 1):
    """A linear-self-attention toy model (``lsa_config``), initialized by name for training: the model the
    run of ``lsa_experiment`` starts from (``seed`` is the experiment's seed; the model's is derived from it).

    Toy conventions (``toy_models.constructions.lsa``): token j receives
    Σ_i (e_jᵀ W_Q W_Kᵀ e_i)/N · e_iᵀ W_V W_O on top of its residual, read out through W_U.

    - ``"zfb"``: the parametrization and initialization of Zhang, Frei, Bartlett ("Trained
      Transformers Learn Linear Models In-Context"): f(E) = E + W^{PV} E M (Eᵀ W^{KQ} E)/N with the
      identity embedding and ŷ the query's y-slot. In the toy: W_E = I, b_E = 0, W_K = W_V = I and
      W_U = e_{d+1} frozen (``requires_grad=False``), W_Q = (W^{KQ})ᵀ and W_O = (W^{PV})ᵀ trained as
      full (d+1)×(d+1) matrices. Init W^{PV}(0) = σ e_{d+1}e_{d+1}ᵀ, W^{KQ}(0) = σ [[ΘΘᵀ, 0], [0, 0]],
      ‖ΘΘᵀ‖_F = 1; here Θ = d^{-1/4} I and σ = ``ZFB_INIT_SCALE``.
      At this init the model is already a (tiny) GD step, ŷ = σ² x_qᵀ (1/√d) (1/N) Σ y_i x_i, so its
      sensitivity cosine to ŵ_GD starts at 1: what training must find is the scale and the blocks.
    - ``"toy_fixed_io"``: a generic start: W_Q, W_K, W_V, W_O ~ N(0, ``FIXED_IO_INIT_STD``²) in the
      toy's factored weights (all trained), under the fixed read-in W_E = I, b_E = 0 and read-out
      W_U = e_{d+1} (frozen).
    - ``"toy_zfb_shaped"``: ZFB's initial function in the toy's own factored weights, every parameter
      trained: W_Q = W_K = √σ [[Θ, 0], [0, 0]], W_V = W_O = √σ e_{d+1}e_{d+1}ᵀ, W_E = I, W_U = e_{d+1}.
    - ``"toy_normal"``: the toy's ``init="normal"`` (std ``NORMAL_INIT_STD``), every parameter trained.
    - ``"random_qkvo"`` (any ``n_layers``; the others are one layer): every layer's W_Q, W_K, W_V, W_O
      ~ N(0, ``FIXED_IO_INIT_STD``²), all trained, under the fixed read-in W_E = I and the read-out
      W_U = −e_{d+1} of von Oswald et al.'s construction (``toy_models.constructions.lsa``), so that k
      steps of GD are representable by k layers at every depth (with W_U = +e_{d+1} they are not beyond
      one layer: the context's residuals and the query's prediction would need opposite signs).
    """
    return build_model(lsa_experiment(dict(d=d, N=N, batch=1, steps=1, lr=1e-2, eval_every=1), init, n_layers,
                                      seed, dtype).resolved())


def lsa_experiment(size: dict, init: str = "random_qkvo", n_layers: int = 1, seed: int = 0,
                   dtype: str = "float32") -> ExperimentConfig:
    """The run that trains ``lsa_learner(d, N, init, seed, n_layers=n_layers)`` with AdamW (no decay, lr
    cosine-decayed to 0) on the noiseless stacked task, ``size`` giving d, N, batch, steps, lr and
    eval_every: its weights are kept at step 0, every ``eval_every`` steps and at the end
    (``train.snapshot_every``), where ``lsa_result`` measures them."""
    if init not in LSA_INITS:
        raise ConfigError("init", init, f"one of {', '.join(map(repr, LSA_INITS))}")
    if not isinstance(n_layers, int) or isinstance(n_layers, bool) or n_layers < 1 or (
            n_layers > 1 and init != "random_qkvo"):
        raise ConfigError("n_layers", n_layers, "a positive integer; above 1 only with init='random_qkvo'")
    scheme, std, state, frozen = INIT_SETUPS[init]
    d, N, steps, every = size["d"], size["N"], size["steps"], size["eval_every"]
    model = lsa_config(d, n_layers=n_layers, n_ctx=N + 1, dtype=dtype)
    if scheme == "normal":
        model = model.replace(init="normal", init_std=std)
    # The trainer's own evaluation (task.metrics, on its fixed set) once, at the end: the figure measures the
    # snapshots on its own held-out prompts.
    train = TrainConfig(steps=steps, batch_size=size["batch"], eval_every=steps, eval_batches=1,
                        checkpoint_every=every, log_every=every, init_state=state, frozen=frozen, snapshot_every=every)
    return ExperimentConfig(name=f"icl_lsa_{init}", seed=seed, model=model, train=train,
                            task=ICLRegressionConfig(d=d, n_points=N, tokenization="stacked", dtype=dtype),
                            optim=OptimConfig(name="adamw", lr=size["lr"], schedule="cosine"))


def layer_readouts(model, batch: dict) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """After each layer l: the query's prediction ŷ_l [B] (its residual read through the model's own W_U) and
    its sensitivity ∂ŷ_l/∂x_q [B, d], float64."""
    d = batch["X"].shape[-1]
    L = len(model.blocks)
    inputs = batch["inputs"].detach().clone().to(model.embed.W_E.dtype).requires_grad_(True)
    store: dict[int, torch.Tensor] = {}

    def keep(layer):
        def hook(act, hook):
            store[layer] = act
        return hook

    hooks = [(f"blocks.{layer}.hook_resid_post", keep(layer)) for layer in range(L)]
    model.run_with_hooks(inputs, attn_mask=batch["attn_mask"], fwd_hooks=hooks)
    w_u = model.unembed.W_U[:, 0]
    preds, grads = [], []
    for layer in range(L):
        y = store[layer][:, -1] @ w_u
        (g,) = torch.autograd.grad(y.sum(), inputs, retain_graph=layer < L - 1)  # prompts are independent
        preds.append(y.detach().double())
        grads.append(g[:, -1, :d].double())
    return preds, grads


def gd_references(batch: dict, k_max: int) -> dict:
    """The layer-by-layer reference on ``batch`` for a ``k_max``-layer model: the trajectory of k_max-layer GD++
    (``gd_plus_plus``; its steps η_t and data updates γ_t tuned on the batch's labels for the final error;
    one layer of GD++ is one GD step), its iterate l the reference of the model's layer l: ``y``
    [k_max + 1, B], ``w`` {l: [B, d]}, ``mse`` [k_max + 1]; and plain k-step GD (step tuned per k on a
    ``GD_GRID`` grid) as ``gd_y``, ``gd_mse``, ``gd_eta``."""
    X, y, x_q, y_q = (batch[k].double() for k in ("X", "y", "x_query", "y_query"))
    plain = tuned_gd_path(X, y, x_q, y_q, k_max, etas=step_grid(X, GD_GRID))
    plus = tuned_gd_plus_plus(X, y, x_q, y_q, k_max)
    ys = gd_plus_plus(X, y, x_q, plus["eta"], plus["gamma"])
    d = X.shape[-1]
    ws = gd_plus_plus(X, y, torch.eye(d, dtype=torch.float64).expand(len(X), d, d), plus["eta"], plus["gamma"])
    return {"y": ys, "w": {k: ws[k] for k in range(1, k_max + 1)}, "mse": ((ys - y_q) ** 2).mean(-1),
            "params": (plus["eta"], plus["gamma"]), "gd_y": plain.y_hat, "gd_mse": plain.mse, "gd_eta": plain.eta}


def compare_layers(model, batch: dict, refs: dict) -> dict:
    """Per layer l (lists): ``rel_diff`` ‖ŷ_l − ŷ_ref,l‖/‖ŷ_ref,l‖ and ``cosine`` mean cos(∂ŷ_l/∂x_q, ŵ_ref,l)
    against step l of the tuned GD++ trajectory (``gd_references``; one GD step for one layer); and, for the last
    layer, the held-out ``mse``, the reference's ``gd_mse`` and both predictions (``y_model``, ``y_gd``)."""
    preds, grads = layer_readouts(model, batch)
    y_q = batch["y_query"].double()
    rel, cos = [], []
    for layer, (y_l, g_l) in enumerate(zip(preds, grads), start=1):
        y_gd = refs["y"][layer]
        rel.append(float((y_l - y_gd).norm() / y_gd.norm()))
        cos.append(float(torch.nn.functional.cosine_similarity(g_l, refs["w"][layer], dim=-1).mean()))
    L = len(preds)
    return dict(rel_diff_layers=rel, cosine_layers=cos, rel_diff=rel[-1], cosine=cos[-1],
                mse=float(((preds[-1] - y_q) ** 2).mean()), gd_mse=float(refs["mse"][L]),
                y_model=preds[-1], y_gd=refs["y"][L])


def train_lsa(d: int, N: int, init: str, batch: int, steps: int, lr: float, eval_every: int,
              eval_prompts: int, seed: int = 0, progress: bool = False, n_layers: int = 1, **_) -> dict:
    """Train (or reuse from the run store) ``lsa_experiment`` for these sizes and measure it (``lsa_result``)."""
    cfg = lsa_experiment(dict(d=d, N=N, batch=batch, steps=steps, lr=lr, eval_every=eval_every), init, n_layers, seed)
    with single_thread():  # a few hundred weights: extra intra-op threads only cost
        return lsa_result(get_or_train(cfg, progress=progress), eval_prompts)


def lsa_result(run: Run, eval_prompts: int) -> dict:
    """Every snapshot of a run of ``lsa_experiment`` compared layer by layer with tuned k-step GD on
    ``eval_prompts`` held-out prompts (``compare_layers``; drawn from the run's seed).

    Returns the final model, the trace (step, mse, rel_diff, cosine of the last layer; rel_diff_layers,
    cosine_layers per layer), the final ``compare_layers``, ``start`` (the step-0 one), the references
    (``gd_references``) and ``eta`` (the tuned step of plain L-step GD).
    """
    cfg = run.config
    n_layers = cfg.model.n_layers
    held_out = cfg.task.build().sample(eval_prompts, torch.Generator().manual_seed(derive_seed(cfg.seed,
                                                                                                "icl_lsa_eval")))
    refs = gd_references(held_out, n_layers)
    keys = ("mse", "rel_diff", "cosine", "rel_diff_layers", "cosine_layers")
    trace: dict = {"step": [], **{k: [] for k in keys}}
    with single_thread():
        for step in snapshot_steps(run.dir):
            model = load_snapshot(run, step)
            result = compare_layers(model, held_out, refs)
            for key in keys:
                trace[key].append(result[key])
            trace["step"].append(step)
    start = {k: trace[k][0] for k in keys}
    return {"model": model, "trace": trace, "final": result, "start": start, "refs": refs,
            "eta": float(refs["gd_eta"][n_layers])}


def zfb_effective_matrix(model) -> torch.Tensor:
    """For the ``"zfb"`` parametrization: M = W^{PV}_{d+1,d+1} · W^{KQ}_{1:d,1:d}ᵀ (= W_O[d, d] W_Q[:d, :d]),
    the matrix of ŷ = x_qᵀ M (1/N) Σ y_i x_i carried by the blocks ZFB's optimum uses."""
    attn = model.blocks[0].attn
    d = attn.W_Q.shape[1] - 1
    return (attn.W_O[0, d, d] * attn.W_Q[0, :d, :d]).detach().double()




def size_fields(size: TrainedLSA) -> dict:
    """The fields of ``size`` that ``lsa_experiment`` builds a run from, under its argument names."""
    return dict(d=size.d, N=size.n_points, batch=size.batch_size, steps=size.steps, lr=size.lr,
                eval_every=size.eval_every)


def lsa_members(scale: str) -> list[ExperimentConfig]:
    """Trained LSA from random Q, K, V, O: every depth × seed the figure icl_lsa_trained_vs_gd reads."""
    size = SIZES[scale]
    return [lsa_experiment(size_fields(size), "random_qkvo", L, s) for L in size.depths for s in range(size.seeds)]


def lsa_one_layer(scale: str) -> ExperimentConfig:
    """One linear self-attention layer trained from random Q, K, V, O (von Oswald et al. 2023), seed 0."""
    return lsa_experiment(size_fields(SIZES[scale]), "random_qkvo", 1, 0)


register_experiment(ExperimentSpec("icl_lsa", "icl", lsa_one_layer))
LSA_SWEEP = register_sweep(SweepSpec("icl_lsa_seeds", "icl", lsa_members))


def train_at(size: TrainedLSA, init: str, n_layers: int = 1, seed: int = 0, progress: bool = False) -> dict:
    """``train_lsa`` with the dimensions, batch, schedule and evaluation of ``size``."""
    return train_lsa(init=init, eval_prompts=size.eval_prompts, seed=seed, progress=progress, n_layers=n_layers,
                     **size_fields(size))


def lsa_runs(size: TrainedLSA) -> dict:
    """{depth: [``lsa_result`` per seed]} for the ``"random_qkvo"`` init at every depth of ``size``, trained or
    reused from the run store (the members of sweep ``icl_lsa_seeds``)."""
    runs: dict = {}
    with single_thread():  # a few hundred weights: extra intra-op threads only cost
        for L in size.depths:
            runs[L] = [lsa_result(get_or_train(lsa_experiment(size_fields(size), "random_qkvo", L, s)),
                                  size.eval_prompts) for s in range(size.seeds)]
    return runs


def undertrained(runs: list) -> str:
    """Why the runs of one depth are not finished training ('' if they are): their mean held-out MSE is above
    UNDERTRAINED_RATIO × the tuned GD++ reference's of as many layers (which the depth can represent)."""
    mse = float(np.mean([r["final"]["mse"] for r in runs]))
    gd = float(np.mean([r["final"]["gd_mse"] for r in runs]))
    L = len(runs[0]["final"]["rel_diff_layers"])
    if mse <= UNDERTRAINED_RATIO * gd:
        return ""
    return (f"the {L}-layer models are undertrained: held-out MSE {mse:.3g} > {UNDERTRAINED_RATIO} × tuned {L}-layer "
            f"GD++'s {gd:.3g} (which {L} layers can represent)")


def lsa_measurements(runs: dict) -> dict:
    """A Measurement (t interval over seeds) for every criterion of ``CLAIMS`` from ``lsa_runs``; not measured
    (with the reason) for a depth whose models are ``undertrained``."""
    one, deep = runs[1], runs[max(runs)]
    out = {}
    why = undertrained(one)
    out.update({k: not_measured(why) for k in ("rel_diff_1", "cosine_1", "moved_1")} if why else {
        "rel_diff_1": t_interval([r["final"]["rel_diff"] for r in one]),
        "cosine_1": t_interval([r["final"]["cosine"] for r in one]),
        "moved_1": t_interval([r["start"]["rel_diff"] - r["final"]["rel_diff"] for r in one])})
    why = undertrained(deep) if max(runs) > 1 else "no model deeper than one layer at this scale"
    out.update({k: not_measured(why) for k in ("rel_diff_deep", "moved_deep")} if why else {
        "rel_diff_deep": t_interval([max(r["final"]["rel_diff_layers"]) for r in deep]),
        "moved_deep": t_interval([r["start"]["rel_diff"] - r["final"]["rel_diff"] for r in deep])})
    return out


def measure(size: TrainedLSA) -> dict:
    """``runs``: {depth: [``train_lsa`` result per seed]} (``lsa_runs``), and the ``size``."""
    return {"runs": lsa_runs(size), "size": size}


def plot(data: dict):
    """Held-out error over training, the last layer's agreement over training, and layer by layer at the end."""
    import matplotlib.pyplot as plt  # start-up time: matplotlib

    size, runs = data["size"], data["runs"]
    d, N = size.d, size.n_points
    depths = sorted(runs)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    ax = axes[0]
    for i, L in enumerate(depths):
        for s, run in enumerate(runs[L]):
            ax.plot(run["trace"]["step"], run["trace"]["mse"], color=f"C{i}", alpha=0.7,
                    label=f"{L}-layer LSA (seeds)" if s == 0 else None)
        ax.axhline(float(runs[L][0]["refs"]["mse"][L]), color=f"C{i}", ls="--", lw=1, label=f"{L}-layer GD++, tuned")
        ax.axhline(float(runs[L][0]["refs"]["gd_mse"][L]), color=f"C{i}", ls=":", lw=1, label=f"{L}-step GD, tuned η")
    ax.axhline(d, color="0.5", ls=":", lw=1, label="predict 0 (E y² = d)")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("held-out MSE  E[(ŷ − y)²]")
    ax.set_title(f"test error from random Q, K, V, O (d = {d}, N = {N}, noiseless)")
    ax.legend(fontsize=6.5)

    ax = axes[1]
    for i, L in enumerate(depths):
        for run in runs[L]:
            ax.plot(run["trace"]["step"], run["trace"]["rel_diff"], color=f"C{i}")
            ax.plot(run["trace"]["step"], 1 - np.array(run["trace"]["cosine"]), color=f"C{i}", ls=":")
    ax.plot([], [], color="0.3", label="‖ŷ_L − ŷ_ref,L‖ / ‖ŷ_ref,L‖ (last layer)")
    ax.plot([], [], color="0.3", ls=":", label="1 − cos(∂ŷ_L/∂x_q, ŵ_ref,L)")
    ax.axhline(REL_DIFF_MAX, color="k", lw=0.8, ls="-.", label=f"criterion {REL_DIFF_MAX}")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("disagreement with the tuned L-layer reference")
    ax.set_title("agreement over training, from its step-0 value")
    ax.legend(fontsize=7)

    ax = axes[2]
    deep = runs[depths[-1]]
    layers = np.arange(1, depths[-1] + 1)
    for s, run in enumerate(deep):
        ax.plot(layers, run["start"]["rel_diff_layers"], "x:", color=f"C{s}", alpha=0.6,
                label=f"seed {s}, step 0")
        ax.plot(layers, run["final"]["rel_diff_layers"], "o-", color=f"C{s}", label=f"seed {s}, trained")
    ax.axhline(REL_DIFF_MAX, color="k", lw=0.8, ls="-.")
    ax.set_yscale("log")
    ax.set_xticks(layers)
    ax.set_xlabel("layer l of the deepest model")
    ax.set_ylabel("‖ŷ_l − ŷ_ref,l‖ / ‖ŷ_ref,l‖  (step l of tuned GD++)")
    ax.set_title(f"layer by layer, {depths[-1]}-layer LSA")
    ax.legend(fontsize=6.5)
    return fig


def numbers(data: dict) -> dict:
    size, runs = data["size"], data["runs"]
    out: dict = {}
    for L in sorted(runs):
        fin = np.array([r["final"]["rel_diff_layers"] for r in runs[L]])
        cos = np.array([r["final"]["cosine_layers"] for r in runs[L]])
        st = np.array([r["start"]["rel_diff_layers"] for r in runs[L]])
        st_cos = np.array([r["start"]["cosine_layers"] for r in runs[L]])
        out[f"{L}-layer: rel. difference per layer, step 0 → trained (mean over seeds)"] = ", ".join(
            f"{a:.3g} → {b:.3g}" for a, b in zip(st.mean(0), fin.mean(0)))
        out[f"{L}-layer: sensitivity cosine per layer, step 0 → trained (mean over seeds)"] = ", ".join(
            f"{a:.3g} → {b:.4g}" for a, b in zip(st_cos.mean(0), cos.mean(0)))
        refs = runs[L][0]["refs"]
        out[f"{L}-layer: held-out MSE (mean over seeds) / tuned {L}-layer GD++ / tuned {L}-step GD"] = (
            f"{np.mean([r['final']['mse'] for r in runs[L]]):.4g} / {float(refs['mse'][L]):.4g} / "
            f"{float(refs['gd_mse'][L]):.4g}")
        gd_rel = [float((r["final"]["y_model"] - r["refs"]["gd_y"][L]).norm() / r["refs"]["gd_y"][L].norm())
                  for r in runs[L]]
        out[f"{L}-layer: last layer's rel. difference to plain {L}-step GD (mean over seeds)"] = round(
            float(np.mean(gd_rel)), 4)
    out["training steps"] = size.steps
    out["seeds per depth"] = size.seeds
    return out


def make(scale: str) -> FigureResult:
    data = measure(SIZES[scale])
    return FigureResult(plot(data), numbers(data), lsa_measurements(data["runs"]))


register_figure(FigureSpec(
    name="icl_lsa_trained_vs_gd",
    family="icl",
    claim=("Linear self-attention trained on stacked tokens [x; y] computes gradient descent in context: one layer one "
           "GD step with a tuned step size, K layers K steps ('Transformers learn in-context by gradient descent', von "
           "Oswald et al. 2023; for one layer and isotropic x the optimum of 'Trained Transformers Learn Linear Models "
           "In-Context', Zhang, Frei, Bartlett 2024); for several layers von Oswald et al. found GD++, GD steps that "
           "also condition the data. Here from random Q, K, V, O, several seeds per depth, each layer compared with "
           "step l of tuned L-layer GD++ (plain L-step GD shown); every metric shown from its step-0 value."),
    make=make,
    claims=CLAIMS,
))
