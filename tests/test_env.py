import json

import pytest
import torch

from course_utils import env


@pytest.mark.parametrize("value, expected", [("1", True), ("yes", True), ("0", False),
                                             ("", False), ("false", False)])
def test_smoke_flag_reads_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("COURSE_SMOKE", value)
    assert env.is_smoke() is expected


def test_device_is_cuda_only_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert env.get_device().type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert env.get_device().type == "cuda"
    assert env.get_device("cpu").type == "cpu"  # an explicit choice wins


def test_colab_and_kaggle_detection(monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert env.is_kaggle()
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20260101")
    assert env.is_colab()


def test_pretrained_cells_run_by_default_only_on_colab_and_kaggle(monkeypatch):
    monkeypatch.setattr(env, "is_colab", lambda: False)
    monkeypatch.setattr(env, "is_kaggle", lambda: False)
    monkeypatch.delenv("COURSE_SMOKE", raising=False)
    assert not env.pretrained_enabled(None)  # a local machine: off unless asked
    assert env.pretrained_enabled(True)
    monkeypatch.setattr(env, "is_kaggle", lambda: True)
    assert env.pretrained_enabled(None)
    assert not env.pretrained_enabled(False)  # an explicit choice wins
    monkeypatch.setenv("COURSE_SMOKE", "1")
    assert not env.pretrained_enabled(None)  # CI's smoke runs never download


def test_seeding_makes_random_draws_repeat():
    env.seed_everything(123)
    first = torch.rand(3)
    env.seed_everything(123)
    assert torch.equal(first, torch.rand(3))


def test_run_settings_pick_the_level_for_the_mode_and_record_reductions(monkeypatch):
    full = {"subset": None, "image_size": 227, "epochs": 1}
    cpu = {"subset": 2000, "image_size": 96}
    smoke = {"subset": 256}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)

    monkeypatch.setenv("COURSE_SMOKE", "1")
    settings = env.run_settings(full, cpu, smoke)
    assert settings == {"subset": 256, "image_size": 96, "epochs": 1}
    assert settings.mode == "smoke" and settings["subset"] == 256
    assert settings.reduced == {"subset": (None, 256), "image_size": (227, 96)}

    monkeypatch.delenv("COURSE_SMOKE")
    assert env.run_settings(full, cpu, smoke) == {"subset": 2000, "image_size": 96, "epochs": 1}

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert env.run_mode() == "full"
    settings = env.run_settings(full, cpu, smoke)
    assert settings == full and settings.mode == "full"
    assert settings.reduced == {}


