"""Per-layer statistics of the residual stream x_0 … x_L (x_l = block l's input, x_L the last output).

- ``variance``: mean over tokens of the per-token variance over d_model coordinates.
- ``mean_square``: mean over tokens and coordinates of x² (the quantity the variance theory predicts).
- ``norm``: mean over tokens of ‖x‖₂.
- ``angular_distance`` (layer l → l+1): mean over tokens of arccos(cos(x_l, x_{l+1}))/π, the measure of a
  layer's contribution in "Mix-LN: Unleashing the Power of Deeper Layers by Combining Pre-LN and
  Post-LN" (Li et al. 2024) after "The Unreasonable Ineffectiveness of the Deeper Layers" (Gromov et
  al. 2024): 0 for a layer that leaves the stream's direction unchanged, 1 for one that flips it.
"""

from __future__ import annotations

import math

import pandas as pd
import torch
from jaxtyping import Float, Shaped
from torch import Tensor

from ._common import forward_kwargs, resid_hook_names


@torch.no_grad()
def residual_stats(model, inputs: Shaped[Tensor, "batch pos *d_input"], **kwargs) -> pd.DataFrame:
    """Tidy frame (layer, hook, quantity, value) for any HookedRootModule with ``blocks.l.hook_resid_*``."""
    names = resid_hook_names(model)
    _, cache = model.run_with_cache(inputs, names_filter=names, **forward_kwargs(model, kwargs))
    xs = [cache[n].double() for n in names]
    rows = []
    for layer, (name, x) in enumerate(zip(names, xs)):
        rows += [
            (layer, name, "variance", float(x.var(-1, unbiased=False).mean())),
            (layer, name, "mean_square", float(x.pow(2).mean())),
            (layer, name, "norm", float(x.norm(dim=-1).mean())),
        ]
    for layer in range(len(xs) - 1):
        rows.append((layer, names[layer], "angular_distance", angular_distance(xs[layer], xs[layer + 1])))
    return pd.DataFrame(rows, columns=["layer", "hook", "quantity", "value"])


def angular_distance(a: Float[Tensor, "*batch d"], b: Float[Tensor, "*batch d"]) -> float:
    """Mean over tokens of arccos(cos(a, b))/π, cosine over the last axis (clamped to [−1, 1])."""
    cos = torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1).clamp(-1.0, 1.0)
    return float(torch.arccos(cos).mean() / math.pi)
