"""The error every layer raises for a refused value, and the number test its checks share.

It lives at the bottom layer (``theory``) so that ``theory``, ``toy_models``, ``probes`` and
``theorybench`` all raise the same type without importing upwards; ``toy_models.config.ConfigError``
re-exports it.
"""

from __future__ import annotations

import math
from typing import Any


class ConfigError(ValueError):
    """A field holds a value that is not allowed; the message names field, value and rule."""

    def __init__(self, field_name: str, value: Any, allowed: str):
        self.field_name, self.value, self.allowed = field_name, value, allowed
        super().__init__(f"{field_name}={value!r} is not allowed: {allowed}")


def is_real(value: Any) -> bool:
    """A finite int or float; bool is refused although Python counts True as the int 1."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


__all__ = ["ConfigError", "is_real"]
