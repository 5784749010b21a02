"""``set-repo-url`` and ``sync``: the repository URL, and everything generated from it.

The repository URL and the git ref students install from live in one place,
``pyproject.toml``: ``[project.urls] Repository`` and ``[tool.course] ref``. ``set-repo-url``
edits exactly those two keys; ``sync`` copies them into every notebook's ``badges`` cell
(Open in Colab / Kaggle) and ``setup`` cell, and into the README between
``<!-- repo-links:start -->`` and ``<!-- repo-links:end -->``. It also writes
``metadata["course"]["id"]``, by which ``check`` knows which course notebook a submission is.
"""

from __future__ import annotations

import argparse
import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .notebooks import (
    BADGES_TAG,
    SETUP_TAG,
    ToolError,
    has_tag,
    notebook_paths,
    notebook_title,
    read_notebook,
    write_notebook,
)

README_START = "<!-- repo-links:start -->"
README_END = "<!-- repo-links:end -->"

COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
KAGGLE_BADGE = "https://kaggle.com/static/images/open-in-kaggle.svg"


# --------------------------------------------------------------------------------------
# The repository URL: pyproject.toml is the single place it lives
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RepoConfig:
    url: str  # https://github.com/OWNER/REPO
    ref: str  # branch or tag students install and open
    dist: str  # the pip distribution name, e.g. "course-utils"

    @property
    def slug(self) -> str:  # OWNER/REPO
        return self.url.removeprefix("https://github.com/")

    def blob(self, notebook: str) -> str:
        return f"https://github.com/{self.slug}/blob/{self.ref}/notebooks/{notebook}.ipynb"

    def colab(self, notebook: str) -> str:
        return ("https://colab.research.google.com/github/"
                f"{self.slug}/blob/{self.ref}/notebooks/{notebook}.ipynb")

    def kaggle(self, notebook: str) -> str:
        return f"https://kaggle.com/kernels/welcome?src={self.blob(notebook)}"

    @property
    def pip_spec(self) -> str:
        return f"{self.dist} @ git+{self.url}@{self.ref}"


def normalise_github_url(url: str) -> str:
    """https://github.com/OWNER/REPO for the spellings people paste (.git, ssh, trailing /)."""
    text = url.strip()
    match = re.fullmatch(
        r"(?:https?://(?:www\.)?github\.com/|git@github\.com:|ssh://git@github\.com/)"
        r"([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?", text)
    if not match:
        raise ToolError(
            f"not a GitHub repository URL: {url!r}. Colab and Kaggle open notebooks from "
            "GitHub, so the URL must look like https://github.com/OWNER/REPO.")
    return f"https://github.com/{match.group(1)}/{match.group(2)}"


def check_ref(ref: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._/-]+", ref) or ref.startswith(("-", "/")) or ".." in ref:
        raise ToolError(f"not a usable branch or tag name: {ref!r}")
    return ref


def load_toml(text: str) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads(text)


def read_repo_config(root: Path) -> RepoConfig:
    path = root / "pyproject.toml"
    if not path.is_file():
        raise ToolError(f"{path} not found: run from the repository or pass --root")
    data = load_toml(path.read_text(encoding="utf-8"))
    url = data.get("project", {}).get("urls", {}).get("Repository")
    if not url:
        raise ToolError(f"{path} has no [project.urls] Repository: run set-repo-url URL first")
    ref = data.get("tool", {}).get("course", {}).get("ref", "main")
    dist = data.get("project", {}).get("name", "course-utils")
    return RepoConfig(normalise_github_url(url), check_ref(ref), dist)


def edit_pyproject(text: str, url: str, ref: str) -> str:
    """``text`` with ``[project.urls] Repository = url`` and ``[tool.course] ref = ref``;
    tomlkit keeps every other line, comment and table as it was."""
    import tomlkit

    doc = tomlkit.parse(text)
    doc.setdefault("project", tomlkit.table()).setdefault("urls", tomlkit.table())
    doc["project"]["urls"]["Repository"] = url
    doc.setdefault("tool", tomlkit.table(is_super_table=True)).setdefault("course",
                                                                         tomlkit.table())
    doc["tool"]["course"]["ref"] = ref
    return tomlkit.dumps(doc)


def write_repo_config(root: Path, url: str, ref: str | None) -> RepoConfig:
    """Change ``[project.urls] Repository`` (and ``[tool.course] ref``) in pyproject.toml."""
    path = root / "pyproject.toml"
    old = read_repo_config(root)
    url = normalise_github_url(url)
    ref = check_ref(ref) if ref is not None else old.ref
    text = path.read_text(encoding="utf-8")
    new_text = edit_pyproject(text, url, ref)
    if new_text != text:
        path.write_text(new_text, encoding="utf-8")
    return RepoConfig(url, ref, old.dist)


# --------------------------------------------------------------------------------------
# Generated cells: badges, setup, README links
# --------------------------------------------------------------------------------------

def badges_source(config: RepoConfig, notebook: str) -> str:
    return (
        f"[![Open In Colab]({COLAB_BADGE})]({config.colab(notebook)})\n"
        f"[![Open in Kaggle]({KAGGLE_BADGE})]({config.kaggle(notebook)})"
    )


