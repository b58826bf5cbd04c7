"""The configurable toy transformer: one model class for every study family.

config → embedding (+ positions) → [optional embedding norm] → blocks → [final norm] → unembedding.

It subclasses TransformerLens' ``HookedRootModule``, so ``run_with_cache``, ``run_with_hooks``,
``add_hook`` (forward and backward) and hook names such as ``blocks.3.attn.hook_pattern`` work as
they do on a ``HookedTransformer``. Attention runs on the ``reference`` path (einsum, every
intermediate hooked) or the ``kernel`` path (``scaled_dot_product_attention``), chosen per call
(``attn_path=``) or by the config; both compute the same function from the same weights.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from jaxtyping import Bool, Float, Int, Shaped
from torch import Tensor, nn
from transformer_lens import ActivationCache, HookedRootModule
from transformer_lens.hook_points import HookPoint

from .attention import REFERENCE_ONLY_HOOKS, build_allowed
from .block import Block
from .config import ConfigError, TransformerConfig
from .init import initialize
from .norms import make_norm
from .positional import sinusoidal_table

ATTN_PATHS = ("reference", "kernel")


class Embed(nn.Module):
    """Token embedding W_E [d_vocab, d_model]; frozen one-hot W_E = [I | 0] when ``embed='onehot'``."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        dtype = getattr(torch, cfg.dtype)
        if cfg.embed == "onehot":
            self.W_E = nn.Parameter(torch.eye(cfg.d_vocab, cfg.d_model, dtype=dtype), requires_grad=False)
        else:
            self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model, dtype=dtype))

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        return self.W_E[tokens]


class ReadIn(nn.Module):
    """Linear read-in of continuous inputs: x W_E + b_E, W_E [d_input, d_model]."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        dtype = getattr(torch, cfg.dtype)
        self.W_E = nn.Parameter(torch.empty(cfg.d_input, cfg.d_model, dtype=dtype))
        self.b_E = nn.Parameter(torch.zeros(cfg.d_model, dtype=dtype))

    def forward(self, x: Float[Tensor, "batch pos d_input"]) -> Float[Tensor, "batch pos d_model"]:
        return x @ self.W_E + self.b_E


class PosEmbed(nn.Module):
    """Positions added to the residual stream: learned, sinusoidal (fixed) or one-hot (frozen).

    One-hot positions sit in the last n_ctx coordinates, so with one-hot tokens in the first d_vocab
    the sum equals the concatenation [one-hot token | 0 | one-hot position] of "Transformers Struggle
    to Learn to Search" (Saparov et al. 2025).
    """

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        dtype = getattr(torch, cfg.dtype)
        if cfg.pos == "learned":
            self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model, dtype=dtype))
        elif cfg.pos == "sinusoidal":
            self.register_buffer("W_pos", sinusoidal_table(cfg.n_ctx, cfg.d_model, dtype))
        else:  # onehot
            table = torch.zeros(cfg.n_ctx, cfg.d_model, dtype=dtype)
            table[:, cfg.onehot_pos_offset:] = torch.eye(cfg.n_ctx, dtype=dtype)
            self.W_pos = nn.Parameter(table, requires_grad=False)

    def forward(self, batch: int, T: int) -> Float[Tensor, "batch pos d_model"]:
        return self.W_pos[:T].expand(batch, T, -1)


class Unembed(nn.Module):
    """Logits x W_U + b_U, W_U [d_model, d_vocab_out]; frozen W_U = W_Eᵀ when ``output='onehot'``."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        dtype = getattr(torch, cfg.dtype)
        if cfg.output == "onehot":
            self.W_U = nn.Parameter(torch.eye(cfg.d_model, cfg.vocab_out, dtype=dtype), requires_grad=False)
        else:
            self.W_U = nn.Parameter(torch.empty(cfg.d_model, cfg.vocab_out, dtype=dtype))
        self.b_U = nn.Parameter(torch.zeros(cfg.vocab_out, dtype=dtype)) if cfg.unembed_bias else None

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab_out"]:
        out = x @ self.W_U
        return out + self.b_U if self.b_U is not None else out


