"""One training loop for every notebook: ``fit``, ``evaluate`` and ``History``.

    history = fit(model, train, test, epochs=1)          # SGD + momentum 0.9
    history.final["test_acc"], history.plot()
    evaluate(model, test)  # {"loss": ..., "acc": ..., "top5": ...}

What it does that the lecture's plain loop (``for x, y in loader: ... loss.item()``)
does not, and why:

* **No host synchronisation per step.** ``loss.item()`` makes the CPU wait for the GPU
  after every batch. Here the running loss and the number of correct predictions stay on
  the device and are read every ``log_every`` steps (and at the end of each epoch). The
  NaN/inf check happens at those read points too, so a diverging run stops at most
  ``log_every`` steps late; the message names the step range.
* **Precision.** On CUDA: bf16 autocast where the GPU supports it, else fp16 autocast with a
  gradient scaler; channels_last memory format and cudnn.benchmark. On a CPU
  ``precision="auto"`` follows a table measured on the course machine (see
  ``benchmarks/README.md``, "CPU precision policy"): bf16 autocast on CPUs with native bf16
  matrix instructions (AMX or AVX512-BF16), where it trained every course model faster,
  fp32 elsewhere; channels_last on CPUs too.
* **Robustness.** Checkpoints about every 30 s of training and after every epoch (model,
  optimizer, scheduler, scaler, RNG states, History, the sums of an unfinished epoch),
  written atomically; ``resume=True`` continues exactly where it stopped, mid-epoch too.
  Ctrl-C returns the History of the partly trained model. Out of GPU memory, a corrupted
  checkpoint or a diverging loss raise errors that say what to do next.
* **Multi-GPU.** ``devices="all"`` splits every batch over all visible GPUs with torch's
  ``nn.DataParallel`` (Kaggle's 2xT4); fused optimizers on CUDA.
* **The lecture's schedules**: LeNet-5's piecewise rate, step decay, reduce-on-plateau /10
  (AlexNet, VGG, ResNet), GoogLeNet's 4 % every 8 epochs, and one-cycle for the one-epoch
  homework. GoogLeNet's auxiliary classifiers are trained with weight ``aux_weight``.

Data: anything that yields ``(x, y)`` batches works (a ``torch.utils.data.DataLoader``
too); the objects returned by ``course_utils.data.load_data`` are faster because their
batches already live on the training device. ``fit`` uses their ``set_epoch`` (so a resumed
run sees the same batches), ``to(device)``, ``name`` and ``fallback`` when present.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import env
from .analysis import count_macs

__all__ = [
    "fit",
    "evaluate",
    "History",
    "resolve_precision",
    "cpu_supports_bf16",
    "cpu_bf16_isa",
    "use_channels_last",
    "TrainingDivergedError",
    "CheckpointError",
    "TrainingOutOfMemoryError",
    "DEFAULT_LR",
    "default_lr",
    "OPTIMIZERS",
    "SCHEDULES",
    "PRECISIONS",
    "LENET5_PAPER_LR",
    "lenet5_factor",
]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = (None, "lenet5", "step", "plateau", "googlenet", "onecycle")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# Learning rate when ``lr=None``: for Adam/AdamW 1e-3. For SGD (momentum 0.9) the rate the
# papers started from: 0.01 for plain deep stacks (AlexNet, VGG, GoogLeNet), 0.1 for
# networks with batch normalisation (ResNet, DenseNet), which tolerate it. Small shallow
# networks (under a million parameters, e.g. LeNet-5) also get 0.1: on MNIST, LeNet-5 with
# batch size 128 reaches only ~94 % test accuracy after one epoch at 0.01, ~97.6 % at 0.05
# and ~98 % at 0.1 (benchmarks/README.md, "Defaults for LeNet-5"). See default_lr().
DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3}
SGD_FAST_LR = 0.1
SMALL_MODEL_PARAMS = 1_000_000
# Weight decay when ``weight_decay=None``: 5e-4 as in AlexNet/VGG for SGD; Adam's L2 term
# fights its per-parameter scaling, so plain Adam gets none and AdamW the usual 0.01.
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adam": 0.0, "adamw": 1e-2}

# LeNet-5's global learning rate by epoch (LeCun et al. 1998, Section IV.A "Results"):
# 0.0005 for the first two passes, 0.0002 for the next three, 0.0001 for the next three,
# 0.00005 for the next four and 0.00001 thereafter. (The lecture slide prints 0.005 for the
# first value; the paper says 0.0005.) These rates belong to the paper's stochastic
# diagonal Levenberg-Marquardt method, which divides them by a per-parameter curvature
# estimate, so they are far too small for plain SGD. schedule="lenet5" therefore keeps the
# *shape* of the schedule and scales it to ``lr``: multipliers 1, 0.4, 0.2, 0.1, 0.02.
LENET5_PAPER_LR = [(2, 5e-4), (3, 2e-4), (3, 1e-4), (4, 5e-5), (None, 1e-5)]

# Read the device-side counters about this many times per epoch when log_every=None: often
# enough for a learning curve, rarely enough to cost nothing and to keep the text progress
# bars that notebooks save short.
READS_PER_EPOCH = 20
# With fit(checkpoint=...): seconds of training between two checkpoints inside an epoch.
CHECKPOINT_SECONDS = 30.0


# --------------------------------------------------------------------------- errors
class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite. ``.history`` holds what was recorded before."""

    def __init__(self, message: str, history: History | None = None) -> None:
        super().__init__(message)
        self.history = history


