"""Agreement between a trained in-context regressor and the closed-form predictors.

A model trained on the prompts of ``toy_models.tasks.icl_regression`` is read as a predictor
ŷ = f(X, y, x_q). It is compared with each closed-form predictor p (``theory.icl.predictors``) on the
same prompts, in prediction space and in weight space ("What learning algorithm is in-context
learning? Investigations with linear models", Akyürek et al. 2023, their SPD and ILWD):

- ``sq_pred_diff``: E[(ŷ_model − ŷ_p)²] over prompts and queries (squared prediction difference);
- ``weight_dist``: E‖ŵ_model − ŵ_p‖ over prompts, and ``weight_cos``: E cos(ŵ_model, ŵ_p);
- ``model_mse`` / ``predictor_mse``: each one's squared error against the noiseless query label wᵀx_q
  (so the noise floor σ² is not in it).

The model's implicit weight vector ŵ_model is the least-squares fit of its predictions over M ≥ d
fresh queries x_q,1 … x_q,M that share one context: ŵ = argmin Σ_m (ŷ_m − ŵᵀx_q,m)² (Akyürek et al.
fit a linear model to the transformer's outputs the same way). ``linearity_r2`` = 1 − Σ (ŷ_m −
ŵᵀx_q,m)² / Σ ŷ_m² says how well one linear map explains the model's answers (1 for a linear
attention layer, which is affine in the query; below 1 for a softmax model that is not).
Predictors without an implicit weight (k-nearest-neighbours) get prediction measures only.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from theory.icl.predictors import Prediction
from toy_models.config import ConfigError
from toy_models.tasks.icl_regression import TOKENIZATIONS, context_only_mask, interleave_tokens, stack_tokens

PredictorFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Prediction]
F64 = torch.float64


@torch.no_grad()
def model_predict(model, X: Float[Tensor, "B N d"], y: Float[Tensor, "B N"],
                  x_q: Float[Tensor, "B d"] | Float[Tensor, "B M d"], tokenization: str = "interleaved",
                  chunk: int = 4096) -> Float[Tensor, "B"] | Float[Tensor, "B M"]:
    """The model's predictions for prompts X [B, N, d], y [B, N] and queries x_q [B, d] or [B, M, d].

    Interleaved: the causal model's output at the query token x_q after N (x, y) pairs; stacked: the
    query token's output with the context-only mask. M queries sharing a context run as B·M prompts
    (the model sees one query at a time). Returns float64 [B] or [B, M].
    """
    if tokenization not in TOKENIZATIONS:
        raise ConfigError("tokenization", tokenization, f"one of {', '.join(map(repr, TOKENIZATIONS))}")
    dtype = next(model.parameters()).dtype
    single = x_q.dim() == 2
    q = x_q[:, None, :] if single else x_q
    B, M, d = q.shape
    N = X.shape[1]
    Xr = X[:, None].expand(B, M, N, d).reshape(B * M, N, d).to(dtype)
    yr = y[:, None].expand(B, M, N).reshape(B * M, N).to(dtype)
    qr = q.reshape(B * M, d).to(dtype)
    out = []
    for s in range(0, B * M, chunk):
        Xc, yc, qc = Xr[s:s + chunk], yr[s:s + chunk], qr[s:s + chunk]
        if tokenization == "interleaved":
            out.append(model(interleave_tokens(Xc, yc, qc))[:, -1, 0])
        else:
            out.append(model(stack_tokens(Xc, yc, qc), attn_mask=context_only_mask(len(Xc), N, Xc.device))[:, -1, 0])
    y_hat = torch.cat(out).to(F64).reshape(B, M)
    return y_hat[:, 0] if single else y_hat


def implicit_weights(y_hat: Float[Tensor, "B M"], x_q: Float[Tensor, "B M d"]
                     ) -> tuple[Float[Tensor, "B d"], Float[Tensor, "B"]]:
    """(ŵ [B, d], linearity R² [B]) of the least-squares fit ŷ_m ≈ ŵᵀx_q,m over M queries per prompt.

    y_hat [B, M], x_q [B, M, d] with M ≥ d (fewer queries leave ŵ underdetermined)."""
    if x_q.dim() != 3 or y_hat.shape != x_q.shape[:2]:
        raise ValueError(f"need y_hat [B, M] and x_q [B, M, d], got {tuple(y_hat.shape)} and {tuple(x_q.shape)}")
    M, d = x_q.shape[1:]
    if M < d:
        raise ConfigError("n_queries", M, f"at least d = {d} queries per prompt to fit an implicit weight vector")
    Q, Y = x_q.to(F64), y_hat.to(F64)
    w = torch.linalg.lstsq(Q, Y[..., None]).solution[..., 0]
    resid = Y - torch.einsum("bmd,bd->bm", Q, w)
    r2 = 1 - resid.pow(2).sum(-1) / Y.pow(2).sum(-1).clamp_min(torch.finfo(F64).tiny)
    return w, r2


def agreement(model_pred: Prediction, predictions: Mapping[str, Prediction],
              y_true: Float[Tensor, "B"] | Float[Tensor, "B M"]) -> pd.DataFrame:
    """Tidy frame (predictor, quantity, value) comparing the model's predictions (and implicit weights,
    if any) with each predictor's, on the same prompts and queries; ``y_true`` the noiseless labels."""
    y_m = model_pred.y_hat.to(F64)
    y_true = y_true.to(F64)
    rows = [("model", "model_mse", float((y_m - y_true).pow(2).mean()))]
    for name, p in predictions.items():
        y_p = p.y_hat.to(F64)
        if y_p.shape != y_m.shape:
            raise ValueError(f"predictor {name!r}: predictions of shape {tuple(y_p.shape)}, the model's are "
                             f"{tuple(y_m.shape)}")
        rows += [(name, "sq_pred_diff", float((y_m - y_p).pow(2).mean())),
                 (name, "predictor_mse", float((y_p - y_true).pow(2).mean()))]
        if model_pred.w_hat is not None and p.w_hat is not None:
            w_m, w_p = model_pred.w_hat.to(F64), p.w_hat.to(F64)
            rows += [(name, "weight_dist", float((w_m - w_p).norm(dim=-1).mean())),
                     (name, "weight_cos", float(torch.nn.functional.cosine_similarity(w_m, w_p, dim=-1).mean()))]
    return pd.DataFrame(rows, columns=["predictor", "quantity", "value"])


