"""Per-layer gradient norms: of each block's parameters, and of the residual stream at each layer
(the tensor at ``blocks.l.hook_resid_pre``, captured by a forward hook, differentiated with
``torch.autograd.grad``), for a loss the caller chooses.

The default loss is next-token cross-entropy on token inputs (predict token t+1 at position t), the
training objective of the language-model experiments.
"""

from __future__ import annotations

import re
from typing import Callable

import pandas as pd
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int, Shaped
from torch import Tensor

from ._common import forward_kwargs, n_layers

_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


def next_token_loss(logits: Float[Tensor, "batch pos d_vocab_out"], tokens: Int[Tensor, "batch pos"]
                    ) -> Float[Tensor, ""]:
    """Mean cross-entropy of predicting token p + 1 from the logits at p."""
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def gradient_norms(model, inputs: Shaped[Tensor, "batch pos *d_input"],
                   loss_fn: Callable[[Float[Tensor, "batch pos d_vocab_out"]], Float[Tensor, ""]] | None = None,
                   **kwargs) -> pd.DataFrame:
    """Tidy frame (layer, name, quantity, value): ``param_grad_norm`` for every parameter of block l
    (name = the parameter's path inside the block) and ``resid_grad_norm`` = ‖∂loss/∂x_l‖ over the
    whole batch for the residual stream entering block l. ``loss_fn(logits) -> scalar``; default
    next-token cross-entropy (token inputs only). Existing ``.grad`` values are left untouched."""
    if loss_fn is None:
        if not (isinstance(inputs, torch.Tensor) and inputs.dtype in (torch.int64, torch.int32)):
            raise ValueError("loss_fn=None is only allowed for token-id inputs (next-token cross-entropy); "
                             "pass loss_fn(logits) -> scalar for other inputs")
        loss_fn = lambda logits: next_token_loss(logits, inputs)  # noqa: E731
    L = n_layers(model)
    resid: dict[int, torch.Tensor] = {}

    def save(layer: int):
        def hook(x, hook):
            resid[layer] = x  # the very tensor the next block reads, so its gradient is ∂loss/∂x_l
        return hook

    fwd = [(f"blocks.{layer}.hook_resid_pre", save(layer)) for layer in range(L)]
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad and _BLOCK.match(n)]
    with model.hooks(fwd_hooks=fwd):
        loss = loss_fn(model(inputs, **forward_kwargs(model, kwargs)))
    layers = [layer for layer in sorted(resid) if resid[layer].requires_grad]  # frozen one-hot x_0: none
    wrt = [p for _, p in params] + [resid[layer] for layer in layers]
    grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    resid_grads = dict(zip(layers, grads[len(params):]))
    grads = grads[: len(params)]
    rows = []
    for (name, _), g in zip(params, grads):
        layer, leaf = _BLOCK.match(name).groups()
        rows.append((int(layer), leaf, "param_grad_norm", 0.0 if g is None else float(g.double().norm())))
    for layer, g in sorted(resid_grads.items()):
        rows.append((layer, "hook_resid_pre", "resid_grad_norm", 0.0 if g is None else float(g.double().norm())))
    return pd.DataFrame(rows, columns=["layer", "name", "quantity", "value"])
