"""What a full-scale request needs, and how long it would take on this machine's CPU (an estimate).

A ``--scale full`` command that would train on the CPU first prints this and asks for confirmation
(or ``--yes``), instead of silently starting a run of days.

**FLOPs per step** (matmuls only, forward + backward; the convention of "Scaling Laws for Neural
Language Models", Kaplan et al. 2020, as in ``benchmarks/bench_model.py``). A token through a
trainable weight W ∈ R^{m×n} whose input needs a gradient costs 2mn forward and 4mn backward
(∂x = ∂y Wᵀ and ∂W = xᵀ∂y): 6mn. The continuous read-in (its input needs no gradient) and a frozen
one-hot unembedding (no ∂W) cost 4mn. Per layer the weights are Q, K, V, O (4·d·H·d_head) and the
MLP (2 or, gated, 3 × d·d_mlp); the attention products QKᵀ and A·V cost 4·T²·H·d_head per example
forward and twice that backward: 12·T²·H·d_head. With T = n_ctx and batch B:

    F_step = B·T·(6·P_mm + 4·P_frozen) + 12·L·B·T²·H·d_head,     F_eval = F_step / 3 per eval batch.

``tests/test_device_estimate.py`` checks this count against ``torch.utils.flop_counter`` exactly.

**Time.** The largest member (by F_step) is timed on this CPU with the torch threads each run would
get: one warm-up step, then up to 5 timed steps within about 2 s of the trainer's own step
(``theorybench.train.training_steps``: batch draw, forward, loss, backward, clipping, optimizer and
scheduler update, from the run's initial state with its frozen parameters), so data generation and
every non-matmul op are included. Its effective rate F_step / t_step scales the other members by their F_step (smaller
models use the CPU less well, so for them this underestimates), and ``parallel`` runs at a time
divide the total (a local pool of that many workers). A step predicted to take over 10 s at the measured
matmul peak (``benchmarks/matmul_peak.py``'s method, n = 1024) is not timed (the prompt stays
quick); the estimate is then total FLOPs / peak, a lower bound.

**Memory on a GPU** (≈, for the largest member): weights, gradients and optimizer state,
(2 + s)·P·bytes with s = 2 moments for AdamW, 1 for SGD with momentum and sign-momentum, 0
otherwise; plus activations ≈ L·(34·B·T·d + 5·H·B·T²)·bytes/2 ("Reducing Activation Recomputation
in Large Transformer Models", Korthikanti et al. 2022, whose 16-bit count is scaled to the dtype)
plus the logits 2·B·T·V·bytes.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import torch

from toy_models.single_attention_config import SingleAttentionConfig

from .train import training_steps

if TYPE_CHECKING:
    from toy_models import TransformerConfig

    from .experiment import ExperimentConfig

MEASURE_BUDGET_S = 2.0
MAX_MEASURED_STEP_S = 10.0


# ---------------------------------------------------------------------------------- counts
def matmul_weights(model: "TransformerConfig") -> tuple[int, int]:
    """(P_mm, P_frozen): weight entries a token passes through costing 6 FLOPs (fwd+bwd) and those costing 4."""
    d, H, dh, L = model.d_model, model.n_heads, model.head_dim, model.n_layers
    per_layer = 4 * d * H * dh + (0 if model.attn_only else (3 if model.gated_mlp else 2) * d * model.mlp_dim)
    full, frozen = L * per_layer, 0
    if model.input_kind == "continuous":
        frozen += model.d_input * d  # the read-in's input needs no gradient: no ∂x
    if model.output == "onehot":
        frozen += d * model.vocab_out  # frozen W_U: no ∂W
    else:
        full += d * model.vocab_out
    return full, frozen


def step_flops(cfg: "ExperimentConfig") -> float:
    """Matmul FLOPs of one training step (forward + backward), T = n_ctx; see the module docstring."""
    model = cfg.resolved_model()
    if isinstance(model, SingleAttentionConfig):
        return _single_attention_step_flops(cfg, model)
    B, T = cfg.train.batch_size, model.n_ctx
    full, frozen = matmul_weights(model)
    return B * T * (6 * full + 4 * frozen) + 12 * model.n_layers * B * T * T * model.n_heads * model.head_dim


def _single_attention_step_flops(cfg: "ExperimentConfig", model: SingleAttentionConfig) -> float:
    """The attention-SVM layer f = vᵀXᵀsoftmax(XWz) on its full batch of n inputs of T tokens (the task's),
    its scores contracted left to right as torch's einsum does without opt_einsum: X·W, 2·n·T·d² forward
    and as much backward (for W only: X is data); W = K Qᵀ, 2·d²·m forward and as much per trained factor.
    Left out: the O(n·T·d) products (scores·z, the softmax-weighted sums), under 3/d of the total."""
    n, T, d, m = cfg.train.batch_size, cfg.task.T, model.d, model.m or model.d
    trained = 2 if model.parameterization == "KQ" else 1
    return 4 * n * T * d * d + 2 * d * d * m * (1 + trained)


def run_flops(cfg: "ExperimentConfig", from_step: int = 0) -> float:
    """Matmul FLOPs of training steps from_step+1 … steps, with their evaluations (forward only)."""
    tc = cfg.train
    remaining = max(tc.steps - from_step, 0)
    last = 1 if tc.steps % tc.eval_every and remaining else 0  # the last step evaluates too
    evals = tc.steps // tc.eval_every - from_step // tc.eval_every + last
    return step_flops(cfg) * (remaining + evals * tc.eval_batches / 3)


def parameter_count(model: "TransformerConfig") -> int:
    """≈ trainable parameters: the matmul weights plus embedding tables (norms and biases, O(L·d), left out)."""
    if isinstance(model, SingleAttentionConfig):
        return 2 * model.d * (model.m or model.d) if model.parameterization == "KQ" else model.d**2
    full, frozen = matmul_weights(model)
    tables = (model.d_vocab * model.d_model if model.input_kind == "tokens" and model.embed == "learned" else 0)
    tables += model.n_ctx * model.d_model if model.pos == "learned" else 0
    return full + tables + (model.d_input * model.d_model if model.input_kind == "continuous" else 0)


def gpu_memory_bytes(cfg: "ExperimentConfig") -> float:
    """≈ bytes on a GPU for training ``cfg``: weights + gradients + optimizer state + activations."""
    model = cfg.resolved_model()
    size = 8 if model.dtype == "float64" else 4
    if isinstance(model, SingleAttentionConfig):  # weights, gradients and the n·T·d inputs' few copies
        return 2 * parameter_count(model) * size + 8 * cfg.train.batch_size * cfg.task.T * model.d * size
    moments = {"adamw": 2, "sgd": 1 if cfg.optim.momentum else 0, "sign_momentum": 1}.get(cfg.optim.name, 0)
    B, T, d, H, L = cfg.train.batch_size, model.n_ctx, model.d_model, model.n_heads, model.n_layers
    activations = L * (34 * B * T * d + 5 * H * B * T * T) * size / 2 + 2 * B * T * model.vocab_out * size
    return (2 + moments) * parameter_count(model) * size + activations


# ---------------------------------------------------------------------------------- measurements
def matmul_peak_flops(n: int = 1024, repeats: int = 3) -> float:
    """Best float32 FLOP/s of an n×n by n×n matmul (2n³ FLOPs) over ``repeats``, after one warm-up."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def measure_step_seconds(cfg: "ExperimentConfig", budget_s: float = MEASURE_BUDGET_S, max_steps: int = 5,
                         threads: int | None = None) -> float:
    """Median wall time of the real training step of ``cfg`` on the CPU (one warm-up step first), with
    ``threads`` torch threads (default: as now)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _time_steps(cfg, budget_s, max_steps)
    finally:
        torch.set_num_threads(before)


def _time_steps(cfg: "ExperimentConfig", budget_s: float, max_steps: int) -> float:
    with training_steps(cfg, device="cpu") as step:
        step()  # warm-up
        times: list[float] = []
        start_all = time.perf_counter()
        while len(times) < max_steps and (not times or time.perf_counter() - start_all < budget_s):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


# ---------------------------------------------------------------------------------- the estimate
@dataclass(frozen=True)
class CpuEstimate:
    """The estimate for a list of runs (each with the step it would start from)."""

    runs: int
    steps: int
    total_flops: float
    peak_flops: float
    threads: int
    parallel: int
    largest: str
    largest_step_flops: float
    measured_step_s: float | None  # None: too large to time, the estimate is a lower bound
    seconds: float
    gpu_memory_bytes: float
    largest_params: int

    def message(self, what: str) -> str:
        """A paragraph for the user: what was asked, how long on this CPU, what a GPU run needs."""
        if self.measured_step_s is not None:
            how = (f"{self.largest} measured {self.measured_step_s:.3g} s/step here "
                   f"({format_flops(self.largest_step_flops)} of matmuls per step, "
                   f"{format_flops(self.largest_step_flops / self.measured_step_s)}/s effective)"
                   + (", the other runs scaled by their FLOPs per step (smaller models use the CPU less "
                      "well, so for them it is an underestimate)" if self.runs > 1 else ""))
            bound = "about"
        else:
            how = (f"{self.largest} was not timed (one step would take over {MAX_MEASURED_STEP_S:.0f} s); "
                   "this is total FLOPs / the matmul peak, a lower bound")
            bound = "at least"
        at_once = f"{self.parallel} runs at a time" if self.parallel > 1 else "run after run"
        return (f"{what}: {self.runs} run(s), {self.steps:,} training steps, {format_flops(self.total_flops)} "
                f"of matmuls, and no CUDA GPU is in use (torch.cuda.is_available() is False, or the device "
                f"asked for is the CPU). On this CPU ({at_once}, {self.threads} torch thread(s) each; float32 "
                f"matmul peak measured {format_flops(self.peak_flops)}/s) it would take {bound} "
                f"{format_duration(self.seconds)}. This is an estimate: {how}. "
                f"On a GPU the largest run needs ≈ {format_bytes(self.gpu_memory_bytes)} of GPU memory "
                f"(≈ {self.largest_params:,} parameters with gradients and optimizer state, plus "
                "activations); run it where torch.cuda.is_available() (THEORYBENCH_DEVICE=cuda), or on a "
                "cluster: theorybench sweep NAME --scale full --executor slurm --gpus 1.")


def estimate_cpu(runs: Sequence[tuple["ExperimentConfig", int]], measure: bool = True, threads: int | None = None,
                 parallel: int = 1) -> CpuEstimate:
    """Estimate CPU time for ``runs`` = [(config, step it starts from)], timing the largest with ``threads``
    torch threads (default: as now), ``parallel`` runs at a time (see the module docstring)."""
    if not runs:
        raise ValueError("estimate_cpu needs at least one run")
    flops = [run_flops(cfg, start) for cfg, start in runs]
    largest_cfg = max((cfg for cfg, _ in runs), key=step_flops)
    largest_step = step_flops(largest_cfg)
    peak = matmul_peak_flops()
    measured = None
    if measure and largest_step / peak <= MAX_MEASURED_STEP_S:
        measured = measure_step_seconds(largest_cfg, threads=threads)
    rate = largest_step / measured if measured else peak
    parallel = max(1, min(parallel, len(runs)))
    return CpuEstimate(
        runs=len(runs), steps=sum(max(cfg.train.steps - start, 0) for cfg, start in runs),
        total_flops=sum(flops), peak_flops=peak, threads=threads or torch.get_num_threads(), parallel=parallel,
        largest=largest_cfg.name, largest_step_flops=largest_step, measured_step_s=measured,
        seconds=sum(flops) / rate / parallel,
        gpu_memory_bytes=gpu_memory_bytes(largest_cfg), largest_params=parameter_count(largest_cfg.resolved_model()))


def format_flops(flops: float) -> str:
    """"850 MFLOP", "3.1 TFLOP", ..."""
    for unit, size in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if flops >= size:
            return f"{flops / size:.3g} {unit}"
    return f"{flops:.3g} FLOP"


def format_bytes(n: float) -> str:
    """"12 MiB", "3.4 GiB"."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def format_duration(seconds: float) -> str:
    """"45 s", "12 min", "3.4 h", "2.1 days"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


__all__ = ["CpuEstimate", "estimate_cpu", "format_bytes", "format_duration", "format_flops", "gpu_memory_bytes",
           "matmul_weights",
           "measure_step_seconds", "parameter_count", "run_flops", "step_flops"]
