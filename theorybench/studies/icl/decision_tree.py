"""Figure ``icl_decision_tree``: in-context learning of random decision trees, beside greedy trees and XGBoost.

"What Can Transformers Learn In-Context? A Case Study of Simple Function Classes" (Garg et al. 2022,
figure 4). Runs: sweep ``icl_decision_tree_seeds`` (``experiments``); sizes: ``sizes.FUNCTION_CLASSES``; the
measuring, drawing, baselines and the training-adequacy gate shared with the other classes:
``function_classes``.
"""

from __future__ import annotations

from theorybench.registry import FigureResult, FigureSpec, register_figure

from . import function_classes as F
from .sizes import FUNCTION_CLASSES as SIZES
from .sizes import FunctionClasses

CLS = "decision_tree"
CLAIMS = F.class_claims(
    CLS,
    (f"On random depth-k decision trees a trained transformer's error is within {F.MARGIN} (normalized) of the "
     "best of greedy tree learning and XGBoost, or below it"),
    "… and below 3-NN and a two-layer network trained on the prompt")


def measure(sizes: FunctionClasses) -> dict:
    return F.measure(CLS, sizes)


def plot(data: dict):
    return F.plot(CLS, data)


def make(scale: str) -> FigureResult:
    data = measure(SIZES[scale])
    return FigureResult(plot(data), F.numbers(data), F.measurements(CLS, data))


register_figure(FigureSpec(
    name="icl_decision_tree",
    family="icl",
    claim=("Transformers trained on prompts of random decision trees (sign-of-coordinate splits, "
           "Gaussian leaves) match or beat greedy tree learning and XGBoost fit on the prompt "
           "('What Can Transformers Learn In-Context?', Garg et al. 2022, figure 4)."),
    make=make,
    claims=CLAIMS,
))
