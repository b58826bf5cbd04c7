"""Export a toy transformer to the implementations full-scale models use.

- ``to_hf_gpt2``: Pre-LN LayerNorm, absolute positions, plain MLP, causal → ``GPT2LMHeadModel``
- ``to_hf_bert``: Post-LN LayerNorm with embedding norm → ``BertForTokenClassification``
- ``to_hf_gemma2``: Peri-LN RMSNorm, rotary, gated MLP, causal → ``Gemma2ForCausalLM``
- ``to_hooked_transformer``: what TransformerLens 3.9's ``HookedTransformer`` expresses

Each returns the target in eval mode with the same weights (in the model's dtype) and the same
logits; a config the target cannot express is refused with an ``ExportError`` naming the option,
its value, what the target needs, and the targets that do support it (``errors.SUPPORT``).
Nothing is downloaded: targets are built from configs.
"""

from .errors import SUPPORT, TARGETS, ExportError, check_exportable
from .hf_bert import to_hf_bert
from .hf_gemma2 import to_hf_gemma2
from .hf_gpt2 import to_hf_gpt2
from .transformer_lens import to_hooked_transformer

__all__ = ["ExportError", "SUPPORT", "TARGETS", "check_exportable", "to_hf_bert", "to_hf_gemma2", "to_hf_gpt2",
           "to_hooked_transformer"]
