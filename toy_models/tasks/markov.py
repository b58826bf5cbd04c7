"""A synthetic language: next-token prediction on sequences of a fixed random Markov chain.

The transition matrix P [n, n] has rows P_i ~ Dirichlet(α, …, α), drawn once from a numpy generator
seeded with ``chain_seed`` (so the language is fixed by the config). A sequence starts in the
stationary distribution π (π P = π, Σπ = 1) and moves by P, so every position is distributed as π.

The Bayes-optimal predictor of x_{t+1} given x_{≤t} is P[x_t, ·], and its expected cross-entropy at
every position is the chain's entropy rate

    H = Σ_i π_i H(P_i),   H(P_i) = −Σ_j P_ij log P_ij   (nats),

the floor that a trained model's next-token loss approaches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from toy_models.config import ConfigError

from .base import Batch, register_task


@register_task("markov")
@dataclass(frozen=True)
class MarkovConfig:
    """n_states tokens; sequences of seq_len inputs (and seq_len targets); Dirichlet concentration α."""

    n_states: int = 16
    seq_len: int = 32
    concentration: float = 0.5
    chain_seed: int = 0

    def __post_init__(self) -> None:
        for name, low in (("n_states", 2), ("seq_len", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(name, value, f"an integer ≥ {low}")
        c = self.concentration
        if not (isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) and c > 0):
            raise ConfigError("concentration", c, "a positive finite float")
        object.__setattr__(self, "concentration", float(c))
        if not isinstance(self.chain_seed, int) or isinstance(self.chain_seed, bool) or self.chain_seed < 0:
            raise ConfigError("chain_seed", self.chain_seed, "a non-negative integer")

    def build(self) -> "MarkovTask":
        return MarkovTask(self)


class MarkovTask:
    """Samples sequences of the chain; loss and metrics of next-token prediction."""

    def __init__(self, cfg: MarkovConfig):
        self.cfg = cfg
        rng = np.random.default_rng(cfg.chain_seed)
        self.transition = rng.dirichlet(np.full(cfg.n_states, cfg.concentration), size=cfg.n_states)
        self.stationary = stationary_distribution(self.transition)
        self.entropy_rate = entropy_rate(self.transition, self.stationary)
        # Inverse-CDF sampling tables (float64, so that float32 rounding never moves a draw).
        self._start_cdf = torch.from_numpy(np.cumsum(self.stationary))
        self._row_cdf = torch.from_numpy(np.cumsum(self.transition, axis=1))
        with np.errstate(divide="ignore"):  # a zero-probability transition is never sampled
            self._log_p = torch.from_numpy(np.log(self.transition))

    def model_fields(self) -> dict[str, Any]:
        return {"d_vocab": self.cfg.n_states, "n_ctx": self.cfg.seq_len, "input_kind": "tokens"}

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """``seq_len + 1`` states per sequence: inputs are the first seq_len, targets the last seq_len."""
        n, T = self.cfg.n_states, self.cfg.seq_len
        u = torch.rand(T + 1, batch_size, generator=generator, dtype=torch.float64)  # u[t]: contiguous
        states = torch.empty(T + 1, batch_size, dtype=torch.long)
        # searchsorted(cdf, u, right=True) = #{j : cdf_j ≤ u} is the state whose cdf interval holds u;
        # the clamp covers cdf[-1] < 1 by rounding.
        states[0] = torch.searchsorted(self._start_cdf, u[0], right=True).clamp_(max=n - 1)
        for t in range(T):
            cdf = self._row_cdf[states[t]]
            states[t + 1] = torch.searchsorted(cdf, u[t + 1].unsqueeze(1), right=True).squeeze(1).clamp_(max=n - 1)
        states = states.T.contiguous()
        return {"inputs": states[:, :-1], "targets": states[:, 1:]}

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Mean next-token cross-entropy over every position of every sequence."""
        return F.cross_entropy(output.flatten(0, 1), batch["targets"].flatten())

    def bayes_loss(self, batch: Batch) -> float:
        """Cross-entropy of the true predictor P[x_t, ·] on this batch: −mean log P[x_t, x_{t+1}]."""
        return -self._log_p[batch["inputs"].cpu(), batch["targets"].cpu()].mean().item()

    @torch.no_grad()
    def metrics(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        """loss, accuracy (argmax = target), the batch's Bayes loss and the entropy rate (optimal_loss)."""
        return {
            "loss": self.loss(output, batch).item(),
            "accuracy": (output.argmax(-1) == batch["targets"]).float().mean().item(),
            "bayes_loss": self.bayes_loss(batch),
            "optimal_loss": self.entropy_rate,
        }


def stationary_distribution(transition: np.ndarray) -> np.ndarray:
    """π with π P = π and Σ π = 1: solve (Pᵀ − I) π = 0 with one equation replaced by Σ π = 1."""
    n = transition.shape[0]
    a = transition.T - np.eye(n)
    a[-1] = 1.0
    b = np.zeros(n)
    b[-1] = 1.0
    return np.linalg.solve(a, b)


def entropy_rate(transition: np.ndarray, stationary: np.ndarray) -> float:
    """H = Σ_i π_i H(P_i) with H(P_i) = −Σ_j P_ij log P_ij (0 log 0 = 0), in nats."""
    p = transition
    row_entropy = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=1)
    return float(stationary @ row_entropy)


__all__ = ["MarkovConfig", "MarkovTask", "stationary_distribution", "entropy_rate"]
