"""What every command shares: the course's notebook names and tags, finding, reading and
writing notebooks, and the error a user can fix (:class:`ToolError`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import nbformat

COURSE_NOTEBOOKS = (
    "01_design_patterns", "02_lenet", "03_alexnet", "04_vgg",
    "05_inception", "06_resnet", "07_densenet",
)

# Cell tags the notebooks and the commands agree on.
BADGES_TAG = "badges"  # the Open in Colab / Kaggle links (written by `sync`)
SETUP_TAG = "setup"  # the install-and-import cell (written by `sync`)
CHECK_TAG = "check"  # the cell that verifies an exercise (graded by `check`)
SOLUTION_TAG = "solution"  # added by `homework` to each cell whose solution was removed

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class ToolError(Exception):
    """A problem the user can fix; printed as one message, never as a traceback."""


def default_root() -> Path:
    """The repository this package was installed from (editable install), else the cwd."""
    here = Path(__file__).resolve().parents[1]
    if (here / "pyproject.toml").is_file() and (here / "notebooks").is_dir():
        return here
    return Path.cwd()


def notebook_paths(root: Path, names: Iterable[str] = ()) -> list[Path]:
    """The notebooks named on the command line, or every ``notebooks/*.ipynb``."""
    names = list(names)
    if not names:
        return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    paths = []
    for name in names:
        path = Path(name)
        if not path.suffix:
            path = path.with_suffix(".ipynb")
        if not path.exists() and not path.is_absolute():
            candidate = root / "notebooks" / path.name
            path = candidate if candidate.exists() else path
        if not path.is_file():
            raise ToolError(f"no such notebook: {name}")
        paths.append(path)
    return paths


def read_notebook(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def has_tag(cell, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


def notebook_title(nb: nbformat.NotebookNode, fallback: str) -> str:
    """The first ``# `` heading of the notebook's prose (the badges cell has none)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and not has_tag(cell, BADGES_TAG):
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def first_line(source: str, width: int = 60) -> str:
    """A cell as one line of a message: its first non-blank line, shortened."""
    line = next((s.strip() for s in source.splitlines() if s.strip()), "")
    return line if len(line) <= width else line[: width - 3] + "..."


def short(text: str, width: int = 300) -> str:
    """``text`` on one line, without terminal colours, shortened."""
    text = " ".join(ANSI.sub("", str(text)).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
