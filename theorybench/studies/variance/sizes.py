"""How much work each variance figure does at each scale: one frozen dataclass per figure group and scale.

Field names are the configs' own (``TransformerConfig.d_model/n_heads/n_layers``, the tasks'
``n_tokens/n_triggers/n_states/seq_len``, ``OptimConfig.lr``, ``TrainConfig.steps/batch_size``); a
plural (``lrs``) or a tuple names a grid of that field. "tiny" is what the test suite renders
(tests/test_studies.py); "quick" is `make figures`; "medium" is where the claims are decided; "full" is
the papers' sizes, for a GPU. A size the sweeps cannot run is refused when it is built, naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass

from toy_models.config import ConfigError


@dataclass(frozen=True)
class ResidualSizes:
    """The residual-growth figure at init: ``seeds`` initializations of a model of ``n_layers`` blocks."""

    d_model: int
    n_layers: int
    seeds: int


@dataclass(frozen=True)
class GradientScaleSizes:
    """The gradient-scale figure at init: ``seeds`` initializations at each depth of ``n_layers``."""

    d_model: int
    n_layers: tuple[int, ...]
    seeds: int


@dataclass(frozen=True)
class SinkSizes:
    """The sink-task runs (Bigram-Backcopy with BOS): every variant × ``seeds``, ``steps`` at a constant
    ``lr``, with prefix runs at ``snapshots`` steps; ``probe_batch`` sequences probed per model."""

    d_model: int
    n_heads: int
    n_layers: int
    n_tokens: int
    n_triggers: int
    seq_len: int
    batch_size: int
    lr: float
    seeds: int
    steps: int
    snapshots: tuple[int, ...]
    probe_batch: int


@dataclass(frozen=True)
class TrainingSizes:
    """The Markov-language runs. Depth sweep: every placement at each depth of ``n_layers``, ``seeds``
    seeds, ``steps`` at ``lr``, prefix runs at ``snapshots`` steps at the largest depth. Learning-rate
    sweep: ``lr_seeds`` seeds at each of ``lrs``, ``lr_steps`` each, at the smallest depth."""

    d_model: int
    n_heads: int
    n_states: int
    seq_len: int
    batch_size: int
    n_layers: tuple[int, ...]
    lr: float
    lrs: tuple[float, ...]
    seeds: int
    steps: int
    snapshots: tuple[int, ...]
    probe_batch: int
    lr_seeds: int
    lr_steps: int

    def __post_init__(self) -> None:
        """Refuse a size the sweeps cannot run, naming the field, the value and what is allowed."""
        depths = tuple(self.n_layers)
        if not depths or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in depths):
            raise ConfigError("n_layers", self.n_layers, "a non-empty tuple of positive integers (blocks per model)")
        for name in ("seeds", "steps", "probe_batch", "batch_size", "lr_seeds", "lr_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(name, value, "a positive integer")
        if not all(isinstance(s, int) and 0 < s < self.steps for s in self.snapshots):
            raise ConfigError("snapshots", self.snapshots, f"steps strictly between 0 and steps={self.steps}")


# medium: the quick sizes with twice the gradient seeds (the slope criterion's delta-method interval narrows as
# 1/√seeds); an estimate of a few minutes on one core, not timed end to end here.
RESIDUAL_SIZES = {
    "tiny": ResidualSizes(d_model=16, n_layers=4, seeds=24),
    "quick": ResidualSizes(d_model=32, n_layers=32, seeds=32),
    "medium": ResidualSizes(d_model=32, n_layers=32, seeds=32),
    "full": ResidualSizes(d_model=64, n_layers=64, seeds=128),
}
GRADIENT_SCALE_SIZES = {
    "tiny": GradientScaleSizes(d_model=16, n_layers=(1, 2, 4), seeds=32),
    "quick": GradientScaleSizes(d_model=32, n_layers=(1, 2, 4, 8, 16, 32), seeds=24),
    "medium": GradientScaleSizes(d_model=32, n_layers=(1, 2, 4, 8, 16, 32), seeds=48),
    "full": GradientScaleSizes(d_model=64, n_layers=(1, 2, 4, 8, 16, 32, 64), seeds=128),
}

# tiny: the test suite's renders (seconds). quick: `make figures` (about 5 min on one core: 5 variants ×
# 3 seeds × 200 steps at ~75 ms a step, plus 80 snapshot steps for Pre and Peri). medium: where the claims
# are decided: 5 × 4 × 1,500 steps plus 4 × 2 × 715 snapshot steps ≈ 36k steps ≈ 45 min on one core,
# ~23 min on two (estimated from ~75 ms a step measured on the loaded 2-core machine; not run end to end
# here). 1,500 steps at lr 3e-3 is where the pilot saw Pre-LN's largest activation grow ×145.
SINK_SIZES = {
    "tiny": SinkSizes(d_model=16, n_heads=2, n_layers=4, n_tokens=12, n_triggers=2, seq_len=8, batch_size=8, lr=3e-3,
                      seeds=2, steps=6, snapshots=(2,), probe_batch=4),
    "quick": SinkSizes(d_model=64, n_heads=4, n_layers=4, n_tokens=64, n_triggers=4, seq_len=32, batch_size=32,
                       lr=3e-3, seeds=3, steps=200, snapshots=(20, 60), probe_batch=32),
    "medium": SinkSizes(d_model=64, n_heads=4, n_layers=4, n_tokens=64, n_triggers=4, seq_len=32, batch_size=32,
                        lr=3e-3, seeds=4, steps=1500, snapshots=(15, 50, 150, 500), probe_batch=64),
    "full": SinkSizes(d_model=128, n_heads=4, n_layers=8, n_tokens=128, n_triggers=4, seq_len=64, batch_size=64,
                      lr=3e-3, seeds=8, steps=10000, snapshots=(10, 30, 100, 300, 1000, 3000), probe_batch=64),
}

# tiny: the test suite's renders. quick: `make figures` (about 4 min on one core: the depth sweep 5 placements ×
# 3 seeds × (100 + 43 snapshot) steps, the lr sweep 3 lrs × 3 placements × 6 seeds × 100 steps, at ~30 ms a
# step). medium: where the divergence and growth claims are decided: depth sweep 2 depths × 5 × 4 seeds × 300
# steps plus snapshots (~15k steps), lr sweep 3 × 3 × 12 seeds × 200 steps (~22k steps, fewer where runs
# diverge): ~20 min on one core, estimated from the measured step times, not run end to end here.
TRAINING_SIZES = {
    "tiny": TrainingSizes(d_model=16, n_heads=2, n_states=8, seq_len=8, batch_size=8, n_layers=(2,), lr=1e-2,
                          lrs=(1e-2,), seeds=2, steps=6, snapshots=(2,), probe_batch=4, lr_seeds=2, lr_steps=6),
    "quick": TrainingSizes(d_model=32, n_heads=4, n_states=16, seq_len=16, batch_size=16, n_layers=(4,), lr=1e-2,
                           lrs=(1e-3, 1e-2, 1e-1), seeds=3, steps=100, snapshots=(3, 10, 30), probe_batch=16,
                           lr_seeds=6, lr_steps=100),
    "medium": TrainingSizes(d_model=32, n_heads=4, n_states=16, seq_len=16, batch_size=16, n_layers=(4, 8), lr=1e-2,
                            lrs=(1e-3, 1e-2, 1e-1), seeds=4, steps=300, snapshots=(3, 10, 30, 100), probe_batch=32,
                            lr_seeds=12, lr_steps=200),
    "full": TrainingSizes(d_model=128, n_heads=4, n_states=64, seq_len=64, batch_size=32, n_layers=(6, 12, 24),
                          lr=3e-3, lrs=(3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1), seeds=5, steps=2000,
                          snapshots=(10, 30, 100, 300, 1000), probe_batch=32, lr_seeds=16, lr_steps=2000),
}
