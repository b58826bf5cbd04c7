"""The attention-SVM training loop as it was before it moved into the trainer (issue 13), kept as the
tests' reference: the trainer must reproduce it bit for bit (tests/test_attention_svm_trainer.py), and
the closed-form checks that need data of their own (n = 1, T = 2) run it directly.

    L = (1/n) Σ_i log(1 + exp(−Y_i f(X_i)))  [+ ρ (‖K‖_F² + ‖Q‖_F²) for (K, Q)]
    normalized: each trained factor θ ← θ − η ∇/(‖∇‖ + ε), ε = float64's machine ε;  gd: θ ← θ − η ∇
"""

from __future__ import annotations

import numpy as np
import torch

from toy_models.single_attention import SingleAttention

EPS = float(np.finfo(np.float64).eps)


def reference_train(model: SingleAttention, X, Z, Y, steps: int, lr: float = 0.1, method: str = "normalized",
                    path: str = "direct") -> np.ndarray:
    """W(0) … W(steps) [steps+1, d, d] of full-batch training from the model's current parameters."""
    ridge = EPS if model.parameterization == "KQ" else 0.0
    X, Y = torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(Y, dtype=torch.float64)
    Z = None if Z is None else torch.as_tensor(Z, dtype=torch.float64)
    params = model.factors()
    Ws = np.empty((steps + 1, model.d, model.d))
    for k in range(steps + 1):
        with torch.no_grad():
            Ws[k] = model.W().numpy()
        if k == steps:
            break
        loss = torch.nn.functional.softplus(-Y * model(X, Z, path=path)).mean()
        objective = loss + ridge * sum((p * p).sum() for p in params) if ridge else loss
        grads = torch.autograd.grad(objective, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(lr * g / (torch.linalg.vector_norm(g) + EPS) if method == "normalized" else lr * g)
    return Ws
