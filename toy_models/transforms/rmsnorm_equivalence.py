"""Exact Pre-LN ⇔ Pre-RMSNorm ⇔ Pre-CRMSNorm conversion of a toy model
("Pre-RMSNorm and Pre-CRMSNorm Transformers", Jiang et al. 2023).

Pre-LN → Pre-RMSNorm. LayerNorm(x) = γ ⊙ RMSNorm(x − mean(x)) + β, and in a Pre-LN model the residual
stream x only reaches the output through norms. So:

1. recentre every *writer* of the residual stream to zero mean over d_model — embedding rows (and
   the read-in bias), position rows, each W_O[h, j, :] and b_O, each W_out[j, :] and b_out — so the
   new stream is x' = x − mean(x) at every layer (by induction: a sum of zero-mean writes);
2. fold each norm's gain and bias into the linear maps that *read* its output:
   (γ ⊙ u + β) W + b = u (diag(γ) W) + (β W + b), for W_Q, W_K, W_V, W_in, W_gate and W_U;
3. make every norm an RMSNorm without gain. RMSNorm(x') = (x − x̄)/√(mean((x − x̄)²) + ε) is the
   LayerNorm's normalized vector, ε included, so every logit is unchanged.

Pre-RMSNorm → Pre-CRMSNorm. The stream is now zero-mean, so its last coordinate is minus the sum of
the others: writers keep their first d − 1 output columns; a reader W sees u = [u_s, −Σ u_s] and
becomes W' = W[:d−1] − W[d−1] (u W = u_s W[:d−1] + u_d W[d−1]); the norm becomes CRMSNorm, whose
RMS over the d − 1 stored coordinates and the implied one equals the RMSNorm over d. The residual
stream has one fewer dimension.

Every fold is computed in float64 and cast once to the model's dtype. Models the identities do not
cover are refused with the field, its value and what the conversion needs.
"""

from __future__ import annotations

import torch

from ..config import ConfigError
from ..model import Transformer

# Parameters that add into the residual stream (their last axis is d_model).
_WRITERS = ("embed.W_E", "embed.b_E", "pos_embed.W_pos", "attn.W_O", "attn.b_O", "mlp.W_out", "mlp.b_out")


class ConversionError(ConfigError):
    """The model is outside what an exact norm conversion covers; names the field, value and need."""


def pre_ln_to_pre_rmsnorm(model: Transformer) -> Transformer:
    """The Pre-RMSNorm model (no norm gains) computing the same function as a Pre-LN ``model``."""
    _check_common(model)
    if model.cfg.norm_kind != "layernorm":
        raise ConversionError("norm_kind", model.cfg.norm_kind, "'layernorm' (the Pre-LN model to convert)")
    return _convert(model, centre=True, compress=False)


def pre_rmsnorm_to_pre_crmsnorm(model: Transformer) -> Transformer:
    """The Pre-CRMSNorm model, d_model − 1 wide, computing the same function as a Pre-RMSNorm ``model``
    whose residual writers are zero-mean (e.g. the output of ``pre_ln_to_pre_rmsnorm``)."""
    _check_common(model)
    if model.cfg.norm_kind != "rmsnorm":
        raise ConversionError("norm_kind", model.cfg.norm_kind, "'rmsnorm' (convert a Pre-LN model first)")
    if model.cfg.d_model < 2:
        raise ConversionError("d_model", model.cfg.d_model, "≥ 2 (one coordinate is dropped)")
    _check_zero_mean_writers(model)
    return _convert(model, centre=False, compress=True)


def pre_ln_to_pre_crmsnorm(model: Transformer) -> Transformer:
    """Pre-LN → Pre-RMSNorm → Pre-CRMSNorm."""
    return pre_rmsnorm_to_pre_crmsnorm(pre_ln_to_pre_rmsnorm(model))


# ---------------------------------------------------------------------------------------------- checks
def _check_common(model: Transformer) -> None:
    if not isinstance(model, Transformer):
        raise TypeError(f"expected a toy_models Transformer, got {type(model).__name__}")
    cfg = model.cfg
    if cfg.norm_placement != "pre":
        raise ConversionError("norm_placement", cfg.norm_placement,
                              "'pre' (only a Pre-norm stream reaches the output through norms alone)")
    if cfg.has_embed_norm:
        raise ConversionError("embed_norm", cfg.embed_norm,
                              "False: an embedding norm's output γ⊙u+β is not zero-mean, and no gain folds that")
    if cfg.embed == "onehot":
        raise ConversionError("embed", cfg.embed, "'learned' (frozen one-hot rows cannot be recentred)")
    if cfg.pos == "onehot":
        raise ConversionError("pos", cfg.pos, "'learned', 'sinusoidal', 'rotary' or 'none' (one-hot rows are frozen)")
    if cfg.output == "onehot":
        raise ConversionError("output", cfg.output, "'unembed' (a frozen one-hot W_U cannot absorb the final gain)")