def model_vs_predictors(model, X: Float[Tensor, "B N d"], y: Float[Tensor, "B N"], w: Float[Tensor, "B d"],
                        x_q: Float[Tensor, "B M d"],
                        predictors: Mapping[str, PredictorFn], tokenization: str = "interleaved") -> pd.DataFrame:
    """``agreement`` on prompts (X, y) with true tasks w at M ≥ d queries per prompt x_q [B, M, d]
    (the model's implicit weights are fitted on them); adds the model's mean ``linearity_r2``."""
    y_hat = model_predict(model, X, y, x_q, tokenization)
    w_hat, r2 = implicit_weights(y_hat, x_q)
    preds = {name: fn(X, y, x_q) for name, fn in predictors.items()}
    y_true = torch.einsum("bmd,bd->bm", x_q.to(F64), w.to(F64))
    frame = agreement(Prediction(y_hat, w_hat), preds, y_true)
    extra = pd.DataFrame([("model", "linearity_r2", float(r2.mean()))], columns=frame.columns)
    return pd.concat([frame, extra], ignore_index=True)


def agreement_across(model, task_cfg, Ns: Sequence[int], noise_stds: Sequence[float],
                     predictors: Callable[[float], Mapping[str, PredictorFn]], prompts: int = 256,
                     n_queries: int | None = None, seed: int = 0) -> pd.DataFrame:
    """``model_vs_predictors`` for every context length N in ``Ns`` and label noise σ in ``noise_stds``.

    Prompts come from ``task_cfg`` (an ``ICLRegressionConfig``: its input law, task law or pool,
    tokenization) with ``n_points`` = N and ``noise_std`` = σ, and ``n_queries`` (default 2d) queries
    per prompt from the same input law; ``predictors(σ)`` gives the predictor set for that noise
    (ridge's λ = σ² depends on it). Tidy frame (N, noise_std, predictor, quantity, value). N must not
    exceed what the model's context holds."""
    M = 2 * task_cfg.d if n_queries is None else n_queries
    plain = dict(curriculum_every=None, curriculum_d_start=None, curriculum_n_start=None, dtype="float64")
    rows = []
    for sigma in noise_stds:
        preds = predictors(float(sigma))
        for N in Ns:
            cfg = dataclasses.replace(task_cfg, n_points=int(N), noise_std=float(sigma), **plain)
            gen = torch.Generator().manual_seed(seed + 1000 * int(N))
            batch = cfg.build().sample(prompts, gen)
            # Queries from the same input law: the X of a second batch of M points per prompt.
            x_q = dataclasses.replace(cfg, n_points=M, n_tasks=None).build().sample(prompts, gen)["X"]
            frame = model_vs_predictors(model, batch["X"], batch["y"], batch["w"], x_q, preds, task_cfg.tokenization)
            rows.append(frame.assign(N=int(N), noise_std=float(sigma)))
    out = pd.concat(rows, ignore_index=True)
    return out[["N", "noise_std", "predictor", "quantity", "value"]]


__all__ = ["agreement", "agreement_across", "implicit_weights", "model_predict", "model_vs_predictors"]
