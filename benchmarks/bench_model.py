"""Forward+backward throughput of the toy transformer vs Hugging Face GPT-2 of the same shape (CPU).

A GPT-2-small-shaped toy config (12 layers, d_model 256, 8 heads, d_mlp 1024, sequence 81, batch 64,
Pre-LN LayerNorm, learned positions, GELU (tanh), causal, vocabulary 64) is timed on the reference
path, the kernel path, and the kernel path under torch.compile, side by side with
``GPT2LMHeadModel`` built from a ``GPT2Config`` of the same shape (random weights, dropout off) with
``attn_implementation`` "sdpa" and "eager". One step = forward, a scalar loss (mean of squared
logits, the same for every model), backward; throughput = batch / median step time over the timed
steps (after warm-up steps that also absorb compilation), the rows timed round-robin so that load
changes on a shared machine hit them alike.

FLOP count (matmuls only, the convention of "Scaling Laws for Neural Language Models", Kaplan et al.
2020, and "PaLM", Chowdhery et al. 2022):

- Weight matmuls: a token passing through a weight matrix W ∈ R^{m×n} costs 2mn FLOPs forward
  (mn multiply-adds), and backward needs two matmuls of the same size (∂x = ∂y Wᵀ, ∂W = xᵀ ∂y), so
  6mn per token for forward+backward. Summed over P_mm = L·(4d² + 2·d·d_mlp) + d·V (Q, K, V, O, the
  two MLP matrices, the unembedding; embedding lookups are not matmuls): 6·P_mm·B·T.
- Attention: per layer and example, QKᵀ and A·V cost 2·T²·d each forward (summed over heads,
  H·d_head = d), 4·T²·d; backward doubles it: 12·L·T²·d·B for forward+backward. The causal mask's
  skipped half is counted, as is conventional (the reference path computes it anyway).

Achieved FLOP/s = that count / median step time, reported as a fraction of the machine's float32
matmul peak (benchmarks/matmul_peak.py). Targets (issue 2): kernel path ≥ HF GPT-2 on CPU, and
≥ 30 % of matmul peak.

Run: ``.venv/bin/python benchmarks/bench_model.py`` (``--help`` for the options).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")  # before inductor loads: see stack notes §2e

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from matmul_peak import matmul_peak_flops  # noqa: E402

from toy_models import Transformer, TransformerConfig  # noqa: E402
from toy_models.compile import compile_model  # noqa: E402


def toy_config(layers: int, d_model: int, heads: int, seq: int, vocab: int) -> TransformerConfig:
    return TransformerConfig(n_layers=layers, d_model=d_model, n_heads=heads, d_mlp=4 * d_model, n_ctx=seq,
                             d_vocab=vocab, norm_placement="pre", norm_kind="layernorm", pos="learned",
                             act_fn="gelu_tanh", attention_dir="causal")


def hf_gpt2(cfg: TransformerConfig, attn_implementation: str):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=cfg.d_vocab, n_positions=cfg.n_ctx, n_embd=cfg.d_model, n_layer=cfg.n_layers,
                        n_head=cfg.n_heads, n_inner=cfg.mlp_dim, activation_function="gelu_new",
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=cfg.norm_eps,
                        bos_token_id=0, eos_token_id=0, attn_implementation=attn_implementation)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    assert model.config._attn_implementation == attn_implementation
    model.train()  # dropout is 0 anyway; training mode is what is being timed
    return model


def matmul_flops_per_step(cfg: TransformerConfig, batch: int, seq: int) -> float:
    d, L = cfg.d_model, cfg.n_layers
    params_matmul = L * (4 * d * d + 2 * d * cfg.mlp_dim) + d * cfg.vocab_out
    return 6 * params_matmul * batch * seq + 12 * L * seq * seq * d * batch


def make_step(model, call):
    def step():
        model.zero_grad(set_to_none=True)
        call().float().pow(2).mean().backward()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--seq", type=int, default=81)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--skip", nargs="*", default=[], help="rows to skip: reference kernel compiled hf-sdpa hf-eager")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cfg = toy_config(args.layers, args.d_model, args.heads, args.seq, args.vocab)
    tokens = torch.randint(0, cfg.d_vocab, (args.batch, args.seq), generator=torch.Generator().manual_seed(0))
    flops = matmul_flops_per_step(cfg, args.batch, args.seq)
    peak = matmul_peak_flops(threads=args.threads)

    toy = Transformer(cfg)
    candidates = {
        "reference": lambda: make_step(toy, lambda: toy(tokens, attn_path="reference")),
        "kernel": lambda: make_step(toy, lambda: toy(tokens, attn_path="kernel")),
        "compiled": lambda: _compiled_step(toy, tokens),
        "hf-sdpa": lambda: _hf_step(cfg, "sdpa", tokens),
        "hf-eager": lambda: _hf_step(cfg, "eager", tokens),
    }
    labels = {"reference": "toy, reference path", "kernel": "toy, kernel path",
              "compiled": "toy, kernel path, torch.compile", "hf-sdpa": "HF GPT-2, sdpa", "hf-eager": "HF GPT-2, eager"}
    steps = {key: build() for key, build in candidates.items() if key not in args.skip}
    for key, step in steps.items():  # warm-up (and compilation) first, so no row pays for another's
        for _ in range(args.warmup):
            step()
    # Round-robin: one timed step of every row per round, so a load change on a shared machine
    # hits all rows alike instead of whichever row happened to be running.
    times: dict[str, list[float]] = {key: [] for key in steps}
    for _ in range(args.iters):
        for key, step in steps.items():
            start = time.perf_counter()
            step()
            times[key].append(time.perf_counter() - start)
    rows = [(key, statistics.median(ts)) for key, ts in times.items()]
    # The peak, measured before and after the model steps; the better of the two (load only lowers it).
    peak = max(peak, matmul_peak_flops(threads=args.threads))

    hf = dict(rows).get("hf-sdpa")
    print(f"\nshape: {cfg.n_layers} layers, d_model {cfg.d_model}, {cfg.n_heads} heads, d_mlp {cfg.mlp_dim}, "
          f"seq {args.seq}, batch {args.batch}, vocab {cfg.d_vocab}; {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print(f"matmul FLOPs per step (fwd+bwd): {flops / 1e9:.1f} GFLOP; float32 matmul peak {peak / 1e9:.1f} GFLOP/s")
    print(f"median of {args.iters} steps per row (rows timed round-robin) after {args.warmup} warm-up\n")
    print(f"{'model':34s} {'ms/step':>9s} {'examples/s':>11s} {'÷ HF sdpa':>10s} {'GFLOP/s':>9s} {'% peak':>7s}")
    for key, seconds in rows:
        ratio = f"{hf / seconds:10.2f}" if hf else f"{'—':>10s}"
        print(f"{labels[key]:34s} {seconds * 1e3:9.0f} {args.batch / seconds:11.1f} {ratio} "
              f"{flops / seconds / 1e9:9.1f} {100 * flops / seconds / peak:6.1f}%")
    times_by_row = dict(rows)
    if "kernel" in times_by_row:
        print()
        if hf:
            print(f"target kernel ≥ HF GPT-2 (sdpa): {'HOLDS' if times_by_row['kernel'] <= hf else 'MISSED'} "
                  f"({hf / times_by_row['kernel']:.2f}×)")
        frac = flops / times_by_row["kernel"] / peak
        print(f"target kernel ≥ 30% of matmul peak: {'HOLDS' if frac >= 0.30 else 'MISSED'} ({100 * frac:.1f}%)")


def _compiled_step(toy, tokens):
    compiled = compile_model(toy)
    return make_step(toy, lambda: compiled(tokens, attn_path="kernel"))


def _hf_step(cfg, attn_implementation, tokens):
    model = hf_gpt2(cfg, attn_implementation)
    return make_step(model, lambda: model(input_ids=tokens).logits)


if __name__ == "__main__":
    main()
