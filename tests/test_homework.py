"""course_utils.homework: the counters and the check measure what the student's loop did.

LeNet-5 on 1,024 images of the bundled MNIST sample (32 steps of 32, a second or two) stands
in for a homework. The whole session runs in smoke mode (conftest), so the thresholds used
are the smoke/sample ones.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import homework, minimums, t4
from course_utils.data import load_data
from course_utils.homework import HomeworkRun, check_homework, measure
from course_utils.models import get_model


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    return load_data("sample", batch_size=32, image_size=32, subset=1024, test_subset=512,
                     device="cpu")


def make_run(data, **kwargs):
    train, test = data
    torch.manual_seed(0)
    model = get_model("lenet5")
    return model, HomeworkRun(model, train, test, **kwargs)


def train_loop(model, run, *, zero_grad=True, step=True, train_mode=True, accumulate=1,
               lr=0.05):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train(train_mode)
    for i, (x, y) in enumerate(run.batches()):
        with run.autocast():
            loss = F.cross_entropy(model(x).float(), y)
        if zero_grad and i % accumulate == 0:
            optimizer.zero_grad()
        loss.backward()
        if step and (i + 1) % accumulate == 0:
            optimizer.step()
        run.log(loss)
    return optimizer


def test_the_reference_loop_passes_and_the_counts_are_exact(data, capsys):
    model, run = make_run(data)
    train_loop(model, run)
    measured = check_homework(run, "02_lenet", model)
    out = capsys.readouterr().out
    assert measured["steps"] == measured["expected_steps"] == 32
    assert measured["images"] == measured["expected_images"] == 1024
    assert measured["eval_mode_images"] == 0 and measured["stale_gradient_steps"] == 0
    assert measured["test_images"] == 512 and measured["mode"] == "smoke"
    assert measured["data"] == "sample"
    assert measured["test_acc"] >= minimums.minimum_for("02_lenet", "smoke", "sample").accuracy
    assert "OK: the homework passes its check." in out
    # run.batches() timed the loop for the comparison with fit
    assert run.timed_images == 1024 and run.train_seconds > 0


def test_a_loop_that_never_steps_fails_with_the_reason(data):
    model, run = make_run(data)
    train_loop(model, run, step=False)
    with pytest.raises(AssertionError) as error:
        check_homework(run, "02_lenet", model)
    assert "optimizer.step()이 한 번도 불리지 않았습니다" in str(error.value)
    assert "test accuracy" in str(error.value)  # untrained: below the minimum too


def test_missing_zero_grad_is_detected_but_accumulation_is_not_flagged(data):
    model, run = make_run(data)
    train_loop(model, run, zero_grad=False)
    found = measure(run)
    assert found["stale_gradient_steps"] >= 30
    problems = homework._problems(found, 0.0, scaler_enabled=False)
    assert any("zero_grad" in p for p in problems)

    model, run = make_run(data)
    train_loop(model, run, accumulate=2)  # two backward passes per step, zeroed after each
    found = measure(run)
    assert found["stale_gradient_steps"] == 0
    assert found["steps"] == 16  # half an epoch of steps: the check says so
    assert any("one epoch is 32" in p for p in homework._problems(found, 0.0, False))


def test_training_in_eval_mode_is_detected(data):
    model, run = make_run(data)
    train_loop(model, run, train_mode=False)
    found = measure(run)
    assert found["images"] == 0 and found["eval_mode_images"] == 1024
    assert any("eval 모드" in p for p in homework._problems(found, 0.0, False))


def test_more_than_the_homework_epochs_is_flagged(data):
    model, run = make_run(data)
    train_loop(model, run)
    train_loop(model, run)
    found = measure(run)
    assert found["steps"] == 64
    assert any("64 optimizer steps, 32 expected" in p
               for p in homework._problems(found, 0.0, False))


class TwoHeads(nn.Module):
    """A main and an auxiliary classifier, like GoogLeNet in training mode."""

    input_size = (1, 32, 32)

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 16), nn.ReLU())
        self.main = nn.Linear(16, 10)
        self.aux = nn.Linear(16, 10)

    def forward(self, x):
        h = self.body(x)
        return (self.main(h), self.aux(h)) if self.training else self.main(h)


@pytest.mark.parametrize("use_aux, untrained", [(True, []), (False, ["aux"])])
def test_watched_auxiliary_heads_must_learn(data, use_aux, untrained):
    train, test = data
    model = TwoHeads()
    run = HomeworkRun(model, train, test, watch=("aux",))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for x, y in run.batches():
        main, aux = model(x)
        loss = F.cross_entropy(main, y) + (0.3 * F.cross_entropy(aux, y) if use_aux else 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    found = measure(run)
    assert found["untrained"] == untrained
    hints = homework._problems(found, 0.0, False)
    assert any("보조 분류기" in p for p in hints) == (not use_aux)


def test_the_check_refuses_another_model_or_no_run(data):
    model, run = make_run(data)
    train_loop(model, run)
    with pytest.raises(AssertionError, match="새 모델을 만들지 말고"):
        check_homework(run, "02_lenet", get_model("lenet5"))
    with pytest.raises(AssertionError, match="HomeworkRun"):
        check_homework(None, "02_lenet")


def test_a_new_run_closes_the_previous_one(data):
    model, first = make_run(data)
    second = HomeworkRun(model, *data)
    train_loop(model, second)
    assert first.steps == 0 and second.steps == 32
    assert homework._ACTIVE is second


def test_grader_probe_prints_its_own_measurement(data, capsys):
    model, run = make_run(data)
    train_loop(model, run, step=False)
    homework.grader_probe("02_lenet")
    printed = capsys.readouterr().out
    found = json.loads(printed.split(homework.PROBE_MARK, 1)[1])
    assert found["passed"] is False and found["steps"] == 0
    assert found["minimum"] == minimums.minimum_for("02_lenet", "smoke", "sample").accuracy


def test_thresholds_cover_every_mode_of_every_homework_notebook():
    rows = {(row.notebook, row.mode, row.data): row for row in minimums.MINIMUMS}
    assert len(rows) == len(minimums.MINIMUMS), "one row per notebook, mode and data"
    for name in ("01_design_patterns", "02_lenet", "03_alexnet", "04_vgg", "05_inception",
                 "06_resnet", "07_densenet"):
        for mode, data in (("full", "real"), ("cpu", "real"), ("smoke", "sample")):
            row = rows[name, mode, data]
            assert (0.1 < row.accuracy < 1) if row.accuracy is not None else row.why_none


def test_t4_estimate_is_the_calibrated_flop_arithmetic():
    # Calibrated on ResNet-50 v1.5 (4.09 G MACs) at 1190 x 1200 / 3249 = 439.5 img/s on a T4
    # (course_utils.t4): a 4.1 G MAC model on 50,000 images takes 50,000 / 439.5 x 4.1 / 4.09.
    rate = 1190 * 1200 / 3249
    assert homework.t4_estimate_seconds(4_100_000_000, 50_000) == pytest.approx(
        50_000 / rate * 4.1e9 / 4_089_184_256, rel=1e-9)
    line = homework.t4_estimate("resnet50", 50_000, 224)  # the paper's placement: 3.86 G
    assert line.startswith("resnet50, 50,000 images at 224x224: about 107 s per epoch on a T4")
    assert "3.86 G MACs" in line and "not measured" in line


def test_a_mode_without_a_measured_minimum_skips_only_the_accuracy(data, monkeypatch, capsys):
    # Full mode on the sample (a Kaggle student with Internet off): no minimum was measured.
    assert homework.minimum_for("03_alexnet", "cpu", "sample")[0] is None
    minimum, why = homework.minimum_for("06_resnet", "full", "sample")
    assert minimum is None and "no minimum was measured for full mode" in why
    lenet_real = minimums.Minimum("02_lenet", "smoke", "real", 0.5)
    monkeypatch.setattr(minimums, "MINIMUMS", (lenet_real,))
    model, run = make_run(data)
    train_loop(model, run)
    check_homework(run, "02_lenet", model)  # passes: the other checks all hold
    assert "not asserted: no minimum was measured for smoke mode on the bundled MNIST sample" \
        in capsys.readouterr().out
    model, run = make_run(data)
    train_loop(model, run, zero_grad=False)  # ... and still run without a minimum
    with pytest.raises(AssertionError, match="zero_grad"):
        check_homework(run, "02_lenet", model)


def test_when_only_the_accuracy_fails_the_check_says_the_loop_itself_trains(data, monkeypatch):
    lenet_sample = minimums.Minimum("02_lenet", "smoke", "sample", 0.999)
    monkeypatch.setattr(minimums, "MINIMUMS", (lenet_sample,))
    model, run = make_run(data)
    train_loop(model, run)
    with pytest.raises(AssertionError) as error:
        check_homework(run, "02_lenet", model)
    text = str(error.value)
    assert "below the minimum 99.9%" in text
    assert "Your loop itself trains correctly (32 optimizer steps = one epoch, 1,024 images" in text
    assert "학습 루프 자체는 맞게 돌았습니다" in text
    model, run = make_run(data)
    train_loop(model, run, step=False)  # a real mistake: no such reassurance
    with pytest.raises(AssertionError) as error:
        check_homework(run, "02_lenet", model)
    assert "itself trains correctly" not in str(error.value)


def test_a_t4s_fp16_path_with_the_gradient_scaler_runs_on_the_cpu(data, monkeypatch):
    monkeypatch.setenv("COURSE_PRECISION", "fp16")
    model, run = make_run(data)
    assert run.precision == "fp16" and run.scaler.is_enabled()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for x, y in run.batches():
        with run.autocast():
            logits = model(x)
            assert logits.dtype == torch.float16
            loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad()
        run.scaler.scale(loss).backward()
        run.scaler.step(optimizer)
        run.scaler.update()
    found = check_homework(run, "02_lenet", model)
    assert found["precision"] == "fp16" and found["steps"] >= 32 - 25


def test_07s_check_counts_the_batch_the_memory_limit_allows(data):
    # 07's homework picks the batch size; the check counts the answer itself. LeNet-5 in
    # batches of 32 is far below what its tiny training step allows at 32x32.
    model, run = make_run(data)
    train_loop(model, run)
    measured = measure(run, "07_densenet")
    assert measured["batch_size"] == 32 and measured["memory_limit"] == t4.memory_limit(32)
    expected = measured["expected_batch_size"]
    assert expected == t4.largest_batch(model, 32, in_channels=1) > 32
    problems = homework._problems(measured, None, False)
    assert any(f"largest power of two that fits the memory limit is {expected}" in p
               for p in problems)
    assert "expected_batch_size" not in measure(run, "02_lenet")  # the others pick no batch


def test_check_batch_size_counts_the_memory_and_explains_a_wrong_answer(capsys):
    dense = get_model("densenet121", num_classes=10)
    found = homework.check_batch_size(128, dense, 32)
    out = capsys.readouterr().out
    assert "OK: batches of 128 fit; 256 would not." in out
    fits = {row["batch"]: row["fits the limit"] for row in found["rows"]}
    assert fits == {128: "yes", 256: "no"}
    for wrong in (64, 256, 100.0):
        with pytest.raises(AssertionError, match="power of two|positive int") as error:
            homework.check_batch_size(wrong, dense, 32)
        assert "training_memory" in str(error.value)
