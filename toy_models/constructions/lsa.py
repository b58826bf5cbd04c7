"""Linear self-attention weights that run gradient descent in context, loaded into the toy transformer.

Conventions of the toy model (``toy_models/attention.py``), one head, attn_scale = 1, no biases:
score(j, i) = e_jᵀ W_Q W_Kᵀ e_i, the linear pattern divides by the number of keys j may attend to,
and token j receives Σ_i score(j, i)/n_j · e_iᵀ W_V W_O. The tokens are the stacked e_i = [x_i; y_i]
(context) and [x_q; 0] (query) of ``toy_models.tasks.icl_regression``; every token attends to the N
context tokens only (``context_only_mask``), so n_j = N.

Construction ("Transformers learn in-context by gradient descent", von Oswald et al. 2023, derived
again for these conventions). Let the y-slot of token j hold r_j = y_j − ŵ_tᵀx_j (context: the
residual) and −ŵ_tᵀx_q (query). A preconditioned GD step ŵ_{t+1} = ŵ_t + (η/N) P Σ_i r_i x_i changes
both by −(η/N) Σ_i r_i x_jᵀ P x_i. One layer with

    W_Q = [[P, 0], [0, 0]],  W_K = [[I_d, 0], [0, 0]],  W_V = [[0, 0], [0, 1]],  W_O = [[0, 0], [0, −η]]

(so score(j, i) = x_jᵀ P x_i and the value carries r_i into the y-slot) makes exactly that update
while leaving every x-slot unchanged; K layers make K steps, the context tokens' residuals updated
by every layer. Starting from ŵ_0 = 0 (r_i = y_i, query slot 0) the read-out W_U = −e_{d+1} returns
ŷ = ŵ_Kᵀx_q. P = I is plain GD; one step with P = Γ⁻¹, η = 1 is the Zhang–Frei–Bartlett optimum
("Trained Transformers Learn Linear Models In-Context", Zhang, Frei, Bartlett 2024), its W^{KQ} =
W_Q W_Kᵀ = [[Γ⁻¹, 0], [0, 0]].
"""

from __future__ import annotations

import torch

from theory.icl.predictors import covariance_matrix, zfb_gamma

from ..config import ConfigError, TransformerConfig
from ..model import Transformer
from ..tasks.icl_regression import context_only_mask, stack_tokens


def lsa_config(d: int, n_layers: int = 1, n_ctx: int = 128, dtype: str = "float64") -> TransformerConfig:
    """The linear-self-attention-only model the constructions load into (width d + 1, one head)."""
    D = d + 1
    return TransformerConfig(
        n_layers=n_layers, d_model=D, n_heads=1, d_head=D, n_ctx=n_ctx, attn_only=True, attn_bias=False,
        attention="linear", attention_dir="bidirectional", linear_normalize=True, attn_scale=1.0,
        norm_placement="none", input_kind="continuous", d_input=D, pos="none", d_vocab_out=1,
        unembed_bias=False, init="zero", dtype=dtype,
    )


def lsa_inputs(X: torch.Tensor, y: torch.Tensor, x_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs [B, N + 1, d + 1], attn_mask [B, N + 1, N + 1]) for a batch of prompts X [B, N, d],
    y [B, N], x_q [B, d]; pass them as ``model(inputs, attn_mask=attn_mask)``, read ``[:, -1, 0]``."""
    return stack_tokens(X, y, x_q), context_only_mask(X.shape[0], X.shape[1], X.device)


@torch.no_grad()
def preconditioned_gd_lsa(d: int, eta: float, steps: int = 1, P=None, n_ctx: int = 128,
                          dtype: str = "float64") -> Transformer:
    """A ``steps``-layer LSA whose query output is ``steps`` steps of w ← w − (η/N) P Xᵀ(Xw − y) from 0."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ConfigError("steps", steps, "a positive integer (one layer per GD step)")
    if not isinstance(eta, (int, float)):
        raise ConfigError("eta", eta, "a float")
    model = Transformer(lsa_config(d, steps, n_ctx, dtype))
    dt = getattr(torch, dtype)
    Pm = torch.eye(d, dtype=torch.float64) if P is None else torch.as_tensor(P, dtype=torch.float64)
    if Pm.dim() == 1:
        Pm = torch.diag(Pm)
    if tuple(Pm.shape) != (d, d):
        raise ConfigError("P", tuple(Pm.shape), f"a [d, d] = [{d}, {d}] matrix or a [d] diagonal")
    model.embed.W_E.copy_(torch.eye(d + 1, dtype=dt))
    for block in model.blocks:
        attn = block.attn
        attn.W_Q[0, :d, :d] = Pm.to(dt)
        attn.W_K[0, :d, :d] = torch.eye(d, dtype=dt)
        attn.W_V[0, d, d] = 1.0
        attn.W_O[0, d, d] = -float(eta)
    model.unembed.W_U[d, 0] = -1.0
    return model


def gd_lsa(d: int, eta: float, steps: int = 1, n_ctx: int = 128, dtype: str = "float64") -> Transformer:
    """K = ``steps`` layers of LSA = K steps of gradient descent from w = 0 with step η (von Oswald et al.)."""
    return preconditioned_gd_lsa(d, eta, steps, None, n_ctx, dtype)


def zfb_lsa(cov, N: int, n_ctx: int = 128, dtype: str = "float64") -> Transformer:
    """One LSA layer computing ŷ = x_qᵀ Γ⁻¹ (1/N) Σ y_i x_i, Γ = (1 + 1/N) Λ + tr(Λ)/N · I (Zhang–Frei–Bartlett).

    N is the prompt length Γ is built for; the layer's 1/N comes from the normalized attention.
    """
    cov = torch.as_tensor(cov, dtype=torch.float64)
    L = covariance_matrix(cov, cov.shape[-1])
    return preconditioned_gd_lsa(L.shape[0], 1.0, 1, torch.linalg.inv(zfb_gamma(L, N)), n_ctx, dtype)
