"""Where and how a model trains: the device, the precision and the memory format.

``fit`` and the homework's ``HomeworkRun`` make the same choices through one object::

    place = Placement.choose(train, devices="auto", precision="auto")
    model = place.model(model)                   # on the device, channels_last where faster
    for x, y in place.batches(train):            # each batch on the device
        with place.autocast():                   # bf16/fp16 where measured faster
            loss = ...
    scaler = place.gradient_scaler()             # fp16 (a T4) needs one; else a no-op

The CPU rules were measured (``benchmarks/README.md``, "CPU precision policy").
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import env

__all__ = ["Placement", "PRECISIONS", "resolve_precision", "cpu_bf16_isa", "cpu_supports_bf16",
           "use_channels_last", "choose_device", "place_data", "on_device", "autocast",
           "gradient_scaler"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# Measured (benchmarks/README.md, "CPU precision policy"): with native bf16 (AVX512-BF16 on the
# course machine; AMX is faster still) bf16 + channels_last trained every course model faster
# than fp32 (1.4x LeNet-5 .. 2.6x ResNet-50), emulated bf16 only adds conversions;
# channels_last lost only on AlexNet (0.7-1.0x), little next to its bf16 gain: one rule for all.
CPU_CHANNELS_LAST = True


def cpu_bf16_isa() -> str | None:
    """The CPU's native bf16 matrix instructions: "amx" (Intel AMX tiles), "avx512_bf16"
    (e.g. AMD Zen 4/5, Intel Cooper Lake) or None (PyTorch would emulate bf16)."""
    flags: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    if "amx_bf16" in flags:
        return "amx"
    return "avx512_bf16" if "avx512_bf16" in flags else None


def cpu_supports_bf16() -> bool:
    """True when bf16 matmuls run natively on this CPU (see :func:`cpu_bf16_isa`)."""
    return cpu_bf16_isa() is not None


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """The precision a run actually uses: "fp32", "bf16" or "fp16".

    ``"auto"``: ``$COURSE_PRECISION`` if set (a rehearsal of a T4's fp16 path, or the GPU
    check's forced precisions); else CUDA -> bf16 where supported, else fp16 (with a gradient
    scaler); CPU -> bf16 when the CPU has native bf16 instructions (:func:`cpu_bf16_isa`), else
    fp32 (measured; see ``benchmarks/README.md``); other devices (Apple MPS) -> fp32.
    fp16 runs on CUDA and on the CPU (many times slower there: for rehearsing a T4's path).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    device = torch.device(device)
    if precision == "auto" and os.environ.get(env.PRECISION_ENV):
        precision = os.environ[env.PRECISION_ENV].strip().lower()
        if precision not in PRECISIONS[1:]:
            raise ValueError(f"${env.PRECISION_ENV} must be one of {PRECISIONS[1:]}, "
                             f"got {precision!r}")
    if device.type == "cuda":
        # Native bf16 needs Ampere (compute capability 8.0) or newer. Newer torch versions'
        # is_bf16_supported() also say yes on a T4 (7.5), where bf16 is only emulated.
        bf16_ok = torch.cuda.get_device_capability(device)[0] >= 8
        return ("bf16" if bf16_ok else "fp16") if precision == "auto" else precision
    if precision == "fp16" and device.type != "cpu":
        raise ValueError(
            f"precision='fp16' needs a CUDA GPU or the CPU (it relies on a gradient scaler); "
            f"this run is on {device.type}. Use precision='bf16' or 'fp32' (or 'auto').")
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cpu" and cpu_bf16_isa() else "fp32"


def use_channels_last(device: torch.device | str) -> bool:
    """NHWC memory format for convolutions: on CUDA (tensor cores want it) and on CPUs
    (oneDNN; measured, see CPU_CHANNELS_LAST)."""
    device = torch.device(device)
    return device.type == "cuda" or (device.type == "cpu" and CPU_CHANNELS_LAST)


def gradient_scaler(device: torch.device | str, precision: str) -> torch.amp.GradScaler:
    """The gradient scaler fp16 needs (T4), on the training device; disabled otherwise (then
    ``scale(loss)`` is the loss itself and ``step(opt)`` is ``opt.step()``)."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")


def autocast(device: torch.device | str, precision: str):
    """Mixed precision for the forward pass (a no-op context in fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def choose_device(data: Any, devices: Any = "auto") -> torch.device:
    """The training device: ``devices`` itself if it names one; "all" -> CUDA when present;
    "auto" (or "all" without a GPU) -> the data's device (``load_data`` puts batches there),
    else the best available (:func:`course_utils.env.get_device`)."""
    if devices not in ("auto", "all"):
        device = torch.device(devices)
    elif devices == "all" and torch.cuda.is_available():
        device = torch.device("cuda")
    elif getattr(data, "device", None) is not None:
        device = torch.device(data.device)
    else:
        device = env.get_device()
    if device.type == "cuda" and device.index is None:  # "cuda" -> "cuda:0", comparable
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def place_data(data: Any, device: torch.device) -> Any:
    """The course's loaders moved to ``device`` (they have ``.to``); other data unchanged."""
    current = getattr(data, "device", None)
    if current is not None and hasattr(data, "to") and torch.device(current) != device:
        return data.to(device)
    return data


def on_device(data: Iterable, device: torch.device,
              channels_last: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``data``'s (x, y) batches on ``device``; a no-op for batches already there."""
    for x, y in data:
        if x.device != device:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, y


@dataclass(frozen=True)
class Placement:
    """One run's device, precision ("fp32", "bf16" or "fp16") and memory format."""

    device: torch.device
    precision: str
    channels_last: bool

    @classmethod
    def choose(cls, data: Any, devices: Any = "auto", precision: str = "auto") -> Placement:
        """The placement ``fit`` uses for training data ``data`` (see :func:`choose_device`
        and :func:`resolve_precision`)."""
        device = choose_device(data, devices)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick kernels
        return cls(device, resolve_precision(precision, device), use_channels_last(device))

    def model(self, model: nn.Module) -> nn.Module:
        """``model`` moved to the device (in place) in the memory format that is fastest."""
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def data(self, data: Any) -> Any:
        return place_data(data, self.device)

    def batches(self, data: Iterable) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return on_device(data, self.device, self.channels_last)

    def autocast(self):
        return autocast(self.device, self.precision)

    def gradient_scaler(self) -> torch.amp.GradScaler:
        return gradient_scaler(self.device, self.precision)
