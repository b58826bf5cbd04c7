"""What several graph-search figures share: the paper's citation and the held-out accuracy per lookahead."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from toy_models.tasks.graph_search import GraphSearchConfig, collate

PAPER = "Transformers Struggle to Learn to Search (Saparov et al., ICLR 2025)"


@dataclass(frozen=True)
class LookaheadScore:
    """Held-out accuracy at one lookahead: n examples, k correct, and the chance E[1/outdeg] on them."""

    L: int
    n: int
    correct: int
    chance: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.n

    def wilson_lower(self, z: float = 3.0) -> float:
        """Wilson score lower bound of the accuracy at z standard errors."""
        p, n = self.accuracy, self.n
        centre = p + z * z / (2 * n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return float((centre - half) / (1 + z * z / n))


@torch.no_grad()
def accuracy_by_lookahead(model, task_cfg, n: int, lookaheads=None) -> list[LookaheadScore]:
    """Accuracy of ``model`` on the held-out balanced test set of each lookahead L ≥ 1 (``test_set``:
    start with ≥ 2 children, exactly one useful step), with the chance accuracy 1/outdeg on the same examples."""
    task = GraphSearchConfig(max_input_size=task_cfg.max_input_size, max_lookahead=task_cfg.max_lookahead,
                             test_seed=task_cfg.test_seed).build()
    model.eval()
    out = []
    for L in lookaheads or range(1, task.max_lookahead + 1):
        batch = collate(task.test_set(L, n), task.vocab)
        logits = model(batch["inputs"], padding_mask=batch["padding_mask"])[:, -1]
        correct = batch["useful"].gather(1, logits.argmax(-1, keepdim=True))[:, 0]
        out.append(LookaheadScore(L=L, n=n, correct=int(correct.sum()),
                                  chance=float((1.0 / batch["out_degree"].double()).mean())))
    return out
