"""What a notebook's full run costs on a Colab/Kaggle T4: time (an estimate) and memory.

Time. No measured T4 *training* throughput has been published for these models that we could
find (NVIDIA's DeepLearningExamples measure T4 inference only), and no T4 has run the course
yet. The estimate is calibrated on ResNet-50 from one source, NVIDIA DeepLearningExamples,
PyTorch ResNet-50 v1.5 README (commit 291f0d0, pytorch-21.03 container):

* T4 mixed-precision *inference*, batch 128: 1190 img/s ("Inference performance: NVIDIA T4");
* V100 16GB mixed precision, same README: training 1200 img/s (1 GPU), inference at batch 128
  3249 img/s, so training runs at 1200 / 3249 = 0.369 of inference speed.

A T4 then trains ResNet-50 at about 1190 x 0.369 = 440 img/s. At 4.09 G MACs per image
(torchvision's v1.5, as measured), 3 x 2 x 4.09e9 FLOPs per trained image, that is 10.8
TFLOP/s: 17% of the T4's 65 TFLOP/s fp16 peak (the old rule of thumb here, 25%, was 1.5x too
optimistic). Every model is charged at that rate, plus a floor per step for small models
whose steps are bound by kernel launches, not arithmetic. Both are estimates until the GPU
check (benchmarks/gpu_check.sh) measures a T4.

Memory. ``training_memory`` counts, on fake tensors (no real memory, no arithmetic), the
peak of one fp16-autocast training step as a T4 runs it: parameters, gradients, SGD momentum
and the activations saved for the backward pass (torch's MemTracker). The CUDA context and
cuDNN's workspace come on top, hence the 12 GB limit on a 15 GB T4.

A rehearsal (``make rehearse``) records every training a notebook's full run makes with
:func:`record_training`; the runner collects them in ``full_runs.json`` (package data), which
the run banner reads for its "Run all" estimate and the tests read for the memory limit.
"""

from __future__ import annotations

import copy
import json
import math
import os
from importlib import resources
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

T4_FP16_PEAK_FLOPS = 65e12       # NVIDIA T4 datasheet, fp16 tensor cores
RESNET50_T4_TRAIN_IMAGES_PER_S = 1190 * 1200 / 3249  # derived above: 440 img/s
RESNET50_V15_MACS = 4_089_184_256  # count_macs(get_model("resnet50", stride_in_3x3=True))
T4_TRAIN_FLOPS = RESNET50_T4_TRAIN_IMAGES_PER_S * 3 * 2 * RESNET50_V15_MACS  # ~10.8e12
T4_MIN_STEP_SECONDS = 0.003      # assumed launch-bound floor per training step (not measured)
T4_USABLE_BYTES = 15 * 2**30     # what Colab/Kaggle show of a 16 GB T4
MEMORY_LIMIT_BYTES = 12 * 2**30  # leaves room for the CUDA context and cuDNN workspaces
SOURCE = ("NVIDIA DeepLearningExamples, PyTorch ResNet-50 v1.5 README (commit 291f0d0): "
          "T4 mixed-precision inference 1190 img/s x V100 training/inference ratio 1200/3249")

LOG_ENV = "COURSE_REHEARSAL_LOG"  # where a rehearsal's kernel records its trainings
PLAN_FILE = "full_runs.json"


def seconds(macs_per_image: int, train_images: int, eval_images: int = 0,
            steps: int = 0) -> float:
    """Estimated T4 seconds to train on ``train_images`` images (forward + backward: 3x the
    forward MACs) and evaluate ``eval_images`` (forward only), at the calibrated rate, and
    at least ``T4_MIN_STEP_SECONDS`` per training step."""
    flops = 2 * macs_per_image * (3 * train_images + eval_images)
    return max(flops / T4_TRAIN_FLOPS, steps * T4_MIN_STEP_SECONDS)


def duration(secs: float) -> str:
    if secs < 1:
        return "under a second"
    return f"about {secs:.0f} s" if secs < 120 else f"about {secs / 60:.0f} min"


