"""Where a run trains and in what arithmetic: device selection and the precision option.

**Device.** ``train(device=...)``, else ``$THEORYBENCH_DEVICE``, else "cpu". The request is a torch
device string ("cpu", "cuda", "cuda:1") or "auto": "cuda" when ``torch.cuda.is_available()``, else
"cpu". The command line asks for "auto" at ``--scale full`` when no device is named, so full-scale
runs take a GPU when there is one, while quick runs stay on the CPU where their numbers were measured
(bit for bit; a GPU computes the same functions with other rounding). Data are always drawn on the
CPU, so they do not depend on the device.

**Precision** (one per run; part of its identity: a run trained in ``bf16`` lives in its own folder,
``<name>-<hash>-bf16``, so a figure that needs full precision never reads it):

- ``strict`` (default): every operation in the model's dtype (float32 or float64), TF32 disabled
  (``torch.set_float32_matmul_precision("highest")``), whatever the caller's global setting.
- ``tf32``: float32 matmuls on CUDA tensor cores with TF32 operands (10 mantissa bits: unit
  roundoff 2⁻¹¹ ≈ 4.9e-4 against float32's 2⁻²⁴ ≈ 6.0e-8), accumulated in float32. CUDA only.
- ``bf16``: ``torch.autocast(dtype=torch.bfloat16)`` around forward passes: matmuls and attention in
  bfloat16 (7 stored mantissa bits: unit roundoff 2⁻⁸ ≈ 3.9e-3), the ops autocast keeps in float32
  (softmax, norms, losses) in float32; weights, gradients and optimizer state stay float32, and no
  loss scaling is needed (bfloat16 has float32's exponent range). On CUDA this is what lets
  ``scaled_dot_product_attention`` take the flash kernel (it has no float32 variant). Allowed on the
  CPU too, where it is slow, so the code path is testable without a GPU.

A reduced precision is refused for float64 models: a claim that asks for float64 needs it
everywhere. Use ``tf32``/``bf16`` only where the claim's tolerance is well above the unit roundoff
it brings (a study declares it on its ``SweepSpec``); the default is ``strict``.

This module imports torch lazily, so the registry and the command line can read ``PRECISIONS``
without it.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import torch

DEVICE_ENV = "THEORYBENCH_DEVICE"
PRECISIONS = ("strict", "tf32", "bf16")
DEFAULT_PRECISION = "strict"


class DeviceError(ValueError):
    """A device or precision request that cannot be honoured here; the message says why and what is allowed."""


def device_request(explicit: str | None = None) -> str:
    """The device asked for: ``explicit``, else ``$THEORYBENCH_DEVICE``, else "cpu" (unresolved: may be "auto")."""
    return explicit or os.environ.get(DEVICE_ENV) or "cpu"


def resolve_device(requested: str | None = None) -> "torch.device":
    """The torch device for a request (see ``device_request``); "auto" is cuda if available, else cpu.

    Refuses a malformed name, and a CUDA device this machine does not have, naming where the request
    came from."""
    import torch  # here, not at the top: start-up time (module docstring)

    request = device_request(requested)
    from_env = not requested and bool(os.environ.get(DEVICE_ENV))
    source = f"{DEVICE_ENV}={request!r}" if from_env else f"device={request!r}"
    if request == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(request)
    except (RuntimeError, ValueError):
        raise DeviceError(f"{source} is not a device: one of 'auto', 'cpu', 'cuda', 'cuda:N'") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise DeviceError(f"{source} is not supported: one of 'auto', 'cpu', 'cuda', 'cuda:N'")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise DeviceError(f"{source} asks for a GPU, but torch.cuda.is_available() is False here (torch "
                          f"{torch.__version__}, {build}); use 'cpu' or 'auto', or run where a GPU is visible")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise DeviceError(f"{source}: this machine has {count} CUDA device(s): cuda:0 … cuda:{count - 1}")
    return device


def check_precision(precision: str, device: "torch.device", dtype: str) -> None:
    """Refuse a precision the device or the model dtype cannot honour (see the module docstring)."""
    if precision not in PRECISIONS:
        raise DeviceError(f"precision={precision!r} is not allowed: one of {', '.join(map(repr, PRECISIONS))}")
    if precision != "strict" and dtype != "float32":
        raise DeviceError(f"precision={precision!r} is not allowed for a {dtype} model: reduced precision "
                          "applies to float32 models only (a float64 claim needs float64 throughout); use 'strict'")
    if precision == "tf32" and device.type != "cuda":
        raise DeviceError(f"precision='tf32' needs a CUDA device (TF32 is a tensor-core matmul mode; on "
                          f"{device.type} it would be float32 under another name); use 'strict', or 'bf16'")


def run_suffix(precision: str) -> str:
    """The run-folder suffix of a precision: "" for strict (so existing runs keep their folders)."""
    if precision not in PRECISIONS:
        raise DeviceError(f"precision={precision!r} is not allowed: one of {', '.join(map(repr, PRECISIONS))}")
    return "" if precision == DEFAULT_PRECISION else f"-{precision}"


@contextlib.contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """float32 matmuls at full precision ("highest") unless ``precision == "tf32"`` ("high"); restored after."""
    import torch  # here, not at the top: start-up time (module docstring)

    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def autocast(precision: str, device: "torch.device"):
    """The context for forward passes: bfloat16 autocast for ``bf16``, nothing otherwise."""
    import torch  # here, not at the top: start-up time (module docstring)

    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe_device(device: "torch.device") -> str:
    """A human-readable name: "cuda:0 (NVIDIA H100 80GB HBM3, 79.1 GiB)" or "cpu (2 threads)"."""
    import torch  # here, not at the top: start-up time (module docstring)

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return f"cuda:{index} ({props.name}, {props.total_memory / 2**30:.1f} GiB)"
    return f"{device.type} ({torch.get_num_threads()} threads)"


def device_env(request: str | None) -> contextlib.AbstractContextManager[None]:
    """Set ``$THEORYBENCH_DEVICE`` to ``request`` inside the block (not if None), then restore it.

    The command line uses it so that everything below it (figure makers calling ``get_or_train``,
    worker processes, locally started jobs) sees the device it resolved."""
    return scoped_env(DEVICE_ENV, request)


@contextlib.contextmanager
def scoped_env(name: str, value: str | None) -> Iterator[None]:
    """``$name`` set to ``value`` inside the block (left as it is if ``value`` is None), then restored:
    how the command line hands a setting to everything it calls, worker processes included."""
    if value is None:
        yield
        return
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


__all__ = ["DEFAULT_PRECISION", "DEVICE_ENV", "PRECISIONS", "DeviceError", "autocast", "check_precision",
           "describe_device", "device_env", "device_request", "matmul_precision", "resolve_device", "run_suffix",
           "scoped_env"]
