"""Out-of-distribution prompts: does the trained in-context learner survive shifts that least squares survives?

"What Can Transformers Learn In-Context? A Case Study of Simple Function Classes" (Garg et al. 2022,
section 4) evaluate their trained model on prompts drawn unlike its training prompts and compare it
with least squares under each shift. The shifts here follow the evaluation strategies of the authors'
public code: a skewed input covariance (eigenvalues ∝ 1/i, rescaled to trace d, random basis); inputs
scaled by 1/2 and by 2; in-context inputs in one random orthant (x ↦ |x| ⊙ s per prompt) with the query
from the training law; inputs in a random d/2-dimensional subspace (rescaled to E‖x‖² = d); a query
orthogonal to the in-context inputs (its norm kept; defined for fewer than d examples); noisy labels
(σ = 1 on the in-context labels); and prompts longer than trained.

Harness. A shift acts on inputs and labels only, so it applies to any function class y = f(x):
``OOD_TASKS`` maps a registered task name to an ``OODTask`` that draws the functions from the task's
config, gives the labels' second moment E[y²] the errors are divided by, and names the reference
predictors and the one the criterion compares with. Linear regression (E[y²] = d: the errors read as
error/d) and the function classes of ``function_classes`` (sparse linear, decision trees, two-layer ReLU
networks: their task's own functions and E[y²], their figure's baselines, the strong one as the
criterion's) are registered; another task plugs in with ``register_ood_task(name, OODTask(...))``. For
each number of in-context examples k, the model reads k shifted examples and the (shifted) query — one
prompt per k, as the query may depend on the examples — and is scored against the noiseless label:
(ŷ − f(x_q))² / E[y²].

Claims, one per shift, fixed here: the model "survives" a shift when its excess error over least squares
(mean of error/d over the shift's window of k) grows by at most ``SURVIVAL_MARGIN`` = 0.05 (5 % of the
predict-zero error) from its in-distribution value, per seed, with a t interval over seeds. The paper's
outcome per shift is NOT asserted here (not verified from the paper): the verdicts state the comparison.
They are judged only for a least-squares-level learner (the Garg criteria of ``icl_estimator_errors`` at a
scale sized for it); elsewhere not measured, with the numbers still shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from theory.icl import predictors as P
from theory.icl.references import knn_capped
from theorybench.claims import Claim, Criterion, not_measured, t_interval
from theorybench.experiment import derive_seed
from theorybench.registry import FigureResult, FigureSpec, register_figure
from theorybench.runs import get_or_train
from theorybench.threads import single_thread
from toy_models.tasks.icl_regression import interleave_tokens

from .common import GARG_SOURCE, LS_LEVEL, window
from .experiments import garg_configs
from .function_classes import class_baselines
from .sizes import OOD_SHIFTS as SIZES
from .sizes import OODShifts

F64 = torch.float64
SURVIVAL_MARGIN = 0.05
NOISY_LABEL_STD = 1.0  # the authors' noisy evaluation uses σ = 1


# ------------------------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class OODTask:
    """What the harness needs of a function class, each read from the task's config ``cfg``: ``draw(cfg, B, gen)``
    returns f with f(X [B, n, d]) = y [B, n] (float64); ``second_moment(cfg)`` E[y²] under the training law, the
    errors' normalization (predicting 0 scores 1 in distribution); ``references(cfg, noise_std)`` the predictors
    {name: fn(X, y, x_q) -> Prediction}; ``baseline`` the reference the survival criterion compares with, named
    whole or by the start of its name (the Lasso's label carries its α)."""

    draw: Callable[[object, int, torch.Generator], Callable[[torch.Tensor], torch.Tensor]]
    second_moment: Callable[[object], float]
    references: Callable[[object, float], dict]
    baseline: str


def _draw_linear(cfg, B: int, gen: torch.Generator):
    w = torch.randn(B, cfg.d, generator=gen, dtype=F64)
    return lambda X: torch.einsum("bnd,bd->bn", X, w)


def _linear_references(cfg, noise_std: float) -> dict:
    refs = {"least squares": P.least_squares, "averaging": P.averaging, "3-NN": knn_capped(3)}
    if noise_std > 0:
        refs[f"ridge λ = σ² = {noise_std**2:g}"] = lambda X, y, q: P.ridge(X, y, q, noise_std**2)
    return refs


def _draw_class(cfg, B: int, gen: torch.Generator):
    """A function-class task's own law (``FunctionClassTask.draw_functions`` at its final d)."""
    task = cfg.build()
    params = task.draw_functions(B, cfg.d, gen)
    return lambda X: task.evaluate(params, X.to(F64))


def _class_task(cls: str, baseline: str) -> OODTask:
    return OODTask(_draw_class, lambda cfg: float(cfg.build().label_second_moment()),
                   lambda cfg, noise_std: class_baselines(cls, cfg), baseline)


# The function classes compare with Garg et al.'s strong learner of each (their figure 4); XGBoost is the better
# of their two tree learners.
OOD_TASKS: dict[str, OODTask] = {
    "icl_regression": OODTask(_draw_linear, lambda cfg: float(cfg.d), _linear_references, "least squares"),
    "icl_sparse_linear": _class_task("sparse_linear", "Lasso"),
    "icl_decision_tree": _class_task("decision_tree", "XGBoost"),
    "icl_relu_network": _class_task("relu_network", "2-layer NN, GD"),
}


def register_ood_task(name: str, task: OODTask) -> OODTask:
    """Make the shifts available to the task registered as ``name`` in ``toy_models.tasks``."""
    if not isinstance(task, OODTask):
        raise TypeError(f"register_ood_task({name!r}): expected an OODTask, got {type(task).__name__}")
    OOD_TASKS[name] = task
    return task


# ------------------------------------------------------------------------------------------- shifts
@dataclass(frozen=True)
class Shift:
    """``inputs(B, n, d, gen)`` draws the prompt's inputs [B, n, d] (context and query rows); ``query(X_ctx,
    x_q, gen)`` may replace the query given the k examples; ``noise_std`` is the in-context label noise;
    ``window(d, N)`` the examples k the criterion averages over."""

    key: str
    label: str
    inputs: Callable
    query: Callable | None = None
    noise_std: float = 0.0
    window: Callable[[int, int], range] = lambda d, N: range(d + 1, min(2 * d, N) + 1)
    extra_examples: bool = False


def _gaussian(B, n, d, gen):
    return torch.randn(B, n, d, generator=gen, dtype=F64)


def _random_basis(d: int, gen: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=F64))
    return q * torch.sign(torch.diagonal(r))  # the Haar-distributed orthogonal matrix


