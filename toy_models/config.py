"""The one config that describes every toy transformer in the workbench.

A `TransformerConfig` is a frozen dataclass: it hashes (run identity), round-trips through a plain
dict (run store, command line) and validates itself at construction, so a bad value is refused with
one message naming the field, the value and what is allowed, before any tensor exists.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

# ConfigError lives in the bottom layer (theory.errors) so every package raises the one type; it is
# re-exported here, where callers have always imported it from.
from theory.errors import ConfigError, is_real
from theory.variance import architecture as depth_rules

NormPlacement = Literal["none", "post", "pre", "peri", "mix", "lns", "deepnorm"]
NormKind = Literal["layernorm", "rmsnorm", "crmsnorm"]
AttentionKind = Literal["softmax", "linear"]
AttentionDir = Literal["causal", "bidirectional"]
AttentionPath = Literal["reference", "kernel"]
ActFn = Literal["relu", "gelu", "gelu_tanh", "silu"]
InputKind = Literal["tokens", "continuous"]
EmbedKind = Literal["learned", "onehot"]
PosKind = Literal["learned", "sinusoidal", "rotary", "onehot", "none"]
OutputKind = Literal["unembed", "onehot"]
InitScheme = Literal["gpt2", "fan_in", "normal", "zero"]
Dtype = Literal["float32", "float64"]


@dataclass(frozen=True)
class TransformerConfig:
    """Shape, architecture and initialization of a toy transformer.

    Residual update per block, by ``norm_placement`` (N a LayerNorm or RMSNorm, F a sublayer):

    - ``none``: x ← x + F(x)
    - ``post``: x ← N(x + F(x))              (original Transformer, BERT)
    - ``pre``:  x ← x + F(N(x)), final norm  (GPT-2, Llama)
    - ``peri``: x ← x + N_out(F(N_in(x))), final norm, optional embedding norm
      ("Peri-LN: Revisiting Layer Normalization in the Transformer Architecture", Kim et al. 2025;
      Gemma 2)
    - ``mix``:  the first ⌊α·L⌋ blocks Post-LN, the rest Pre-LN, final norm
      ("Mix-LN: Unleashing the Power of Deeper Layers by Combining Pre-LN and Post-LN", Li et al. 2024)
    - ``lns``:  x ← x + F(N(x)/√ℓ) in block ℓ = 1 … L, final norm: LayerNorm-Scaling
      ("The Curse of Depth in Large Language Models", Sun et al. 2025)
    - ``deepnorm``: x ← N(α·x + F(x)), α = (2L)^{1/4}, with W_V, W_O, W_in, W_gate, W_out drawn
      β = (8L)^{-1/4} times smaller ("DeepNet: Scaling Transformers to 1,000 Layers", Wang et al.
      2022, decoder-only constants with L blocks)

    Attention is ``softmax`` or ``linear`` (no softmax: pattern = scores, optionally divided by the
    number of keys each query may attend to, the 1/N of the linear self-attention in "Transformers
    learn in-context by gradient descent", von Oswald et al. 2023). Scores are q·k / attn_scale with
    attn_scale = √d_head unless set.

    Two options from "Quantizable Transformers: Removing Outliers by Helping Attention Heads Do Nothing"
    (Bondarenko et al. 2023) let a head do nothing without extreme scores: the clipped softmax
    clip((ζ − γ)·softmax(s) + γ, 0, 1) (``clip_gamma`` γ ≤ 0, ``clip_zeta`` ζ ≥ 1; the defaults 0 and
    1 are the plain softmax), and ``attn_gate``: head h's output z_h is multiplied by
    sigmoid(x_h · w_G[h] + b_G[h]), x_h head h's d_head-sized chunk of the attention's input (the
    paper's conditional per-head gate; b_G = 0 at init, so every gate starts at 1/2).

    ``norm_kind='crmsnorm'`` is the compressed RMSNorm of "Pre-RMSNorm and Pre-CRMSNorm Transformers"
    (Jiang et al. 2023): the residual stream stores d_model coordinates of a zero-mean vector in
    R^{d_model+1}, whose dropped last coordinate is minus the sum of the stored ones.
    """

    # Shape
    n_layers: int = 2
    d_model: int = 64
    n_heads: int = 4
    d_head: int | None = None  # default d_model // n_heads; may differ
    d_mlp: int | None = None  # default 4 · d_model
    n_ctx: int = 64

    # Blocks
    attn_only: bool = False
    act_fn: ActFn = "gelu"
    gated_mlp: bool = False
    attn_bias: bool = True
    mlp_bias: bool = True

    # Attention
    attention: AttentionKind = "softmax"
    attention_dir: AttentionDir = "causal"
    linear_normalize: bool = True  # linear attention only: divide by the number of attended keys
    attn_scale: float | None = None  # None: √d_head
    clip_gamma: float = 0.0  # clipped softmax's γ ≤ 0 (softmax only)
    clip_zeta: float = 1.0  # clipped softmax's ζ ≥ 1 (softmax only)
    attn_gate: bool = False  # per-head sigmoid gate on the attention output

    # Normalization
    norm_placement: NormPlacement = "pre"
    norm_kind: NormKind = "layernorm"
    norm_gain: bool = True
    norm_bias: bool = True  # LayerNorm only; RMSNorm has no bias
    norm_eps: float = 1e-5
    mix_alpha: float = 0.25
    embed_norm: bool | None = None  # None: on for "peri" (and "post", as BERT), off otherwise

    # Input and output
    input_kind: InputKind = "tokens"
    d_vocab: int = 64  # tokens only
    d_input: int | None = None  # continuous only
    embed: EmbedKind = "learned"
    pos: PosKind = "learned"
    rotary_base: float = 10000.0
    output: OutputKind = "unembed"
    d_vocab_out: int | None = None  # default d_vocab (tokens) or 1 (continuous)
    unembed_bias: bool = True

    # Initialization and numerics
    init: InitScheme = "gpt2"
    init_std: float = 0.02
    seed: int = 0
    dtype: Dtype = "float32"
    attn_path: AttentionPath = "reference"

    def __post_init__(self) -> None:
        self._validate()

    # ------------------------------------------------------------------ derived sizes
    @property
    def head_dim(self) -> int:
        return self.d_head if self.d_head is not None else self.d_model // self.n_heads

    @property
    def mlp_dim(self) -> int:
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model

    @property
    def vocab_out(self) -> int:
        if self.d_vocab_out is not None:
            return self.d_vocab_out
        return self.d_vocab if self.input_kind == "tokens" else 1

    @property
    def scale(self) -> float:
        return self.attn_scale if self.attn_scale is not None else math.sqrt(self.head_dim)

    @property
    def has_embed_norm(self) -> bool:
        if self.embed_norm is not None:
            return self.embed_norm
        return self.norm_placement in ("peri", "post", "deepnorm")

    @property
    def has_final_norm(self) -> bool:
        return self.norm_placement in ("pre", "peri", "mix", "lns")

    @property
    def clipped_softmax(self) -> bool:
        """True when (γ, ζ) differ from (0, 1), where the clipped softmax is the plain softmax."""
        return depth_rules.clipped_softmax(self.clip_gamma, self.clip_zeta)

    @property
    def deepnorm_alpha(self) -> float:
        """DeepNorm's residual weight α = (2L)^{1/4} (DeepNet, decoder-only, L blocks); 1 otherwise."""
        return depth_rules.deepnorm_alpha(self.norm_placement, self.n_layers)

    @property
    def deepnorm_beta(self) -> float:
        """DeepNorm's init gain β = (8L)^{-1/4} on W_V, W_O and the MLP's weights; 1 otherwise."""
        return depth_rules.deepnorm_beta(self.norm_placement, self.n_layers)

    def lns_scale(self, layer: int) -> float:
        """LayerNorm-Scaling's factor 1/√ℓ on block ``layer``'s norm outputs (ℓ = layer + 1); 1 otherwise."""
        return depth_rules.lns_scale(self.norm_placement, layer)

    @property
    def n_post_layers(self) -> int:
        """How many leading blocks are Post-LN: all for "post", ⌊α·L⌋ for "mix", else none."""
        if self.norm_placement == "post":
            return self.n_layers
        if self.norm_placement == "mix":
            return depth_rules.mix_post_blocks(self.mix_alpha, self.n_layers)
        return 0

    def block_placement(self, layer: int) -> str:
        """The placement of one block: "mix" resolves to "post" or "pre" by layer index."""
        if self.norm_placement == "mix":
            return "post" if layer < self.n_post_layers else "pre"
        return self.norm_placement

    @property
    def onehot_pos_offset(self) -> int:
        """One-hot positions are concatenated: they occupy the last n_ctx residual coordinates."""
        return self.d_model - self.n_ctx

    # ------------------------------------------------------------------ (de)serialization
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TransformerConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(unknown[0], data[unknown[0]], f"unknown field; valid fields: {', '.join(sorted(known))}")
        return cls(**data)

    def replace(self, **changes: Any) -> "TransformerConfig":
        return dataclasses.replace(self, **changes)

    def label(self) -> str:
        """What a run folder's name shows of the model: ``<norm placement>-L<layers>-d<d_model>``."""
        return f"{self.norm_placement}-L{self.n_layers}-d{self.d_model}"

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        for name, literal in _LITERALS.items():
            allowed, value = get_args(literal), getattr(self, name)
            if value not in allowed:
                raise ConfigError(name, value, f"one of {', '.join(map(repr, allowed))}")
        for name in ("n_layers", "d_model", "n_heads", "n_ctx", "d_vocab"):
            _positive_int(name, getattr(self, name))
        for name in ("d_head", "d_mlp", "d_input", "d_vocab_out"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        for name in ("attn_only", "gated_mlp", "attn_bias", "mlp_bias", "linear_normalize", "norm_gain",
                     "norm_bias", "unembed_bias", "attn_gate"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, getattr(self, name), "True or False")
        if self.embed_norm is not None and not isinstance(self.embed_norm, bool):
            raise ConfigError("embed_norm", self.embed_norm, "True, False or None (placement default)")
        if self.d_head is None and self.d_model % self.n_heads:
            raise ConfigError("n_heads", self.n_heads,
                              f"must divide d_model={self.d_model} when d_head is not set")
        if not (is_real(self.mix_alpha) and 0.0 <= self.mix_alpha <= 1.0):
            raise ConfigError("mix_alpha", self.mix_alpha, "a finite fraction in [0, 1]")
        if not (is_real(self.norm_eps) and self.norm_eps > 0):
            raise ConfigError("norm_eps", self.norm_eps, "a positive finite float")
        if not (is_real(self.clip_gamma) and self.clip_gamma <= 0):
            raise ConfigError("clip_gamma", self.clip_gamma, "a finite float ≤ 0 (0 with clip_zeta=1: plain softmax)")
        if not (is_real(self.clip_zeta) and self.clip_zeta >= 1):
            raise ConfigError("clip_zeta", self.clip_zeta, "a finite float ≥ 1 (1 with clip_gamma=0: plain softmax)")
        if self.clipped_softmax and self.attention != "softmax":
            raise ConfigError("clip_gamma/clip_zeta", (self.clip_gamma, self.clip_zeta),
                              f"(0, 1) with attention={self.attention!r}: clipping applies to a softmax")
        if self.attn_gate and self.head_dim * self.n_heads != self.d_model:
            raise ConfigError("attn_gate", self.attn_gate,
                              f"False unless n_heads · d_head = d_model (each head's gate reads its own chunk of "
                              f"the input), got {self.n_heads} · {self.head_dim} ≠ {self.d_model}")
        if not (is_real(self.init_std) and self.init_std >= 0):
            raise ConfigError("init_std", self.init_std, "a non-negative finite float")
        if self.attn_scale is not None and not (is_real(self.attn_scale) and self.attn_scale > 0):
            raise ConfigError("attn_scale", self.attn_scale, "a positive finite float, or None for √d_head")
        if not (is_real(self.rotary_base) and self.rotary_base > 0):
            raise ConfigError("rotary_base", self.rotary_base, "a positive finite float")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError("seed", self.seed, "a non-negative integer")
        if self.pos == "rotary" and self.head_dim % 2:
            raise ConfigError("pos", self.pos, f"rotary needs an even head size, got d_head={self.head_dim}")
        if self.input_kind == "continuous":
            if self.d_input is None:
                raise ConfigError("d_input", None, "a positive integer when input_kind='continuous'")
            if self.embed == "onehot":
                raise ConfigError("embed", self.embed, "'learned' when input_kind='continuous' (a linear read-in)")
        if self.embed == "onehot" or self.output == "onehot":
            token_room = self.d_model - (self.n_ctx if self.pos == "onehot" else 0)
            if self.d_vocab > token_room:
                raise ConfigError("d_model", self.d_model,
                                  f"one-hot tokens need d_model ≥ d_vocab (+ n_ctx with one-hot positions) "
                                  f"= {self.d_vocab + (self.n_ctx if self.pos == 'onehot' else 0)}")
        if self.output == "onehot" and self.vocab_out != self.d_vocab:
            raise ConfigError("d_vocab_out", self.d_vocab_out, "equal to d_vocab with a one-hot unembedding")
        if self.pos == "onehot" and self.n_ctx > self.d_model:
            raise ConfigError("n_ctx", self.n_ctx, f"≤ d_model={self.d_model} with one-hot positions")


_LITERALS: dict[str, Any] = {
    "act_fn": ActFn, "attention": AttentionKind, "attention_dir": AttentionDir, "norm_placement": NormPlacement,
    "norm_kind": NormKind, "input_kind": InputKind, "embed": EmbedKind, "pos": PosKind, "output": OutputKind,
    "init": InitScheme, "dtype": Dtype, "attn_path": AttentionPath,
}


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(name, value, "a positive integer")


__all__ = ["TransformerConfig", "ConfigError"]
