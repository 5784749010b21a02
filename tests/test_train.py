"""course_utils.train: fit / evaluate / History.

Everything runs on the CPU in a few seconds, on the bundled real-MNIST sample or on tiny
tensors; the one-epoch full-MNIST check runs only where ../shared/data exists.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from course_utils import checkpoint as checkpoint_mod
from course_utils import device as device_mod
from course_utils import train as train_mod
from course_utils.device import resolve_precision
from course_utils.train import (
    Checkpoint,
    CheckpointError,
    History,
    TrainingDivergedError,
    TrainingOutOfMemoryError,
    evaluate,
    fit,
    lenet5_factor,
)

SAMPLE = Path(train_mod.__file__).parent / "sample_data" / "mnist_sample.npz"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run these tests on one intra-op thread. Their models are tiny, so a second thread
    gains little (~1.3x on an idle 2-core machine), but when other jobs share the cores,
    OpenMP threads spin-waiting for each other made the LeNet-5 tests 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- stand-ins
class Batches:
    """A minimal object with the data contract of course_utils.data.load_data: (x, y)
    batches on ``device``, seeded shuffling per epoch, ``set_epoch``, ``to``, ``name``..."""

    def __init__(self, images, labels, batch_size=64, train=True, seed=0, name="toy",
                 device="cpu", mean=0.0, std=1.0):
        self.images, self.labels = images, labels  # images float (N, C, H, W)
        self.batch_size, self.shuffle, self.seed, self.name = batch_size, train, seed, name
        self.device = torch.device(device)
        self.num_samples = len(labels)
        self.num_classes = int(labels.max()) + 1
        self.classes = [str(i) for i in range(self.num_classes)]
        self.in_channels, self.image_size = images.shape[1], images.shape[-1]
        self.mean, self.std, self.fallback, self.augment = (mean,), (std,), None, False
        self.epoch = 0

    def __len__(self):
        return math.ceil(self.num_samples / self.batch_size)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def to(self, device):
        return Batches(self.images.to(device), self.labels.to(device), self.batch_size,
                       self.shuffle, self.seed, self.name, device)

    def __iter__(self):
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
            order = torch.randperm(self.num_samples, generator=gen)
        else:
            order = torch.arange(self.num_samples)
        for start in range(0, self.num_samples, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.images[idx], self.labels[idx]


def sample_mnist(batch_size=128):
    """The bundled real-MNIST sample at LeNet-5's 32x32 (course_utils.data when present)."""
    try:
        from course_utils.data import load_data
    except ImportError:  # data module not there yet: the same images, padded and normalised
        data = np.load(SAMPLE)

        def prep(images, labels):
            x = nn.functional.pad(torch.from_numpy(images).float().div(255), (2, 2, 2, 2))
            return (x[:, None] - 0.1307) / 0.3081, torch.from_numpy(labels).long()

        return (Batches(*prep(data["train_images"], data["train_labels"]), batch_size, True,
                        name="sample"),
                Batches(*prep(data["test_images"], data["test_labels"]), 512, False,
                        name="sample"))
    return load_data("sample", batch_size=batch_size, image_size=32, device="cpu")


def lenet5():
    try:
        from course_utils.models import get_model

        return get_model("lenet5")
    except ImportError:  # models package not ready: the same layers
        return nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
            nn.AvgPool2d(2), nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),
            nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10))


class TinyCNN(nn.Module):
    """Small enough to train in milliseconds; dropout so that seeding matters."""

    input_size = (1, 8, 8)
    min_input_size = 8

    def __init__(self, num_classes=4, in_channels=1):
        super().__init__()
        self.in_channels = in_channels
        self.body = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.2),
                                  nn.Linear(32, num_classes))

    def forward(self, x):
        if x.shape[-1] < self.min_input_size:
            raise ValueError(f"TinyCNN needs at least 8x8 images, got shape {tuple(x.shape)}")
        return self.body(x)