class CheckpointError(RuntimeError):
    """A checkpoint file could not be read or does not fit the model."""


# torch.OutOfMemoryError (torch >= 2.5) is torch.cuda.OutOfMemoryError under a new name.
_OOM_BASE = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError


class TrainingOutOfMemoryError(_OOM_BASE):  # type: ignore[misc, valid-type]
    """The GPU ran out of memory; the message says which batch size to try."""


# --------------------------------------------------------------------------- History
@dataclass
class History:
    """What a training run recorded.

    ``steps``  one dict per read point: step, epoch, loss, acc, lr, images_per_s
               (loss/acc are the means over the steps since the previous read point).
    ``epochs`` one dict per epoch: epoch, train_loss, train_acc, test_loss, test_acc,
               top5, lr, seconds, images_per_s.
    ``final``  train_loss, train_acc, test_loss, test_acc, test_top5, images_per_s,
               seconds, device, precision, dataset, fallback, interrupted (and a few more).
    ``config`` the arguments ``fit`` ran with.
    """

    steps: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "epochs": self.epochs, "final": self.final,
                "config": self.config}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(list(data.get("steps") or []), list(data.get("epochs") or []),
                   dict(data.get("final") or {}), dict(data.get("config") or {}))

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, default=_jsonable) + "\n",
                        encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def plot(self, **kwargs):
        """Learning curves (``course_utils.plots.plot_history``)."""
        from .plots import plot_history  # lazy: matplotlib is only needed for plots

        return plot_history(self, **kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, History) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        f = self.final
        parts = [f"epochs={len(self.epochs)}"]
        for key in ("train_loss", "train_acc", "test_acc", "images_per_s"):
            if f.get(key) is not None:
                parts.append(f"{key}={f[key]:.4g}")
        if f.get("interrupted"):
            parts.append("interrupted=True")
        return f"History({', '.join(parts)})"


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (np.generic,)):
        return value.item()
    return str(value)


# --------------------------------------------------------------------------- precision
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
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    return None


def cpu_supports_bf16() -> bool:
    """True when bf16 matmuls run natively on this CPU (see :func:`cpu_bf16_isa`)."""
    return cpu_bf16_isa() is not None


# The CPU precision policy, from the table in benchmarks/README.md ("CPU precision policy",
# produced by benchmarks/cpu_precision.py). On the course machine (2-core AMD EPYC with
# AVX512-BF16, no AMX) bf16 autocast + channels_last trained every model of the course
# faster than fp32, from LeNet-5 at 32x32 (1.4-1.6x) to ResNet-50 at 224x224 (2.6x): the
# smallest model worth switching has 0 MACs per image. The threshold is kept per
# instruction set so that a measurement on another CPU can raise it. AMX was not available
# to measure; its bf16 tiles are faster than AVX512-BF16, so it gets the same rule.
# Without native bf16 instructions bf16 is emulated and only adds conversions: fp32.
CPU_BF16_MIN_MACS = {"avx512_bf16": 0, "amx": 0}
# channels_last (NHWC) let oneDNN's convolutions skip layout reorders: faster for every
# model in the table but AlexNet (0.7-1.0x; its big 11x11/stride-4 first layer and huge
# fully connected layers gain nothing). One rule for all is simpler and costs AlexNet
# little next to its bf16 gain.
CPU_CHANNELS_LAST = True


