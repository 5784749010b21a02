"""``fit``'s checkpoint file: when to write it, what it holds, how a run continues from it.

    ckpt = Checkpoint("run.pt", every_steps=None)      # None: about every 30 s of training
    ckpt.save(parts, epoch=0, step=120, history=h, in_epoch=meter_state)
    progress = ckpt.load(parts)                          # {"epoch", "step", "history", "in_epoch"}

``parts`` names the objects whose ``state_dict`` a resumed run needs (model, optimizer,
scheduler, gradient scaler; None entries are skipped). The random number generators are saved
too, so that a resumed run continues bit for bit, also from inside an epoch: ``epoch`` counts
the finished epochs and ``in_epoch`` holds the unfinished one's running sums.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["Checkpoint", "CheckpointError", "CHECKPOINT_SECONDS"]

# Seconds of training between two checkpoints inside an epoch (every_steps=None).
CHECKPOINT_SECONDS = 30.0
FORMAT = "course_utils.fit/2"


class CheckpointError(RuntimeError):
    """A checkpoint file could not be read or does not fit the model."""


class Checkpoint:
    """One run's checkpoint file. ``every_steps``: write inside an epoch every that many steps
    (None: every CHECKPOINT_SECONDS seconds); fit also writes one after every epoch."""

    def __init__(self, path: str | os.PathLike, every_steps: int | None = None) -> None:
        if every_steps is not None and (isinstance(every_steps, bool)
                                        or not isinstance(every_steps, int) or every_steps < 1):
            raise ValueError(f"every_steps must be None or a whole number >= 1, got "
                             f"{every_steps!r}")
        self.path = Path(path)
        self.every_steps = every_steps
        self.written = False  # this run wrote or read the file (for the Ctrl-C message)
        self._last_write = time.perf_counter()

    def exists(self) -> bool:
        return self.path.exists()

    def due(self, steps_in_epoch: int) -> bool:
        """Is it time for a checkpoint inside the epoch?"""
        if self.every_steps is not None:
            return steps_in_epoch % self.every_steps == 0
        return time.perf_counter() - self._last_write >= CHECKPOINT_SECONDS

    def save(self, parts: dict[str, Any], **progress: Any) -> None:
        """Write ``parts``' states, the RNGs and ``progress`` (epoch, step, history, in_epoch)
        to a temporary file, then rename it: a crash mid-write never leaves a half-written
        checkpoint under the real name."""
        payload = {"format": FORMAT, "rng": _rng_state(), **progress,
                   **{name: part.state_dict() for name, part in parts.items()
                      if part is not None}}
        write_atomically(self.path, payload)
        self.written = True
        self._last_write = time.perf_counter()

    def load(self, parts: dict[str, Any]) -> dict[str, Any]:
        """Restore ``parts`` and the RNGs; returns the saved progress."""
        hint = (f"Delete {str(self.path)!r} to start over, or call fit(..., resume=False) to "
                f"overwrite it.")
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated, not a torch file, unpicklable...
            raise CheckpointError(
                f"Cannot read the checkpoint {str(self.path)!r} ({type(err).__name__}: {err}). "
                f"The file is damaged or not a fit() checkpoint. {hint}") from err
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise CheckpointError(f"{str(self.path)!r} is not a checkpoint written by this "
                                  f"version of fit(). {hint}")
        try:
            for name, part in parts.items():
                if part is not None and state.get(name) is not None:
                    part.load_state_dict(state[name])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(f"The checkpoint {str(self.path)!r} does not fit this "
                                  f"model/optimizer ({err}). {hint}") from err
        _set_rng_state(state["rng"])
        self.written = True
        return {key: state[key] for key in ("epoch", "step", "history", "in_epoch")}


def write_atomically(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _rng_state() -> dict[str, Any]:
    keys, pos, has_gauss, cached = np.random.get_state()[1:]
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             # NumPy's state as tensors/ints so that the file loads with weights_only=True.
             "numpy": (torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                       float(cached))}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