def toy_data(n=256, batch_size=32, classes=4, size=8, seed=0):
    """Separable toy classes: the class decides which quadrant is bright."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=gen)
    x = torch.randn(n, 1, size, size, generator=gen) * 0.3
    h = size // 2
    for c in range(classes):
        r, col = divmod(c, 2)
        x[y == c, :, r * h:(r + 1) * h, col * h:(col + 1) * h] += 1.0
    return Batches(x, y, batch_size, True), Batches(x, y, 128, False)


# --------------------------------------------------------------------------- learning
def test_lenet5_learns_the_bundled_sample_quickly():
    train, test = sample_mnist()
    torch.manual_seed(0)
    model = lenet5()
    started = time.perf_counter()
    history = fit(model, train, test, epochs=3, progress=False)
    seconds = time.perf_counter() - started
    assert history.final["test_acc"] >= 0.90, history.final
    # "under a minute on a CPU" (~5 s on one core of the course machine). When other jobs
    # crowd the cores (load average far above the core count) wall time says nothing.
    overloaded = os.getloadavg()[0] > 2 * (os.cpu_count() or 1)
    assert seconds < 60 or overloaded, f"{seconds:.0f} s"
    assert len(history.epochs) == 3
    # the loss went down and the History is complete
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "test_top5",
                "images_per_s", "seconds", "device", "precision", "dataset", "fallback",
                "interrupted"):
        assert key in history.final
    assert history.final["dataset"] == "sample" and history.final["interrupted"] is False
    assert history.steps and {"step", "epoch", "loss", "acc", "lr"} <= set(history.steps[0])
    # the History's test accuracy is what evaluate() says about the trained model
    assert evaluate(model, test)["acc"] == pytest.approx(history.final["test_acc"], abs=1e-6)


def _mnist_from_shared(shared: Path, tmp: Path) -> Path:
    raw = tmp / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in (shared / "mnist").glob("*.gz"):
        with gzip.open(gz, "rb") as src, open(raw / gz.name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst)
    return tmp


@pytest.mark.slow
def test_lenet5_one_epoch_of_real_mnist_reaches_97_5_percent(shared_data, tmp_path,
                                                             monkeypatch):
    """The issue's bar: fit's defaults, one epoch of the full MNIST, >= 97.5 % test acc."""
    if not (shared_data / "mnist").is_dir():
        pytest.skip("no MNIST in ../shared/data")
    monkeypatch.delenv("COURSE_SMOKE", raising=False)
    data = pytest.importorskip("course_utils.data")
    root = _mnist_from_shared(shared_data, tmp_path)
    train, test = data.load_data("mnist", root=root, image_size=32, fallback=None)
    torch.manual_seed(0)
    history = fit(lenet5(), train, test, epochs=1, progress=False)
    assert train.num_samples == 60_000 and test.num_samples == 10_000
    assert history.final["test_acc"] >= 0.975, history.final


# --------------------------------------------------------------------------- evaluate
def test_evaluate_top1_top5_and_loss_on_a_known_case():
    class Fixed(nn.Module):
        def __init__(self, logits):
            super().__init__()
            self.logits = logits
            self.dummy = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return self.logits[x[:, 0, 0, 0].long()] + self.dummy

    # 10 classes; rows rank class 0 first, then 1, 2, ...
    ranking = torch.arange(10, 0, -1).float()
    logits = ranking.repeat(4, 1)
    # labels: rank 1 (top-1 hit), rank 3 (top-5 only), rank 5 (top-5 only), rank 6 (miss)
    y = torch.tensor([0, 2, 4, 5])
    x = torch.arange(4).float().view(4, 1, 1, 1).expand(4, 1, 2, 2).contiguous()
    data = Batches(x, y, batch_size=3, train=False)
    result = evaluate(Fixed(logits), data, precision="fp32")
    assert result["acc"] == pytest.approx(0.25)
    assert result["top5"] == pytest.approx(0.75)
    expected = nn.functional.cross_entropy(logits, y).item()
    assert result["loss"] == pytest.approx(expected, rel=1e-6)


def test_evaluate_restores_training_mode():
    model = TinyCNN()
    model.train()
    _, test = toy_data()
    evaluate(model, test)
    assert model.training


# --------------------------------------------------------------------------- History
def test_history_save_load_roundtrip(tmp_path):
    train, test = toy_data()
    history = fit(TinyCNN(), train, test, epochs=2, lr=0.1, progress=False)
    path = history.save(tmp_path / "sub" / "history.json")
    loaded = History.load(path)
    assert loaded == history
    assert loaded.final == history.final and loaded.epochs == history.epochs
    assert json.loads(path.read_text())["final"]["test_acc"] == history.final["test_acc"]
    assert len(loaded.epochs) == 2 and loaded.epochs[1]["epoch"] == 2
    assert "History(" in repr(loaded)


def test_history_plots_itself():
    pytest.importorskip("course_utils.plots")
    import matplotlib.pyplot as plt

    train, test = toy_data(n=64, batch_size=32)
    figure = fit(TinyCNN(), train, test, epochs=2, progress=False).plot()
    assert len(figure.axes) >= 2
    plt.close(figure)


def test_toy_model_learns_and_records_read_points():
    train, test = toy_data(n=256, batch_size=32)  # 8 steps per epoch
    history = fit(TinyCNN(), train, test, epochs=3, lr=0.1, log_every=4, progress=False)
    assert history.final["test_acc"] > 0.9
    assert [s["step"] for s in history.steps] == [4, 8, 12, 16, 20, 24]
    assert history.final["steps"] == 24


def test_max_steps_stops_early_and_still_evaluates():
    train, test = toy_data(n=256, batch_size=32)
    history = fit(TinyCNN(), train, test, epochs=5, max_steps=10, progress=False)
    assert history.final["steps"] == 10
    assert len(history.epochs) == 2 and history.epochs[-1]["steps"] == 2
    assert history.final["test_acc"] is not None


# --------------------------------------------------------------------------- robustness
def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resume_is_bit_identical(tmp_path):
    train, test = toy_data()
    kwargs = dict(lr=0.05, schedule="step", progress=False)
    torch.manual_seed(1)
    straight = TinyCNN()
    h_straight = fit(straight, train, test, epochs=2, **kwargs)

    torch.manual_seed(1)
    first = TinyCNN()
    ckpt = tmp_path / "run.pt"
    fit(first, train, test, epochs=1, checkpoint=ckpt, **kwargs)
    assert ckpt.exists() and not (tmp_path / "run.pt.tmp").exists()
    torch.manual_seed(123)  # a new session: different init, different global RNG
    resumed = TinyCNN()
    h_resumed = fit(resumed, train, test, epochs=2, checkpoint=ckpt, **kwargs)

    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert len(h_resumed.epochs) == 2
    assert h_resumed.epochs[1]["train_loss"] == h_straight.epochs[1]["train_loss"]
    assert h_resumed.epochs[1]["lr"] == h_straight.epochs[1]["lr"]


def test_checkpoints_inside_the_epoch_every_n_steps_or_every_30_seconds(tmp_path, monkeypatch):
    saved = []
    real_write = checkpoint_mod.write_atomically

    def record(path, payload):
        saved.append((payload["step"], (payload["in_epoch"] or {}).get("steps")))
        real_write(path, payload)

    monkeypatch.setattr(checkpoint_mod, "write_atomically", record)
    train, test = toy_data()  # 8 steps per epoch
    fit(TinyCNN(), train, test, epochs=1, checkpoint=Checkpoint(tmp_path / "a.pt", every_steps=3),
        progress=False)
    assert saved == [(3, 3), (6, 6), (8, None)]  # inside the epoch, then the epoch's end
    saved.clear()
    monkeypatch.setattr(checkpoint_mod, "CHECKPOINT_SECONDS", 0.0)  # the default: by time
    fit(TinyCNN(), train, test, epochs=1, checkpoint=tmp_path / "b.pt", progress=False)
    assert [steps for _, steps in saved] == [1, 2, 3, 4, 5, 6, 7, 8, None]
    with pytest.raises(ValueError, match="every_steps"):
        Checkpoint(tmp_path / "c.pt", every_steps=0)


KILLED_RUN = """
import sys, time
import torch
sys.path.insert(0, {tests!r})
from test_train import TinyCNN, toy_data
from course_utils.train import Checkpoint, fit

