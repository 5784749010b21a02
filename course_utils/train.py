"""One training loop for every notebook: ``fit``, ``evaluate`` and ``History``.

    history = fit(model, train, test, epochs=1)          # SGD + momentum 0.9
    history.final["test_acc"], history.plot()
    evaluate(model, test)  # {"loss": ..., "acc": ..., "top5": ...}

``fit``'s loop (in :func:`fit`, under "the loop") is the notebooks' own training loop, with:

* No host sync per step: loss and accuracy stay on the device and are read (and checked for
  NaN/inf) every ``log_every`` steps, so a diverging run stops at most that many steps late.
* The device, precision and memory format of :class:`course_utils.device.Placement`: bf16/fp16
  autocast and channels_last where measured faster, the fp16 gradient scaler on a T4.
* Checkpoints (:mod:`course_utils.checkpoint`) about every 30 s and after every epoch;
  ``resume=True`` continues bit for bit, mid-epoch too. Ctrl-C returns the History so far;
  errors say what to do next.
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
from .checkpoint import Checkpoint, CheckpointError
from .device import Placement
from .papers import LENET5_PAPER_LR

__all__ = ["fit", "evaluate", "History", "Checkpoint", "CheckpointError", "TrainingDivergedError",
           "TrainingOutOfMemoryError", "DEFAULT_LR", "default_lr", "OPTIMIZERS", "SCHEDULES",
           "lenet5_factor"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = (None, "lenet5", "step", "plateau", "googlenet", "onecycle")

# Learning rate when ``lr=None`` (default_lr): Adam/AdamW 1e-3; SGD the papers' 0.01 for plain
# deep stacks (AlexNet, VGG, GoogLeNet), 0.1 with batch norm (ResNet, DenseNet). Small networks
# (< 1 M parameters, LeNet-5) take a rate that grows with the batch size, chosen at 64, 128,
# 256 and 512 (interpolated on log2(batch) between them): one epoch of MNIST with no schedule
# then passes 97.5 % at batch 64-256 and 97 % at 512 over three seeds (benchmarks/README.md,
# "LeNet-5 defaults at other batch sizes").
DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3}
SGD_BATCH_NORM_LR = 0.1
SMALL_MODEL_PARAMS = 1_000_000
SMALL_MODEL_LR_BY_BATCH = {64: 0.05, 128: 0.1, 256: 0.115, 512: 0.3}
# Weight decay when ``weight_decay=None``: 5e-4 as in AlexNet/VGG for SGD; Adam's L2 term
# fights its per-parameter scaling, so plain Adam gets none and AdamW the usual 0.01.
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adam": 0.0, "adamw": 1e-2}
# Device-side counters are read about this often per epoch (log_every=None): enough for a
# learning curve, few enough to cost nothing and keep saved progress bars short.
READS_PER_EPOCH = 20


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite. ``.history`` holds what was recorded before."""

    def __init__(self, message: str, history: History | None = None) -> None:
        super().__init__(message)
        self.history = history


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


# --------------------------------------------------------------------------- data, loss
# --------------------------------------------------------------------------- evaluate
def evaluate(model: nn.Module, data: Iterable, precision: str = "auto", *,
             place: Placement | None = None) -> dict[str, float]:
    """Mean cross-entropy loss, top-1 and top-5 accuracy (fractions 0..1) of ``model`` on
    ``data``. Runs in eval mode without gradients; the model's mode is restored after.
    ``place``: fit's placement (default: the model's device, ``precision``)."""
    if place is None:
        tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
        device = tensor.device if tensor is not None else torch.device("cpu")
        place = Placement.choose(None, devices=device, precision=precision)
    data = place.data(data)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=place.device)
    correct = torch.zeros((), device=place.device, dtype=torch.long)
    correct5 = torch.zeros((), device=place.device, dtype=torch.long)
    seen = 0
    try:
        with torch.inference_mode():
            for x, y in place.batches(data):
                with place.autocast():
                    logits, _ = _split_output(model(x))
                logits = logits.float()
                loss_sum += F.cross_entropy(logits, y, reduction="sum")
                # top-1 by argmax: of tied logits (frequent in bf16) it takes the first, as a
                # hand-written loop's argmax does; topk may take another one.
                correct += (logits.argmax(dim=1) == y).sum()
                top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
                correct5 += (top5 == y[:, None]).any(dim=1).sum()
                seen += y.shape[0]
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("evaluate() got no batches: the data set is empty.")
    loss, acc, top5 = torch.stack([loss_sum, correct.float(), correct5.float()]).tolist()
    return {"loss": loss / seen, "acc": acc / seen, "top5": top5 / seen}


