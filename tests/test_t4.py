"""course_utils.t4: the T4 time estimate's calibration, the fake-tensor training memory, and
the full-run plan the rehearsal records (every full-mode training fits a T4)."""

from __future__ import annotations

import json

import pytest
import torch

from course_utils import t4
from course_utils.analysis import count_macs, count_params
from course_utils.data import load_data
from course_utils.models import get_model
from course_utils.train import fit

GiB = 2**30
COURSE = ["01_design_patterns", "02_lenet", "03_alexnet", "04_vgg", "05_inception",
          "06_resnet", "07_densenet"]


def test_the_calibration_is_resnet50s_published_rate():
    assert t4.RESNET50_V15_MACS == count_macs(get_model("resnet50", stride_in_3x3=True))
    # one image of ResNet-50 v1.5 trains in 1 / 439.5 s; 10,000 evaluated images cost a third
    assert t4.seconds(t4.RESNET50_V15_MACS, 1) == pytest.approx(3249 / (1190 * 1200))
    assert t4.seconds(t4.RESNET50_V15_MACS, 0, eval_images=3) == pytest.approx(
        t4.seconds(t4.RESNET50_V15_MACS, 1))
    assert 0.15 < t4.T4_TRAIN_FLOPS / t4.T4_FP16_PEAK_FLOPS < 0.18
    assert t4.seconds(1000, 100, steps=469) == pytest.approx(469 * t4.T4_MIN_STEP_SECONDS)


def test_training_memory_counts_weights_momentum_and_saved_activations():
    lenet = get_model("lenet5")
    small, large = (t4.training_memory(lenet, b, 32, in_channels=1) for b in (32, 256))
    assert small < large  # activations grow with the batch
    weights = 4 * count_params(lenet)
    assert small > 2 * weights  # fp32 weights + momentum (+ gradients) + activations
    # VGG-16's 138 M fp32 weights alone are 0.5 GiB; with the momentum buffer over 1 GiB
    vgg = t4.training_memory(get_model("vgg16", num_classes=10), 2, 224)
    assert 2 * 4 * count_params(get_model("vgg16", num_classes=10)) < vgg < 3 * GiB


def test_the_plan_covers_every_notebook_and_each_full_run_fits_a_t4():
    plan = t4.full_runs()
    assert sorted(plan) == COURSE, "run make rehearse to record the full runs"
    for notebook, rows in plan.items():
        assert rows, notebook
        for row in rows:
            where = f"{notebook}: {row['what']} {row['model']} batch {row['batch_size']}"
            assert row["memory_bytes"] < t4.MEMORY_LIMIT_BYTES, where
            assert row["train_images"] >= row["batch_size"] or row["steps"] <= 2, where
    homework = [r for r in plan["06_resnet"] if r["what"].startswith("homework")]
    assert [(r["model"], r["image_size"], r["batch_size"]) for r in homework] == [
        ("ResNet", 224, 128)]  # the full homework: ResNet-50 at its native size
    assert any(r["gpus"] == 2 for r in plan["06_resnet"])  # fit(devices="all") on 2xT4
    for notebook in COURSE:
        assert "of training for Run all on one T4" in t4.notebook_estimate(notebook)


def test_a_rehearsal_records_what_the_full_run_would_train(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_SMOKE", raising=False)
    monkeypatch.setenv("COURSE_REHEARSAL", "1")
    log = tmp_path / "trainings.jsonl"
    monkeypatch.setenv(t4.LOG_ENV, str(log))
    train, test = load_data("cifar10", root=tmp_path, batch_size=16, image_size=32,
                            device="cpu")  # nothing there: the sample, two batches
    assert (train.num_samples, test.num_samples) == (32, 16)
    assert (train.full_run_images, test.full_run_images) == (50_000, 10_000)
    model = get_model("lenet5", in_channels=3)
    history = fit(model, train, test, lr=0.01, devices="all", progress=False)
    assert history.epochs[0]["train_images"] == 32
    row = json.loads(log.read_text())
    assert row["what"] == "fit" and row["model"] == "LeNet5" and row["gpus"] == 2
    assert (row["train_images"], row["test_images"], row["steps"]) == (50_000, 10_000, 3125)
    assert row["macs"] == count_macs(model, (1, 3, 32, 32))
    assert row["memory_bytes"] == t4.training_memory(model, 8, 32)  # half a batch per GPU


def test_devices_all_goes_through_data_parallel_in_a_rehearsal(monkeypatch):
    monkeypatch.delenv("COURSE_SMOKE", raising=False)
    monkeypatch.setenv("COURSE_REHEARSAL", "1")
    wrapped = []

    class Spy(torch.nn.DataParallel):
        def forward(self, *inputs, **kwargs):
            wrapped.append(inputs[0].shape[0])
            return super().forward(*inputs, **kwargs)

    monkeypatch.setattr(torch.nn, "DataParallel", Spy)
    train, test = load_data("sample", batch_size=16, image_size=32, device="cpu")
    fit(get_model("lenet5"), train, test, lr=0.01, devices="all", progress=False)
    assert wrapped == [16, 16, 16]  # two training batches and the test batch


def test_the_memory_limit_shrinks_with_the_pixels():
    assert t4.memory_limit(224) == t4.MEMORY_LIMIT_BYTES == 12 * GiB
    assert t4.memory_limit(32) == pytest.approx(t4.MEMORY_LIMIT_BYTES / 49, abs=1)
    assert t4.memory_limit(112) == t4.MEMORY_LIMIT_BYTES // 4


def test_training_memory_is_a_line_in_the_batch_and_largest_batch_finds_the_fit():
    # 07's homework at CIFAR's 32x32: batches of 32 and 64 give the line (there the saved
    # activations set the peak; at 2 or 4 the fixed part does, and their line is too flat),
    # and the answer is the largest power of two whose counted step fits (the next does not).
    dense = get_model("densenet121", num_classes=10)
    two, four, at_32, at_64, big = (t4.training_memory(dense, b, 32) for b in (2, 4, 32, 64, 128))
    per_image = (at_64 - at_32) / 32
    assert big == pytest.approx(at_64 + 64 * per_image, rel=0.02)
    assert two + 124 * (four - two) / 2 < 0.8 * big  # the small batches' line falls short
    limit = t4.memory_limit(32)
    batch = t4.largest_batch(dense, 32)
    assert batch == 128
    assert t4.training_memory(dense, batch, 32) <= limit < t4.training_memory(dense, 256, 32)
    # a tighter limit: a smaller answer, still a power of two that fits
    assert t4.largest_batch(dense, 32, limit=t4.training_memory(dense, 40, 32)) == 32


def test_the_memory_cache_tells_models_apart_that_differ_only_in_strides():
    # ResNet-50 v1 and v1.5 have the same modules and parameter shapes; the stride sits in a
    # different conv, so the saved activations differ. A shared cache entry would hide that.
    v1 = get_model("resnet50", num_classes=10)
    v15 = get_model("resnet50", num_classes=10, stride_in_3x3=True)
    assert t4.training_memory(v1, 4, 64) != t4.training_memory(v15, 4, 64)