class Transformer(HookedRootModule):
    """A toy transformer built from a ``TransformerConfig``; see that class for the architecture."""

    def __init__(self, cfg: TransformerConfig | None = None, **overrides: Any):
        super().__init__()
        cfg = (cfg or TransformerConfig()).replace(**overrides) if overrides else (cfg or TransformerConfig())
        self.cfg = cfg
        self.embed = Embed(cfg) if cfg.input_kind == "tokens" else ReadIn(cfg)
        self.hook_embed = HookPoint()
        if cfg.pos in ("learned", "sinusoidal", "onehot"):
            self.pos_embed = PosEmbed(cfg)
            self.hook_pos_embed = HookPoint()
        else:
            self.pos_embed = None
        self.ln_embed = make_norm(cfg) if cfg.has_embed_norm else None
        self.blocks = nn.ModuleList(Block(cfg, layer) for layer in range(cfg.n_layers))
        self.ln_final = make_norm(cfg) if cfg.has_final_norm else None
        self.unembed = Unembed(cfg)
        initialize(self, cfg)
        self.setup()

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        inputs: Int[Tensor, "batch pos"] | Float[Tensor, "batch pos d_input"],
        padding_mask: Shaped[Tensor, "batch pos"] | None = None,
        attn_mask: Shaped[Tensor, "query key"] | Shaped[Tensor, "batch query key"] | None = None,
        attn_path: str | None = None,
    ) -> Float[Tensor, "batch pos d_vocab_out"]:
        """Logits [batch, pos, d_vocab_out].

        inputs: token ids [batch, pos] (``input_kind='tokens'``) or vectors [batch, pos, d_input].
        padding_mask: [batch, pos], 1 for real tokens (keys at 0 are never attended to).
        attn_mask: [query, key] or [batch, query, key], True where a query may attend to a key;
            combined with the causal rule when ``attention_dir='causal'``.
        attn_path: "reference" or "kernel"; default ``cfg.attn_path``.
        """
        path = self._check_path(attn_path)
        self._check_inputs(inputs)
        B, T = inputs.shape[:2]
        resid = self.hook_embed(self.embed(inputs))
        if self.pos_embed is not None:
            resid = resid + self.hook_pos_embed(self.pos_embed(B, T))
        if self.ln_embed is not None:
            resid = self.ln_embed(resid, fused=path == "kernel")
        allowed = build_allowed(self.cfg.attention_dir, padding_mask, attn_mask, B, T, resid.device)
        for block in self.blocks:
            resid = block(resid, allowed, path)
        if self.ln_final is not None:
            resid = self.ln_final(resid, fused=path == "kernel")
        return self.unembed(resid)

    def run_with_cache(
        self,
        inputs: Int[Tensor, "batch pos"] | Float[Tensor, "batch pos d_input"],
        padding_mask: Shaped[Tensor, "batch pos"] | None = None,
        attn_mask: Shaped[Tensor, "query key"] | Shaped[Tensor, "batch query key"] | None = None,
        attn_path: str | None = None,
        *,
        names_filter: Callable[[str], bool] | Sequence[str] | str | None = None,
        return_cache_object: bool = True,
        remove_batch_dim: bool = False,
        **kwargs: Any,
    ) -> tuple[Float[Tensor, "batch pos d_vocab_out"], ActivationCache | dict[str, Tensor]]:
        """TransformerLens' ``run_with_cache``: ``(output, cache)``, the cache a TransformerLens
        ``ActivationCache`` (``cache["pattern", 0]``, ``accumulated_resid``, ``decompose_resid``, and
        dict-style ``cache[name]``, ``keys()``, ``items()``), or a plain dict with
        ``return_cache_object=False``, as in ``HookedTransformer``. On the kernel path, with no filter,
        the cache holds every activation that path computes (scores, pattern and per-head result do
        not exist there). The first four parameters are ``forward``'s; other keywords go to
        TransformerLens' ``run_with_cache`` (``incl_bwd``, ``device``, …)."""
        path = self._check_path(attn_path)
        if names_filter is None and path == "kernel":
            names_filter = lambda name: not name.endswith(REFERENCE_ONLY_HOOKS)  # noqa: E731
        output, cache = super().run_with_cache(inputs, padding_mask=padding_mask, attn_mask=attn_mask,
                                               attn_path=attn_path, names_filter=names_filter,
                                               remove_batch_dim=remove_batch_dim, **kwargs)
        if not return_cache_object:
            return output, cache
        return output, ActivationCache(cache, self, has_batch_dim=not remove_batch_dim)

    # ------------------------------------------------------------------ input checks
    def _check_path(self, attn_path: str | None) -> str:
        path = attn_path or self.cfg.attn_path
        if path not in ATTN_PATHS:
            raise ConfigError("attn_path", path, f"one of {', '.join(map(repr, ATTN_PATHS))}")
        return path

    def _check_inputs(self, inputs: torch.Tensor) -> None:
        cfg = self.cfg
        if not isinstance(inputs, torch.Tensor):
            raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
        if cfg.input_kind == "tokens":
            if inputs.dim() != 2 or inputs.dtype not in (torch.int64, torch.int32):
                raise ValueError(f"expected token ids of shape [batch, pos] and dtype int64, got shape "
                                 f"{tuple(inputs.shape)} and dtype {inputs.dtype}")
            if inputs.numel() and (inputs.min() < 0 or inputs.max() >= cfg.d_vocab):
                raise ValueError(f"token ids must lie in [0, d_vocab={cfg.d_vocab}), got range "
                                 f"[{int(inputs.min())}, {int(inputs.max())}]")
        else:
            want = getattr(torch, cfg.dtype)
            if inputs.dim() != 3 or inputs.shape[-1] != cfg.d_input:
                raise ValueError(f"expected inputs of shape [batch, pos, d_input={cfg.d_input}], got "
                                 f"{tuple(inputs.shape)}")
            if inputs.dtype != want:
                raise ValueError(f"expected {want} inputs (the model's dtype), got {inputs.dtype}; "
                                 f"cast with inputs.to({want})")
        if inputs.shape[1] > cfg.n_ctx:
            raise ValueError(f"sequence length {inputs.shape[1]} exceeds n_ctx={cfg.n_ctx}")
