"""The config of a ``SingleAttention`` layer, so that it trains through the trainer and the run store.

"Transformers as Support Vector Machines" (Tarzanagh, Li, Thrampoulidis, Oymak, 2023): one softmax
attention layer with a fixed linear head, f(X) = vᵀ Xᵀ softmax(X W z), W trained directly
(``parameterization='W'``) or as W = K Qᵀ (``'KQ'``, K, Q ∈ R^{d×m}).

The head v is drawn with the data (``toy_models.tasks.attention_svm_data``), so the task fixes ``d``,
``v`` and ``cross_attn`` as a token task fixes a transformer's vocabulary; ``seed`` is derived from the
experiment's seed. The initial factors are the paper's: W(0) = 0, or K(0) ~ ``init_scale``·N(0, 1)
entrywise (seeded by ``seed``) and Q(0) = 0, so that W(0) = K Qᵀ = 0 with a nonzero gradient on Q.
``path`` is the forward the trainer runs (``SingleAttention.PATHS``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

from theory.errors import ConfigError, is_real

Parameterization = Literal["W", "KQ"]
ForwardPath = Literal["direct", "reference", "kernel"]


@dataclass(frozen=True)
class SingleAttentionConfig:
    d: int = 2
    v: tuple[float, ...] = (1.0, 0.0)
    parameterization: Parameterization = "W"
    m: int | None = None  # width of K and Q ('KQ'); None: d
    cross_attn: bool = True
    init_scale: float = 0.1
    path: ForwardPath = "direct"
    seed: int = 0
    dtype: Literal["float64"] = "float64"  # the paper's experiments and their saturated softmax need float64

    def __post_init__(self) -> None:
        for name, tp in (("parameterization", Parameterization), ("path", ForwardPath), ("dtype", Literal["float64"])):
            if getattr(self, name) not in get_args(tp):
                raise ConfigError(name, getattr(self, name), f"one of {', '.join(map(repr, get_args(tp)))}")
        if not isinstance(self.d, int) or isinstance(self.d, bool) or self.d < 1:
            raise ConfigError("d", self.d, "a positive integer")
        v = tuple(self.v) if isinstance(self.v, (tuple, list)) else None
        if v is None or len(v) != self.d or not all(is_real(x) for x in v):
            raise ConfigError("v", self.v, f"{self.d} finite numbers (the head, one per coordinate of d={self.d})")
        object.__setattr__(self, "v", tuple(float(x) for x in v))
        if self.m is not None and (not isinstance(self.m, int) or isinstance(self.m, bool) or self.m < 1):
            raise ConfigError("m", self.m, "a positive integer (width of K and Q), or None for d")
        if self.m is not None and self.parameterization == "W":
            raise ConfigError("m", self.m, "None with parameterization='W' (W is d×d)")
        if not isinstance(self.cross_attn, bool):
            raise ConfigError("cross_attn", self.cross_attn, "true or false")
        if not (is_real(self.init_scale) and self.init_scale > 0):
            raise ConfigError("init_scale", self.init_scale, "a positive float (the std of K(0)'s entries)")
        object.__setattr__(self, "init_scale", float(self.init_scale))
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError("seed", self.seed, "a non-negative integer")

    def replace(self, **changes: Any) -> "SingleAttentionConfig":
        return dataclasses.replace(self, **changes)

    def label(self) -> str:
        """What a run folder's name shows of the model: the parameterization and d (and m if set)."""
        return f"{self.parameterization}-d{self.d}" + (f"m{self.m}" if self.m is not None else "")


__all__ = ["SingleAttentionConfig"]
