"""toy_models: the configurable transformer, its tasks, exact constructions and training."""

from .config import ConfigError, TransformerConfig
from .model import Transformer

__all__ = ["ConfigError", "Transformer", "TransformerConfig"]