# --------------------------------------------------------------------------- memory
def _fake_twin(model: nn.Module, mode) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers are fake tensors of the same shapes."""
    twin = copy.deepcopy(model).cpu()
    for module in twin.modules():
        for key, p in module._parameters.items():
            if p is not None:
                module._parameters[key] = nn.Parameter(mode.from_tensor(p.detach()),
                                                       requires_grad=p.requires_grad)
        for key, b in module._buffers.items():
            if b is not None:
                module._buffers[key] = mode.from_tensor(b)
    return twin


_MEASURED: dict[tuple, int] = {}  # (architecture, batch, size, channels, dtype) -> bytes


def _architecture(model: nn.Module) -> tuple:
    """What the training memory depends on: the modules with their settings (``repr`` shows
    strides and paddings: ResNet-50 v1 and v1.5 differ only there) and the parameter shapes,
    not the weights' values, so a trained model and a fresh one share a measurement."""
    return repr(model), tuple(tuple(p.shape) for p in model.parameters())


def training_memory(model: nn.Module, batch_size: int, image_size: int, in_channels: int = 3,
                    dtype: torch.dtype = torch.float16) -> int:
    """Peak bytes of one training step (SGD with momentum, autocast to ``dtype``) of
    ``model`` on a batch of ``batch_size`` images, counted on fake tensors: parameters,
    gradients, optimizer state and saved activations, as a GPU would hold them."""
    net = model.module if isinstance(model, nn.DataParallel) else model
    key = (_architecture(net), int(batch_size), int(image_size), int(in_channels), dtype)
    if key not in _MEASURED:  # a count takes seconds; the homework and its check repeat some
        _MEASURED[key] = _count_training_memory(net, *key[1:])
    return _MEASURED[key]


def _count_training_memory(model: nn.Module, batch_size: int, image_size: int,
                           in_channels: int, dtype: torch.dtype) -> int:
    from torch._subclasses.fake_tensor import FakeTensorMode
    try:
        from torch.distributed._tools.mem_tracker import MemTracker
    except ImportError as error:  # torch's memory tracker came with torch 2.5
        raise ImportError(
            f"training_memory는 torch 2.5 이상이 필요합니다(이 환경: {torch.__version__}). "
            "pip install -U torch torchvision 후 런타임을 다시 시작하세요. / training_memory "
            f"needs torch 2.5 or newer (this one: {torch.__version__}): upgrade torch and "
            "restart the runtime.") from error

    mode = FakeTensorMode()
    twin = _fake_twin(model, mode).train()
    with mode:
        optimizer = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)

        def step():
            x = torch.randn(batch_size, in_channels, image_size, image_size)
            y = torch.randint(0, 10, (batch_size,))
            with torch.autocast("cpu", dtype=dtype):  # the CPU's fp16 autocast casts as CUDA's
                out = twin(x)
            outs = [out] if torch.is_tensor(out) else list(out)  # GoogLeNet: + aux heads
            sum(F.cross_entropy(o.float(), y) for o in outs).backward()
            optimizer.step()
            optimizer.zero_grad()

        step()  # the first step creates the momentum buffers
        tracker = MemTracker()
        tracker.track_external(twin, optimizer)
        with tracker:
            step()
        return int(tracker.get_tracker_snapshot("peak")[torch.device("cpu")]["Total"])


def memory_limit(image_size: int) -> int:
    """The training memory a run at ``image_size`` may use: ``MEMORY_LIMIT_BYTES`` (12 GiB of
    a T4's 15) at 224x224, and smaller by the ratio of pixels at a smaller size, so that a CPU
    run at 32x32 makes the same choice in miniature (251 MiB)."""
    return int(MEMORY_LIMIT_BYTES * (int(image_size) / 224) ** 2)


