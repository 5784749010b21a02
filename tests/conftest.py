"""Session-wide settings for the tests.

The whole session runs in smoke mode (COURSE_SMOKE=1) unless the caller set the variable:
nbval's kernels inherit this process's environment, and a notebook test must be fast on
2 CPU cores. Unit tests that need the non-smoke behaviour unset it with monkeypatch.
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("COURSE_SMOKE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")  # no screen in CI; kernels inherit it too

REPO_ROOT = Path(__file__).resolve().parents[1]
# Real datasets kept beside the checkout on the development machine; a fresh clone has none.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="module")
def shared_weights():
    """Large random tensors reused between models (VGG's classifier is the same in all);
    see fake_weights.random_state_dict."""
    cache: dict[tuple, object] = {}
    yield cache
    cache.clear()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real MNIST and CIFAR-10) or skip the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not present at {SHARED_DATA}")
    return SHARED_DATA
