"""The model kinds an experiment can train: each a config class and the module it builds.

The trainer, the run store and the experiment config ask here instead of naming ``Transformer``, so a
model that is not a transformer (the one-layer attention of the attention-as-SVM study) trains,
checkpoints and is reused like one. Every config class has ``replace``, ``seed``, ``dtype`` and
``label()`` (what a run folder's name shows of the model). A config's kind is stored in its dict as
``"kind"``, except for the transformer, whose dicts predate the registry: leaving it out keeps every
stored run's hash.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from .config import ConfigError, TransformerConfig
from .model import Transformer
from .single_attention import SingleAttention
from .single_attention_config import SingleAttentionConfig

DEFAULT_KIND = "transformer"


def _single_attention(cfg: SingleAttentionConfig) -> SingleAttention:
    model = SingleAttention(torch.tensor(cfg.v, dtype=torch.float64), cfg.parameterization, m=cfg.m,
                            cross_attn=cfg.cross_attn, path=cfg.path)
    model.initialize_factors(cfg.seed, cfg.init_scale)
    return model


MODEL_KINDS: dict[str, tuple[type, Callable[[Any], nn.Module]]] = {
    "transformer": (TransformerConfig, Transformer),
    "single_attention": (SingleAttentionConfig, _single_attention),
}
CONFIG_CLASSES = tuple(cls for cls, _ in MODEL_KINDS.values())


def kind_of(cfg: Any) -> str:
    """The registered kind of a model config; a ConfigError listing the config classes if none."""
    for kind, (cls, _) in MODEL_KINDS.items():
        if type(cfg) is cls:
            return kind
    raise ConfigError("model", type(cfg).__name__, f"a model config: {', '.join(c.__name__ for c in CONFIG_CLASSES)}")


def config_class(kind: Any) -> type:
    """The config class of ``kind``; a ConfigError naming ``model.kind`` and the kinds if unknown."""
    if kind not in MODEL_KINDS:
        raise ConfigError("model.kind", kind, f"one of {', '.join(map(repr, MODEL_KINDS))}")
    return MODEL_KINDS[kind][0]


def build_network(cfg: Any) -> nn.Module:
    """The freshly initialized module of a model config, on the CPU (its init seeded by ``cfg.seed``)."""
    return MODEL_KINDS[kind_of(cfg)][1](cfg)


__all__ = ["CONFIG_CLASSES", "DEFAULT_KIND", "MODEL_KINDS", "build_network", "config_class", "kind_of"]