def resolve_precision(precision: str, device: torch.device | str,
                      macs_per_image: int | None = None) -> str:
    """The precision a run actually uses: "fp32", "bf16" or "fp16".

    ``"auto"``: CUDA -> bf16 where supported, else fp16 (with a gradient scaler); CPU ->
    bf16 when the CPU has native bf16 instructions (:func:`cpu_bf16_isa`) and the model
    does at least ``CPU_BF16_MIN_MACS[isa]`` multiply-accumulates per image, else fp32
    (measured; see ``benchmarks/README.md``); other devices (Apple MPS) -> fp32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    device = torch.device(device)
    if device.type == "cuda":
        # Native bf16 needs Ampere (compute capability 8.0) or newer. Newer torch versions'
        # is_bf16_supported() also say yes on a T4 (7.5), where bf16 is only emulated.
        bf16_ok = torch.cuda.get_device_capability(device)[0] >= 8
        if precision == "auto":
            return "bf16" if bf16_ok else "fp16"
        return precision
    if precision == "fp16":
        raise ValueError(
            f"precision='fp16' needs a CUDA GPU (it relies on a gradient scaler); this run is "
            f"on {device.type}. Use precision='bf16' or 'fp32' (or 'auto')."
        )
    if precision != "auto":
        return precision
    isa = cpu_bf16_isa() if device.type == "cpu" else None
    if isa is not None and (macs_per_image or 0) >= CPU_BF16_MIN_MACS[isa]:
        return "bf16"
    return "fp32"


def use_channels_last(device: torch.device | str) -> bool:
    """NHWC memory format for convolutions: on CUDA (tensor cores want it) and on CPUs
    (oneDNN; measured, see CPU_CHANNELS_LAST)."""
    device = torch.device(device)
    return device.type == "cuda" or (device.type == "cpu" and CPU_CHANNELS_LAST)


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


# --------------------------------------------------------------------------- helpers
def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.DataParallel) else model


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _image_shape(data: Any) -> tuple[int, int, int] | None:
    """(C, H, W) of the data's images from its attributes, or None when it has none."""
    channels, size = getattr(data, "in_channels", None), getattr(data, "image_size", None)
    if channels is None or size is None:
        return None
    if isinstance(size, (tuple, list)):
        return (int(channels), int(size[0]), int(size[-1]))
    return (int(channels), int(size), int(size))


def _macs_per_image(model: nn.Module, image_shape: tuple[int, int, int]) -> int:
    """Multiply-accumulates of one forward pass for one image (also the earliest check that
    the images fit the model: the model's own ValueError comes out here)."""
    return int(count_macs(model, (1, *image_shape)))


def _with_data_context(err: ValueError, data: Any, shape: tuple[int, ...]) -> ValueError:
    name = getattr(data, "name", None) or type(data).__name__
    return ValueError(
        f"{err}\n(fit: the data {name!r} gives images of shape {tuple(shape)}; "
        f"pass image_size=... / in_channels=... to load_data, or build the model to match.)"
    )


def _split_output(output: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Main logits and auxiliary logits (GoogLeNet returns (logits, aux1, aux2) in training)."""
    if isinstance(output, (tuple, list)):
        return output[0], list(output[1:])
    return output, []


def _loss(output: Any, y: torch.Tensor, label_smoothing: float, aux_weight: float):
    logits, aux = _split_output(output)
    # The loss is computed in fp32 whatever the autocast dtype: a bf16 log-softmax over
    # many classes loses digits that the gradient needs.
    loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
    for extra in aux:  # GoogLeNet: "weighted by 0.3" (Szegedy et al. 2014, Section 5)
        loss = loss + aux_weight * F.cross_entropy(extra.float(), y,
                                                   label_smoothing=label_smoothing)
    return loss, logits


def _batches(data: Iterable, device: torch.device, channels_last: bool):
    """Yield (x, y) on ``device``; a no-op for data that already lives there."""
    for x, y in data:
        if x.device != device:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, y


def _place_data(data: Any, device: torch.device) -> Any:
    current = getattr(data, "device", None)
    if current is not None and hasattr(data, "to") and torch.device(current) != device:
        return data.to(device)
    return data


def _batch_size(data: Any) -> int | None:
    size = getattr(data, "batch_size", None)
    return int(size) if isinstance(size, int) else None


# --------------------------------------------------------------------------- evaluate
def evaluate(model: nn.Module, data: Iterable, precision: str = "auto") -> dict[str, float]:
    """Mean cross-entropy loss, top-1 and top-5 accuracy (fractions 0..1) of ``model`` on
    ``data``. Runs in eval mode without gradients; the model's mode is restored after."""
    device = _model_device(model)
    data = _place_data(data, device)
    shape = _image_shape(data)
    macs = None
    if precision == "auto" and device.type == "cpu" and shape is not None:
        macs = _macs_per_image(_unwrap(model), shape)
    prec = resolve_precision(precision, device, macs)
    channels_last = use_channels_last(device)
    return _evaluate(model, data, device, prec, channels_last)


def _evaluate(model: nn.Module, data: Iterable, device: torch.device, precision: str,
              channels_last: bool) -> dict[str, float]:
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    correct5 = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    try:
        with torch.inference_mode():
            for x, y in _batches(data, device, channels_last):
                with _autocast(device, precision):
                    logits, _ = _split_output(model(x))
                logits = logits.float()
                loss_sum += F.cross_entropy(logits, y, reduction="sum")
                k = min(5, logits.shape[1])
                top = logits.topk(k, dim=1).indices
                hits = top == y[:, None]
                correct += hits[:, 0].sum()
                correct5 += hits.any(dim=1).sum()
                seen += y.shape[0]
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("evaluate() got no batches: the data set is empty.")
    loss, acc, top5 = torch.stack([loss_sum, correct.float(), correct5.float()]).tolist()
    return {"loss": loss / seen, "acc": acc / seen, "top5": top5 / seen}


# --------------------------------------------------------------------------- optimizers
_NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm)


