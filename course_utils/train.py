"""One training loop for every notebook: ``fit``, ``evaluate`` and ``History``.

    history = fit(model, train, test, epochs=1)          # SGD + momentum 0.9
    history.final["test_acc"], history.plot()
    evaluate(model, test)  # {"loss": ..., "acc": ..., "top5": ...}

What it adds to the lecture's plain loop (``for x, y in loader: ... loss.item()``):

* No host sync per step: loss and accuracy stay on the device and are read (and checked for
  NaN/inf) every ``log_every`` steps, so a diverging run stops at most that many steps late.
* bf16/fp16 autocast, channels_last and cudnn.benchmark where measured faster (CPU policy:
  ``benchmarks/README.md``, "CPU precision policy"; see :func:`resolve_precision`).
* Atomic checkpoints every ~30 s and after every epoch; ``resume=True`` continues bit for bit,
  mid-epoch too. Ctrl-C returns the History so far; errors say what to do next.
* ``devices="all"``: every GPU through ``nn.DataParallel`` (Kaggle's 2xT4); the lecture's
  schedules; GoogLeNet's auxiliary losses.

Data: anything that yields ``(x, y)`` batches (``load_data``'s are fastest: already on the
device). ``fit`` uses the data's ``set_epoch`` (a resumed run sees the same batches),
``to(device)``, ``name`` and ``fallback`` when present.
"""

from __future__ import annotations

import contextlib
import itertools
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

from . import env, t4
from .papers import LENET5_PAPER_LR

__all__ = ["fit", "evaluate", "History", "resolve_precision", "cpu_supports_bf16",
           "cpu_bf16_isa", "use_channels_last", "TrainingDivergedError", "CheckpointError",
           "TrainingOutOfMemoryError", "DEFAULT_LR", "default_lr", "OPTIMIZERS", "SCHEDULES",
           "PRECISIONS", "lenet5_factor"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = (None, "lenet5", "step", "plateau", "googlenet", "onecycle")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# Learning rate when ``lr=None`` (default_lr): Adam/AdamW 1e-3; SGD the papers' 0.01 for plain
# deep stacks (AlexNet, VGG, GoogLeNet), 0.1 with batch norm (ResNet, DenseNet) and for small
# networks (< 1 M parameters): LeNet-5 on MNIST, batch 128, one epoch reaches ~94 % at 0.01,
# ~98 % at 0.1 (benchmarks/README.md, "Defaults for LeNet-5").
DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3}
SGD_FAST_LR = 0.1
SMALL_MODEL_PARAMS = 1_000_000
# Weight decay when ``weight_decay=None``: 5e-4 as in AlexNet/VGG for SGD; Adam's L2 term
# fights its per-parameter scaling, so plain Adam gets none and AdamW the usual 0.01.
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adam": 0.0, "adamw": 1e-2}
# Device-side counters are read about this often per epoch (log_every=None): enough for a
# learning curve, few enough to cost nothing and keep saved progress bars short.
READS_PER_EPOCH = 20
# With fit(checkpoint=...): seconds of training between two checkpoints inside an epoch.
CHECKPOINT_SECONDS = 30.0


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
    """What a training run recorded. ``steps``: one dict per read point (step, epoch, loss and
    acc since the previous read point, lr, images_per_s); ``epochs``: one per epoch (train_loss,
    train_acc, test_loss, test_acc, top5, lr, seconds, ...); ``final``: the summary (train/test
    loss and acc, test_top5, images_per_s, seconds, device, precision, dataset, fallback,
    interrupted, ...); ``config``: the arguments ``fit`` ran with."""

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
        parts = [f"epochs={len(self.epochs)}"] + [
            f"{key}={f[key]:.4g}" for key in ("train_loss", "train_acc", "test_acc", "images_per_s")
            if f.get(key) is not None]
        if f.get("interrupted"):
            parts.append("interrupted=True")
        return f"History({', '.join(parts)})"


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else str(value)


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
    return "avx512_bf16" if "avx512_bf16" in flags else None


def cpu_supports_bf16() -> bool:
    """True when bf16 matmuls run natively on this CPU (see :func:`cpu_bf16_isa`)."""
    return cpu_bf16_isa() is not None