def largest_batch(model: nn.Module, image_size: int, limit: int | None = None,
                  in_channels: int = 3) -> int:
    """The largest power-of-two batch whose fp16 training step fits ``limit`` (default
    :func:`memory_limit`). Once the saved activations set the peak (at batches of 32 and 64),
    the memory grows on a line with the batch: a fixed part (fp32 weights and momentum, the
    fp16 weight copies of autocast; the gradients do not exist yet early in the backward pass,
    zero_grad having set them to None) plus the activations per image. At a batch of 2 or 4
    the peak moves to the optimizer step (weights, gradients and momentum all present), so
    those points are off the line. The answer is then counted directly, with the next power
    of two above it."""
    limit = memory_limit(image_size) if limit is None else int(limit)
    at_32, at_64 = (training_memory(model, b, image_size, in_channels) for b in (32, 64))
    per_image = (at_64 - at_32) / 32
    fixed = at_32 - 32 * per_image
    batch = 2 ** int(math.log2(max(2.0, (limit - fixed) / per_image)))
    while batch > 2 and training_memory(model, batch, image_size, in_channels) > limit:
        batch //= 2
    if training_memory(model, batch, image_size, in_channels) > limit:
        raise ValueError(f"even a batch of 2 needs more than the limit {limit / 2**20:.0f} MiB")
    while training_memory(model, 2 * batch, image_size, in_channels) <= limit:
        batch *= 2
    return batch


# --------------------------------------------------------------------------- the plan
def record_training(what: str, model: nn.Module, train: Any, test: Any, epochs: int,
                    max_steps: int | None = None, several_gpus: bool = False) -> None:
    """In a rehearsal, append what a full run would train here to ``$COURSE_REHEARSAL_LOG``:
    model, image size, batch size, images (of the full run, before the rehearsal's cut),
    MACs and the fp16 training memory (per GPU of two when ``several_gpus``)."""
    log = os.environ.get(LOG_ENV)
    if not log or not hasattr(train, "image_size"):  # not a rehearsal, or not a course loader
        return
    from .analysis import count_macs

    net = model.module if isinstance(model, nn.DataParallel) else model
    size, channels = int(train.image_size), int(train.in_channels)
    batch = int(train.batch_size)
    images = int(getattr(train, "full_run_images", None) or train.num_samples)
    steps = -(-images // batch) * epochs
    if max_steps is not None:
        steps = min(steps, max_steps)
        images = min(images * epochs, steps * batch) // epochs
    test_images = int(getattr(test, "full_run_images", None) or getattr(test, "num_samples", 0))
    per_gpu = -(-batch // 2) if several_gpus else batch
    row = {"what": what, "model": type(net).__name__, "image_size": size, "batch_size": batch,
           "epochs": epochs, "train_images": images, "test_images": test_images,
           "steps": steps, "macs": count_macs(net, (1, channels, size, size)),
           "memory_bytes": training_memory(net, per_gpu, size, channels),
           "gpus": 2 if several_gpus else 1}
    with open(log, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def training_seconds(row: dict) -> float:
    return seconds(row["macs"], row["train_images"] * row["epochs"],
                   row["test_images"] * row["epochs"], row["steps"])


def full_runs() -> dict[str, list[dict]]:
    """The trainings of every notebook's full run, as the last rehearsal recorded them."""
    path = resources.files("course_utils").joinpath(PLAN_FILE)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def notebook_estimate(notebook: str) -> str | None:
    """One line for the run banner: the whole notebook ("Run all") on one T4."""
    rows = full_runs().get(notebook)
    if not rows:
        return None
    total = sum(training_seconds(r) for r in rows)
    peak = max(r["memory_bytes"] for r in rows)
    memory = f"{peak / 2**30:.1f} GiB" if peak >= 2**30 else f"{peak / 2**20:.0f} MiB"
    count = f"{len(rows)} training" + ("s" if len(rows) != 1 else "")
    return (f"{duration(total)} of training for Run all on one T4 ({count}; "
            f"estimate derived from NVIDIA's ResNet-50 figures, not measured); peak "
            f"training memory {memory} of the T4's 15 GiB")