def _with_covariance(eigenvalues: Callable[[int], torch.Tensor]):
    """Inputs N(0, U diag(λ) Uᵀ) with λ rescaled to sum d (E‖x‖² = d, as in training), U one random basis
    per evaluation."""
    def draw(B, n, d, gen):
        lam = eigenvalues(d)
        lam = lam * d / lam.sum()
        U = _random_basis(d, gen)
        return _gaussian(B, n, d, gen) @ (U * lam.sqrt()) @ U.T
    return draw


def _scaled(factor: float):
    return lambda B, n, d, gen: factor * _gaussian(B, n, d, gen)


def _orthant_context(B, n, d, gen):
    """Every input of a prompt in one random orthant; ``_fresh_query`` then draws the query from N(0, I)."""
    signs = torch.randint(0, 2, (B, 1, d), generator=gen, dtype=F64) * 2 - 1
    return _gaussian(B, n, d, gen).abs() * signs


def _fresh_query(X_ctx, x_q, gen):
    return torch.randn(x_q.shape, generator=gen, dtype=F64)


def _orthogonal_query(X_ctx, x_q, gen):
    """x_q minus its projection on the span of the k examples, rescaled to its original norm; for k ≥ d the
    examples span the space and the query is left as drawn (the shift's window stops at k = d − 1)."""
    if X_ctx.shape[1] >= X_ctx.shape[2]:
        return x_q
    Q, _ = torch.linalg.qr(X_ctx.transpose(1, 2))  # [B, d, k] orthonormal basis of the span (k < d)
    perp = x_q - (Q @ (Q.transpose(1, 2) @ x_q[..., None]))[..., 0]
    return perp * (x_q.norm(dim=-1, keepdim=True) / perp.norm(dim=-1, keepdim=True).clamp_min(1e-300))