# Measured (benchmarks/README.md, "CPU precision policy"): with native bf16 (AVX512-BF16 on the
# course machine; AMX is faster still) bf16 + channels_last trained every course model faster
# than fp32 (1.4x LeNet-5 .. 2.6x ResNet-50), emulated bf16 only adds conversions;
# channels_last lost only on AlexNet (0.7-1.0x), little next to its bf16 gain: one rule for all.
CPU_CHANNELS_LAST = True


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


def gradient_scaler(device: torch.device | str, precision: str) -> torch.amp.GradScaler:
    """The gradient scaler fp16 needs (T4), on the training device; disabled otherwise."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")


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


# --------------------------------------------------------------------------- data, loss
def _split_output(output: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Main logits and auxiliary logits (GoogLeNet returns (logits, aux1, aux2) in training)."""
    return (output[0], list(output[1:])) if isinstance(output, (tuple, list)) else (output, [])


def _loss(output: Any, y: torch.Tensor, label_smoothing: float, aux_weight: float):
    logits, aux = _split_output(output)
    # In fp32 whatever the autocast dtype: a bf16 log-softmax over many classes loses digits
    # that the gradient needs.
    loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
    for extra in aux:  # GoogLeNet: "weighted by 0.3" (Szegedy et al. 2014, Section 5)
        loss = loss + aux_weight * F.cross_entropy(extra.float(), y,
                                                   label_smoothing=label_smoothing)
    return loss, logits


def _batches(data: Iterable, device: torch.device, channels_last: bool):
    """Yield (x, y) on ``device``; a no-op for data that already lives there."""
    for x, y in data:
        if x.device != device:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, y


def _place_data(data: Any, device: torch.device) -> Any:
    current = getattr(data, "device", None)
    if current is not None and hasattr(data, "to") and torch.device(current) != device:
        return data.to(device)
    return data


# --------------------------------------------------------------------------- evaluate
def evaluate(model: nn.Module, data: Iterable, precision: str = "auto") -> dict[str, float]:
    """Mean cross-entropy loss, top-1 and top-5 accuracy (fractions 0..1) of ``model`` on
    ``data``. Runs in eval mode without gradients; the model's mode is restored after."""
    tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
    device = tensor.device if tensor is not None else torch.device("cpu")
    data = _place_data(data, device)
    return _evaluate(model, data, device, resolve_precision(precision, device),
                     use_channels_last(device))


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
                hits = logits.topk(min(5, logits.shape[1]), dim=1).indices == y[:, None]
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
    kind = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
    kwargs = {"lr": default_lr(model, name) if lr is None else lr,
              "weight_decay": DEFAULT_WEIGHT_DECAY[name] if weight_decay is None else weight_decay}
    if name == "sgd":
        kwargs["momentum"] = momentum
    if device.type == "cuda":
        # Fused CUDA kernels: one launch for all parameters, and the fp16 gradient scaler
        # can hand them its inf check on the device instead of syncing with .item().
        with contextlib.suppress(TypeError, RuntimeError, ValueError):  # older torch: no fused SGD
            return kind(model.parameters(), fused=True, **kwargs)
    return kind(model.parameters(), **kwargs)


# --------------------------------------------------------------------------- schedules
def lenet5_factor(epoch: int) -> float:
    """Multiplier of the base rate in epoch ``epoch`` (0-based), from LENET5_PAPER_LR.

    The paper's rates (0.0005 for two passes, then 0.0002, 0.0001, 0.00005, 0.00001) belong
    to its stochastic diagonal Levenberg-Marquardt method, which divides them by a curvature
    estimate: far too small for plain SGD. schedule="lenet5" keeps their *shape* (1, 0.4, 0.2,
    0.1, 0.02) and scales it to ``lr``.
    """
    first, start = LENET5_PAPER_LR[0][1], 0
    for length, rate in LENET5_PAPER_LR:
        if length is None or epoch < start + length:
            return rate / first
        start += length
    return LENET5_PAPER_LR[-1][1] / first


