"""Where are we running, and how big a run should this be?

Every notebook asks: which device trains the model (CUDA, else Apple's MPS, else the CPU)? Are
we on Colab or Kaggle? Is this the real one-epoch homework, a reduced run on a CPU-only machine,
or CI's smoke test (``COURSE_SMOKE=1``)? ``run_settings`` answers the last one from three
dictionaries (full / cpu / smoke) and returns a :class:`RunSettings`: the mode, the chosen
values, what was reduced and notes, which ``run_banner`` and ``write_results`` print and save.

A rehearsal (``COURSE_REHEARSAL=1``, ``make rehearse``) runs the full mode's settings on any
machine, on a couple of batches of data, so that every line a GPU student runs is executed
in CI. ``expect`` states a run's outcome: enforced where the run can show it (cpu and full
mode on the notebook's own dataset), printed with the reason elsewhere.
"""

from __future__ import annotations

import json
import os
import platform
import random
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

SMOKE_ENV = "COURSE_SMOKE"
DATA_ENV = "COURSE_DATA"
# Set by the instructor's runner (python -m course_tools run): progress bars print text, so a
# saved notebook holds the bar itself rather than widget state that only a live Jupyter shows.
TEXT_PROGRESS_ENV = "COURSE_TEXT_PROGRESS"
# Full-mode settings on tiny data (make rehearse): each training set is cut to
# REHEARSAL_BATCHES batches of the full batch size, each test set to one batch.
REHEARSAL_ENV = "COURSE_REHEARSAL"
REHEARSAL_BATCHES = 2
# Forces the precision that precision="auto" picks: "fp16" runs a T4's path (fp16 autocast and
# the gradient scaler), also on a CPU; "bf16" and "fp32" likewise. Unset: measured per device.
PRECISION_ENV = "COURSE_PRECISION"
# How expect() starts the line of a claim it does not enforce (the rehearsal counts them).
NOT_CHECKED_MARK = "[not checked: "


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def is_smoke() -> bool:
    """True when ``COURSE_SMOKE`` is set to something truthy (CI's fast configuration)."""
    return _flag(SMOKE_ENV)


def is_rehearsal() -> bool:
    """True when ``COURSE_REHEARSAL`` is set (and not smoke): full-mode settings, tiny data."""
    return _flag(REHEARSAL_ENV) and not is_smoke()


def is_colab() -> bool:
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def is_kaggle() -> bool:
    return "KAGGLE_KERNEL_RUN_TYPE" in os.environ or Path("/kaggle/input").is_dir()


def pretrained_enabled(requested: bool | None = None) -> bool:
    """Whether a notebook runs its cells that download published (ImageNet) weights. ``None``
    (the default): on Colab and Kaggle, which have internet (Kaggle: switch it on), off on
    other machines and in smoke runs; True/False force it."""
    if requested is not None:
        return bool(requested)
    return (is_colab() or is_kaggle()) and not is_smoke()


def pretrained_off_note(shows: str, shows_en: str) -> str:
    """What a cell behind ``pretrained_enabled`` prints while the weights are off: what it would
    show (``shows`` in Korean, ``shows_en`` in English) and how to turn it on."""
    return (f"사전 학습 가중치가 꺼져 있어(Colab/Kaggle이 아니거나 짧게 줄인 실행) 이 셀은 아무것도 "
            f"보여 주지 않습니다. 켜면 {shows}. Colab/Kaggle에서는 자동으로 켜지고, 다른 곳에서는 "
            f"파라미터 셀의 PRETRAINED = True로 켜면 가중치를 내려받습니다.\n"
            f"Pretrained weights are off here (not Colab/Kaggle, or a short run), so this cell "
            f"shows nothing. With them on, {shows_en}. They are on by default on Colab/Kaggle; "
            f"elsewhere set PRETRAINED = True in the parameters cell to download them.")


def get_device(prefer: str | None = None) -> torch.device:
    """The device to train on: ``prefer`` if given, else CUDA, then Apple MPS, then CPU."""
    if prefer is not None:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    return torch.device("mps" if mps is not None and mps.is_available() else "cpu")