def setup_source(config: RepoConfig) -> str:
    """The first code cell: install on Colab/Kaggle when needed, then import.

    Locally (an editable install) the ``if`` is false and the cell only imports; IPython
    runs the indented ``%pip`` line only on Colab/Kaggle (ruff understands the magic).
    """
    return f"""\
# Colab/Kaggle: install course_utils from GitHub if it is missing (Kaggle: turn Internet on).
# Colab/Kaggle에서 course_utils가 없을 때만 설치합니다. 로컬에서는 import만 합니다.
import importlib.util
import os
from importlib.metadata import version

ON_COLAB_OR_KAGGLE = "COLAB_RELEASE_TAG" in os.environ or "KAGGLE_KERNEL_RUN_TYPE" in os.environ
if ON_COLAB_OR_KAGGLE and importlib.util.find_spec("course_utils") is None:
    %pip install -q "{config.pip_spec}"

import course_utils

print("course_utils", version("{config.dist}"))"""


def readme_block(config: RepoConfig, root: Path) -> str:
    rows = []
    for path in notebook_paths(root):
        name = path.stem
        title = notebook_title(read_notebook(path), name).replace("|", "\\|")
        rows.append(
            f"| [{title}](notebooks/{name}.ipynb) "
            f"| [![Open In Colab]({COLAB_BADGE})]({config.colab(name)}) "
            f"| [![Open in Kaggle]({KAGGLE_BADGE})]({config.kaggle(name)}) |")
    lines = [
        README_START,
        "<!-- generated by `python -m course_tools sync` from pyproject.toml -->",
        f"Repository: <{config.url}> (ref `{config.ref}`)",
        "",
        "| Notebook | Colab | Kaggle |",
        "|---|---|---|",
        *rows,
        "",
        "```bash",
        "# the whole course / 강의 전체",
        f"git clone --branch {config.ref} {config.url}.git",
        "# only the package, as the notebooks install it on Colab/Kaggle / 패키지만",
        f'pip install "{config.pip_spec}"',
        "```",
        README_END,
    ]
    return "\n".join(lines)


def sync_readme(config: RepoConfig, root: Path) -> str:
    """Rewrite the README between the markers. Returns 'updated', 'unchanged' or 'no markers'."""
    path = root / "README.md"
    if not path.is_file():
        return "no README"
    text = path.read_text(encoding="utf-8")
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return "no markers"
    new = text[:start] + readme_block(config, root) + text[end + len(README_END):]
    if new == text:
        return "unchanged"
    path.write_text(new, encoding="utf-8")
    return "updated"


def sync_notebook(nb: nbformat.NotebookNode, config: RepoConfig, name: str) -> list[str]:
    """Rewrite the ``badges`` and ``setup`` cells and ``metadata.course.id`` in place.

    Returns what changed (empty when the notebook was already in sync). A notebook without
    a tagged cell gets one at the top, where the conventions put it.
    """
    changes = []
    wanted = {BADGES_TAG: ("markdown", badges_source(config, name)),
              SETUP_TAG: ("code", setup_source(config))}
    for position, (tag, (kind, source)) in enumerate(wanted.items()):
        cell = next((c for c in nb.cells if has_tag(c, tag)), None)
        if cell is None:
            new = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
            cell = new(source, metadata={"tags": [tag]})
            nb.cells.insert(position, cell)
            changes.append(f"added {tag} cell")
        elif cell.source != source:
            cell.source = source
            changes.append(f"rewrote {tag} cell")
    course = nb.metadata.setdefault("course", {})
    if course.get("id") != name:
        course["id"] = name
        changes.append("set metadata.course.id")
    return changes


def sync_problems(nb: nbformat.NotebookNode, config: RepoConfig, name: str) -> list[str]:
    """What ``sync`` would change: badges/setup cells out of step with pyproject.toml."""
    changes = sync_notebook(copy.deepcopy(nb), config, name)
    return [f"{c} needed (run: python -m course_tools sync)" for c in changes]


def sync(root: Path, notebooks: Iterable[Path] | None = None, quiet: bool = False) -> RepoConfig:
    config = read_repo_config(root)
    for path in notebooks if notebooks is not None else notebook_paths(root):
        nb = read_notebook(path)
        changes = sync_notebook(nb, config, path.stem)
        if changes:
            write_notebook(nb, path)
        if not quiet:
            print(f"{path.name}: {', '.join(changes) if changes else 'up to date'}")
    readme = sync_readme(config, root)
    if not quiet:
        print(f"README.md: {readme}"
              + (f" (add {README_START} ... {README_END})" if readme == "no markers" else ""))
    return config


# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------

def set_repo_url_command(args: argparse.Namespace) -> int:
    config = write_repo_config(args.root, args.url, args.ref)
    print(f"pyproject.toml: Repository = {config.url}, ref = {config.ref}")
    sync(args.root)
    return 0


def sync_command(args: argparse.Namespace) -> int:
    sync(args.root)
    return 0


def add_commands(commands) -> None:
    p = commands.add_parser("set-repo-url", help="change the repository URL everywhere")
    p.add_argument("url")
    p.add_argument("--ref", default=None, help="branch or tag students open (default: keep)")
    p.set_defaults(func=set_repo_url_command)

    p = commands.add_parser("sync", help="rewrite badges/setup cells and README links from pyproject")
    p.set_defaults(func=sync_command)