def default_lr(model: nn.Module, optimizer: str = "sgd") -> float:
    """The learning rate ``fit`` uses when ``lr=None`` (see DEFAULT_LR's comment)."""
    optimizer = optimizer.lower()
    if optimizer != "sgd":
        return DEFAULT_LR[optimizer]
    has_norm = any(isinstance(m, _NORM_LAYERS) for m in model.modules())
    small = sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS
    return SGD_FAST_LR if has_norm or small else DEFAULT_LR["sgd"]


def _make_optimizer(optimizer: Any, model: nn.Module, lr: float | None, momentum: float,
                    weight_decay: float | None, device: torch.device) -> torch.optim.Optimizer:
    if isinstance(optimizer, torch.optim.Optimizer):
        if lr is not None:
            raise ValueError("lr was given together with an optimizer instance; set the "
                             "learning rate when you create the optimizer instead.")
        return optimizer
    if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS} or a torch.optim.Optimizer, "
                         f"got {optimizer!r}")
    name = optimizer.lower()
    lr = default_lr(model, name) if lr is None else lr
    wd = DEFAULT_WEIGHT_DECAY[name] if weight_decay is None else weight_decay
    kind = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
    kwargs = {"lr": lr, "weight_decay": wd}
    if name == "sgd":
        kwargs["momentum"] = momentum
    if device.type == "cuda":
        # Fused CUDA kernels: one launch for all parameters, and the fp16 gradient scaler
        # can hand them its inf check on the device instead of syncing with .item().
        try:
            return kind(model.parameters(), fused=True, **kwargs)
        except (TypeError, RuntimeError, ValueError):  # older torch: no fused SGD
            pass
    return kind(model.parameters(), **kwargs)


# --------------------------------------------------------------------------- schedules
def lenet5_factor(epoch: int) -> float:
    """Multiplier of the base rate in epoch ``epoch`` (0-based), from LENET5_PAPER_LR."""
    first = LENET5_PAPER_LR[0][1]
    start = 0
    for length, rate in LENET5_PAPER_LR:
        if length is None or epoch < start + length:
            return rate / first
        start += length
    return LENET5_PAPER_LR[-1][1] / first


class _Schedule:
    """A learning-rate scheduler and when to step it: per batch, per epoch, or per epoch
    with the validation loss (reduce-on-plateau)."""

    def __init__(self, scheduler: Any, per_step: bool) -> None:
        self.scheduler = scheduler
        self.per_step = per_step
        self.on_metric = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)

    def step_batch(self) -> None:
        if self.scheduler is not None and self.per_step:
            self.scheduler.step()

    def step_epoch(self, metric: float) -> None:
        if self.scheduler is None or self.per_step:
            return
        if self.on_metric:
            self.scheduler.step(metric)
        else:
            self.scheduler.step()

    def state_dict(self) -> dict | None:
        return None if self.scheduler is None else self.scheduler.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if self.scheduler is not None and state is not None:
            self.scheduler.load_state_dict(state)


_PER_STEP_TYPES = (torch.optim.lr_scheduler.OneCycleLR, torch.optim.lr_scheduler.CyclicLR)


def _make_schedule(schedule: Any, optimizer: torch.optim.Optimizer, epochs: int,
                   total_steps: int) -> _Schedule:
    lrs = torch.optim.lr_scheduler
    if schedule is None:
        return _Schedule(None, per_step=False)
    if isinstance(schedule, str):
        if schedule == "lenet5":
            return _Schedule(lrs.LambdaLR(optimizer, lenet5_factor), per_step=False)
        if schedule == "step":
            # The AlexNet/ResNet habit (divide by 10 a few times) compressed to a short run:
            # /10 after each third of the epochs.
            return _Schedule(lrs.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1),
                             per_step=False)
        if schedule == "plateau":
            # AlexNet, VGG, ResNet: divide by 10 when the validation loss stops improving.
            return _Schedule(lrs.ReduceLROnPlateau(optimizer, mode="min", factor=0.1,
                                                   patience=1), per_step=False)
        if schedule == "googlenet":
            # Szegedy et al. 2014: "decreasing the learning rate by 4% every 8 epochs".
            return _Schedule(lrs.StepLR(optimizer, step_size=8, gamma=0.96), per_step=False)
        if schedule == "onecycle":
            # Smith & Topin 2018: warm up then anneal within the run; one epoch is enough.
            # One more step than the run takes: the scheduler also steps after the last
            # batch, and OneCycleLR's cosine would climb again past its end.
            max_lr = [group["lr"] for group in optimizer.param_groups]
            return _Schedule(lrs.OneCycleLR(optimizer, max_lr=max_lr,
                                            total_steps=max(1, total_steps) + 1), per_step=True)
        raise ValueError(f"schedule must be one of {SCHEDULES}, a scheduler or a callable "
                         f"optimizer -> scheduler; got {schedule!r}")
    if isinstance(schedule, (lrs.LRScheduler, lrs.ReduceLROnPlateau)):
        return _Schedule(schedule, per_step=isinstance(schedule, _PER_STEP_TYPES))
    if callable(schedule):
        made = schedule(optimizer)
        return _Schedule(made, per_step=isinstance(made, _PER_STEP_TYPES))
    raise ValueError(f"schedule must be one of {SCHEDULES}, a scheduler or a callable "
                     f"optimizer -> scheduler; got {schedule!r}")


