"""Figure ``icl_sparse_linear``: in-context learning of s-sparse linear functions, beside the Lasso.

"What Can Transformers Learn In-Context? A Case Study of Simple Function Classes" (Garg et al. 2022,
figure 4). Runs: sweep ``icl_sparse_linear_seeds`` (``experiments``); sizes: ``sizes.FUNCTION_CLASSES``; the
measuring, drawing, baselines and the training-adequacy gate shared with the other classes:
``function_classes``.
"""

from __future__ import annotations

from theorybench.registry import FigureResult, FigureSpec, register_figure

from . import function_classes as F
from .sizes import FUNCTION_CLASSES as SIZES
from .sizes import FunctionClasses

CLS = "sparse_linear"
CLAIMS = F.class_claims(
    CLS,
    f"On s-sparse linear functions a trained transformer's error is within {F.MARGIN} (normalized) of the Lasso's",
    "… and below least squares, averaging and 3-NN while N is below d (sparsity is what it exploits)")


def measure(sizes: FunctionClasses) -> dict:
    return F.measure(CLS, sizes)


def plot(data: dict):
    return F.plot(CLS, data)


def make(scale: str) -> FigureResult:
    data = measure(SIZES[scale])
    return FigureResult(plot(data), F.numbers(data), F.measurements(CLS, data))


register_figure(FigureSpec(
    name="icl_sparse_linear",
    family="icl",
    claim=("Transformers trained on interleaved prompts of s-sparse linear functions learn them in "
           "context about as well as the Lasso, far better than least squares below N = d "
           "('What Can Transformers Learn In-Context?', Garg et al. 2022, figure 4)."),
    make=make,
    claims=CLAIMS,
))