# --------------------------------------------------------------------------- optimizers
_NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm)


def default_lr(model: nn.Module, optimizer: str = "sgd", batch_size: int | None = None) -> float:
    """The learning rate ``fit`` uses when ``lr=None`` (see DEFAULT_LR's comment)."""
    optimizer = optimizer.lower()
    if optimizer != "sgd":
        return DEFAULT_LR[optimizer]
    if any(isinstance(m, _NORM_LAYERS) for m in model.modules()):
        return SGD_BATCH_NORM_LR
    if sum(p.numel() for p in model.parameters()) >= SMALL_MODEL_PARAMS:
        return DEFAULT_LR["sgd"]
    sizes = sorted(SMALL_MODEL_LR_BY_BATCH)
    return float(np.interp(math.log2(batch_size or 128), [math.log2(b) for b in sizes],
                           [SMALL_MODEL_LR_BY_BATCH[b] for b in sizes]))


def _make_optimizer(optimizer: Any, model: nn.Module, lr: float | None, momentum: float,
                    weight_decay: float | None, device: torch.device,
                    batch_size: int | None) -> torch.optim.Optimizer:
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
    kwargs = {"lr": default_lr(model, name, batch_size) if lr is None else lr,
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




# --------------------------------------------------------------------------- fit
def fit(model: nn.Module, train: Iterable, test: Iterable | None = None, epochs: int = 1, *,
        optimizer: str | torch.optim.Optimizer = "sgd", lr: float | None = None,
        momentum: float = 0.9, weight_decay: float | None = None, schedule: Any = None,
        aux_weight: float = 0.3, label_smoothing: float = 0.0, precision: str = "auto",
        devices: str | torch.device = "auto", seed: int = 0, max_steps: int | None = None,
        checkpoint: str | os.PathLike | Checkpoint | None = None, resume: bool = True,
        progress: bool = True, log_every: int | None = None) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs; evaluate on ``test`` after each.

    optimizer     "sgd" (with ``momentum``), "adam", "adamw", or your own
                  ``torch.optim.Optimizer`` (then leave ``lr`` None).
    lr            None: :func:`default_lr` (adam/adamw 1e-3; sgd 0.1 with batch norm, a rate
                  that grows with the batch size under 1 M parameters (LeNet-5), else 0.01).
    weight_decay  None: 5e-4 for SGD, 0 for Adam, 0.01 for AdamW.
    schedule      one of SCHEDULES, a scheduler built on your optimizer, or a callable
                  optimizer -> scheduler. Steps once per epoch, except one-cycle/cyclic (per
                  batch) and reduce-on-plateau (with the test loss, else the training loss).
    aux_weight    weight of the auxiliary losses of a model that returns (logits, aux, ...)
                  in training mode (GoogLeNet: 0.3). ``label_smoothing``: cross-entropy's.
    precision     "auto" | "fp32" | "bf16" | "fp16" (see :mod:`course_utils.device`).
    devices       "auto": the data's device (else the best available); "all": every visible
                  GPU through ``torch.nn.DataParallel``; or a device such as "cpu".
    seed          seeds torch/NumPy/Python (dropout...); the data's order depends on the
                  data's own seed and the epoch.
    max_steps     stop after this many optimizer steps in total (short runs).
    checkpoint    a file (or ``Checkpoint(path, every_steps=N)``) written about every 30 s of
                  training and after every epoch; with ``resume=True`` an existing one is loaded
                  and training continues exactly where it stopped (keep the other arguments).
    log_every     read the device-side metrics every N steps (default: ~20 reads per epoch).

    Returns a :class:`History`. Ctrl-C stops training and returns the History so far
    (``final["interrupted"] = True``); the model keeps its partly trained weights.
    """
    _check_arguments(model, epochs, lr, momentum, weight_decay, label_smoothing, aux_weight,
                     max_steps, log_every, devices)
    start_time = time.perf_counter()
    place = Placement.choose(train, devices, precision)
    net = place.model(model.module if isinstance(model, nn.DataParallel) else model)
    train, test = place.data(train), place.data(test)
    runner = _parallel(net, place, devices)
    t4.record_training("fit", net, train, test, epochs, max_steps,  # rehearsals only
                       several_gpus=devices == "all")
    batch_size = getattr(train, "batch_size", None)
    batch_size = batch_size if isinstance(batch_size, int) else None
    opt = _make_optimizer(optimizer, net, lr, momentum, weight_decay, place.device, batch_size)
    steps_per_epoch = _length(train)
    sched, per_step = _make_schedule(schedule, opt, epochs,
                                     _total_steps(steps_per_epoch, epochs, max_steps))
    scaler = place.gradient_scaler()
    history = History(config={
        "epochs": epochs, "optimizer": type(opt).__name__, "lr": _current_lr(opt),
        "momentum": momentum if isinstance(opt, torch.optim.SGD) else None,
        "weight_decay": opt.param_groups[0].get("weight_decay"),
        "schedule": schedule if isinstance(schedule, str) or schedule is None
        else type(schedule).__name__, "label_smoothing": label_smoothing,
        "aux_weight": aux_weight, "precision": place.precision, "seed": seed,
        "max_steps": max_steps, "batch_size": batch_size, "model": type(net).__name__})
    ckpt = Checkpoint(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    parts = {"model": net, "optimizer": opt, "scheduler": sched,
             "scaler": scaler if scaler.is_enabled() else None}
    read_every = log_every or max(1, round((steps_per_epoch or 1000) / READS_PER_EPOCH))
    env.seed_everything(seed)
    start_epoch, step, in_epoch = 0, 0, None
    if ckpt is not None and resume and ckpt.exists():
        start_epoch, step, in_epoch = _resume(ckpt, parts, history, epochs, progress)

    # ---- the loop: the notebooks' own training loop, plus reads, checkpoints, max_steps
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, epochs):
            if max_steps is not None and step >= max_steps:
                break
            meter = _EpochMeter(place.device, in_epoch)  # in_epoch: resumed inside this epoch
            in_epoch = None
            runner.train()
            with _epoch_bar(epoch, epochs, steps_per_epoch, max_steps, step, meter,
                            progress) as bar:
                for x, y in place.batches(_epoch_batches(train, epoch, skip=meter.steps)):
                    with place.autocast():
                        output = _forward(runner, x, train)
                    loss, logits = _loss(output, y, label_smoothing, aux_weight)
                    opt.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()  # without fp16: loss.backward()
                    scaler.step(opt)               # without fp16: opt.step()
                    scaler.update()
                    if per_step:
                        sched.step()
                    step += 1
                    meter.add(loss, logits, y)
                    if meter.steps % read_every == 0:
                        _read(meter, history, bar, epoch, step, opt)
                    if ckpt is not None and ckpt.due(meter.steps):
                        ckpt.save(parts, epoch=epoch, step=step, history=history.to_dict(),
                                  in_epoch=meter.state_dict())
                    if max_steps is not None and step >= max_steps:
                        break
                if meter.window_seen:
                    _read(meter, history, bar, epoch, step, opt)
            whole = steps_per_epoch is None or meter.steps >= steps_per_epoch
            if ckpt is not None and not whole:  # max_steps ended it: resume inside this epoch
                ckpt.save(parts, epoch=epoch, step=step, history=history.to_dict(),
                          in_epoch=meter.state_dict())
            _end_epoch(meter.record(epoch, opt), runner, test, place, history, sched,
                       per_step, epochs, progress)
            if ckpt is not None and whole:
                ckpt.save(parts, epoch=epoch + 1, step=step, history=history.to_dict(),
                          in_epoch=None)
    except KeyboardInterrupt:
        history.final["interrupted"] = True
        print(f"\n[fit] Interrupted (Ctrl-C) in epoch {epoch + 1}, after {step} steps. The "
              f"model keeps its partly trained weights; the returned History has "
              f"final['interrupted'] = True."
              + (f" The last checkpoint is {ckpt.path}." if ckpt and ckpt.written else ""))
    except _OOM_BASE as err:
        if place.device.type == "cuda":
            torch.cuda.empty_cache()
        raise _out_of_memory(err, net, batch_size, train) from err
    history.final = _summary(history, train, place, opt, step, time.perf_counter() - start_time)
    return history


# --------------------------------------------------------------------------- the loop's parts
def _parallel(net: nn.Module, place: Placement, devices: Any) -> nn.Module:
    """``devices="all"`` with several GPUs: ``nn.DataParallel`` splits each batch over them
    (Kaggle's 2xT4). A rehearsal wraps on one device too (DataParallel then calls the model
    directly), so that this path runs in CI."""
    several_gpus = place.device.type == "cuda" and torch.cuda.device_count() > 1
    if devices == "all" and (several_gpus or env.is_rehearsal()):
        return nn.DataParallel(net)
    return net


def _epoch_batches(train: Iterable, epoch: int, skip: int) -> Iterable:
    """The batches of ``epoch`` from batch ``skip`` on (a run resumed inside the epoch). The
    order depends only on the data's seed and the epoch, so a resumed run sees the same
    batches; the course's loaders start at ``skip`` without preparing the batches before."""
    if hasattr(train, "start_batch"):
        train.set_epoch(epoch, start_batch=skip)
        return train
    if hasattr(train, "set_epoch"):
        train.set_epoch(epoch)
    return itertools.islice(train, skip, None)


def _forward(model: nn.Module, x: torch.Tensor, train: Any) -> Any:
    try:
        return model(x)
    except ValueError as err:  # the model's input check: say which data gave it
        name = getattr(train, "name", None) or type(train).__name__
        raise ValueError(
            f"{err}\n(fit: the data {name!r} gives images of shape {tuple(x.shape)}; pass "
            f"image_size=... / in_channels=... to load_data, or build the model to match.)"
        ) from err


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


class _EpochMeter:
    """Loss and accuracy sums of one epoch. The steps since the last read (the window) are
    summed on the device; :func:`_read` moves them to the host, a sync, so fit reads only
    every ``log_every`` steps. ``state``: a checkpoint's sums of an unfinished epoch."""

    def __init__(self, device: torch.device, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self.steps = state.get("steps", 0)
        self.loss_sum, self.correct = state.get("loss_sum", 0.0), state.get("correct", 0)
        self.seen = state.get("seen", 0)
        self.window_loss = torch.tensor(state.get("window_loss", 0.0), device=device)
        self.window_correct = torch.tensor(state.get("window_correct", 0), device=device)
        self.window_seen = state.get("window_seen", 0)
        self.window_steps = state.get("window_steps", 0)
        self.started = time.perf_counter() - state.get("seconds", 0.0)
        self.window_started = time.perf_counter()

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.steps += 1
        self.window_steps += 1
        self.window_loss += loss.detach() * y.shape[0]
        self.window_correct += (logits.detach().argmax(dim=1) == y).sum()
        self.window_seen += y.shape[0]

    def read_window(self) -> tuple[float, int, int, float]:
        """(loss sum, correct, images, seconds) of the window, added to the epoch's sums;
        opens a new window."""
        loss_sum, correct = torch.stack([self.window_loss,
                                         self.window_correct.float()]).tolist()
        now = time.perf_counter()
        seen, seconds = self.window_seen, now - self.window_started
        if math.isfinite(loss_sum):
            self.loss_sum, self.correct = self.loss_sum + loss_sum, self.correct + int(correct)
            self.seen += seen
        self.window_loss.zero_()
        self.window_correct.zero_()
        self.window_seen = self.window_steps = 0
        self.window_started = now
        return loss_sum, int(correct), seen, seconds

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "loss_sum": self.loss_sum, "correct": self.correct,
                "seen": self.seen, "window_loss": float(self.window_loss),
                "window_correct": int(self.window_correct), "window_seen": self.window_seen,
                "window_steps": self.window_steps, "seconds": time.perf_counter() - self.started}

    def record(self, epoch: int, opt: torch.optim.Optimizer) -> dict[str, Any]:
        if self.seen == 0:
            raise ValueError("The training data yielded no batches (empty data set?).")
        elapsed = time.perf_counter() - self.started
        return {"epoch": epoch + 1, "train_loss": self.loss_sum / self.seen,
                "train_acc": self.correct / self.seen, "lr": _current_lr(opt),
                "train_seconds": elapsed, "train_images": self.seen,
                "images_per_s": self.seen / elapsed, "steps": self.steps}


def _epoch_bar(epoch, epochs, steps_per_epoch, max_steps, step, meter, progress):
    """The epoch's progress bar; a resumed epoch starts at its last read point."""
    total = steps_per_epoch
    if max_steps is not None and total is not None:
        total = min(total, max_steps - step + meter.steps)
    return env.progress_bar(total=total, desc=f"epoch {epoch + 1}/{epochs}",
                            initial=meter.steps - meter.window_steps, disable=not progress)


def _read(meter: _EpochMeter, history: History, bar, epoch: int, step: int,
          opt: torch.optim.Optimizer) -> None:
    """A read point: check the window's loss, record a History step, advance the bar."""
    first = step - meter.window_steps + 1
    loss_sum, correct, seen, seconds = meter.read_window()
    if not math.isfinite(loss_sum):
        lr = _current_lr(opt)
        raise TrainingDivergedError(
            f"The training loss became {'NaN' if math.isnan(loss_sum) else 'infinite'} between "
            f"step {first} and step {step} (epoch {epoch + 1}); training stopped. The learning "
            f"rate ({lr:g}) is probably too high for this model: try lr={lr / 10:g}, or a "
            f"warm-up (schedule='onecycle'). (The check runs every few steps, so the first "
            f"bad step is in that range.)", history)
    rate = seen / max(seconds, 1e-9)
    history.steps.append({"step": step, "epoch": epoch + 1, "loss": loss_sum / seen,
                          "acc": correct / seen, "lr": _current_lr(opt), "images_per_s": rate})
    bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}",
                    img_s=f"{rate:.0f}", refresh=False)
    bar.update(meter.steps - bar.n)