def _current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


# --------------------------------------------------------------------------- checkpoints
def _rng_state() -> dict[str, Any]:
    keys, pos, has_gauss, cached = np.random.get_state()[1:]
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        # NumPy's state as tensors/ints so that the file loads with weights_only=True.
        "numpy": (torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                  float(cached)),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write to a temporary file and rename it: a crash mid-write never leaves a
    half-written checkpoint under the real name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path) -> dict[str, Any]:
    hint = (f"Delete {str(path)!r} to start over, or call fit(..., resume=False) "
            f"to overwrite it.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a torch file, unpicklable...
        raise CheckpointError(f"Cannot read the checkpoint {str(path)!r} ({type(err).__name__}: "
                              f"{err}). The file is damaged or not a fit() checkpoint. "
                              f"{hint}") from err
    if not isinstance(payload, dict) or payload.get("format") != "course_utils.fit/1":
        raise CheckpointError(f"{str(path)!r} is not a checkpoint written by fit(). {hint}")
    return payload


# --------------------------------------------------------------------------- fit
def _check_arguments(epochs, lr, momentum, weight_decay, label_smoothing, aux_weight,
                     max_steps, log_every, devices) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a whole number >= 1, got {epochs!r}")
    if lr is not None and not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number (e.g. 0.01 for SGD, 1e-3 for Adam), "
                         f"got {lr!r}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if weight_decay is not None and weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    if aux_weight < 0:
        raise ValueError(f"aux_weight must be >= 0, got {aux_weight!r}")
    if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
        raise ValueError(f"max_steps must be None or a whole number >= 1, got {max_steps!r}")
    if log_every is not None and (not isinstance(log_every, int) or log_every < 1):
        raise ValueError(f"log_every must be None or a whole number >= 1, got {log_every!r}")
    if not (devices in ("auto", "all") or isinstance(devices, (str, torch.device))):
        raise ValueError(f"devices must be 'auto', 'all' or a device, got {devices!r}")


def _choose_device(train: Any, devices: Any) -> torch.device:
    if devices in ("auto", "all"):
        data_device = getattr(train, "device", None)
        if devices == "all" and torch.cuda.is_available():
            device = torch.device("cuda")
        elif data_device is not None:
            device = torch.device(data_device)
        else:
            device = env.get_device()
    else:
        device = torch.device(devices)
    if device.type == "cuda" and device.index is None:  # "cuda" -> "cuda:0", comparable
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def fit(
    model: nn.Module,
    train: Iterable,
    test: Iterable | None = None,
    epochs: int = 1,
    optimizer: str | torch.optim.Optimizer = "sgd",
    lr: float | None = None,
    momentum: float = 0.9,
    weight_decay: float | None = None,
    schedule: Any = None,
    label_smoothing: float = 0.0,
    aux_weight: float = 0.3,
    precision: str = "auto",
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    seed: int = 0,
    devices: str | torch.device = "auto",
    max_steps: int | None = None,
    progress: bool = True,
    log_every: int | None = None,
) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs; evaluate on ``test`` after each.

    optimizer     "sgd" (momentum ``momentum``), "adam", "adamw", or your own
                  ``torch.optim.Optimizer`` (then leave ``lr`` None).
    lr            None: :func:`default_lr` (adam/adamw 1e-3; sgd 0.1 for models with batch
                  norm or under 1 M parameters such as LeNet-5, else 0.01).
    weight_decay  None: 5e-4 for SGD, 0 for Adam, 0.01 for AdamW.
    schedule      None | "lenet5" | "step" | "plateau" | "googlenet" | "onecycle", a
                  scheduler built on your optimizer, or a callable optimizer -> scheduler.
                  Schedulers step once per epoch, except one-cycle/cyclic (once per batch)
                  and reduce-on-plateau (with the test loss, else the training loss).
    aux_weight    weight of auxiliary losses when the model returns (logits, aux, ...) in
                  training mode (GoogLeNet: 0.3).
    precision     "auto" | "fp32" | "bf16" | "fp16" (see :func:`resolve_precision`).
    checkpoint    file to write during training (about every 30 s of training, so that a
                  Colab/Kaggle disconnect loses little of a one-epoch run) and after every
                  epoch; with ``resume=True`` an existing file is loaded first and training
                  continues where it stopped, inside an epoch too, exactly as if it had not
                  stopped (keep the other arguments; a one-cycle schedule keeps the length
                  it was built with).
    checkpoint_every  save every N optimizer steps instead of every ~30 s.
    seed          seeds torch/NumPy/Python at the start (dropout, anything random inside
                  the model); the data's order depends on the data's own seed and the epoch.
    devices       "auto": the data's device (else the best available); "all": every visible
                  GPU through ``torch.nn.DataParallel``; or a device such as "cpu".
    max_steps     stop after this many optimizer steps in total (smoke runs).
    log_every     read the device-side metrics every N steps (default: ~20 reads per epoch).

    Returns a :class:`History`. Ctrl-C stops training and returns the History so far
    (``final["interrupted"] = True``); the model keeps its partly trained weights.
    """
    _check_arguments(epochs, lr, momentum, weight_decay, label_smoothing, aux_weight,
                     max_steps, log_every, devices)
    if checkpoint_every is not None and (isinstance(checkpoint_every, bool) or
                                         not isinstance(checkpoint_every, int) or
                                         checkpoint_every < 1):
        raise ValueError(f"checkpoint_every must be None or a whole number >= 1, got "
                         f"{checkpoint_every!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    device = _choose_device(train, devices)
    net = _unwrap(model)
    start_time = time.perf_counter()

    # ---- model on the device; precision; the image-size check happens in the MAC count.
    net.to(device)
    shape = _image_shape(train)
    macs = None
    if shape is not None:
        try:
            macs = _macs_per_image(net, shape)
        except ValueError as err:
            raise _with_data_context(err, train, (getattr(train, "batch_size", "N"), *shape)) \
                from err
    prec = resolve_precision(precision, device, macs)
    channels_last = use_channels_last(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick kernels
    if channels_last:
        net.to(memory_format=torch.channels_last)
    train = _place_data(train, device)
    if test is not None:
        test = _place_data(test, device)
    runner: nn.Module = net
    if devices == "all" and device.type == "cuda" and torch.cuda.device_count() > 1:
        runner = nn.DataParallel(net)  # splits each batch over the GPUs (Kaggle's 2xT4)

    # ---- optimizer, schedule, scaler
    opt = _make_optimizer(optimizer, net, lr, momentum, weight_decay, device)
    try:
        steps_per_epoch = len(train)  # type: ignore[arg-type]
    except TypeError:
        steps_per_epoch = None
    total_steps = (steps_per_epoch or 1) * epochs
    if max_steps is not None:
        total_steps = min(total_steps, max_steps) if steps_per_epoch else max_steps
    sched = _make_schedule(schedule, opt, epochs, total_steps)
    scaler = torch.amp.GradScaler("cuda", enabled=prec == "fp16")
    read_every = log_every or max(1, round((steps_per_epoch or 20 * 50) / READS_PER_EPOCH))

    config = {
        "epochs": epochs, "optimizer": opt.__class__.__name__,
        "lr": _current_lr(opt), "momentum": momentum if isinstance(opt, torch.optim.SGD)
        else None, "weight_decay": opt.param_groups[0].get("weight_decay"),
        "schedule": schedule if isinstance(schedule, str) or schedule is None
        else type(schedule).__name__, "label_smoothing": label_smoothing,
        "aux_weight": aux_weight, "precision": prec, "seed": seed, "max_steps": max_steps,
        "batch_size": _batch_size(train), "model": type(net).__name__,
        "macs_per_image": macs,
    }
    history = History(config=config)
    env.seed_everything(seed)

    # ---- resume
    start_epoch, global_step, in_epoch = 0, 0, None
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    if ckpt_path is not None and resume and ckpt_path.exists():
        state = _load_checkpoint(ckpt_path)
        try:
            net.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(
                f"The checkpoint {str(ckpt_path)!r} does not fit this model/optimizer ({err}). "
                f"Delete it to start over, or call fit(..., resume=False) to overwrite it."
            ) from err
        sched.load_state_dict(state.get("scheduler"))
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        saved = History.from_dict(state["history"])
        history.steps, history.epochs = saved.steps, saved.epochs
        start_epoch, global_step = int(state["epoch"]), int(state["step"])
        in_epoch = state.get("in_epoch")  # saved inside epoch start_epoch + 1
        if progress and start_epoch >= epochs:
            print(f"[fit] {ckpt_path} already holds {start_epoch} epoch(s) (epochs={epochs}): "
                  f"nothing to train. Pass a larger epochs to continue, or resume=False to "
                  f"start over.")
        elif progress:
            where = (f"inside epoch {start_epoch + 1}" if in_epoch
                     else f"after epoch {start_epoch}")
            print(f"[fit] resumed from {ckpt_path} {where} (step {global_step}).")

    def save_checkpoint(completed_epochs: int, partial: dict | None = None) -> None:
        """Everything a resumed run needs to continue bit for bit; ``partial``: the
        sums of an unfinished epoch (see _train_one_epoch)."""
        _save_checkpoint(ckpt_path, {
            "format": "course_utils.fit/1", "epoch": completed_epochs, "step": state["step"],
            "model": net.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "rng": _rng_state(), "history": history.to_dict(), "in_epoch": partial,
        })

    # ---- the loop
    train_seconds = sum(e.get("train_seconds", 0.0) for e in history.epochs)
    train_images = sum(e.get("train_images", 0) for e in history.epochs)
    interrupted = False
    epoch = start_epoch
    # Shared with _train_one_epoch so that Ctrl-C and OOM handlers see where it stopped, and
    # so that it can save (and, after a resume, skip) the steps inside an epoch.
    state = {"step": global_step, "batch_size": _batch_size(train), "resume": in_epoch,
             "save": save_checkpoint if ckpt_path is not None else None,
             "save_every": checkpoint_every}
    try:
        for epoch in range(start_epoch, epochs):
            if max_steps is not None and global_step >= max_steps:
                break
            record = _train_one_epoch(
                runner, train, opt, sched, scaler, device, prec, channels_last,
                label_smoothing, aux_weight, epoch, epochs, max_steps, read_every, progress,
                history, steps_per_epoch, state)
            global_step = state["step"]
            train_seconds += record["train_seconds"]
            train_images += record["train_images"]
            started = time.perf_counter()
            if test is not None:
                result = _evaluate(runner, test, device, prec, channels_last)
                record.update(test_loss=result["loss"], test_acc=result["acc"],
                              top5=result["top5"])
            else:
                record.update(test_loss=None, test_acc=None, top5=None)
            record["seconds"] = record["train_seconds"] + time.perf_counter() - started
            history.epochs.append(record)
            if progress and test is not None:
                print(f"epoch {epoch + 1}/{epochs}: train loss {record['train_loss']:.4f} "
                      f"acc {record['train_acc']:.4f} | test loss {record['test_loss']:.4f} "
                      f"acc {record['test_acc']:.4f} | {record['images_per_s']:.0f} img/s")
            sched.step_epoch(record["test_loss"] if record["test_loss"] is not None
                             else record["train_loss"])
            if ckpt_path is not None:
                save_checkpoint(epoch + 1)
    except KeyboardInterrupt:
        interrupted = True
        global_step = state["step"]
        print(f"\n[fit] Interrupted (Ctrl-C) in epoch {epoch + 1}, after {global_step} steps. "
              f"The model keeps its partly trained weights; the returned History has "
              f"final['interrupted'] = True."
              + (f" The last checkpoint is {ckpt_path}." if ckpt_path else ""))
    except _OOM_BASE as err:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        raise _out_of_memory(err, net, state["batch_size"], shape) from err

    last = history.epochs[-1] if history.epochs else {}
    partial = history.steps[-1] if interrupted and history.steps else {}
    history.final = {
        "train_loss": partial.get("loss", last.get("train_loss")),
        "train_acc": partial.get("acc", last.get("train_acc")),
        "test_loss": last.get("test_loss"), "test_acc": last.get("test_acc"),
        "test_top5": last.get("top5"),
        "images_per_s": train_images / train_seconds if train_seconds > 0 else None,
        "seconds": time.perf_counter() - start_time,
        "epochs": len(history.epochs), "steps": global_step, "lr": _current_lr(opt),
        "device": env.device_name(device), "precision": prec,
        "dataset": getattr(train, "name", None), "fallback": getattr(train, "fallback", None),
        "interrupted": interrupted,
    }
    return history


def _out_of_memory(err: BaseException, net: nn.Module, batch_size: int | None,
                   shape: tuple[int, ...] | None) -> TrainingOutOfMemoryError:
    what = f" at {shape[1]}x{shape[2]}" if shape else ""
    if batch_size and batch_size > 1:
        advice = (f"Try half the batch size: load_data(..., batch_size={batch_size // 2}) "
                  f"(then lr about half as large for SGD).")
    else:
        advice = "Try a smaller image_size or a smaller model."
    return TrainingOutOfMemoryError(
        f"Out of GPU memory while training {type(net).__name__} with batch size "
        f"{batch_size}{what}. {advice} Memory held by earlier cells (old models, "
        f"histories with tensors) also counts: restart the runtime if you trained several "
        f"models in this session. Original error: {str(err).splitlines()[0] if str(err) else err!r}"
    )


def _train_one_epoch(runner, train, opt, sched, scaler, device, prec, channels_last,
                     label_smoothing, aux_weight, epoch, epochs, max_steps, read_every,
                     progress, history, steps_per_epoch, state):
    """One pass over ``train``; returns the epoch's record. ``state`` ("step",
    "batch_size") is kept current after every step for fit's error handlers. With
    ``state["save"]`` it checkpoints inside the epoch (every ``state["save_every"]`` steps, else
    every CHECKPOINT_SECONDS); ``state["resume"]`` holds the sums of a checkpoint written
    inside this epoch, whose steps are skipped (same order: it depends on (seed, epoch))."""
    from tqdm.auto import tqdm

    runner.train()
    global_step = state["step"]
    resume = state.pop("resume", None) or {}
    save, save_every = state.get("save"), state.get("save_every")
    if hasattr(train, "set_epoch"):
        train.set_epoch(epoch)  # the epoch's order depends only on (data seed, epoch)
    total = steps_per_epoch
    if max_steps is not None and total is not None:
        total = min(total, max_steps - global_step)
    bar = tqdm(total=total, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
               disable=not progress, leave=True, mininterval=1.0, dynamic_ncols=True)

    # Running sums on the device: reading them forces a sync, so it happens only every
    # ``read_every`` steps. ``window_*`` cover the steps since the previous read.
    window_loss = torch.tensor(resume.get("window_loss", 0.0), device=device)
    window_correct = torch.tensor(resume.get("window_correct", 0), device=device,
                                  dtype=torch.long)
    epoch_loss = resume.get("epoch_loss", 0.0)
    epoch_correct, epoch_seen = resume.get("epoch_correct", 0), resume.get("epoch_seen", 0)
    window_seen = resume.get("window_seen", 0)
    window_start = resume.get("window_start", global_step)
    steps_in_epoch = skip = resume.get("steps", 0)
    started = time.perf_counter() - resume.get("seconds", 0.0)
    window_time = last_save = time.perf_counter()
    bar.update(skip - (global_step - window_start))  # the open window is counted at its read

    def save_partial() -> None:
        save(epoch, {"steps": steps_in_epoch, "epoch_loss": epoch_loss,
                     "epoch_correct": epoch_correct, "epoch_seen": epoch_seen,
                     "window_loss": window_loss.item(), "window_correct": int(window_correct),
                     "window_seen": window_seen, "window_start": window_start,
                     "seconds": time.perf_counter() - started})

    def read_point() -> None:
        nonlocal window_loss, window_correct, epoch_loss, epoch_correct, epoch_seen
        nonlocal window_seen, window_start, window_time
        loss_sum, correct = torch.stack([window_loss, window_correct.float()]).tolist()
        now = time.perf_counter()
        if not math.isfinite(loss_sum):
            what = "NaN" if math.isnan(loss_sum) else "infinite"
            raise TrainingDivergedError(
                f"The training loss became {what} between step {window_start + 1} and step "
                f"{global_step} (epoch {epoch + 1}); training stopped. The learning rate "
                f"({_current_lr(opt):g}) is probably too high for this model: try "
                f"lr={_current_lr(opt) / 10:g}, or a warm-up (schedule='onecycle'). "
                f"(The check runs every {read_every} steps, so the first bad step is in "
                f"that range.)", history)
        epoch_loss += loss_sum
        epoch_correct += int(correct)
        epoch_seen += window_seen
        rate = window_seen / max(now - window_time, 1e-9)
        history.steps.append({
            "step": global_step, "epoch": epoch + 1, "loss": loss_sum / window_seen,
            "acc": correct / window_seen, "lr": _current_lr(opt), "images_per_s": rate})
        bar.set_postfix(loss=f"{loss_sum / window_seen:.4f}", acc=f"{correct / window_seen:.3f}",
                        img_s=f"{rate:.0f}", refresh=False)
        bar.update(global_step - window_start)
        window_loss = torch.zeros((), device=device)
        window_correct = torch.zeros((), device=device, dtype=torch.long)
        window_seen, window_start, window_time = 0, global_step, now

    try:
        for x, y in _batches(train, device, channels_last):
            if skip:  # trained before the interruption
                skip -= 1
                continue
            if max_steps is not None and global_step >= max_steps:
                break
            batch_size = state["batch_size"] = y.shape[0]
            with _autocast(device, prec):
                try:
                    output = runner(x)
                except ValueError as err:
                    raise _with_data_context(err, train, tuple(x.shape)) from err
            loss, logits = _loss(output, y, label_smoothing, aux_weight)
            opt.zero_grad(set_to_none=True)
            if scaler.is_enabled():
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            sched.step_batch()
            global_step += 1
            state["step"] = global_step
            steps_in_epoch += 1
            window_loss += loss.detach() * batch_size
            window_correct += (logits.detach().argmax(dim=1) == y).sum()
            window_seen += batch_size
            if steps_in_epoch % read_every == 0:
                read_point()
            if save is not None and (steps_in_epoch % save_every == 0 if save_every else
                                     time.perf_counter() - last_save >= CHECKPOINT_SECONDS):
                save_partial()
                last_save = time.perf_counter()
        if window_seen:
            read_point()
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    if epoch_seen == 0:
        raise ValueError("The training data yielded no batches (empty data set?).")
    record = {
        "epoch": epoch + 1, "train_loss": epoch_loss / epoch_seen,
        "train_acc": epoch_correct / epoch_seen, "lr": _current_lr(opt),
        "train_seconds": elapsed, "train_images": epoch_seen,
        "images_per_s": epoch_seen / elapsed, "steps": steps_in_epoch,
    }
    return record
