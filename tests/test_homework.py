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

from course_utils import homework
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
    assert measured["test_acc"] >= homework.THRESHOLDS["02_lenet"][("smoke", "sample")]
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
    assert found["minimum"] == homework.THRESHOLDS["02_lenet"][("smoke", "sample")]


def test_thresholds_cover_every_mode_of_every_homework_notebook():
    for name in ("02_lenet", "03_alexnet", "04_vgg", "05_inception", "06_resnet",
                 "07_densenet"):
        table = homework.THRESHOLDS[name]
        for key in (("full", "real"), ("cpu", "real"), ("smoke", "sample")):
            assert key in table, (name, key)
            assert table[key] is None or 0.1 < table[key] < 1, (name, key)


def test_t4_estimate_is_the_flop_arithmetic():
    # ResNet-50 at 224: 4.1 G MACs; one epoch of CIFAR-10's 50,000 images:
    # 3 x 2 x 4.1e9 x 5e4 / (65e12 x 0.25) = 75.7 s
    assert homework.t4_estimate_seconds(4_100_000_000, 50_000) == pytest.approx(75.69, abs=0.01)
    line = homework.t4_estimate("resnet50", 50_000, 224)
    assert line.startswith("resnet50, 50,000 images at 224x224: about 71 s per epoch on a T4")
    assert "3.86 G MACs" in line and "not measured" in line
