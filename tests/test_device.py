"""Device selection and the precision option, on the CPU (no GPU here: CUDA is faked where the logic
branches on it, and the CUDA training path itself is untested).

- the device request: argument, then $THEORYBENCH_DEVICE, then "cpu"; "auto" takes CUDA when available;
- refusals name where the request came from and what is allowed;
- a reduced-precision run lives in its own folder, records its precision, and is never resumed in
  another one; bf16 autocast really changes the arithmetic (its run differs from the strict one).
"""

from __future__ import annotations

import json

import pytest
import torch

from _train_worker import tiny_config
from theorybench.device import (DEVICE_ENV, DeviceError, check_precision, device_env, matmul_precision,
                                resolve_device, run_suffix)
from theorybench.runs import get_or_train
from theorybench.runstore import RUNTIME_FILE, run_dir
from theorybench.train import train
from toy_models.tasks.markov import MarkovTask


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV, raising=False)


@pytest.fixture
def fake_gpus(monkeypatch):
    """torch reports ``n`` CUDA devices (nothing is ever run on them)."""

    def install(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    return install


# ---------------------------------------------------------------------------------- device
def test_the_cpu_is_the_default_and_the_environment_and_argument_override_it(no_env, monkeypatch):
    assert resolve_device() == torch.device("cpu")
    monkeypatch.setenv(DEVICE_ENV, "auto")
    assert resolve_device() == torch.device("cpu")  # auto without a GPU
    assert resolve_device("cpu") == torch.device("cpu")


def test_auto_takes_a_gpu_when_there_is_one(no_env, fake_gpus):
    fake_gpus(2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(DeviceError, match=r"device='cuda:2': this machine has 2 CUDA device\(s\): cuda:0 … cuda:1"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("request_, message", [
    ("cuda", "device='cuda' asks for a GPU, but torch.cuda.is_available() is False here"),
    ("gpu", "device='gpu' is not a device: one of 'auto', 'cpu', 'cuda', 'cuda:N'"),
    ("meta", "device='meta' is not supported: one of 'auto', 'cpu', 'cuda', 'cuda:N'"),
])
def test_an_impossible_device_is_refused(no_env, request_, message):
    with pytest.raises(DeviceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_device(request_)


def test_a_refused_device_from_the_environment_is_named_so(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV, "cuda")
    with pytest.raises(DeviceError, match=f"^{DEVICE_ENV}='cuda' asks for a GPU"):
        resolve_device()


def test_device_env_sets_and_restores(no_env, monkeypatch):
    import os

    with device_env("auto"):
        assert os.environ[DEVICE_ENV] == "auto"
    assert DEVICE_ENV not in os.environ
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    with device_env("cuda"):
        assert os.environ[DEVICE_ENV] == "cuda"
    assert os.environ[DEVICE_ENV] == "cpu"
    with device_env(None):
        assert os.environ[DEVICE_ENV] == "cpu"


# ---------------------------------------------------------------------------------- precision
@pytest.mark.parametrize("precision, device, dtype, message", [
    ("tf32", "cpu", "float32", "precision='tf32' needs a CUDA device"),
    ("bf16", "cpu", "float64", "precision='bf16' is not allowed for a float64 model"),
    ("tf32", "cuda", "float64", "precision='tf32' is not allowed for a float64 model"),
    ("fp8", "cpu", "float32", "precision='fp8' is not allowed: one of 'strict', 'tf32', 'bf16'"),
])
def test_a_precision_the_device_or_dtype_cannot_honour_is_refused(precision, device, dtype, message):
    with pytest.raises(DeviceError, match=message):
        check_precision(precision, torch.device(device), dtype)


@pytest.mark.parametrize("precision, device, dtype", [
    ("strict", "cpu", "float64"), ("strict", "cuda", "float32"), ("tf32", "cuda", "float32"),
    ("bf16", "cpu", "float32"),
])
def test_allowed_precisions(precision, device, dtype):
    check_precision(precision, torch.device(device), dtype)


def test_strict_turns_tf32_off_and_everything_is_restored():
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")  # a caller's global TF32 setting
        with matmul_precision("strict"):
            assert torch.get_float32_matmul_precision() == "highest"
        assert torch.get_float32_matmul_precision() == "high"
        with matmul_precision("tf32"):
            assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)


def test_run_folders_by_precision(tmp_path):
    cfg = tiny_config(steps=10)
    name = cfg.resolved().name  # the derived display name (ExperimentConfig.resolved)
    assert run_suffix("strict") == "" and run_dir(cfg, tmp_path) == tmp_path / f"{name}-{cfg.config_hash()}"
    assert run_dir(cfg, tmp_path, "bf16") == tmp_path / f"{name}-{cfg.config_hash()}-bf16"


def test_a_bf16_run_is_stored_apart_recorded_and_differs_from_strict(tmp_path):
    cfg = tiny_config(steps=10)
    strict = get_or_train(cfg, tmp_path, progress=False)
    bf16 = get_or_train(cfg, tmp_path, progress=False, precision="bf16")
    assert bf16.dir != strict.dir and bf16.dir.name.endswith("-bf16")
    assert bf16.runtime["precision"] == "bf16" and strict.runtime["precision"] == "strict"
    # Autocast was active: bfloat16's 2⁻⁸ rounding changes the losses (they would be bit-equal if not).
    assert not bf16.metrics.train_loss.equals(strict.metrics.train_loss)
    assert bf16.metrics.train_loss.notna().all()
    # Losses and metrics are reduced in float32 from the bf16 outputs; the weights stay float32.
    assert all(p.dtype == torch.float32 for p in bf16.load_model().parameters())


def test_a_run_is_never_resumed_in_another_precision(tmp_path):
    cfg = tiny_config(steps=10)
    folder = get_or_train(cfg, tmp_path, progress=False, precision="bf16").dir
    with pytest.raises(RuntimeError, match="was trained with precision='bf16', not 'strict'; refusing"):
        train(cfg, folder, progress=False)


class _Crash(Exception):
    pass


def test_runtime_records_every_start_with_its_step_and_device(tmp_path, monkeypatch):
    cfg = tiny_config(steps=20)
    original, calls = MarkovTask.sample, {"n": 0}

    def sample(self, batch_size, generator):
        calls["n"] += 1
        if calls["n"] == 2 + 15:  # after the eval batches, step 15: the checkpoint is at 10
            raise _Crash
        return original(self, batch_size, generator)

    monkeypatch.setattr(MarkovTask, "sample", sample)
    with pytest.raises(_Crash):
        get_or_train(cfg, tmp_path, progress=False)
    monkeypatch.undo()
    run = get_or_train(cfg, tmp_path, progress=False)
    record = json.loads((run.dir / RUNTIME_FILE).read_text())
    assert record["precision"] == "strict" and [s["from_step"] for s in record["segments"]] == [0, 10]
    for segment in record["segments"]:
        assert segment["device"] == f"cpu ({torch.get_num_threads()} threads)"
        assert segment["torch"] == torch.__version__ and segment["threads"] == torch.get_num_threads()