def test_banner_says_mode_versions_and_what_was_reduced(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_SMOKE", "1")
    settings = env.run_settings({"subset": None, "lr": 0.1}, smoke={"subset": 100})
    assert env.run_banner("5.2 LeNet-5", settings=settings) is None
    text = capsys.readouterr().out.strip()
    assert text == env.banner_text("5.2 LeNet-5", settings=settings)
    assert "5.2 LeNet-5" in text and torch.__version__ in text
    assert "smoke run" in text
    assert "subset    : 100  (full run: None)" in text
    assert "lr        : 0.1" in text and "(full run" not in text.split("lr        :")[1]


def test_a_cpu_banner_says_reduced_only_when_something_was(monkeypatch):
    monkeypatch.delenv("COURSE_SMOKE", raising=False)
    monkeypatch.delenv("COURSE_REHEARSAL", raising=False)
    monkeypatch.setattr(env, "run_mode", lambda device=None: "cpu")
    same = env.run_settings({"subset": None, "lr": 0.1}, cpu={})
    shrunk = env.run_settings({"subset": None, "lr": 0.1}, cpu={"subset": 1000})
    assert "nothing reduced" in env.banner_text(settings=same)
    assert "reduced run" not in env.banner_text(settings=same)
    assert "reduced run" in env.banner_text(settings=shrunk)


def test_settings_are_values_not_module_state(monkeypatch):
    """Two notebooks' settings in one process do not leak into each other's banner, and a
    forced precision is a note of the settings it was chosen with."""
    monkeypatch.setenv("COURSE_SMOKE", "1")
    monkeypatch.setenv(env.PRECISION_ENV, "fp16")
    first = env.run_settings({"subset": None}, smoke={"subset": 64})
    monkeypatch.delenv(env.PRECISION_ENV)
    second = env.run_settings({"lr": 0.1})
    assert first.notes == ("precision fp16 forced (COURSE_PRECISION)",) and second.notes == ()
    assert "subset" in env.banner_text(settings=first) and "fp16 forced" in env.banner_text(
        settings=first)
    assert "subset" not in env.banner_text(settings=second)
    assert "forced" not in env.banner_text(settings=second)


def test_write_results_records_mode_and_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_SMOKE", "1")
    settings = env.run_settings({"subset": None}, smoke={"subset": 64})
    path = tmp_path / "out" / "r.json"
    assert env.write_results(path, {"test_acc": 0.5}, settings, parameters={"SEED": 3}) is None
    data = json.loads(path.read_text())
    assert data["test_acc"] == 0.5 and data["mode"] == "smoke"
    assert data["settings"] == {"subset": 64} and data["reduced"] == {"subset": [None, 64]}
    assert data["parameters"] == {"SEED": 3}
    assert env.write_results(None, {"x": 1}) is None


def test_at_most_caps_a_reduced_run_unless_less_was_asked():
    assert env.at_most(None, 10_240) == 10_240
    assert env.at_most(50_000, 10_240) == 10_240
    assert env.at_most(512, 10_240) == 512


def test_progress_bars_print_text_in_headless_runs(monkeypatch, capsys):
    """course_tools run sets COURSE_TEXT_PROGRESS: the saved notebook then holds the bar as
    text on stdout instead of widget state (tqdm.auto picks a widget inside Jupyter)."""
    import tqdm.std

    monkeypatch.setenv(env.TEXT_PROGRESS_ENV, "1")
    bar = env.progress_bar(total=2, desc="epoch 1/1", mininterval=0)
    assert type(bar) is tqdm.std.tqdm
    bar.update(2)
    bar.close()
    assert "epoch 1/1: 100%" in capsys.readouterr().out
    monkeypatch.delenv(env.TEXT_PROGRESS_ENV)
    import tqdm.auto

    assert isinstance(env.progress_bar(total=1, disable=True), tqdm.auto.tqdm)


def test_a_rehearsal_runs_full_mode_on_any_device_and_smoke_wins(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.delenv("COURSE_SMOKE", raising=False)
    monkeypatch.setenv("COURSE_REHEARSAL", "1")
    assert env.is_rehearsal() and env.run_mode() == "full"
    settings = env.run_settings({"image_size": 224}, cpu={"image_size": 32})
    assert settings == {"image_size": 224}  # the full mode's values, on a CPU
    assert "REHEARSAL" in env.banner_text("t")
    monkeypatch.setenv("COURSE_SMOKE", "1")
    assert not env.is_rehearsal() and env.run_mode() == "smoke"


def test_claims_read_from_the_saved_cpu_run_are_checked_only_there(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.delenv("COURSE_SMOKE", raising=False)
    monkeypatch.delenv("COURSE_REHEARSAL", raising=False)
    assert env.run_mode() == "cpu" and env.claims_checked_here()
    assert capsys.readouterr().out == ""  # checked: nothing to explain
    assert not env.claims_checked_here(as_described=False)
    assert "parameters were changed" in capsys.readouterr().out
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert env.run_mode() == "full" and not env.claims_checked_here()
    out = capsys.readouterr().out
    assert "GPU에서는 확인하지 않습니다" in out and "not checked on a GPU" in out


class _Loader:
    def __init__(self, fallback=None):
        self.fallback = fallback


def test_expect_enforces_a_claim_only_where_the_run_can_show_it(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.delenv("COURSE_SMOKE", raising=False)
    monkeypatch.delenv("COURSE_REHEARSAL", raising=False)
    # cpu mode on the notebook's own data: a claim that does not hold stops the notebook
    assert env.expect(True, "plain-56 trains worse", _Loader()) is True
    assert capsys.readouterr().out == ""  # a claim that holds prints nothing
    with pytest.raises(AssertionError, match="plain-56 trains worse.*\n.*0.31"):
        env.expect(False, "plain-56 trains worse", _Loader(), details={"plain56": 0.31})
    # the same run on the bundled sample: printed with the reason, not enforced
    assert env.expect(False, "plain-56 trains worse", _Loader("cifar10 not found")) is False
    out = capsys.readouterr().out
    assert out.startswith("[not checked: this run used the bundled MNIST sample")
    assert "plain-56 trains worse: does NOT hold in this run" in out
    for variable in ("COURSE_SMOKE", "COURSE_REHEARSAL"):  # short runs never enforce
        monkeypatch.setenv(variable, "1")
        assert env.expect(False, "a claim", _Loader()) is False
        assert "[not checked: a " in capsys.readouterr().out
        monkeypatch.delenv(variable)


def test_the_pretrained_off_note_says_what_the_cell_would_show_and_how_to_turn_it_on():
    note = env.pretrained_off_note("필터 64개가 보입니다", "it shows 64 filters")
    korean, english = note.split("\n")
    assert "켜면 필터 64개가 보입니다." in korean and "PRETRAINED = True" in korean
    assert "With them on, it shows 64 filters." in english and "PRETRAINED = True" in english
