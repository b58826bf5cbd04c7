"""Figure ``icl_relu_network``: in-context learning of random two-layer ReLU networks, beside a network trained by GD.

"What Can Transformers Learn In-Context? A Case Study of Simple Function Classes" (Garg et al. 2022,
figure 4). Runs: sweep ``icl_relu_network_seeds`` (``experiments``); sizes: ``sizes.FUNCTION_CLASSES``; the
measuring, drawing, baselines and the training-adequacy gate shared with the other classes:
``function_classes``.
"""

from __future__ import annotations

from theorybench.registry import FigureResult, FigureSpec, register_figure

from . import function_classes as F
from .sizes import FUNCTION_CLASSES as SIZES
from .sizes import FunctionClasses

CLS = "relu_network"
CLAIMS = F.class_claims(
    CLS,
    (f"On random two-layer ReLU networks a trained transformer's error is within {F.MARGIN} (normalized) of a "
     "two-layer network trained on the prompt by gradient descent"),
    "… and below least squares and 3-NN")


def measure(sizes: FunctionClasses) -> dict:
    return F.measure(CLS, sizes)


def plot(data: dict):
    return F.plot(CLS, data)


def make(scale: str) -> FigureResult:
    data = measure(SIZES[scale])
    return FigureResult(plot(data), F.numbers(data), F.measurements(CLS, data))


register_figure(FigureSpec(
    name="icl_relu_network",
    family="icl",
    claim=("Transformers trained on prompts of random two-layer ReLU networks match a two-layer "
           "network trained on the prompt by gradient descent, and beat least squares and 3-NN "
           "('What Can Transformers Learn In-Context?', Garg et al. 2022, figure 4)."),
    make=make,
    claims=CLAIMS,
))
