"""The homework's given part and its check: the student writes the training loop.

The assignment is "the network design is given; train it yourself for one epoch". In notebooks
02-07 the student writes plain PyTorch; this module gives the rest:

    run = HomeworkRun(model, train, test)    # given: device, speed plumbing, the counters
    ### BEGIN SOLUTION  (the student's loop)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    for x, y in run.batches():               # batches already on the device, progress bar
        with run.autocast():                  # mixed precision where it is faster
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad()
        run.scaler.scale(loss).backward()     # the gradient scaler (fp16 on a T4; else a no-op)
        run.scaler.step(optimizer)
        run.scaler.update()
        run.log(loss)                         # shown in the progress bar, no per-step sync
    ### END SOLUTION
    check_homework(run, "02_lenet")          # the check cell

The check never trusts the notebook's own numbers (a History or a printed line can be typed by
hand): it counts the optimizer steps (a global optimizer step hook) and the images that went
through the model with gradients on (a forward pre-hook), and evaluates the model itself with
``course_utils.train.evaluate``. The instructor's grader (``make grade``) runs the same
measurement in a cell of its own after re-executing the submission.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from . import env, minimums, t4
from .analysis import count_macs, format_table
from .device import Placement
from .train import READS_PER_EPOCH, evaluate

__all__ = ["HomeworkRun", "check_homework", "check_batch_size", "measure", "threshold",
           "minimum_for", "MEMORY_LIMITED_BATCH",
           "grader_probe", "PROBE_MARK", "compare_with_fit", "t4_estimate", "t4_estimate_seconds"]

PROBE_MARK = "__course_homework__"

# Notebooks whose homework also picks the batch size: the largest power of two whose training
# step fits the memory limit (t4.largest_batch), the point of DenseNet's homework (07).
MEMORY_LIMITED_BATCH = ("07_densenet",)

# What usually makes a check fail, shown with every failure (Korean first, as in the notes).
HINTS = {
    "no_steps": "optimizer.step()이 한 번도 불리지 않았습니다: 가중치가 그대로입니다. 루프 안에서 "
    "loss.backward() 다음에 optimizer.step()을 부르세요(스케일러를 쓰면 run.scaler.step(optimizer)). / "
    "optimizer.step() was never called, so the weights never changed: call it after "
    "loss.backward() in the loop (run.scaler.step(optimizer) with the scaler).",
    "few_steps": "한 에포크를 다 돌지 않았습니다: run.batches()의 모든 배치마다 한 번씩 step을 부르세요. / "
    "Not a whole epoch: take one optimizer step for every batch of run.batches().",
    "many_steps": "과제는 EPOCHS 에포크입니다: 그보다 많이 학습했습니다. 셀을 다시 실행하면 모델이 새로 "
    "만들어지니, 학습 루프를 여러 번 돌리지 마세요. / The homework is EPOCHS epoch(s); "
    "this model took more steps than that.",
    "eval_mode": "학습 중에 모델이 eval 모드였습니다: 배치 정규화는 통계를 갱신하지 않고 드롭아웃은 꺼집니다. "
    "학습 루프 전에 model.train(), 평가 전에 model.eval()을 부르세요. / The model was in "
    "eval mode while it trained: call model.train() before the loop, model.eval() before "
    "evaluating.",
    "no_zero_grad": "optimizer.zero_grad()가 빠졌습니다: 기울기가 스텝마다 쌓여 학습이 망가집니다. 매 배치 "
    "backward 전에 optimizer.zero_grad()를 부르세요. / optimizer.zero_grad() is missing: "
    "gradients pile up from step to step. Call it before every backward().",
    "watched_untrained": "보조 분류기(aux1, aux2)가 학습되지 않았습니다: 학습 모드의 출력 (logits, aux1, "
    "aux2)에서 보조 손실 두 개에 0.3을 곱해 주 손실에 더하세요. / The auxiliary classifiers were "
    "never trained: add 0.3 x the loss of each auxiliary output to the main loss.",
    "accuracy": "정확도가 낮을 때 흔한 원인: zero_grad 누락, 학습 중 eval 모드, 보조 출력 무시(GoogLeNet), "
    "본문과 다른 학습률·모멘텀·가중치 감쇠, 손실에 로짓 대신 argmax를 넣음. / Usual causes: "
    "no zero_grad, the model left in eval mode while training, auxiliary outputs ignored "
    "(GoogLeNet), a learning rate/momentum/weight decay other than the text's.",
    "only_accuracy": "학습 루프 자체는 맞게 돌았습니다(옵티마이저 스텝 {steps}번 = 한 에포크, 학습 모드 "
    "이미지 {images:,}장, 매 스텝 zero_grad{watched}). 기준 정확도는 본문의 설정(옵티마이저, 학습률, 모멘텀, "
    "가중치 감쇠, 스케줄)으로 여러 시드를 돌려 정했으므로, 다른 설정을 쓰면 맞는 루프도 기준 아래일 수 있습니다. "
    "본문의 설정으로 다시 학습해 보세요. / Your loop itself trains correctly ({steps} optimizer steps = "
    "one epoch, {images:,} images in train mode, gradients zeroed every step{watched}). The "
    "minimum was measured with the text's settings (optimizer, learning rate, momentum, weight "
    "decay, schedule); with other settings a correct loop can land below it. Train again "
    "with the text's settings. ",
    "new_model": "check는 HomeworkRun이 받은 모델을 평가합니다: 새 모델을 만들지 말고 주어진 model을 "
    "학습하세요. / The check evaluates the model given to HomeworkRun: train that model, "
    "do not build a new one.",
    "batch_size": "배치 크기는 메모리 한도 안에 들어가는 가장 큰 2의 거듭제곱이어야 합니다. training_memory로 "
    "배치 32와 64의 메모리를 재서 직선(고정 부분 + 이미지당 증가분)을 구하고, 한도 안에 드는 이미지 수를 계산한 "
    "다음 그 이하의 가장 큰 2의 거듭제곱을 고르세요(2나 4처럼 아주 작은 배치는 직선을 잘못 줍니다). / The "
    "batch size must be the largest power of two whose training step fits the memory limit: "
    "measure training_memory at batches of 32 and 64 (not tiny ones like 2 and 4), fit the "
    "line (fixed part + per image), solve for the images that fit, and take the largest power "
    "of two at or below that.",
    "no_run": "HomeworkRun(model, train, test) 줄이 실행되지 않았습니다: 과제 셀의 주어진 줄을 지우지 "
    "마세요. / The given line run = HomeworkRun(model, train, test) did not run: keep the "
    "given lines of the homework cell.",
}

_ACTIVE: HomeworkRun | None = None  # the latest run, for the grader's own measurement


def _checksums(module: nn.Module) -> list[float]:
    with torch.no_grad():
        return [float(p.detach().double().sum()) for p in module.parameters()]


class HomeworkRun:
    """The homework's given part: puts the model and data on the training device, chooses the
    precision as ``fit`` does, gives the batches with a progress bar, and counts what the
    check needs (optimizer steps, images trained on, stale gradients).

    ``model``, ``train``, ``test``: the model and the loaders from ``load_data``; ``epochs``:
    the homework's epochs (the check expects this many); ``watch``: names of submodules that
    must be trained (GoogLeNet: aux1, aux2); ``trains_with_fit``: the student trains with
    ``fit`` (01), which the counters see as well, instead of writing the loop.
    """

    def __init__(self, model: nn.Module, train: Any, test: Any, epochs: int = 1,
                 watch: tuple[str, ...] = (), trains_with_fit: bool = False) -> None:
        global _ACTIVE
        if _ACTIVE is not None:
            _ACTIVE.close()
        # The same device, precision and memory format as fit: bf16 autocast on GPUs with
        # bf16, fp16 + the gradient scaler on a T4, and on a CPU what was measured faster.
        self.place = Placement.choose(train)
        train, test = self.place.data(train), self.place.data(test)
        self.place.model(model)
        if not trains_with_fit:  # fit records its own training (rehearsals only)
            t4.record_training("homework: your loop", model, train, test, epochs)
        self.scaler = self.place.gradient_scaler()
        self.model, self.train, self.test, self.epochs = model, train, test, int(epochs)
        self.train_images = getattr(train, "num_samples", None)
        self.steps_per_epoch = len(train)
        self.steps = 0              # optimizer steps that updated this model
        self.images = 0             # images through the model in train mode with gradients
        self.eval_mode_images = 0   # ... in eval mode with gradients (forgot model.train())
        self.train_seconds = 0.0    # time spent in run.batches() (the student's loop)
        self.timed_images = 0
        self._stale = torch.zeros((), dtype=torch.long, device=self.device)
        self._stepped, self._epoch = False, 0
        self._log_sum, self._log_count = torch.zeros((), device=self.device), 0
        self.watch = tuple(watch)
        self._watched = {name: _checksums(model.get_submodule(name)) for name in self.watch}
        self._params = {id(p) for p in model.parameters()}
        self._last_param = [p for p in model.parameters() if p.requires_grad][-1]
        self._handles = [register_optimizer_step_post_hook(self._on_step),
                         model.register_forward_pre_hook(self._on_forward),
                         self._last_param.register_hook(self._on_gradient)]
        _ACTIVE = self

    # The placement's parts, as the check, the grader and the notebooks read them.
    device = property(lambda self: self.place.device)
    precision = property(lambda self: self.place.precision)
    channels_last = property(lambda self: self.place.channels_last)

    # -- what the student's loop uses --------------------------------------------------
    def batches(self, epoch: int | None = None):
        """The training batches of one epoch, on the device, with a progress bar. Without
        ``epoch``, each call is the next epoch (the data's order depends on it)."""
        epoch = self._epoch if epoch is None else int(epoch)
        self._epoch = epoch + 1
        if hasattr(self.train, "set_epoch"):
            self.train.set_epoch(epoch)
        every = max(1, self.steps_per_epoch // READS_PER_EPOCH)
        started, seen = time.perf_counter(), 0
        bar = env.progress_bar(total=self.steps_per_epoch, desc=f"epoch {epoch + 1}/{self.epochs}")
        try:
            batches = self.place.batches(self.train)
            for step, (x, y) in enumerate(batches, start=1):
                yield x, y
                seen += int(y.shape[0])
                if step % every == 0 or step == self.steps_per_epoch:
                    if self._log_count:  # one host sync per read, not per step
                        bar.set_postfix(loss=f"{self._log_sum.item() / self._log_count:.4f}",
                                        refresh=False)
                        self._log_sum.zero_()
                        self._log_count = 0
                    bar.update(step - bar.n)
        finally:
            bar.close()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)  # the GPU's queued work counts too
            self.train_seconds += time.perf_counter() - started
            self.timed_images += seen

    def autocast(self):
        """Mixed precision for the forward pass and the loss (a no-op in fp32)."""
        return self.place.autocast()

    def log(self, loss: torch.Tensor) -> None:
        """Add a batch's loss to the progress bar's running mean (stays on the device)."""
        self._log_sum += loss.detach().float()
        self._log_count += 1

    # -- the counters --------------------------------------------------------------------
    def _on_step(self, optimizer, args, kwargs) -> None:
        if any(id(p) in self._params for group in optimizer.param_groups
               for p in group["params"]):
            self.steps += 1
            self._stepped = True

    def _on_forward(self, module, inputs) -> None:
        if not torch.is_grad_enabled() or not inputs or not torch.is_tensor(inputs[0]):
            return
        if module.training:
            self.images += int(inputs[0].shape[0])
        else:
            self.eval_mode_images += int(inputs[0].shape[0])

    def _on_gradient(self, grad: torch.Tensor) -> None:
        # Called when backward reaches the last parameter, before its .grad is updated. If an
        # optimizer step happened since the previous backward and .grad still holds a
        # non-zero gradient, nobody zeroed it. (Accumulating over several backward passes
        # before one step is fine: no step in between.)
        if self._stepped and self._last_param.grad is not None:
            self._stale += (self._last_param.grad != 0).any().to(torch.long)
        self._stepped = False

    def close(self) -> None:
        """Remove the hooks (a new HomeworkRun closes the previous one)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __repr__(self) -> str:
        return (f"HomeworkRun(device={env.device_name(self.device)}, precision={self.precision}, "
                f"channels_last={self.channels_last}, {self.steps_per_epoch} batches per epoch, "
                f"steps so far {self.steps})")


def t4_estimate(model: str | nn.Module, images: int, image_size: int, **model_kwargs) -> str:
    """One line: the full homework's time on a Colab/Kaggle T4 (``images`` at ``image_size``),
    estimated from the model's MACs (:mod:`course_utils.t4`); ``model`` is a registry name or
    a module."""
    if isinstance(model, str):
        from .models import get_model

        name, model = model, get_model(model, num_classes=10, **model_kwargs)
    else:
        name = type(model).__name__
    channels = model.input_size[0] if hasattr(model, "input_size") else 3
    macs = count_macs(model, (1, channels, image_size, image_size))
    amount = f"{macs / 1e9:,.2f} G" if macs >= 1e8 else f"{macs / 1e6:,.2f} M"
    return (f"{name}, {images:,} images at {image_size}x{image_size}: "
            f"{t4.duration(t4_estimate_seconds(macs, images))} per epoch on a T4 GPU "
            f"(estimate: {amount} MACs per image x3 for forward + backward, at the "
            f"{t4.T4_TRAIN_FLOPS / 1e12:.1f} TFLOP/s estimated for ResNet-50 training on a T4 "
            f"from NVIDIA's published T4 inference and V100 train/inference figures; not "
            f"measured)")


def t4_estimate_seconds(macs_per_image: int, images: int) -> float:
    """Seconds to train on ``images`` images on a T4 (:func:`course_utils.t4.seconds`)."""
    return t4.seconds(macs_per_image, images)


def compare_with_fit(run: HomeworkRun, measured: dict, history: Any) -> list[dict]:
    """Rows comparing the student's loop (timed inside run.batches(), accuracy measured by the
    check) with ``fit`` on the same model and data (``history``); printed and returned."""
    final = history.final
    loop_rate = run.timed_images / run.train_seconds if run.train_seconds else float("nan")
    rows = [
        {"loop": "your loop", "train s": round(run.train_seconds, 1),
         "images/s": round(loop_rate), "test acc": f"{measured['test_acc']:.2%}",
         "precision": run.precision},
        {"loop": "fit", "train s": round(sum(e["train_seconds"] for e in history.epochs), 1),
         "images/s": round(final["images_per_s"]), "test acc": f"{final['test_acc']:.2%}",
         "precision": final["precision"]},
    ]
    print(format_table(rows))
    ratio = final["images_per_s"] / loop_rate if loop_rate == loop_rate and loop_rate else None
    if ratio:
        print(f"fit / your loop, images per second: {ratio:.2f}x")
    return rows


def _mode_and_source(run: HomeworkRun) -> tuple[str, str]:
    sample = getattr(run.train, "fallback", None) or getattr(run.train, "name", None) == "sample"
    return env.run_mode(run.device), "sample" if sample else "real"


def threshold(notebook: str, run: HomeworkRun) -> float | None:
    """The minimum accuracy for ``notebook`` in this run's mode and data source (None: the
    accuracy is not asserted in this run, see :func:`minimum_for`)."""
    return minimum_for(notebook, *_mode_and_source(run))[0]


def minimum_for(notebook: str, mode: str, source: str) -> tuple[float | None, str]:
    """(minimum test accuracy, why there is none) for a run mode and data source
    (:mod:`course_utils.minimums`); a rehearsal never applies one."""
    if env.is_rehearsal():
        return None, "a rehearsal trains on a couple of batches; no minimum applies"
    row = minimums.minimum_for(notebook, mode, source)
    return row.accuracy, row.why_none


def measure(run: HomeworkRun, notebook: str | None = None) -> dict[str, Any]:
    """What the check and the grader judge: measured on the model, not read from the notebook.
    For a notebook in ``MEMORY_LIMITED_BATCH`` also the batch the run trained with and the one
    the memory limit allows, counted here."""
    stale = int(run._stale.item())
    untrained = [name for name, before in run._watched.items()
                 if _checksums(run.model.get_submodule(name)) == before]
    result = evaluate(run.model, run.test)
    mode, source = _mode_and_source(run)
    batch = {}
    if notebook in MEMORY_LIMITED_BATCH:
        size, channels = int(run.train.image_size), int(run.train.in_channels)
        batch = {"batch_size": int(run.train.batch_size),
                 "expected_batch_size": t4.largest_batch(run.model, size, in_channels=channels),
                 "memory_limit": t4.memory_limit(size)}
    return {
        **batch,
        "mode": mode, "data": source, "test_acc": result["acc"], "test_loss": result["loss"],
        "test_images": int(getattr(run.test, "num_samples", 0)) or None,
        "steps": run.steps, "expected_steps": run.epochs * run.steps_per_epoch,
        "images": run.images,
        "expected_images": run.epochs * run.train_images if run.train_images else None,
        "eval_mode_images": run.eval_mode_images, "stale_gradient_steps": stale,
        "untrained": untrained, "watch": list(run.watch), "precision": run.precision,
        "device": env.device_name(run.device),
    }


def _problems(measured: dict[str, Any], minimum: float | None,
              scaler_enabled: bool) -> list[str]:
    problems = []
    steps, expected = measured["steps"], measured["expected_steps"]
    # The fp16 gradient scaler skips the steps whose gradients overflow (a handful at the
    # start): allow for them only when the scaler is on.
    allowed_skips = 25 if scaler_enabled else 0
    if steps == 0:
        problems.append(HINTS["no_steps"])
    elif steps < expected - allowed_skips:
        problems.append(f"{steps} optimizer steps, one epoch is {expected}. " + HINTS["few_steps"])
    elif steps > math.ceil(1.05 * expected):
        problems.append(f"{steps} optimizer steps, {expected} expected. " + HINTS["many_steps"])
    expected_images = measured["expected_images"]
    if steps and expected_images and measured["images"] < 0.95 * expected_images:
        if measured["eval_mode_images"]:
            problems.append(HINTS["eval_mode"])
        else:
            problems.append(f"the model trained on {measured['images']:,} images, one epoch "
                            f"is {expected_images:,}. " + HINTS["few_steps"])
    elif measured["eval_mode_images"] > 0.05 * max(measured["images"], 1):
        problems.append(HINTS["eval_mode"])
    if measured["stale_gradient_steps"] > 0.5 * max(steps, 1):
        problems.append(HINTS["no_zero_grad"])
    expected_batch = measured.get("expected_batch_size")
    if expected_batch and measured["batch_size"] != expected_batch:
        problems.append(f"trained with batches of {measured['batch_size']}; the largest power "
                        f"of two that fits the memory limit is {expected_batch}. "
                        + HINTS["batch_size"])
    if measured["untrained"]:
        problems.append(f"untrained: {', '.join(measured['untrained'])}. "
                        + HINTS["watched_untrained"])
    if minimum is not None and not measured["test_acc"] >= minimum:
        problem = (f"test accuracy {measured['test_acc']:.2%} is below the minimum "
                   f"{minimum:.1%} for this run. ")
        if not problems:  # everything else checks out: say so, the loop itself is sound
            problem += HINTS["only_accuracy"].format(
                steps=steps, images=measured["images"],
                watched=", auxiliary heads trained" if measured.get("watch") else "")
        problems.append(problem + HINTS["accuracy"])
    return problems


def check_homework(run: HomeworkRun, notebook: str, model: nn.Module | None = None) -> dict:
    """The check cell: measure the trained model and fail with the usual causes.

    ``model`` (the notebook's ``model`` variable) must be the model given to ``run``.
    Returns the measurement (also printed as a small table)."""
    if not isinstance(run, HomeworkRun):
        raise AssertionError(HINTS["no_run"])
    if model is not None and model is not run.model:
        raise AssertionError(HINTS["new_model"])
    measured = measure(run, notebook)
    mode, source = measured["mode"], measured["data"]
    minimum, why = minimum_for(notebook, mode, source)
    required = f"minimum {minimum:.1%}" if minimum is not None else "not asserted: " + why
    print(f"measured by the check ({mode} run, {source} data): test accuracy "
          f"{measured['test_acc']:.2%} on {measured['test_images'] or '?'} images "
          f"({required}); {measured['steps']} optimizer steps "
          f"(one epoch: {measured['expected_steps']}); {measured['images']:,} training images "
          f"seen in train mode" + (f"; batches of {measured['batch_size']} (the memory limit "
                                    f"allows {measured['expected_batch_size']})"
                                    if "expected_batch_size" in measured else ""))
    problems = _problems(measured, minimum, run.scaler.is_enabled())
    if problems:
        raise AssertionError("\n- " + "\n- ".join(problems))
    print("OK: the homework passes its check.")
    return measured


def check_batch_size(batch_size: Any, model: nn.Module, image_size: int,
                     in_channels: int = 3) -> dict:
    """The check of 07's first part: ``batch_size`` is the largest power of two whose fp16
    training step fits ``t4.memory_limit(image_size)``. Counts the memory itself (at the
    student's batch and at twice it) and returns the numbers (also printed)."""
    limit = t4.memory_limit(image_size)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise AssertionError(f"batch_size should be a positive int, not {batch_size!r}. "
                             + HINTS["batch_size"])
    expected = t4.largest_batch(model, image_size, limit, in_channels)
    rows = [{"batch": b, "training memory MiB": t4.training_memory(model, b, image_size,
                                                                      in_channels) / 2**20}
            for b in sorted({batch_size, 2 * batch_size, expected, 2 * expected})]
    for row in rows:
        row["fits the limit"] = "yes" if row["training memory MiB"] * 2**20 <= limit else "no"
    print(f"memory limit at {image_size}x{image_size}: {limit / 2**20:,.0f} MiB")
    print(format_table(rows, formats={"training memory MiB": "{:,.0f}"}))
    if batch_size != expected:
        raise AssertionError(f"batch_size = {batch_size}; the largest power of two that fits "
                             f"is {expected}. " + HINTS["batch_size"])
    print(f"OK: batches of {batch_size} fit; {2 * batch_size} would not.")
    return {"batch_size": batch_size, "limit": limit, "rows": rows}


def grader_probe(notebook: str) -> None:
    """Printed by the cell the grader adds after the check: its own measurement as JSON."""
    run = _ACTIVE
    if run is None:
        found: dict[str, Any] = {"passed": False, "problems": [HINTS["no_run"]]}
    else:
        minimum = threshold(notebook, run)
        found = measure(run, notebook)
        problems = _problems(found, minimum, run.scaler.is_enabled())
        found.update(minimum=minimum, passed=not problems, problems=problems)
    print(PROBE_MARK + json.dumps(found))
