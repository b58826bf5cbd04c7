"""Shapes in signatures: the public tensor functions of theory, toy_models and probes carry jaxtyping
annotations (``Float[Tensor, "batch pos d_model"]``, as TransformerLens writes them), and every
annotation in those packages is a valid expression.

The annotations are documentation only (nothing checks shapes at run time); these tests keep them
from rotting: a misspelt alias or a malformed shape string fails ``get_type_hints``, and a public
entry point that loses its shapes fails the coverage test.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing

import pytest
from jaxtyping import AbstractArray

PACKAGES = ("theory", "toy_models", "probes")


def _modules():
    for package in PACKAGES:
        yield importlib.import_module(package)
        for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
            yield importlib.import_module(info.name)


def _functions(module):
    """Functions and methods defined in ``module`` (not imported into it)."""
    for _, obj in vars(module).items():
        if inspect.isfunction(obj) and obj.__module__ == module.__name__:
            yield obj
        elif inspect.isclass(obj) and obj.__module__ == module.__name__:
            yield obj  # dataclass field annotations
            for member in vars(obj).values():
                if inspect.isfunction(member):
                    yield member


def _is_shaped(annotation) -> bool:
    """A jaxtyping array type, or a union / container whose every array member is one."""
    if isinstance(annotation, type) and issubclass(annotation, AbstractArray):
        return True
    args = typing.get_args(annotation)
    return bool(args) and any(_is_shaped(a) for a in args)


@pytest.mark.parametrize("module", list(_modules()), ids=lambda m: m.__name__)
def test_every_annotation_evaluates(module):
    for obj in _functions(module):
        typing.get_type_hints(obj)  # raises on an unknown name or a malformed jaxtyping shape


# Public entry points and the parameters (or "return") that hold arrays: each must carry a shape.
SHAPED = {
    "toy_models.model.Transformer.forward": ("inputs", "padding_mask", "attn_mask", "return"),
    "toy_models.model.Transformer.run_with_cache": ("inputs", "padding_mask", "attn_mask", "return"),
    "toy_models.block.Block.forward": ("resid", "allowed", "return"),
    "toy_models.attention.Attention.forward": ("x", "allowed", "return"),
    "toy_models.mlp.MLP.forward": ("x", "return"),
    "toy_models.norms.Norm.forward": ("x", "return"),
    "probes.residual_stats.residual_stats": ("inputs",),
    "probes.residual_stats.angular_distance": ("a", "b"),
    "probes.outliers.kurtosis": ("x", "return"),
    "probes.gradients.gradient_norms": ("inputs",),
    "probes.icl_agreement.model_predict": ("X", "y", "x_q", "return"),
    "probes.icl_linear.linear_probe_r2": ("features", "target"),
    "probes.reachability.set_scores": ("logits", "dist"),
    "probes.attention_svm.spectrum": ("W", "return"),
    "theory.icl.predictors.ridge": ("X", "y", "x_q"),
    "theory.icl.predictors.Prediction": ("y_hat", "w_hat"),
    "theory.icl.gd_path.gd_trajectories": ("X", "etas", "return"),
    "theory.icl.expected_error.zfb_error": ("cov",),
    "theory.graph_search.bfs_distances": ("adj", "return"),
    "theory.attention_svm.problems.solve_att_svm": ("X", "Z", "alpha"),
    "theory.variance.recursion.variance_profile": ("tokens",),
    "theory.variance.recursion.attention_kernel": ("K", "return"),
}


@pytest.mark.parametrize("path", sorted(SHAPED))
def test_public_tensor_functions_carry_shapes(path):
    module_name, _, rest = path.partition(".")
    while True:  # the longest importable prefix is the module
        head, _, tail = rest.partition(".")
        try:
            module = importlib.import_module(f"{module_name}.{head}")
        except ModuleNotFoundError:
            break
        module_name, rest = f"{module_name}.{head}", tail
    obj = importlib.import_module(module_name)
    for part in rest.split("."):
        obj = getattr(obj, part)
    hints = typing.get_type_hints(obj)
    missing = [name for name in SHAPED[path] if not _is_shaped(hints.get(name))]
    assert not missing, f"{path}: no jaxtyping shape on {missing}"
