"""Bigram-Backcopy with a beginning-of-sequence token: a language in which attention heads have a reason
to do nothing ("Active-Dormant Attention Heads: Mechanistically Demystifying Extreme-Token Phenomena in
LLMs", Guo et al. 2024).

Tokens: 0 is BOS, 1 … n_triggers are *trigger* tokens, the rest are ordinary. A sequence is

    x_0 = BOS,  x_1 ~ uniform over the ordinary tokens,
    x_t = x_{t−2}              if x_{t−1} is a trigger   (back-copy: repeat the token before the trigger)
    x_t ~ P[x_{t−1}, ·]        otherwise                 (bigram)

with P [V, V] a fixed transition matrix whose rows are Dirichlet(α) over the non-BOS tokens (BOS never
recurs), drawn from a numpy generator seeded with ``chain_seed``. Two triggers never follow each other
(x_1 is ordinary, and a trigger at t−1 makes x_t a copy of x_{t−2}, which by induction is ordinary), so a
copied token is always ordinary.

The Bayes-optimal next-token predictor is: uniform over ordinary tokens at BOS; the copy (loss 0) after a
trigger; P[x_t, ·] elsewhere. Its expected cross-entropy is ``bayes_loss`` per batch.

The no-op solution. Only the positions after a trigger need attention: a previous-token head and a copy
head bring x_{t−2} to position t. Everywhere else the optimum depends on x_t alone, which the position
already holds, so an attention head there should add nothing — but a softmax head must put weight
somewhere. Trained models make it attend to BOS, whose value vector becomes small and constant, so its
update is ≈ 0 (Guo et al.'s *dormant* heads; the "no-op" heads of "Quantizable Transformers: Removing
Outliers by Helping Attention Heads Do Nothing", Bondarenko et al. 2023). That attention sink on BOS,
and the large BOS residual norms and activations that come with it, are what the variance study measures.
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

BOS = 0


@register_task("bigram_backcopy")
@dataclass(frozen=True)
class BigramBackcopyConfig:
    """``n_tokens`` in all (BOS + triggers + ordinary); ``seq_len`` model inputs per sequence (BOS first);
    Dirichlet concentration α of the bigram rows; ``chain_seed`` fixes P."""

    n_tokens: int = 64
    n_triggers: int = 4
    seq_len: int = 32
    concentration: float = 0.3
    chain_seed: int = 0

    def __post_init__(self) -> None:
        for name, low in (("n_triggers", 1), ("seq_len", 2)):
            _int_at_least(name, getattr(self, name), low)
        _int_at_least("n_tokens", self.n_tokens, self.n_triggers + 3,
                      f"an integer ≥ n_triggers + 3 = {self.n_triggers + 3} (BOS, the triggers, ≥ 2 ordinary tokens)")
        c = self.concentration
        if not (isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) and c > 0):
            raise ConfigError("concentration", c, "a positive finite float")
        object.__setattr__(self, "concentration", float(c))
        _int_at_least("chain_seed", self.chain_seed, 0)

    @property
    def triggers(self) -> tuple[int, ...]:
        return tuple(range(1, self.n_triggers + 1))

    @property
    def n_ordinary(self) -> int:
        return self.n_tokens - 1 - self.n_triggers

    def build(self) -> "BigramBackcopyTask":
        return BigramBackcopyTask(self)


class BigramBackcopyTask:
    """Samples sequences; loss, Bayes loss and metrics of next-token prediction."""

    def __init__(self, cfg: BigramBackcopyConfig):
        self.cfg = cfg
        V = cfg.n_tokens
        rng = np.random.default_rng(cfg.chain_seed)
        P = np.zeros((V, V))
        P[:, 1:] = rng.dirichlet(np.full(V - 1, cfg.concentration), size=V)  # no transition into BOS
        self.transition = P
        self._row_cdf = torch.from_numpy(np.cumsum(P, axis=1))  # float64: float32 rounding never moves a draw
        with np.errstate(divide="ignore"):  # a zero-probability transition is never sampled
            self._log_p = torch.from_numpy(np.log(P))
        self._is_trigger = torch.zeros(V, dtype=torch.bool)
        self._is_trigger[list(cfg.triggers)] = True

    def model_fields(self) -> dict[str, Any]:
        return {"d_vocab": self.cfg.n_tokens, "n_ctx": self.cfg.seq_len, "input_kind": "tokens"}

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """``seq_len + 1`` tokens per sequence: inputs the first seq_len (x_0 = BOS), targets the last."""
        cfg, T = self.cfg, self.cfg.seq_len
        u = torch.rand(T + 1, batch_size, generator=generator, dtype=torch.float64)
        x = torch.empty(T + 1, batch_size, dtype=torch.long)
        x[0] = BOS
        first = cfg.n_triggers + 1  # ordinary tokens are first … n_tokens − 1
        x[1] = first + (u[1] * cfg.n_ordinary).long().clamp_(max=cfg.n_ordinary - 1)
        for t in range(2, T + 1):
            prev = x[t - 1]
            cdf = self._row_cdf[prev]
            bigram = torch.searchsorted(cdf, u[t].unsqueeze(1), right=True).squeeze(1).clamp_(max=cfg.n_tokens - 1)
            x[t] = torch.where(self._is_trigger[prev], x[t - 2], bigram)
        x = x.T.contiguous()
        return {"inputs": x[:, :-1], "targets": x[:, 1:]}

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Mean next-token cross-entropy over every position of every sequence."""
        return F.cross_entropy(output.flatten(0, 1), batch["targets"].flatten())

    def position_kinds(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Bool masks [batch, pos] of what predicts the next token: ``bos`` (uniform), ``copy`` (after a
        trigger), ``bigram`` (everything else)."""
        bos = inputs == BOS
        copy = self._is_trigger[inputs.cpu()].to(inputs.device)
        return {"bos": bos, "copy": copy, "bigram": ~(bos | copy)}

    def bayes_loss(self, batch: Batch) -> float:
        """Cross-entropy of the Bayes-optimal predictor on this batch: log n_ordinary after BOS, 0 after a
        trigger, −log P[x_t, x_{t+1}] elsewhere (mean over positions)."""
        inputs, targets = batch["inputs"].cpu(), batch["targets"].cpu()
        kinds = self.position_kinds(inputs)
        per = torch.zeros(inputs.shape, dtype=torch.float64)
        per[kinds["bos"]] = math.log(self.cfg.n_ordinary)
        per[kinds["bigram"]] = -self._log_p[inputs[kinds["bigram"]], targets[kinds["bigram"]]]
        return float(per.mean())

    @torch.no_grad()
    def metrics(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        """loss, accuracy, copy_accuracy (after triggers), bigram_loss (the model's loss at bigram
        positions), the batch's Bayes loss."""
        inputs, targets = batch["inputs"], batch["targets"]
        kinds = self.position_kinds(inputs)
        per = F.cross_entropy(output.flatten(0, 1), targets.flatten(), reduction="none").view(targets.shape)
        hit = (output.argmax(-1) == targets).float()
        copy = kinds["copy"]
        return {
            "loss": per.mean().item(),
            "accuracy": hit.mean().item(),
            "copy_accuracy": hit[copy].mean().item() if copy.any() else math.nan,
            "bigram_loss": per[kinds["bigram"]].mean().item(),
            "bayes_loss": self.bayes_loss(batch),
        }


def _int_at_least(name: str, value: Any, low: int, allowed: str | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(name, value, allowed or f"an integer ≥ {low}")


__all__ = ["BOS", "BigramBackcopyConfig", "BigramBackcopyTask"]