def _make_schedule(schedule: Any, optimizer: torch.optim.Optimizer, epochs: int,
                   total_steps: int) -> tuple[Any, bool]:
    """The scheduler (or None) and whether it steps per batch (else once per epoch)."""
    lrs = torch.optim.lr_scheduler
    name = schedule if isinstance(schedule, str) else None
    if schedule is None:
        return None, False
    if name == "lenet5":
        made = lrs.LambdaLR(optimizer, lenet5_factor)
    elif name == "step":  # the AlexNet/ResNet habit for a short run: /10 after each third
        made = lrs.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    elif name == "plateau":  # AlexNet, VGG, ResNet: /10 when the validation loss stalls
        made = lrs.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=1)
    elif name == "googlenet":  # Szegedy et al. 2014: "decreasing ... by 4% every 8 epochs"
        made = lrs.StepLR(optimizer, step_size=8, gamma=0.96)
    elif name == "onecycle":
        # Smith & Topin 2018: warm up then anneal within the run; one epoch is enough. One
        # step more than the run takes: the scheduler also steps after the last batch, and
        # OneCycleLR's cosine would climb again past its end.
        made = lrs.OneCycleLR(optimizer, max_lr=[group["lr"] for group in optimizer.param_groups],
                              total_steps=max(1, total_steps) + 1)
    elif isinstance(schedule, (lrs.LRScheduler, lrs.ReduceLROnPlateau)):
        made = schedule
    elif callable(schedule):
        made = schedule(optimizer)
    else:
        raise ValueError(f"schedule must be one of {SCHEDULES}, a scheduler or a callable "
                         f"optimizer -> scheduler; got {schedule!r}")
    return made, isinstance(made, (lrs.OneCycleLR, lrs.CyclicLR))


def _current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


# --------------------------------------------------------------------------- checkpoints
def _rng_state() -> dict[str, Any]:
    keys, pos, has_gauss, cached = np.random.get_state()[1:]
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             # NumPy's state as tensors/ints so that the file loads with weights_only=True.
             "numpy": (torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                       float(cached))}
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


# --------------------------------------------------------------------------- fit
def _check_arguments(epochs, lr, momentum, weight_decay, label_smoothing, aux_weight,
                     max_steps, log_every, devices, checkpoint_every) -> None:
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
    if checkpoint_every is not None and (isinstance(checkpoint_every, bool) or not
                                         isinstance(checkpoint_every, int) or checkpoint_every < 1):
        raise ValueError(f"checkpoint_every must be None or a whole number >= 1, got "
                         f"{checkpoint_every!r}")
    if not (devices in ("auto", "all") or isinstance(devices, (str, torch.device))):
        raise ValueError(f"devices must be 'auto', 'all' or a device, got {devices!r}")