def device_name(device: torch.device | str | None = None) -> str:
    device = get_device() if device is None else torch.device(device)
    if device.type == "cuda":
        count, name = torch.cuda.device_count(), torch.cuda.get_device_name(device)
        return f"{name} x{count}" if count > 1 else name
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def cpu_name() -> str:
    """The processor's model name (Linux: /proc/cpuinfo), for the records that say which CPU
    a measurement came from (CPUs of the same kind differ: AMX or only AVX512-BF16)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def run_mode(device: torch.device | str | None = None) -> str:
    """'smoke' under COURSE_SMOKE=1, 'full' on a GPU (and in a rehearsal, on any device),
    'cpu' on a machine without one."""
    if is_smoke():
        return "smoke"
    if is_rehearsal():
        return "full"
    device = get_device() if device is None else torch.device(device)
    return "cpu" if device.type == "cpu" else "full"


def seed_everything(seed: int = 0, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices). ``deterministic`` also asks cuDNN for
    reproducible kernels, at some cost in speed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def progress_bar(**kwargs: Any):
    """A tqdm progress bar: a widget in Jupyter/Colab/Kaggle (``tqdm.auto``), plain text on
    stdout when ``$COURSE_TEXT_PROGRESS`` is set (headless runs whose outputs are saved).
    Refreshed at most once a second, so that a saved text bar stays short."""
    kwargs = {"unit": "batch", "mininterval": 1.0, "dynamic_ncols": True, **kwargs}
    if os.environ.get(TEXT_PROGRESS_ENV):
        from tqdm.std import tqdm

        return tqdm(file=sys.stdout, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(**kwargs)


def at_most(value: Any, limit: Any) -> Any:
    """A reduced run's value in ``run_settings``: ``limit``, unless a smaller one was asked
    for (``value`` None means "not asked")."""
    return limit if value is None else min(value, limit)


@dataclass(frozen=True, eq=False)  # eq: Mapping's (equal to a dict with the same items)
class RunSettings(Mapping):
    """What :func:`run_settings` chose for this run. Reads like a dict (``settings["lr"]``);
    ``mode`` is "full", "cpu" or "smoke"; ``full`` holds the full run's values, so
    ``reduced`` can say what this run shrank; ``notes`` are printed by the banner."""

    mode: str
    values: dict[str, Any]
    full: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def reduced(self) -> dict[str, tuple[Any, Any]]:
        """{setting: (full run's value, this run's value)} for every setting this run changed."""
        return {key: (self.full.get(key), value) for key, value in self.values.items()
                if self.full.get(key) != value}


def run_settings(full: dict[str, Any], cpu: dict[str, Any] | None = None,
                 smoke: dict[str, Any] | None = None) -> RunSettings:
    """Pick the settings for this run: ``full`` is the real homework on a GPU; ``cpu``
    overrides some of its values on a machine without a GPU (so the run finishes in minutes);
    ``smoke`` overrides them again for CI. Keys missing from an override keep the value of
    the level above. Pass the result to :func:`run_banner` and :func:`write_results`."""
    mode = run_mode()
    chosen = dict(full)
    if mode in ("cpu", "smoke"):
        chosen.update(cpu or {})
    if mode == "smoke":
        chosen.update(smoke or {})
    notes = []
    if os.environ.get(PRECISION_ENV):
        notes.append(f"precision {os.environ[PRECISION_ENV]} forced ({PRECISION_ENV})")
    return RunSettings(mode, chosen, dict(full), tuple(notes))


def run_banner(title: str | None = None, notebook: str | None = None,
               settings: RunSettings | None = None, **extra: Any) -> None:
    """Print what this run is: device, versions, mode, the ``settings`` and what was reduced,
    and for a course ``notebook`` the estimated time of its full run on a T4. Every notebook
    prints it first, so that a screenshot of any output says how it was made. (Returns
    nothing, so a notebook cell ending with it does not echo the text twice.)"""
    print(banner_text(title, notebook, settings, **extra))


def banner_text(title: str | None = None, notebook: str | None = None,
                settings: RunSettings | None = None, **extra: Any) -> str:
    """The text :func:`run_banner` prints."""
    import torchvision

    mode = run_mode()
    explain = {
        "full": "full run (the one-epoch homework on a GPU)" if not is_rehearsal() else
                f"REHEARSAL of the full run ({REHEARSAL_ENV}=1): full-mode settings, but every "
                f"training set cut to {REHEARSAL_BATCHES} batches and every test set to one; "
                f"outcomes are printed, not checked",
        "cpu": "reduced run: no GPU found, settings shrunk so it finishes in minutes",
        "smoke": f"smoke run ({SMOKE_ENV}=1): tiny data and few steps, for CI",
    }[mode]
    settings = settings if settings is not None else RunSettings(mode, {})
    reduced = settings.reduced
    if mode == "cpu" and settings.values and not reduced:
        explain = "CPU run: no GPU found; nothing reduced (the full settings are cheap here)"
    where = "Colab" if is_colab() else "Kaggle" if is_kaggle() else "local"
    lines = [f"=== {title} ===" if title else "=== run ===",
             f"device      : {device_name()} [{where}]",
             f"versions    : python {platform.python_version()}, torch {torch.__version__}, "
             f"torchvision {torchvision.__version__}",
             f"mode        : {explain}"]
    for key, value in {**settings, **extra}.items():
        full_run = f"  (full run: {reduced[key][0]!r})" if key in reduced else ""
        lines.append(f"  {key:<10}: {value!r}{full_run}")
    if notebook is not None:
        from .t4 import notebook_estimate

        estimate = notebook_estimate(notebook)
        lines.append(f"T4, full run: {estimate or 'no estimate yet (run make rehearse)'}")
    lines += [f"note        : {note}" for note in settings.notes]
    return "\n".join(lines)


def write_results(path: str | os.PathLike | None, results: dict[str, Any],
                  settings: RunSettings | None = None,
                  parameters: dict[str, Any] | None = None) -> None:
    """Write a notebook's headline numbers as JSON (papermill tests read them back); ``None``
    writes nothing. The run mode, the chosen ``settings`` and what they reduced, and the
    notebook's ``parameters`` (its papermill parameters cell) are added, so that a reader
    knows what produced the numbers. Returns nothing, so a notebook's last cell shows only
    the line printed here."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = settings if settings is not None else RunSettings(run_mode(), {})
    payload = {"mode": settings.mode, "parameters": dict(parameters or {}),
               "settings": dict(settings), "reduced": settings.reduced,
               "notes": list(settings.notes), **results}
    path.write_text(json.dumps(payload, indent=2, default=str, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    print(f"results written to {path}")


def outcomes_unchecked(data: Any = None) -> str | None:
    """Why this run cannot show the outcomes a notebook's text states (None: it can).

    Smoke runs and rehearsals train a few steps; a run that fell back to the bundled MNIST
    sample (``data.fallback``, as ``load_data`` records it) did not train on the dataset the
    text talks about."""
    if is_smoke():
        return "a smoke run: tiny data and a few steps"
    if is_rehearsal():
        return "a rehearsal: full-mode settings on a couple of batches"
    if data is not None and getattr(data, "fallback", None):
        return "this run used the bundled MNIST sample, not the dataset the text describes"
    return None


def claims_checked_here(as_described: bool = True) -> bool:
    """Whether this run checks the sentences that read the saved run without a GPU.

    Some of the text reads numbers only the saved CPU run measured (its timings, its small
    images, thresholds set from its seeds). A GPU run (full mode) prints its own numbers but
    does not check those sentences, and neither does a run whose experiment parameters were
    changed (``as_described=False``); it prints which of the two, in Korean and English."""
    if run_mode() == "full":
        print("이 설명은 GPU 없이 저장한 실행에서 잰 결과라 GPU에서는 확인하지 않습니다. / The text "
              "here reads the saved run without a GPU; it is not checked on a GPU.")
        return False
    if not as_described:
        print("실험 설정을 바꿔 실행했으므로 본문의 결과는 확인하지 않습니다. / The experiment's "
              "parameters were changed: the text's outcomes are not checked.")
        return False
    return True


def expect(holds: Any, claim: str, data: Any = None, details: Any = None) -> bool:
    """Back a sentence of the notebook's text with this run's outcome.

    Where the run can show it (cpu or full mode on the notebook's own dataset, see
    :func:`outcomes_unchecked`), a claim that does not hold stops the notebook with the claim
    and ``details`` (the numbers), so a rerun that disagrees is never saved as if it agreed.
    Elsewhere the claim and whether it held are printed with the reason it is not checked.
    Returns whether it held."""
    holds = bool(holds)
    why_not = outcomes_unchecked(data)
    if why_not is None:
        if not holds:
            raise AssertionError(f"this run does not show what the text says: {claim}"
                                 + (f"\n{details}" if details is not None else ""))
    else:
        print(f"{NOT_CHECKED_MARK}{why_not}] {claim}: {'holds' if holds else 'does NOT hold'} "
              f"in this run")
    return holds
