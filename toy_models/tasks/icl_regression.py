"""In-context linear regression prompts, in the two tokenizations of the literature.

A prompt is N examples (x_i, y_i) and a query (x_q, y_q) with y = wᵀx + ε, ε ~ N(0, σ²):

- inputs x ~ N(0, Σ) (isotropic by default; Σ given as its diagonal or in full), or x ~ U(−1, 1)^d
  as in "Transformers learn in-context by gradient descent" (von Oswald et al. 2023);
- tasks w ~ N(0, I_d), or drawn uniformly from a fixed pool of M tasks w_1 … w_M ~ N(0, I_d) set by
  ``pool_seed`` ("Pretraining task diversity and the emergence of non-Bayesian in-context learning
  for regression", Raventós et al. 2023). Pools are nested: for one ``pool_seed`` and d, the pool of M
  tasks is the first M rows of the pool of every M' > M (``task_pool``), so a sweep over M adds tasks
  rather than redrawing them.

Tokenizations:

- ``interleaved`` ("What Can Transformers Learn In-Context?", Garg et al. 2022): x_1, y_1, …, x_N,
  y_N, x_q, with y written as the token (y, 0, …, 0) ∈ R^d; the prediction of the label of each x is
  read at that x's position (causal model), so the loss averages the squared error over all N + 1
  prefixes (contexts of 0 … N examples). Tokens: 2N + 1, width d.
- ``stacked`` (von Oswald et al. 2023; Zhang, Frei, Bartlett 2024): tokens [x_i; y_i] ∈ R^{d+1} and
  the query [x_q; 0]; the prediction is read from the query token's output. The batch carries an
  ``attn_mask`` letting every token attend to the N context tokens only (not the query), so a
  normalized linear attention divides by N, as in their f(E) = E + W^{PV} E M (Eᵀ W^{KQ} E)/N.

Every batch also carries the raw tensors X [B, N, d], y [B, N], w [B, d], x_query [B, d] and
y_query [B] (in the batch's dtype), so closed-form predictors can be run on the same prompts.

Precision: x, w and the standard normal ε/σ are drawn directly in the task's ``dtype`` (a float32
batch costs no float64 draw and no conversion); Σ^{1/2}x (a covariance other than I) and the labels
wᵀx + ε are computed in float64 from those values and rounded once, so each label is the correctly
rounded value (up to the float64 sum's d·2⁻⁵³ relative error) of its own prompt's exact label. A float32
normal draw differs from a rounded float64 one only in the far tails (its uniforms have 24 bits, so
|z| stays below √(2·ln 2²⁴) ≈ 5.8, a mass of 7·10⁻⁹ lost), far below anything a figure resolves.
Metrics: ``mse`` and the normalized squared error ``nse`` = mse / d (Garg's: predicting 0 scores 1
for isotropic noiseless data), at the query; the interleaved task also reports ``mse_all_prefixes``.

Curriculum (Garg et al. 2022, their section 4): with ``curriculum_every`` = S, the batch of training
step s (1-based) uses stage k = ⌊(s − 1)/S⌋ with

    d_k = min(d, curriculum_d_start + k · curriculum_d_inc)     active input dimensions
    N_k = min(N, curriculum_n_start + k · curriculum_n_inc)     in-context examples

(a start left at None keeps that size fixed). The inactive coordinates d_k … d − 1 of every x are
set to 0, so the prompt is a d_k-dimensional regression written in d coordinates, and the prompt
holds N_k examples (2N_k + 1 interleaved or N_k + 1 stacked tokens: shorter than the model's n_ctx,
which stays at the final size). Garg et al. start at 5 of 20 dimensions and 11 of 41 points and add
1 dimension and 2 points every 2000 steps.

The step reaches the task through a hook: ``task.set_step(s)`` before the batch of step s is
drawn. A task never told a step (or told ``set_step(None)``) samples at the final size, which is
what evaluation must use. ``theorybench.train`` must make that call for a curriculum run to follow
its schedule (one line at the top of ``_Trainer._train_step``: ``if hasattr(self.task, "set_step"):
self.task.set_step(self.step)``); a task whose curriculum is configured but that is drawn from
many times without a step warns once (``CurriculumNotSteppedWarning``).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from theory.icl.predictors import covariance_matrix  # the one positive-definiteness check of Σ

from ..config import ConfigError
from .base import Batch, register_task

TOKENIZATIONS = ("interleaved", "stacked")
INPUT_DISTS = ("gaussian", "uniform")
DTYPES = ("float32", "float64")
# Draws at the final size tolerated before a configured curriculum warns that no step was ever set:
# the trainer draws its evaluation batches (4 by default) before the first training step.
UNSTEPPED_DRAWS_BEFORE_WARNING = 64
# Pool entries are read from a stream of standard normals drawn in blocks of this many values. torch
# fills a normal tensor in groups of 16 and redraws the last group of a length that is not a multiple
# of 16 (and tensors under 16 values take another path), so ``randn(M, d)`` is not a prefix of
# ``randn(M', d)``; equal-sized blocks are, whatever M is.
POOL_BLOCK = 4096
# How pools are drawn, a config field so that runs stored from pools drawn otherwise (one randn(M, d),
# not nested) hash differently and are never reused for a nested-pool config.
POOL_DRAWS = ("nested_blocks",)


def task_pool(n_tasks: int, d: int, pool_seed: int) -> torch.Tensor:
    """The pool w_1 … w_M ~ N(0, I_d) [M, d], float64: the first M·d values of a stream of normals drawn
    in ``POOL_BLOCK``-value blocks from ``pool_seed``, so ``task_pool(M, d, s)`` is the first M rows of
    ``task_pool(M', d, s)`` for every M' > M (nested pools)."""
    gen = torch.Generator().manual_seed(pool_seed)
    need = n_tasks * d
    blocks = [torch.randn(POOL_BLOCK, generator=gen, dtype=torch.float64) for _ in range(-(-need // POOL_BLOCK))]
    return torch.cat(blocks)[:need].reshape(n_tasks, d)


class CurriculumNotSteppedWarning(UserWarning):
    """A curriculum is configured but ``set_step`` was never called: every batch is at the final size."""


def stack_tokens(X: torch.Tensor, y: torch.Tensor, x_q: torch.Tensor) -> torch.Tensor:
    """Stacked tokens [B, N + 1, d + 1]: [x_i; y_i] for the context, [x_q; 0] for the query."""
    ctx = torch.cat([X, y[..., None]], dim=-1)
    query = torch.cat([x_q, torch.zeros_like(x_q[..., :1])], dim=-1)[:, None]
    return torch.cat([ctx, query], dim=1)


def context_only_mask(batch: int, N: int, device=None) -> torch.Tensor:
    """attn_mask [B, N + 1, N + 1]: every token may attend to the N context tokens, never to the query."""
    allowed = torch.zeros(N + 1, N + 1, dtype=torch.bool, device=device)
    allowed[:, :N] = True
    return allowed.expand(batch, N + 1, N + 1)


def interleave_tokens(X: torch.Tensor, y: torch.Tensor, x_q: torch.Tensor) -> torch.Tensor:
    """Interleaved tokens [B, 2N + 1, d]: x_1, (y_1, 0, …, 0), …, x_N, (y_N, 0, …, 0), x_q."""
    B, N, d = X.shape
    y_tok = torch.zeros_like(X)
    y_tok[..., 0] = y
    pairs = torch.stack([X, y_tok], dim=2).reshape(B, 2 * N, d)
    return torch.cat([pairs, x_q[:, None]], dim=1)


@register_task("icl_regression")
@dataclass(frozen=True)
class ICLRegressionConfig:
    """Config of the in-context linear regression task (see the module docstring).

    x_cov: None (identity), a length-d tuple (diagonal) or a d×d tuple of tuples (full, positive
    definite); gaussian inputs only. n_tasks: None for w ~ N(0, I_d), or the pool size M ≥ 1, drawn by
    ``task_pool`` (``pool_draw`` names that scheme; nested pools).
    curriculum_*: the schedule of active dimensions and prompt length (module docstring); off
    unless ``curriculum_every`` is set.
    """

    d: int = 5
    n_points: int = 10
    tokenization: str = "interleaved"
    x_dist: str = "gaussian"
    x_cov: Any = None
    noise_std: float = 0.0
    n_tasks: int | None = None
    pool_seed: int = 0
    pool_draw: str = "nested_blocks"
    dtype: str = "float32"
    curriculum_every: int | None = None
    curriculum_d_start: int | None = None
    curriculum_d_inc: int = 1
    curriculum_n_start: int | None = None
    curriculum_n_inc: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.x_cov, list):  # from a JSON dict: keep the config hashable
            cov = tuple(tuple(r) if isinstance(r, list) else r for r in self.x_cov)
            object.__setattr__(self, "x_cov", cov)
        self._validate()

    def _validate(self) -> None:
        for name in ("d", "n_points"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(name, v, "a positive integer")
        for name, allowed in (("tokenization", TOKENIZATIONS), ("x_dist", INPUT_DISTS), ("dtype", DTYPES),
                              ("pool_draw", POOL_DRAWS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(name, getattr(self, name), f"one of {', '.join(map(repr, allowed))}")
        if not (isinstance(self.noise_std, (int, float)) and self.noise_std >= 0):
            raise ConfigError("noise_std", self.noise_std, "a non-negative float")
        if self.n_tasks is not None and (not isinstance(self.n_tasks, int) or isinstance(self.n_tasks, bool)
                                         or self.n_tasks < 1):
            raise ConfigError("n_tasks", self.n_tasks, "None (w ~ N(0, I)) or a pool size ≥ 1")
        if not isinstance(self.pool_seed, int) or self.pool_seed < 0:
            raise ConfigError("pool_seed", self.pool_seed, "a non-negative integer")
        if self.x_cov is not None:
            if self.x_dist != "gaussian":
                raise ConfigError("x_cov", self.x_cov, "None when x_dist='uniform' (U(−1, 1) has covariance I/3)")
            self.covariance()  # refuses a wrong shape or a covariance that is not positive definite
        self._validate_curriculum()

    def _validate_curriculum(self) -> None:
        def positive_int(name: str, upper: int | None = None, none_ok: bool = False) -> None:
            v = getattr(self, name)
            if v is None and none_ok:
                return
            if not isinstance(v, int) or isinstance(v, bool) or v < 1 or (upper is not None and v > upper):
                rule = f"an integer in [1, {upper}]" if upper is not None else "a positive integer"
                raise ConfigError(name, v, rule + (" or None" if none_ok else ""))

        positive_int("curriculum_every", none_ok=True)
        positive_int("curriculum_d_start", self.d, none_ok=True)
        positive_int("curriculum_n_start", self.n_points, none_ok=True)
        positive_int("curriculum_d_inc")
        positive_int("curriculum_n_inc")
        starts = (self.curriculum_d_start, self.curriculum_n_start)
        if self.curriculum_every is None and any(v is not None for v in starts):
            raise ConfigError("curriculum_every", None, "steps per curriculum stage (a positive integer) when "
                              "curriculum_d_start or curriculum_n_start is set")
        if self.curriculum_every is not None and all(v is None for v in starts):
            raise ConfigError("curriculum_every", self.curriculum_every, "None unless curriculum_d_start or "
                              "curriculum_n_start is set (a curriculum needs something to grow)")

    def curriculum_sizes(self, step: int | None) -> tuple[int, int]:
        """(active dimensions, in-context examples) of the batch of training step ``step`` (1-based);
        the final (d, n_points) for ``step=None`` or without a curriculum."""
        if step is None or self.curriculum_every is None:
            return self.d, self.n_points
        if not isinstance(step, int) or isinstance(step, bool) or step < 1:
            raise ConfigError("step", step, "a positive integer (the 1-based training step) or None")
        k = (step - 1) // self.curriculum_every
        d_act = (self.d if self.curriculum_d_start is None
                 else min(self.d, self.curriculum_d_start + k * self.curriculum_d_inc))
        n_act = (self.n_points if self.curriculum_n_start is None
                 else min(self.n_points, self.curriculum_n_start + k * self.curriculum_n_inc))
        return d_act, n_act

    def covariance(self) -> torch.Tensor:
        """Σ as a float64 [d, d] tensor (I/3 for uniform inputs)."""
        if self.x_dist == "uniform":
            return torch.eye(self.d, dtype=torch.float64) / 3
        if self.x_cov is None:
            return torch.eye(self.d, dtype=torch.float64)
        try:
            cov = torch.tensor(self.x_cov, dtype=torch.float64)
        except (TypeError, ValueError):
            raise ConfigError("x_cov", self.x_cov, "a length-d tuple (diagonal) or a d×d tuple of tuples") from None
        try:
            return covariance_matrix(cov, self.d)
        except ConfigError as e:
            raise ConfigError("x_cov", self.x_cov, e.allowed) from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def build(self) -> "ICLRegressionTask":
        return ICLRegressionTask(self)


class ICLRegressionTask:
    def __init__(self, cfg: ICLRegressionConfig):
        self.cfg = cfg
        self.dtype = getattr(torch, cfg.dtype)
        self.cov = cfg.covariance()
        self._chol = torch.linalg.cholesky(self.cov)
        self.pool = None
        self.step: int | None = None
        self._unstepped_draws = 0
        self._identity_cov = bool(torch.equal(self.cov, torch.eye(cfg.d, dtype=torch.float64)))
        if cfg.n_tasks is not None:
            self.pool = task_pool(cfg.n_tasks, cfg.d, cfg.pool_seed)
        self._pool = None if self.pool is None else self.pool.to(self.dtype)  # what batches draw from

    # ------------------------------------------------------------------ Task protocol
    def model_fields(self) -> dict[str, Any]:
        d, N = self.cfg.d, self.cfg.n_points
        if self.cfg.tokenization == "interleaved":
            return {"input_kind": "continuous", "d_input": d, "n_ctx": 2 * N + 1, "d_vocab_out": 1}
        return {"input_kind": "continuous", "d_input": d + 1, "n_ctx": N + 1, "d_vocab_out": 1}

    def set_step(self, step: int | None) -> None:
        """The training step whose batch is drawn next (the curriculum hook; module docstring).
        None: the final size, for evaluation."""
        self.cfg.curriculum_sizes(step)  # refuses a bad step
        self.step = step

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError("batch_size", batch_size, "a positive integer")
        cfg, B, d = self.cfg, batch_size, self.cfg.d
        self._check_stepped()
        d_act, N = cfg.curriculum_sizes(self.step)
        f64, dt = torch.float64, self.dtype  # draws in the batch's dtype; Σ^{1/2}x and labels in float64
        if cfg.x_dist == "uniform":
            pts = torch.rand(B, N + 1, d, generator=generator, dtype=dt) * 2 - 1  # exact: no rounding
        else:
            pts = torch.randn(B, N + 1, d, generator=generator, dtype=dt)
            if not self._identity_cov:
                pts = (pts.to(f64) @ self._chol.T).to(dt)
        if d_act < d:
            pts[..., d_act:] = 0.0  # a d_act-dimensional problem written in d coordinates (Garg et al.)
        if self._pool is None:
            w = torch.randn(B, d, generator=generator, dtype=dt)
        else:
            w = self._pool[torch.randint(len(self._pool), (B,), generator=generator)]
        z = torch.randn(B, N + 1, generator=generator, dtype=dt)
        labels = (torch.einsum("bnd,bd->bn", pts.to(f64), w.to(f64)) + z.to(f64) * cfg.noise_std).to(dt)
        X, y, x_q, y_q = pts[:, :N], labels[:, :N], pts[:, N], labels[:, N]
        raw = dict(X=X, y=y, w=w, x_query=x_q, y_query=y_q)
        if cfg.tokenization == "interleaved":
            inputs = interleave_tokens(raw["X"], raw["y"], raw["x_query"])
            return {"inputs": inputs, "targets": labels, **raw}
        inputs = stack_tokens(raw["X"], raw["y"], raw["x_query"])
        return {"inputs": inputs, "targets": raw["y_query"], "attn_mask": context_only_mask(B, N), **raw}

    def _check_stepped(self) -> None:
        if self.cfg.curriculum_every is None or self.step is not None:
            return
        self._unstepped_draws += 1
        if self._unstepped_draws == UNSTEPPED_DRAWS_BEFORE_WARNING + 1:
            warnings.warn(
                f"icl_regression: a curriculum is configured (curriculum_every={self.cfg.curriculum_every}) but "
                f"{UNSTEPPED_DRAWS_BEFORE_WARNING} batches were drawn without task.set_step(step): every batch is "
                "at the final size. The training loop must call task.set_step(step) before each batch.",
                CurriculumNotSteppedWarning, stacklevel=3)

    def predictions(self, output: torch.Tensor) -> torch.Tensor:
        """Predicted labels: [B, N + 1] (every x position) interleaved, [B] (query) stacked."""
        if self.cfg.tokenization == "interleaved":
            return output[:, 0::2, 0]
        return output[:, -1, 0]

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Mean squared error; interleaved: averaged over all N + 1 prefixes (Garg et al. 2022)."""
        return ((self.predictions(output) - batch["targets"]) ** 2).mean()

    @torch.no_grad()
    def metrics(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        pred = self.predictions(output)
        err = (pred - batch["targets"]) ** 2
        query_err = err[:, -1] if err.dim() == 2 else err
        out = {"mse": float(query_err.mean()), "nse": float(query_err.mean()) / self.cfg.d}
        if err.dim() == 2:
            out["mse_all_prefixes"] = float(err.mean())
        return out