def _choose_device(train: Any, devices: Any) -> torch.device:
    if devices not in ("auto", "all"):
        device = torch.device(devices)
    elif devices == "all" and torch.cuda.is_available():
        device = torch.device("cuda")
    elif getattr(train, "device", None) is not None:
        device = torch.device(train.device)
    else:
        device = env.get_device()
    if device.type == "cuda" and device.index is None:  # "cuda" -> "cuda:0", comparable
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def fit(model: nn.Module, train: Iterable, test: Iterable | None = None, epochs: int = 1,
        optimizer: str | torch.optim.Optimizer = "sgd", lr: float | None = None,
        momentum: float = 0.9, weight_decay: float | None = None, schedule: Any = None,
        label_smoothing: float = 0.0, aux_weight: float = 0.3, precision: str = "auto",
        checkpoint: str | os.PathLike | None = None, checkpoint_every: int | None = None,
        resume: bool = True, seed: int = 0, devices: str | torch.device = "auto",
        max_steps: int | None = None, progress: bool = True,
        log_every: int | None = None) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs; evaluate on ``test`` after each.

    optimizer     "sgd" (with ``momentum``), "adam", "adamw", or your own
                  ``torch.optim.Optimizer`` (then leave ``lr`` None).
    lr            None: :func:`default_lr` (adam/adamw 1e-3; sgd 0.1 for models with batch
                  norm or under 1 M parameters such as LeNet-5, else 0.01).
    weight_decay  None: 5e-4 for SGD, 0 for Adam, 0.01 for AdamW.
    schedule      one of SCHEDULES, a scheduler built on your optimizer, or a callable
                  optimizer -> scheduler. Steps once per epoch, except one-cycle/cyclic (per
                  batch) and reduce-on-plateau (with the test loss, else the training loss).
    aux_weight    weight of the auxiliary losses of a model that returns (logits, aux, ...)
                  in training mode (GoogLeNet: 0.3).
    precision     "auto" | "fp32" | "bf16" | "fp16" (see :func:`resolve_precision`).
    checkpoint    file written about every 30 s of training (or every ``checkpoint_every``
                  steps) and after every epoch; with ``resume=True`` an existing one is loaded
                  and training continues exactly where it stopped (keep the other arguments).
    seed          seeds torch/NumPy/Python (dropout...); the data's order depends on the
                  data's own seed and the epoch.
    devices       "auto": the data's device (else the best available); "all": every visible
                  GPU through ``torch.nn.DataParallel``; or a device such as "cpu".
    max_steps     stop after this many optimizer steps in total (smoke runs).
    log_every     read the device-side metrics every N steps (default: ~20 reads per epoch).

    Returns a :class:`History`. Ctrl-C stops training and returns the History so far
    (``final["interrupted"] = True``); the model keeps its partly trained weights.
    """
    _check_arguments(epochs, lr, momentum, weight_decay, label_smoothing, aux_weight,
                     max_steps, log_every, devices, checkpoint_every)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    start_time = time.perf_counter()

    # ---- model and data on the device, in the precision and memory format that are fastest
    device = _choose_device(train, devices)
    net = (model.module if isinstance(model, nn.DataParallel) else model).to(device)
    prec, channels_last = resolve_precision(precision, device), use_channels_last(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick kernels
    if channels_last:
        net.to(memory_format=torch.channels_last)
    train, test = _place_data(train, device), _place_data(test, device)
    runner: nn.Module = net
    several_gpus = device.type == "cuda" and torch.cuda.device_count() > 1
    if devices == "all" and (several_gpus or env.is_rehearsal()):
        # Splits each batch over the GPUs (Kaggle's 2xT4). A rehearsal wraps on one device too
        # (DataParallel then calls the model directly), so that this path runs in CI.
        runner = nn.DataParallel(net)

    t4.record_training("fit", net, train, test, epochs, max_steps,  # rehearsals only
                       several_gpus=devices == "all")

    # ---- optimizer, schedule, History, trainer
    opt = _make_optimizer(optimizer, net, lr, momentum, weight_decay, device)
    try:
        steps_per_epoch = len(train)  # type: ignore[arg-type]
    except TypeError:
        steps_per_epoch = None
    total_steps = (steps_per_epoch or 1) * epochs
    if max_steps is not None:
        total_steps = min(total_steps, max_steps) if steps_per_epoch else max_steps
    sched, per_step = _make_schedule(schedule, opt, epochs, total_steps)
    batch_size = getattr(train, "batch_size", None)
    batch_size = int(batch_size) if isinstance(batch_size, int) else None
    history = History(config={
        "epochs": epochs, "optimizer": opt.__class__.__name__, "lr": _current_lr(opt),
        "momentum": momentum if isinstance(opt, torch.optim.SGD) else None,
        "weight_decay": opt.param_groups[0].get("weight_decay"),
        "schedule": schedule if isinstance(schedule, str) or schedule is None
        else type(schedule).__name__, "label_smoothing": label_smoothing,
        "aux_weight": aux_weight, "precision": prec, "seed": seed, "max_steps": max_steps,
        "batch_size": batch_size, "model": type(net).__name__})
    trainer = _Trainer(
        runner=runner, net=net, opt=opt, sched=sched, per_step=per_step,
        scaler=gradient_scaler(device, prec), device=device,
        precision=prec, channels_last=channels_last, label_smoothing=label_smoothing,
        aux_weight=aux_weight, epochs=epochs, max_steps=max_steps, progress=progress,
        read_every=log_every or max(1, round((steps_per_epoch or 1000) / READS_PER_EPOCH)),
        steps_per_epoch=steps_per_epoch, history=history, checkpoint_every=checkpoint_every,
        checkpoint=Path(checkpoint) if checkpoint is not None else None, batch_size=batch_size)
    env.seed_everything(seed)
    start_epoch, in_epoch = 0, None
    if trainer.checkpoint is not None and resume and trainer.checkpoint.exists():
        start_epoch, in_epoch = trainer.restore()

    # ---- the loop
    interrupted, epoch = False, start_epoch
    try:
        for epoch in range(start_epoch, epochs):
            if max_steps is not None and trainer.step >= max_steps:
                break
            record = trainer.train_epoch(train, epoch, in_epoch)
            in_epoch = None
            trainer.end_epoch(record, test)
    except KeyboardInterrupt:
        interrupted = True
        print(f"\n[fit] Interrupted (Ctrl-C) in epoch {epoch + 1}, after {trainer.step} steps. "
              f"The model keeps its partly trained weights; the returned History has "
              f"final['interrupted'] = True."
              + (f" The last checkpoint is {trainer.checkpoint}." if trainer.saved else ""))
    except _OOM_BASE as err:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        raise _out_of_memory(err, net, trainer.batch_size, train) from err

    last = history.epochs[-1] if history.epochs else {}
    partial = history.steps[-1] if interrupted and history.steps else {}
    seconds = sum(e.get("train_seconds", 0.0) for e in history.epochs)
    images = sum(e.get("train_images", 0) for e in history.epochs)
    history.final = {
        "train_loss": partial.get("loss", last.get("train_loss")),
        "train_acc": partial.get("acc", last.get("train_acc")), "test_loss": last.get("test_loss"),
        "test_acc": last.get("test_acc"), "test_top5": last.get("top5"),
        "images_per_s": images / seconds if seconds > 0 else None,
        "seconds": time.perf_counter() - start_time, "epochs": len(history.epochs),
        "steps": trainer.step, "lr": _current_lr(opt), "device": env.device_name(device),
        "precision": prec, "dataset": getattr(train, "name", None),
        "fallback": getattr(train, "fallback", None), "interrupted": interrupted}
    return history


def _out_of_memory(err: BaseException, net: nn.Module, batch_size: int | None,
                   data: Any) -> TrainingOutOfMemoryError:
    size = getattr(data, "image_size", None)
    what = f" at {size}x{size}" if size else ""
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


@dataclass
class _EpochSums:
    """The running sums of one epoch. ``window_*`` cover the steps since the last read point
    and stay on the device (reading them syncs); a checkpoint inside the epoch stores all."""

    steps: int = 0
    epoch_loss: float = 0.0
    epoch_correct: int = 0
    epoch_seen: int = 0
    window_loss: Any = 0.0
    window_correct: Any = 0
    window_seen: int = 0
    window_start: int = 0
    seconds: float = 0.0

    def to_checkpoint(self) -> dict[str, Any]:
        return {**self.__dict__, "window_loss": float(self.window_loss),
                "window_correct": int(self.window_correct)}


@dataclass
class _Trainer:
    """What one fit() call trains with; ``step`` and ``batch_size`` move as it trains (fit's
    Ctrl-C and out-of-memory handlers report them)."""

    runner: nn.Module  # the model, or its DataParallel wrapper
    net: nn.Module
    opt: torch.optim.Optimizer
    sched: Any  # an LR scheduler or None
    per_step: bool  # sched steps after every batch (one-cycle, cyclic), else once per epoch
    scaler: torch.amp.GradScaler
    device: torch.device
    precision: str
    channels_last: bool
    label_smoothing: float
    aux_weight: float
    epochs: int
    max_steps: int | None
    read_every: int
    progress: bool
    steps_per_epoch: int | None
    history: History
    checkpoint: Path | None
    checkpoint_every: int | None
    batch_size: int | None
    step: int = 0
    saved: bool = False  # a checkpoint file of this run exists (for the Ctrl-C message)

    def save(self, completed_epochs: int, partial: _EpochSums | None = None) -> None:
        """Everything a resumed run needs to continue bit for bit; ``partial``: the sums of
        the unfinished epoch ``completed_epochs + 1``."""
        _save_checkpoint(self.checkpoint, {
            "format": "course_utils.fit/1", "epoch": completed_epochs, "step": self.step,
            "model": self.net.state_dict(), "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict() if self.sched is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "rng": _rng_state(), "history": self.history.to_dict(),
            "in_epoch": partial.to_checkpoint() if partial is not None else None})
        self.saved = True

    def restore(self) -> tuple[int, dict | None]:
        """Load the checkpoint; returns (completed epochs, sums of the unfinished epoch)."""
        path = self.checkpoint
        hint = (f"Delete {str(path)!r} to start over, or call fit(..., resume=False) to "
                f"overwrite it.")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated, not a torch file, unpicklable...
            raise CheckpointError(
                f"Cannot read the checkpoint {str(path)!r} ({type(err).__name__}: {err}). The file "
                f"is damaged or not a fit() checkpoint. {hint}") from err
        if not isinstance(state, dict) or state.get("format") != "course_utils.fit/1":
            raise CheckpointError(f"{str(path)!r} is not a checkpoint written by fit(). {hint}")
        try:
            self.net.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(
                f"The checkpoint {str(path)!r} does not fit this model/optimizer ({err}). {hint}"
            ) from err
        if self.sched is not None and state.get("scheduler") is not None:
            self.sched.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        self.saved = True
        saved = History.from_dict(state["history"])
        self.history.steps, self.history.epochs = saved.steps, saved.epochs
        epoch, self.step, in_epoch = int(state["epoch"]), int(state["step"]), state.get("in_epoch")
        if self.progress and epoch >= self.epochs:
            print(f"[fit] {path} already holds {epoch} epoch(s) (epochs={self.epochs}): nothing "
                  f"to train. Pass a larger epochs to continue, or resume=False to start over.")
        elif self.progress:
            where = f"inside epoch {epoch + 1}" if in_epoch else f"after epoch {epoch}"
            print(f"[fit] resumed from {path} {where} (step {self.step}).")
        return epoch, in_epoch

    def train_epoch(self, train: Iterable, epoch: int, resume: dict | None) -> dict[str, Any]:
        """One pass over ``train``; returns the epoch's record. ``resume``: the sums saved
        inside this epoch; its steps are skipped (same order: it depends on (seed, epoch))."""
        self.runner.train()
        sums = _EpochSums(**(resume or {"window_start": self.step}))
        sums.window_loss = torch.tensor(sums.window_loss, device=self.device)
        sums.window_correct = torch.tensor(sums.window_correct, device=self.device)
        skip = sums.steps  # batches trained before an interruption inside this epoch
        if hasattr(train, "start_batch"):  # course loaders start there without preparing them
            train.set_epoch(epoch, start_batch=skip)
            skip = 0
        elif hasattr(train, "set_epoch"):
            train.set_epoch(epoch)  # the epoch's order depends only on (data seed, epoch)
        total = self.steps_per_epoch
        if self.max_steps is not None and total is not None:
            total = min(total, self.max_steps - self.step + sums.steps)
        bar = env.progress_bar(total=total, desc=f"epoch {epoch + 1}/{self.epochs}",
                               disable=not self.progress)
        bar.update(sums.steps - (self.step - sums.window_start))  # open window: at its read
        started = time.perf_counter() - sums.seconds
        window_time = last_save = time.perf_counter()
        try:
            for x, y in _batches(train, self.device, self.channels_last):
                if skip:  # other data: its batches before the interruption are skipped
                    skip -= 1
                    continue
                loss, correct = self._train_step(x, y, train)
                sums.steps += 1
                sums.window_loss += loss.detach() * y.shape[0]
                sums.window_correct += correct
                sums.window_seen += y.shape[0]
                if sums.steps % self.read_every == 0:
                    window_time = self._read(sums, epoch, bar, window_time)
                if self.checkpoint is not None and (
                        sums.steps % self.checkpoint_every == 0 if self.checkpoint_every
                        else time.perf_counter() - last_save >= CHECKPOINT_SECONDS):
                    sums.seconds = time.perf_counter() - started
                    self.save(epoch, sums)
                    last_save = time.perf_counter()
                if self.max_steps is not None and self.step >= self.max_steps:
                    break
            if sums.window_seen:
                self._read(sums, epoch, bar, window_time)
            if self.checkpoint is not None and not self._finished(sums.steps):
                sums.seconds = time.perf_counter() - started
                self.save(epoch, sums)  # max_steps ended it early: resume inside this epoch
        finally:
            bar.close()
        elapsed = time.perf_counter() - started
        if sums.epoch_seen == 0:
            raise ValueError("The training data yielded no batches (empty data set?).")
        return {"epoch": epoch + 1, "train_loss": sums.epoch_loss / sums.epoch_seen,
                "train_acc": sums.epoch_correct / sums.epoch_seen, "lr": _current_lr(self.opt),
                "train_seconds": elapsed, "train_images": sums.epoch_seen,
                "images_per_s": sums.epoch_seen / elapsed, "steps": sums.steps}

    def _train_step(self, x: torch.Tensor, y: torch.Tensor, train: Any):
        """One optimizer step; returns the batch's mean loss and number of correct
        predictions, both still on the device."""
        self.batch_size = y.shape[0]
        with _autocast(self.device, self.precision):
            try:
                output = self.runner(x)
            except ValueError as err:  # the model's input check: say which data gave it
                name = getattr(train, "name", None) or type(train).__name__
                raise ValueError(
                    f"{err}\n(fit: the data {name!r} gives images of shape {tuple(x.shape)}; "
                    f"pass image_size=... / in_channels=... to load_data, or build the model "
                    f"to match.)") from err
        loss, logits = _loss(output, y, self.label_smoothing, self.aux_weight)
        self.opt.zero_grad(set_to_none=True)
        if self.scaler.is_enabled():
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()
        if self.per_step:
            self.sched.step()
        self.step += 1
        return loss, (logits.detach().argmax(dim=1) == y).sum()

    def _read(self, sums: _EpochSums, epoch: int, bar, window_time: float) -> float:
        """A read point: move the window's sums to the host, check them, record a History
        step, advance the bar, open a new window. Returns the new window's start time."""
        loss_sum, correct = torch.stack([sums.window_loss, sums.window_correct.float()]).tolist()
        now = time.perf_counter()
        if not math.isfinite(loss_sum):
            lr = _current_lr(self.opt)
            raise TrainingDivergedError(
                f"The training loss became {'NaN' if math.isnan(loss_sum) else 'infinite'} "
                f"between step {sums.window_start + 1} and step {self.step} (epoch {epoch + 1}); "
                f"training stopped. The learning rate ({lr:g}) is probably too high for this "
                f"model: try lr={lr / 10:g}, or a warm-up (schedule='onecycle'). (The check "
                f"runs every {self.read_every} steps, so the first bad step is in that range.)",
                self.history)
        seen = sums.window_seen
        sums.epoch_loss += loss_sum
        sums.epoch_correct += int(correct)
        sums.epoch_seen += seen
        rate = seen / max(now - window_time, 1e-9)
        self.history.steps.append({
            "step": self.step, "epoch": epoch + 1, "loss": loss_sum / seen, "acc": correct / seen,
            "lr": _current_lr(self.opt), "images_per_s": rate})
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}",
                        img_s=f"{rate:.0f}", refresh=False)
        bar.update(self.step - sums.window_start)
        sums.window_loss = torch.zeros((), device=self.device)
        sums.window_correct = torch.zeros((), device=self.device, dtype=torch.long)
        sums.window_seen, sums.window_start = 0, self.step
        return now

    def end_epoch(self, record: dict[str, Any], test: Iterable | None) -> None:
        """Evaluate, record, report, step a per-epoch schedule, checkpoint."""
        started = time.perf_counter()
        result = (_evaluate(self.runner, test, self.device, self.precision, self.channels_last)
                  if test is not None else {"loss": None, "acc": None, "top5": None})
        record.update(test_loss=result["loss"], test_acc=result["acc"], top5=result["top5"])
        record["seconds"] = record["train_seconds"] + time.perf_counter() - started
        self.history.epochs.append(record)
        if self.progress and test is not None:
            print(f"epoch {record['epoch']}/{self.epochs}: train loss {record['train_loss']:.4f} "
                  f"acc {record['train_acc']:.4f} | test loss {record['test_loss']:.4f} "
                  f"acc {record['test_acc']:.4f} | {record['images_per_s']:.0f} img/s")
        if self.sched is not None and not self.per_step:
            if isinstance(self.sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.sched.step(record["test_loss"] if record["test_loss"] is not None
                                else record["train_loss"])
            else:
                self.sched.step()
        if self.checkpoint is not None and self._finished(record["steps"]):
            self.save(record["epoch"])

    def _finished(self, steps: int) -> bool:
        """Did an epoch of ``steps`` steps cover the whole data (unknown length: yes)?"""
        return self.steps_per_epoch is None or steps >= self.steps_per_epoch