def _end_epoch(record: dict[str, Any], runner: nn.Module, test: Iterable | None,
               place: Placement, history: History, sched: Any, per_step: bool, epochs: int,
               progress: bool) -> None:
    """Evaluate, record, report, step a per-epoch schedule."""
    started = time.perf_counter()
    result = (evaluate(runner, test, place=place) if test is not None
              else {"loss": None, "acc": None, "top5": None})
    record.update(test_loss=result["loss"], test_acc=result["acc"], top5=result["top5"])
    record["seconds"] = record["train_seconds"] + time.perf_counter() - started
    history.epochs.append(record)
    if progress and test is not None:
        print(f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.4f} "
              f"acc {record['train_acc']:.4f} | test loss {record['test_loss']:.4f} "
              f"acc {record['test_acc']:.4f} | {record['images_per_s']:.0f} img/s")
    if sched is not None and not per_step:
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(record["test_loss"] if record["test_loss"] is not None
                       else record["train_loss"])
        else:
            sched.step()


# --------------------------------------------------------------------------- around the loop
def _check_arguments(model, epochs, lr, momentum, weight_decay, label_smoothing, aux_weight,
                     max_steps, log_every, devices) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
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


def _length(data: Any) -> int | None:
    try:
        return len(data)
    except TypeError:  # a generator, an iterable dataset: unknown
        return None