def _check_zero_mean_writers(model: Transformer) -> None:
    """Every residual writer must be zero-mean over d_model, up to float rounding: recentring leaves a
    mean of at most ~d·eps·max|W| (the rounding of a d-term sum), the bound used here."""
    eps = torch.finfo(getattr(torch, model.cfg.dtype)).eps
    d = model.cfg.d_model
    for name, t in _named_tensors(model).items():
        if not name.endswith(_WRITERS):
            continue
        mean = t.double().mean(-1).abs().max().item()
        bound = d * eps * max(t.abs().max().item(), 1e-300)
        if mean > bound:
            raise ConversionError(name, f"mean over d_model up to {mean:.3g}",
                                  f"zero-mean writers (≤ {bound:.3g}); convert from Pre-LN with pre_ln_to_pre_rmsnorm")


# ---------------------------------------------------------------------------------------------- conversion
def _named_tensors(model: Transformer) -> dict[str, torch.Tensor]:
    out = {n: p.detach() for n, p in model.named_parameters()}
    if model.pos_embed is not None and "pos_embed.W_pos" not in out:  # the sinusoidal table is a buffer
        out["pos_embed.W_pos"] = model.pos_embed.W_pos
    return out


def _convert(model: Transformer, *, centre: bool, compress: bool) -> Transformer:
    cfg = model.cfg
    src = {n: t.to(torch.float64) for n, t in _named_tensors(model).items()}
    new: dict[str, torch.Tensor] = {}

    def write(name: str) -> None:
        t = src[name]
        if centre:
            t = t - t.mean(-1, keepdim=True)
        if compress:
            t = t[..., :-1]
        new[name] = t

    def read(norm: str, names_axes: list[tuple[str, str | None, bool]]) -> None:
        """Fold ``norm``'s gain/bias into readers; (weight, its bias or None, bias may be absent)."""
        gain, beta = src.get(f"{norm}.w"), src.get(f"{norm}.b")
        for w_name, b_name, _ in names_axes:
            W = src[w_name]  # d_model on axis -2
            if gain is not None:
                W = W * gain[:, None]
            shift = None if beta is None else torch.einsum("m,...mk->...k", beta, src[w_name])
            if shift is not None and b_name is None and shift.abs().max() > 0:
                raise ConversionError(f"{norm}.b", "non-zero",
                                      f"zero, since {w_name} has no bias to absorb β·W (gated MLPs' W_gate has none)")
            if b_name is not None:
                b = src.get(b_name, torch.zeros(W.shape[:-2] + W.shape[-1:], dtype=torch.float64))
                new[b_name] = b if shift is None else b + shift
            if compress:
                W = W[..., :-1, :] - W[..., -1:, :]
            new[w_name] = W

    for name in src:
        if name.endswith(_WRITERS):
            write(name)
    for i, block in enumerate(model.blocks):
        p = f"blocks.{i}"
        read(f"{p}.ln1", [(f"{p}.attn.W_{c}", f"{p}.attn.b_{c}", True) for c in "QKV"])
        if block.mlp is not None:
            readers = [(f"{p}.mlp.W_in", f"{p}.mlp.b_in", True)]
            if block.mlp.W_gate is not None:
                readers.append((f"{p}.mlp.W_gate", None, False))
            read(f"{p}.ln2", readers)
    read("ln_final", [("unembed.W_U", "unembed.b_U", True)])

    def needs(prefix: str) -> bool:  # a folded bias the source did not have, now non-zero
        return any(n.endswith(prefix) and n not in src and new[n].abs().max() > 0 for n in new)

    d_new = cfg.d_model - 1 if compress else cfg.d_model
    new_cfg = cfg.replace(
        norm_kind="crmsnorm" if compress else "rmsnorm", norm_gain=False, d_model=d_new,
        d_head=cfg.head_dim, d_mlp=cfg.mlp_dim,
        # a recentred sinusoidal table is no longer sinusoidal: it becomes a (fixed-valued) learned table
        pos="learned" if cfg.pos == "sinusoidal" else cfg.pos,
        attn_bias=cfg.attn_bias or needs(("b_Q", "b_K", "b_V")),
        mlp_bias=cfg.mlp_bias or needs("b_in"),
        unembed_bias=cfg.unembed_bias or needs("b_U"),
    )
    target = Transformer(new_cfg)
    dtype = getattr(torch, cfg.dtype)
    with torch.no_grad():
        for name, param in target.named_parameters():
            if name in new:
                param.copy_(new[name].to(dtype))
            elif name.rsplit(".", 1)[-1].startswith("b"):
                param.zero_()  # a bias the source lacked (e.g. b_O when attn_bias was switched on)
            else:
                raise AssertionError(f"no converted value for {name}")  # a parameter this module forgot
    return target
