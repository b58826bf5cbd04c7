"""One transformer block, with its norms placed as ``cfg.block_placement(layer)`` says.

Hook names follow TransformerLens: ``hook_resid_pre`` → attention → ``hook_attn_out`` →
``hook_resid_mid`` → MLP → ``hook_mlp_out`` → ``hook_resid_post``. ``ln1``/``ln2`` are the norms of
the attention and MLP sublayers, wherever the placement puts them (on the sublayer input for Pre- and
Peri-LN, on the residual sum for Post-LN); ``ln1_post``/``ln2_post`` are Peri-LN's output norms, named
as TransformerLens names Gemma 2's.

LayerNorm-Scaling (``lns``) is Pre-LN with each norm's output multiplied by 1/√ℓ in block ℓ = layer + 1
("The Curse of Depth in Large Language Models"); DeepNorm (``deepnorm``) is Post-LN on α·x + F(x)
("DeepNet: Scaling Transformers to 1,000 Layers"). Both factors come from the config
(``lns_scale``, ``deepnorm_alpha``) and are constants, not parameters.
"""

from __future__ import annotations

import functools

from jaxtyping import Bool, Float
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from .attention import Attention, CausalMarker
from .mlp import MLP
from .norms import make_norm


class Block(nn.Module):
    def __init__(self, cfg, layer: int):
        super().__init__()
        self.placement = cfg.block_placement(layer)
        self.norm_out_scale = cfg.lns_scale(layer)  # 1 except LayerNorm-Scaling
        self.residual_weight = cfg.deepnorm_alpha  # 1 except DeepNorm
        has_norm = self.placement != "none"
        self.attn = Attention(cfg)
        self.ln1 = make_norm(cfg) if has_norm else None
        self.ln1_post = make_norm(cfg) if self.placement == "peri" else None
        self.hook_resid_pre, self.hook_attn_out, self.hook_resid_post = HookPoint(), HookPoint(), HookPoint()
        if cfg.attn_only:
            self.mlp = self.ln2 = self.ln2_post = None
        else:
            self.mlp = MLP(cfg)
            self.ln2 = make_norm(cfg) if has_norm else None
            self.ln2_post = make_norm(cfg) if self.placement == "peri" else None
            self.hook_resid_mid, self.hook_mlp_out = HookPoint(), HookPoint()

    def forward(self, resid: Float[Tensor, "batch pos d_model"],
                allowed: Bool[Tensor, "#batch 1 query key"] | CausalMarker | None,
                path: str) -> Float[Tensor, "batch pos d_model"]:
        """One block on the residual stream; ``allowed`` and ``path`` as ``Attention.forward`` takes them."""
        resid = self.hook_resid_pre(resid)
        fused = path == "kernel"  # fused norms on the kernel path (toy_models.norms)
        resid = self._sublayer(resid, lambda x: self.attn(x, allowed, path), self.ln1, self.ln1_post,
                               self.hook_attn_out, fused)
        if self.mlp is None:
            return self.hook_resid_post(resid)
        resid = self._sublayer(self.hook_resid_mid(resid), self.mlp, self.ln2, self.ln2_post, self.hook_mlp_out, fused)
        return self.hook_resid_post(resid)

    def _sublayer(self, x, F, norm, norm_post, hook_out, fused):
        if norm is not None:
            norm = functools.partial(norm, fused=fused)
        if norm_post is not None:
            norm_post = functools.partial(norm_post, fused=fused)
        if self.placement == "none":
            return x + hook_out(F(x))
        if self.placement == "post":
            return norm(x + hook_out(F(x)))
        if self.placement == "pre":
            return x + hook_out(F(norm(x)))
        if self.placement == "lns":
            return x + hook_out(F(norm(x) * self.norm_out_scale))
        if self.placement == "deepnorm":
            return norm(self.residual_weight * x + hook_out(F(x)))
        return x + hook_out(norm_post(F(norm(x))))  # peri