def _total_steps(steps_per_epoch: int | None, epochs: int, max_steps: int | None) -> int:
    total = (steps_per_epoch or 1) * epochs
    if max_steps is not None:
        total = min(total, max_steps) if steps_per_epoch else max_steps
    return total


def _resume(ckpt: Checkpoint, parts: dict[str, Any], history: History, epochs: int,
            progress: bool) -> tuple[int, int, dict | None]:
    """Load the checkpoint into ``parts`` and ``history``: (finished epochs, step, sums of
    the unfinished epoch or None)."""
    saved = ckpt.load(parts)
    restored = History.from_dict(saved["history"])
    history.steps, history.epochs = restored.steps, restored.epochs
    epoch, step, in_epoch = int(saved["epoch"]), int(saved["step"]), saved["in_epoch"]
    if progress and epoch >= epochs:
        print(f"[fit] {ckpt.path} already holds {epoch} epoch(s) (epochs={epochs}): nothing "
              f"to train. Pass a larger epochs to continue, or resume=False to start over.")
    elif progress:
        where = f"inside epoch {epoch + 1}" if in_epoch else f"after epoch {epoch}"
        print(f"[fit] resumed from {ckpt.path} {where} (step {step}).")
    return epoch, step, in_epoch


def _summary(history: History, train: Any, place: Placement, opt: torch.optim.Optimizer,
             step: int, seconds: float) -> dict[str, Any]:
    interrupted = bool(history.final.get("interrupted"))
    last = history.epochs[-1] if history.epochs else {}
    partial = history.steps[-1] if interrupted and history.steps else {}
    train_seconds = sum(e.get("train_seconds", 0.0) for e in history.epochs)
    images = sum(e.get("train_images", 0) for e in history.epochs)
    return {
        "train_loss": partial.get("loss", last.get("train_loss")),
        "train_acc": partial.get("acc", last.get("train_acc")), "test_loss": last.get("test_loss"),
        "test_acc": last.get("test_acc"), "test_top5": last.get("top5"),
        "images_per_s": images / train_seconds if train_seconds > 0 else None,
        "seconds": seconds, "epochs": len(history.epochs), "steps": step,
        "lr": _current_lr(opt), "device": env.device_name(place.device),
        "precision": place.precision, "dataset": getattr(train, "name", None),
        "fallback": getattr(train, "fallback", None), "interrupted": interrupted}


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