def _half_subspace(d: int) -> torch.Tensor:
    lam = torch.full((d,), 1e-12, dtype=F64)  # a positive floor keeps the sqrt finite; ≈ 0 variance
    lam[: max(1, d // 2)] = 1.0
    return lam


SHIFTS = (
    Shift("in_distribution", "in distribution", _gaussian),
    Shift("skewed_covariance", "skewed covariance (λ_i ∝ 1/i)",
          _with_covariance(lambda d: 1.0 / torch.arange(1, d + 1, dtype=F64))),
    Shift("inputs_half", "inputs × 1/2", _scaled(0.5)),
    Shift("inputs_double", "inputs × 2", _scaled(2.0)),
    Shift("orthant_context", "examples in one orthant, query from N(0, I)", _orthant_context, query=_fresh_query),
    Shift("half_subspace", "inputs in a random d/2-dim subspace", _with_covariance(_half_subspace),
          window=lambda d, N: range(max(1, d // 2) + 1, min(2 * d, N) + 1)),
    Shift("orthogonal_query", "query orthogonal to the examples", _gaussian, query=_orthogonal_query,
          window=lambda d, N: range(1, min(d - 1, N) + 1)),
    Shift("noisy_labels", f"noisy in-context labels (σ = {NOISY_LABEL_STD:g})", _gaussian, noise_std=NOISY_LABEL_STD),
    Shift("longer_prompt", "prompt longer than trained", _gaussian, extra_examples=True,
          window=lambda d, N: range(N + 1, N + 3)),
)


# ------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_shift(model, task_cfg, shift: Shift, prompts: int, seed: int = 0, extra: int = 0) -> dict | None:
    """Per prompt and number of examples k = 0 … N (+ ``extra`` for the longer prompt): squared error against the
    noiseless label over E[y²] (error/d for linear regression) of the model and of every reference, [prompts,
    K + 1] arrays (column 0: no example, every predictor says 0). None when the model's context cannot hold the
    prompt (learned positions cover the trained length only)."""
    task = OOD_TASKS[task_cfg.task_name]
    d, N = task_cfg.d, task_cfg.n_points
    m2 = task.second_moment(task_cfg)
    K = N + (extra if shift.extra_examples else 0)
    if 2 * K + 1 > model.cfg.n_ctx:
        return None
    gen = torch.Generator().manual_seed(derive_seed(seed, f"icl_ood_{shift.key}"))
    f = task.draw(task_cfg, prompts, gen)
    X = shift.inputs(prompts, K + 1, d, gen)
    noise = shift.noise_std * torch.randn(prompts, K, generator=gen, dtype=F64)
    refs = task.references(task_cfg, shift.noise_std)
    dtype = next(model.parameters()).dtype
    out: dict[str, list] = {name: [] for name in ("model", *refs)}
    for k in range(K + 1):
        ctx = X[:, :k]
        q = X[:, k] if shift.query is None or k == 0 else shift.query(ctx, X[:, k], gen)
        y = f(ctx) + noise[:, :k]
        target = f(q[:, None])[:, 0]
        y_model = model(interleave_tokens(ctx, y, q).to(dtype))[:, -1, 0].double()
        out["model"].append(((y_model - target) ** 2).numpy() / m2)
        for name, fn in refs.items():  # with no example every reference predicts 0
            y_ref = fn(ctx, y, q).y_hat if k else torch.zeros_like(target)
            out[name].append(((y_ref - target) ** 2).numpy() / m2)
    return {name: np.stack(cols, 1) for name, cols in out.items()}


def excess_over_baseline(errors: dict, baseline: str, window: range) -> float:
    """Mean over prompts and the window's k of the model's normalized error minus the baseline's (``baseline``:
    a reference's name, or the start of exactly one)."""
    cols = list(window)
    return float((errors["model"][:, cols] - errors[reference_name(errors, baseline)][:, cols]).mean())


def reference_name(errors: dict, baseline: str) -> str:
    """The key of ``errors`` that is ``baseline`` or, failing that, the only one that starts with it."""
    if baseline in errors:
        return baseline
    matches = [name for name in errors if name.startswith(baseline)]
    if len(matches) != 1:
        raise KeyError(f"baseline {baseline!r} names {len(matches)} of the references {sorted(errors)}; expected one")
    return matches[0]


def shift_claim(shift: Shift) -> Claim:
    return Claim(
        key=f"survives_{shift.key}",
        statement=f"The trained model stays as close to least squares under '{shift.label}' as in distribution",
        source=GARG_SOURCE.replace("fig. 2", "section 4"),
        criteria=(Criterion(key=f"{shift.key}_growth",
                            quantity="growth of the model's excess error/d over least squares from in distribution, "
                                     "over the shift's window of k (per seed)",
                            op="<=", threshold=SURVIVAL_MARGIN),))


CLAIMS = tuple(shift_claim(s) for s in SHIFTS if s.key != "in_distribution")


def measure(size: OODShifts) -> dict:
    """Every seed of the Garg transformer of ``size.garg`` evaluated under every shift: {"curves": {shift key:
    [per-seed errors or None]}, "task_cfg", "size"}."""
    with single_thread():
        runs = [get_or_train(cfg) for cfg in garg_configs(size.garg)]
        task_cfg = runs[0].config.task
        models = [r.load_model() for r in runs]
        curves = {s.key: [evaluate_shift(m, task_cfg, s, size.prompts, seed=i, extra=size.extra_examples)
                          for i, m in enumerate(models)] for s in SHIFTS}
    return {"curves": curves, "task_cfg": task_cfg, "size": size}


def ood_measurements(curves: dict, task_cfg, decides: bool, scale: str) -> tuple[dict, dict]:
    """(measured, numbers): per shift, the per-seed growth of the excess over the baseline (t interval), not
    measured where the scale or the learner cannot decide it, or where the shift cannot be posed."""
    d, N = task_cfg.d, task_cfg.n_points
    baseline = OOD_TASKS[task_cfg.task_name].baseline
    base_window = window(d, N)
    inside = [excess_over_baseline(e, baseline, range(base_window.start, base_window.stop))
              for e in curves["in_distribution"]]
    err_ls = max(float(e["model"][:, base_window].mean(0).max()) for e in curves["in_distribution"])
    numbers: dict = {"in distribution: model excess error/d over least squares (mean over seeds)":
                     round(float(np.mean(inside)), 4)}
    gate = "" if decides and err_ls <= LS_LEVEL else (
        f"the {scale} scale is not sized for a least-squares-level learner" if not decides else
        f"the learner is not at least-squares level (error/d {err_ls:.3g} > {LS_LEVEL} in distribution)")
    measured = {}
    for s in SHIFTS[1:]:
        key = f"{s.key}_growth"
        ks = s.window(d, N)
        if any(e is None for e in curves[s.key]) or len(ks) == 0:
            why = ("the model's learned positions cover the trained prompt length only" if s.extra_examples else
                   f"no k in the shift's window at d = {d}, N = {N}")
            measured[key] = not_measured(why)
            numbers[f"{s.label}: growth of excess error/d"] = "not measurable: " + why
            continue
        growth = [excess_over_baseline(e, baseline, ks) - inside[i] for i, e in enumerate(curves[s.key])]
        numbers[f"{s.label}: growth of excess error/d (mean over seeds)"] = round(float(np.mean(growth)), 4)
        measured[key] = t_interval(growth) if not gate else not_measured(
            f"{gate}; measured growth {float(np.mean(growth)):.3g}")
    return measured, numbers


def plot(data: dict):
    """Per shift: the model's and the references' error / d at every number of examples k."""
    import matplotlib.pyplot as plt  # start-up time: matplotlib

    curves, task_cfg = data["curves"], data["task_cfg"]
    d, N = task_cfg.d, task_cfg.n_points
    cols = 3
    rows = math.ceil(len(SHIFTS) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False, constrained_layout=True)
    for ax, s in zip(axes.flat, SHIFTS):
        per_seed = [e for e in curves[s.key] if e is not None]
        ax.set_title(s.label, fontsize=8)
        ax.set_xlabel("in-context examples k", fontsize=7)
        ax.set_ylabel("error / d", fontsize=7)
        if not per_seed:
            ax.text(0.5, 0.5, "not measurable:\nlearned positions cover\nthe trained length only",
                    ha="center", va="center", transform=ax.transAxes, fontsize=7)
            continue
        ks = np.arange(per_seed[0]["model"].shape[1])
        for name in per_seed[0]:
            mean = np.mean([e[name].mean(0) for e in per_seed], 0)
            style = dict(color="k", lw=2) if name == "model" else dict(lw=1, ls="--" if name == "least squares" else "-")
            ax.plot(ks, mean, label="transformer (mean over seeds)" if name == "model" else name, **style)
        shown = list(s.window(d, N))
        if shown:
            ax.axvspan(shown[0], shown[-1], color="0.9", zorder=-1)
        ax.set_yscale("log")
        ax.set_ylim(1e-4, 10)
        ax.legend(fontsize=5.5)
    for ax in list(axes.flat)[len(SHIFTS):]:
        ax.axis("off")
    fig.suptitle(f"out-of-distribution prompts, d = {d}, trained N = {N} (grey: the criterion's window of k)",
                 fontsize=9)
    return fig


def numbers(data: dict, scale: str) -> dict:
    _, out = ood_measurements(data["curves"], data["task_cfg"], data["size"].garg.decides, scale)
    out["prompts per shift and seed"] = data["size"].prompts
    return out


def make(scale: str) -> FigureResult:
    data = measure(SIZES[scale])
    measured, _ = ood_measurements(data["curves"], data["task_cfg"], data["size"].garg.decides, scale)
    return FigureResult(plot(data), numbers(data, scale), measured)


register_figure(FigureSpec(
    name="icl_ood_shifts",
    family="icl",
    claim=("Garg et al. ('What Can Transformers Learn In-Context?', 2022, section 4) test their trained model on prompts "
           "unlike its training prompts and compare it with least squares. Here the figure-1 transformer under a skewed "
           "covariance, scaled inputs, examples in one orthant, a d/2-dimensional subspace, a query orthogonal to the "
           "examples, noisy labels and longer prompts, beside least squares, averaging and 3-NN (ridge for noisy "
           "labels); per shift, whether its excess error over least squares grows by at most 0.05 (error/d) from "
           "in distribution."),
    make=make,
    claims=CLAIMS,
))
