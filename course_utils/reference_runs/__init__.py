"""Longer training runs shipped with the package, for effects a short run cannot show.

ResNet's Figure 6 has two halves. A notebook's few hundred steps show the first (a deeper
*plain* net trains worse than a shallower one). The second (the deeper *residual* net ends
better than the shallower one) needs many epochs. ``python -m course_tools reference
resnet-figure6`` trains the four CIFAR-10 networks for that long (resumable; on a CPU in the
background or on a GPU) and writes ``resnet_figure6.json`` here. Each run keeps one row per
epoch: ``train_error`` (measured on the augmented batches during the epoch, as the paper's
dashed lines), ``test_error`` (the whole test set after the epoch), ``train_loss`` and ``lr``.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

REFERENCE_NAMES = ("resnet_figure6",)


def load_reference(name: str) -> dict[str, Any]:
    """The reference run ``name`` (one of REFERENCE_NAMES) as written by course_tools."""
    if name not in REFERENCE_NAMES:
        raise ValueError(f"unknown reference run {name!r}; choose one of {REFERENCE_NAMES}")
    text = resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)


def final_errors(reference: dict[str, Any], key: str = "train_error") -> dict[str, float]:
    """Each finished run's last-epoch ``key`` (train_error or test_error), in percent. The
    command writes a network only when it has finished, and a reference run may not have
    reached every network yet (``missing_runs``)."""
    return {name: run["epochs"][-1][key] for name, run in reference["runs"].items()
            if len(run["epochs"]) == reference["settings"]["epochs"]}


def missing_runs(reference: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    """The networks of ``names`` the reference run has not finished (yet)."""
    done = final_errors(reference)
    return [name for name in names if name not in done]