torch.set_num_threads(1)  # as the test process: the same sums in the same order
train, test = toy_data()
torch.manual_seed(1)
model = TinyCNN()
model.register_forward_pre_hook(lambda module, inputs: time.sleep(0.1))  # time to kill it
fit(model, train, test, epochs=2, checkpoint=Checkpoint({ckpt!r}, every_steps=1), **{kwargs!r})
"""


def test_a_run_killed_inside_an_epoch_resumes_bit_identically(tmp_path):
    import signal
    import subprocess
    import sys

    kwargs = dict(lr=0.05, schedule="step", progress=False)
    train, test = toy_data()  # 8 steps per epoch
    torch.manual_seed(1)
    straight = TinyCNN()
    h_straight = fit(straight, train, test, epochs=2, **kwargs)

    ckpt = tmp_path / "run.pt"
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), ckpt=str(ckpt), kwargs=kwargs)
    child = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # wait for a checkpoint from step 3 of epoch 2
            if ckpt.exists():
                try:
                    payload = torch.load(ckpt, weights_only=True)
                except Exception:  # noqa: BLE001 - replaced while reading: try again
                    payload = {}
                if payload.get("epoch") == 1 and (payload.get("in_epoch") or {}).get("steps", 0) >= 3:
                    break
            assert child.poll() is None, "the training process ended before it was killed"
            time.sleep(0.01)
        else:
            pytest.fail("no checkpoint inside the second epoch within 120 s")
        child.send_signal(signal.SIGKILL)  # no chance to clean up, like a lost Colab VM
    finally:
        child.kill()
        child.wait()
    payload = torch.load(ckpt, weights_only=True)
    assert payload["epoch"] == 1 and 3 <= payload["in_epoch"]["steps"] < 8, "killed mid-epoch"

    torch.manual_seed(123)  # a new session: different init, different global RNG
    resumed = TinyCNN()
    h_resumed = fit(resumed, train, test, epochs=2, checkpoint=ckpt, **kwargs)
    a, b = _weights(straight), _weights(resumed)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert h_resumed.epochs[1]["train_loss"] == h_straight.epochs[1]["train_loss"]
    assert [s["loss"] for s in h_resumed.steps] == [s["loss"] for s in h_straight.steps]


def test_a_course_loader_resumes_inside_an_epoch_without_replaying_its_batches(tmp_path):
    """load_data's loaders start a resumed epoch at the first untrained batch
    (set_epoch(..., start_batch=k)) instead of preparing and skipping the ones before it;
    the weights still end bit-identical to an uninterrupted run."""
    from course_utils.data import load_data

    def data():
        return load_data("sample", device="cpu", image_size=8, subset=256, batch_size=32,
                         augment=True)[0]

    torch.manual_seed(1)
    straight = TinyCNN(num_classes=10)
    fit(straight, data(), None, epochs=1, lr=0.05, progress=False)

    torch.manual_seed(1)
    model = TinyCNN(num_classes=10)
    calls = []

    def interrupt_at_step_6(module, inputs):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt

    hook = model.register_forward_pre_hook(interrupt_at_step_6)
    ckpt = tmp_path / "run.pt"
    history = fit(model, data(), None, epochs=1, lr=0.05, progress=False,
                  checkpoint=Checkpoint(ckpt, every_steps=4))
    hook.remove()
    assert history.final["interrupted"]
    assert torch.load(ckpt, weights_only=True)["in_epoch"]["steps"] == 4

    train = data()
    prepared = []
    real_transform = train._transform
    train._transform = lambda *args: prepared.append(1) or real_transform(*args)
    torch.manual_seed(123)
    resumed = TinyCNN(num_classes=10)
    fit(resumed, train, None, epochs=1, lr=0.05, progress=False, checkpoint=ckpt)
    assert len(prepared) == len(train) - 4  # batches 5..8 only
    a, b = _weights(straight), _weights(resumed)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_run_stopped_by_max_steps_resumes_inside_its_epoch(tmp_path):
    """max_steps ends an epoch early; the checkpoint must say so (not "1 epoch done"), and a
    second call finishes the epoch with the weights of an uninterrupted run."""
    train, test = toy_data()
    torch.manual_seed(1)
    straight = TinyCNN()
    fit(straight, train, test, epochs=1, lr=0.05, progress=False)

    torch.manual_seed(1)
    first = TinyCNN()
    ckpt = tmp_path / "run.pt"
    h_first = fit(first, train, test, epochs=1, lr=0.05, progress=False, checkpoint=ckpt,
                  max_steps=3)
    assert h_first.final["steps"] == 3
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 0 and state["in_epoch"]["steps"] == 3
    torch.manual_seed(123)
    resumed = TinyCNN()
    h_resumed = fit(resumed, train, test, epochs=1, lr=0.05, progress=False, checkpoint=ckpt)
    assert h_resumed.final["steps"] == len(train)
    for key, value in _weights(straight).items():
        assert torch.equal(value, _weights(resumed)[key]), key


def test_resume_of_a_finished_run_trains_nothing(tmp_path):
    train, test = toy_data()
    ckpt = tmp_path / "run.pt"
    torch.manual_seed(1)
    first = TinyCNN()
    h_first = fit(first, train, test, epochs=1, checkpoint=ckpt, progress=False)
    again = TinyCNN()
    h_again = fit(again, train, test, epochs=1, checkpoint=ckpt, progress=False)
    assert h_again.epochs == h_first.epochs
    for key, value in _weights(first).items():
        assert torch.equal(value, _weights(again)[key]), key


def test_resume_false_starts_over(tmp_path):
    train, test = toy_data()
    ckpt = tmp_path / "run.pt"
    fit(TinyCNN(), train, test, epochs=1, checkpoint=ckpt, progress=False)
    history = fit(TinyCNN(), train, test, epochs=1, checkpoint=ckpt, resume=False,
                  progress=False)
    assert len(history.epochs) == 1


def test_corrupted_checkpoint_names_the_file(tmp_path):
    train, test = toy_data()
    ckpt = tmp_path / "broken.pt"
    ckpt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.pt") as info:
        fit(TinyCNN(), train, test, checkpoint=ckpt, progress=False)
    assert "resume=False" in str(info.value) and "Delete" in str(info.value)


def test_truncated_checkpoint_is_reported(tmp_path):
    train, test = toy_data()
    ckpt = tmp_path / "run.pt"
    fit(TinyCNN(), train, test, epochs=1, checkpoint=ckpt, progress=False)
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="run.pt"):
        fit(TinyCNN(), train, test, epochs=2, checkpoint=ckpt, progress=False)


def test_checkpoint_of_another_model_is_reported(tmp_path):
    train, test = toy_data()
    ckpt = tmp_path / "run.pt"
    fit(TinyCNN(), train, test, epochs=1, checkpoint=ckpt, progress=False)
    with pytest.raises(CheckpointError, match="does not fit"):
        fit(TinyCNN(num_classes=5), train, test, epochs=2, checkpoint=ckpt, progress=False)


def test_nan_loss_stops_with_a_message_naming_the_steps():
    train, test = toy_data(n=256, batch_size=32)
    model = TinyCNN()
    calls = {"n": 0}

    def poison(module, _inputs, output):
        calls["n"] += module.training  # count training steps only
        if calls["n"] == 6:  # the 6th training step
            return output * float("nan")
        return None

    model.register_forward_hook(poison)
    with pytest.raises(TrainingDivergedError) as info:
        fit(model, train, test, epochs=1, lr=0.01, log_every=4, progress=False)
    message = str(info.value)
    assert "NaN" in message and "step 5 and step 8" in message
    assert "lr=0.001" in message  # suggests a lower learning rate
    assert info.value.history is not None and len(info.value.history.steps) == 1


def test_keyboard_interrupt_returns_the_history():
    train, test = toy_data(n=256, batch_size=32)
    model = TinyCNN()
    calls = {"n": 0}

    def ctrl_c(module, _inputs):
        calls["n"] += module.training  # count training steps only
        if calls["n"] == 12:  # in the middle of epoch 2
            raise KeyboardInterrupt

    model.register_forward_pre_hook(ctrl_c)
    history = fit(model, train, test, epochs=3, lr=0.1, log_every=2, progress=False)
    assert history.final["interrupted"] is True
    assert len(history.epochs) == 1  # epoch 1 complete, epoch 2 cut short
    assert history.final["steps"] == 11
    assert history.steps[-1]["step"] == 10
    assert history.final["train_loss"] is not None


def test_out_of_memory_is_explained_with_a_batch_size(monkeypatch):
    train, test = toy_data(n=256, batch_size=32)
    model = TinyCNN()

    def oom(module, _inputs):
        if module.training:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    model.register_forward_pre_hook(oom)
    with pytest.raises(TrainingOutOfMemoryError, match="batch_size=16") as info:
        fit(model, train, test, progress=False)
    assert isinstance(info.value, RuntimeError)
    assert isinstance(info.value, torch.OutOfMemoryError)


def test_image_too_small_for_the_model_keeps_the_models_message():
    train, test = toy_data(size=4)
    with pytest.raises(ValueError, match="at least 8x8") as info:
        fit(TinyCNN(), train, test, progress=False)
    assert "load_data" in str(info.value) and "toy" in str(info.value)


def test_lenet5_on_28x28_mnist_says_to_pad_to_32():
    data = pytest.importorskip("course_utils.data")
    train, test = data.load_data("sample", image_size=None, device="cpu")  # native 28x28
    with pytest.raises(ValueError, match="image_size=32") as info:
        fit(lenet5(), train, test, progress=False)
    assert "(128, 1, 28, 28)" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -0.1}, "lr must be a positive"),
        ({"lr": 0}, "lr must be a positive"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of"),
        ({"schedule": "cosine"}, "schedule must be one of"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"epochs": 0}, "epochs must be"),
        ({"epochs": 1.5}, "epochs must be"),
        ({"max_steps": 0}, "max_steps"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"momentum": 1.0}, "momentum"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, match):
    train, test = toy_data()
    with pytest.raises(ValueError, match=match):
        fit(TinyCNN(), train, test, progress=False, **kwargs)


def test_lr_together_with_an_optimizer_instance_is_refused():
    train, test = toy_data()
    model = TinyCNN()
    with pytest.raises(ValueError, match="optimizer instance"):
        fit(model, train, test, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), lr=0.1,
            progress=False)


# --------------------------------------------------------------------------- losses
class TupleModel(TinyCNN):
    """Returns (logits, aux1, aux2) in training mode like GoogLeNet with aux_logits."""

    def __init__(self):
        super().__init__()
        self.aux1 = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
        self.aux2 = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))

    def forward(self, x):
        logits = self.body(x)
        if self.training:
            return logits, self.aux1(x), self.aux2(x)
        return logits


def test_aux_losses_are_weighted():
    torch.manual_seed(0)
    model = TupleModel()
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 4, (8,))
    model.eval()  # no dropout, same numbers twice
    main, a1, a2 = model.body(x), model.aux1(x), model.aux2(x)
    ce = nn.functional.cross_entropy
    loss, logits = train_mod._loss((main, a1, a2), y, 0.0, 0.3)
    assert loss.item() == pytest.approx((ce(main, y) + 0.3 * ce(a1, y) + 0.3 * ce(a2, y)).item())
    assert logits is main
    loss0, _ = train_mod._loss((main, a1, a2), y, 0.0, 0.0)
    assert loss0.item() == pytest.approx(ce(main, y).item())


def test_fit_trains_a_model_with_auxiliary_heads():
    train, test = toy_data()
    history = fit(TupleModel(), train, test, epochs=3, lr=0.1, progress=False)
    assert history.final["test_acc"] > 0.8  # evaluation uses the main head only


def test_label_smoothing_changes_the_loss():
    logits, y = torch.tensor([[4.0, 0.0, 0.0, 0.0]]), torch.tensor([0])
    plain, _ = train_mod._loss(logits, y, 0.0, 0.3)
    smooth, _ = train_mod._loss(logits, y, 0.1, 0.3)
    assert smooth.item() > plain.item()


# --------------------------------------------------------------------------- schedules
def test_lenet5_schedule_follows_the_paper():
    # paper: 0.0005 x2, 0.0002 x3, 0.0001 x3, 0.00005 x4, then 0.00001 (as multipliers)
    factors = [lenet5_factor(e) for e in range(14)]
    expected = [1, 1, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1, 0.02, 0.02]
    assert factors == pytest.approx(expected)


@pytest.mark.parametrize(
    ("schedule", "epochs", "lrs"),
    [
        ("lenet5", 3, [0.1, 0.1, 0.04]),
        ("googlenet", 9, [0.1] * 8 + [0.096]),
        ("step", 3, [0.1, 0.01, 0.001]),
    ],
)
def test_epoch_schedules_set_the_learning_rate(schedule, epochs, lrs):
    train, test = toy_data(n=64, batch_size=32)
    history = fit(TinyCNN(), train, test, epochs=epochs, lr=0.1, schedule=schedule,
                  progress=False)
    first_step_lr = {}
    for s in history.steps:
        first_step_lr.setdefault(s["epoch"], s["lr"])
    assert [first_step_lr[e] for e in range(1, epochs + 1)] == pytest.approx(lrs)


def test_onecycle_warms_up_and_anneals():
    train, test = toy_data(n=256, batch_size=32)
    history = fit(TinyCNN(), train, test, epochs=2, lr=0.1, schedule="onecycle",
                  log_every=1, progress=False)
    lrs = [s["lr"] for s in history.steps]
    assert max(lrs) == pytest.approx(0.1, rel=0.05)
    assert lrs[0] < 0.02 and lrs[-1] < 1e-3
    assert lrs.index(max(lrs)) < len(lrs) // 2


def test_plateau_divides_by_ten_when_the_test_loss_stalls():
    train, test = toy_data(n=64, batch_size=32)
    history = fit(TinyCNN(), train, test, epochs=4, lr=1e-6, momentum=0.0,
                  schedule="plateau", progress=False)  # too small a rate to improve
    # epoch 1 sets the best loss; epochs 2 and 3 do not beat it (patience 1) -> /10
    assert [e["lr"] for e in history.epochs] == pytest.approx([1e-6, 1e-6, 1e-6, 1e-7])


def test_scheduler_instance_and_callable():
    train, test = toy_data(n=64, batch_size=32)
    model = TinyCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    history = fit(model, train, test, epochs=2, optimizer=opt, schedule=sched, progress=False)
    # an epoch's "lr" is the rate it trained with; the scheduler steps after it
    assert [e["lr"] for e in history.epochs] == pytest.approx([0.1, 0.05])
    history = fit(TinyCNN(), train, test, epochs=2, lr=0.2, progress=False,
                  schedule=lambda o: torch.optim.lr_scheduler.StepLR(o, 1, gamma=0.1))
    assert [e["lr"] for e in history.epochs] == pytest.approx([0.2, 0.02])


# --------------------------------------------------------------------------- precision
def test_precision_policy(monkeypatch):
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    # a CPU with native bf16 (the measured table) -> bf16; without -> fp32 (emulated bf16)
    monkeypatch.setattr(device_mod, "cpu_bf16_isa", lambda: "avx512_bf16")
    assert resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(device_mod, "cpu_bf16_isa", lambda: "amx")
    assert resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(device_mod, "cpu_bf16_isa", lambda: None)
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("auto", "mps") == "fp32"
    assert device_mod.use_channels_last("cuda") and device_mod.use_channels_last("cpu")


def test_cpu_flags_are_read():
    assert device_mod.cpu_bf16_isa() in (None, "amx", "avx512_bf16")


def test_bf16_training_on_cpu_runs():
    train, test = toy_data()
    history = fit(TinyCNN(), train, test, epochs=2, lr=0.1, precision="bf16", progress=False)
    assert history.final["precision"] == "bf16"
    assert history.final["test_acc"] > 0.5


def test_seed_controls_dropout():
    train, test = toy_data()
    results = []
    for seed in (0, 0, 1):
        torch.manual_seed(5)
        model = TinyCNN()
        fit(model, train, test, epochs=1, lr=0.1, seed=seed, progress=False)
        results.append(_weights(model)["body.5.weight"])
    assert torch.equal(results[0], results[1])
    assert not torch.equal(results[0], results[2])


def test_plain_dataloader_works_too():
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 4, (64,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    history = fit(TinyCNN(), loader, loader, epochs=1, progress=False)
    assert history.final["dataset"] is None and history.epochs[0]["steps"] == 4


def test_default_lr_of_a_small_model_follows_the_batch_size():
    """LeNet-5's measured rates (benchmarks/README.md, section 5) at 64-512, log-interpolated
    between them; batch norm and large models keep their fixed defaults."""
    small = lenet5()
    for batch_size, lr in train_mod.SMALL_MODEL_LR_BY_BATCH.items():
        assert train_mod.default_lr(small, "sgd", batch_size) == pytest.approx(lr)
    between = train_mod.default_lr(small, "sgd", 181)  # ~ sqrt(128 * 256)
    assert 0.1 < between < 0.115
    assert train_mod.default_lr(small, "sgd", 4096) == pytest.approx(0.3)  # no extrapolation
    assert train_mod.default_lr(small, "adam", 512) == 1e-3
    norm = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    assert train_mod.default_lr(norm, "sgd", 512) == 0.1
    train, test = sample_mnist(batch_size=64)
    history = fit(lenet5(), train, test, max_steps=1, progress=False)
    assert history.config["lr"] == pytest.approx(0.05) and history.config["batch_size"] == 64
