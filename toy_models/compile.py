"""torch.compile for the toy transformer, with its TransformerLens hooks still live.

    compiled = compile_model(model)          # shares parameters and HookPoints with ``model``
    logits = compiled(tokens, attn_path="kernel")

By default TorchDynamo does not guard on module hooks: a graph compiled while no hook was attached
keeps running after ``model.add_hook(...)`` and the hook is silently skipped (``run_with_cache``
would then see an empty cache). ``compile_model`` turns that guard on, so attaching or removing a
hook recompiles the model (seconds each time) and the hook fires inside the compiled graph.

Where to put hooks: attach them to ``model`` (``model.add_hook``, ``with model.hooks(...)``;
``compiled.add_hook`` forwards there too), then call ``compiled(...)``. ``compiled.run_with_cache``
and ``compiled.run_with_hooks`` forward to the eager model's methods, so they run eagerly: same
values, no compilation. Probes and interpretability work belong on the eager model; compile for
training and throughput.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def compile_model(model: nn.Module, **compile_kwargs: Any) -> nn.Module:
    """``torch.compile(model, **compile_kwargs)`` with hook guards on (see the module docstring).

    The setting is process-wide: ``torch._dynamo.config.skip_nnmodule_hook_guards`` is a global
    flag that Dynamo reads when it builds guards, which happens lazily at the first call of the
    compiled model, not here; a context manager around this function would have no effect.
    Set ``TORCHINDUCTOR_COMPILE_THREADS=1`` on small machines before the first compile: the default
    pool of compile workers slows the eager code that runs after it.
    """
    # Guard on hooks so that a hook added after compilation triggers a recompile instead of being
    # silently skipped by the graph traced without it (torch's default, chosen for speed).
    torch._dynamo.config.skip_nnmodule_hook_guards = False
    return torch.compile(model, **compile_kwargs)


__all__ = ["compile_model"]
