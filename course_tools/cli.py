"""Instructor tools: regenerate notebooks, build homework, grade submissions, publish.

Run as ``python -m course_tools <command>``::

    run [--smoke] [--timeout S] [NOTEBOOK ...]   execute notebooks/ in place (papermill), clean them
    run --rehearse [--precision P] [NOTEBOOK ...]
                                                 full-mode settings on two batches of data; the
                                                 executed copies go to build/rehearsal/
    clean NOTEBOOK ...                           strip papermill/widget metadata and machine paths
    hygiene [NOTEBOOK ...]                       list what a committed notebook must not carry
    homework --out DIR [NOTEBOOK ...]            student versions: solutions become stubs
    check SUBMISSION.ipynb [--smoke] [--timeout S] [--total-timeout S] [--expect NAME]
                                                 run a student's notebook, report each exercise
    grade SUBMISSION.ipynb ... [--smoke]         check each; exit status 1 if any fails
    html --out DIR [NOTEBOOK ...]                HTML pages of the executed notebooks
    set-repo-url URL [--ref REF]                 change the repository URL everywhere
    sync                                         rewrite badges/setup cells/README from pyproject

Conventions these commands rely on (see the team's notebook conventions):

* The repository URL and the git ref students install from live in one place,
  ``pyproject.toml``: ``[project.urls] Repository`` and ``[tool.course] ref``.
  ``set-repo-url`` edits exactly those two keys; ``sync`` copies them into every
  notebook's ``badges`` cell (Open in Colab / Kaggle) and ``setup`` cell, and into the
  README between ``<!-- repo-links:start -->`` and ``<!-- repo-links:end -->``.
* Homework regions are marked as in nbgrader: ``### BEGIN SOLUTION`` ... ``### END SOLUTION``
  inside a code cell; ``homework`` uses nbgrader's ClearSolutions/ClearOutput preprocessors.
  The code cell tagged ``check`` after it verifies the result; a check that calls
  ``check_homework`` (course_utils.homework) is graded on the grader's own measurement of the
  trained model, taken in a cell it adds right after the check.
* A notebook knows which course notebook it is: ``metadata["course"]["id"]`` (e.g.
  ``"02_lenet"``), written by ``sync``/``homework``; the badge links and the file name are
  the fallbacks when a student's editor dropped the metadata.
* Notebooks run from ``notebooks/``; they write their headline numbers to ``RESULTS_JSON``
  (a papermill parameter), which ``check`` points into its temporary folder.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import site
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_utils import t4
from course_utils.env import (
    NOT_CHECKED_MARK,
    PRECISION_ENV,
    REHEARSAL_ENV,
    SMOKE_ENV,
    TEXT_PROGRESS_ENV,
)
from course_utils.homework import PROBE_MARK

# --------------------------------------------------------------------------------------
# Names shared with the notebooks
# --------------------------------------------------------------------------------------

COURSE_NOTEBOOKS = (
    "01_design_patterns", "02_lenet", "03_alexnet", "04_vgg",
    "05_inception", "06_resnet", "07_densenet",
)
BADGES_TAG = "badges"
SETUP_TAG = "setup"
PARAMETERS_TAG = "parameters"
CHECK_TAG = "check"
SOLUTION_TAG = "solution"  # added by `homework` to each cell whose solution was removed
RESULTS_PARAMETER = "RESULTS_JSON"

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
MARKDOWN_STUB = ("YOUR ANSWER HERE",)

README_START = "<!-- repo-links:start -->"
README_END = "<!-- repo-links:end -->"

COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
KAGGLE_BADGE = "https://kaggle.com/static/images/open-in-kaggle.svg"

# Outputs must not show where the notebook happened to run.
MACHINE_PATH = re.compile(r"(?<![\w.:/~$-])(?:/work/|/home/|/root/|/tmp/|/Users/|[A-Za-z]:\\)")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
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


def first_line(source: str, width: int = 60) -> str:
    line = next((s.strip() for s in source.splitlines() if s.strip()), "")
    return line if len(line) <= width else line[: width - 3] + "..."


def short(text: str, width: int = 300) -> str:
    text = " ".join(ANSI.sub("", str(text)).split())
    return text if len(text) <= width else text[: width - 3] + "..."


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


def _load_toml(text: str) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads(text)


def read_repo_config(root: Path) -> RepoConfig:
    path = root / "pyproject.toml"
    if not path.is_file():
        raise ToolError(f"{path} not found: run from the repository or pass --root")
    data = _load_toml(path.read_text(encoding="utf-8"))
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


def notebook_title(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown" and not has_tag(cell, BADGES_TAG):
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


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


def notebook_id(nb: nbformat.NotebookNode, filename: str | os.PathLike,
                known: Iterable[str] = COURSE_NOTEBOOKS) -> str | None:
    """Which course notebook is this? metadata, then badge links, then the file name."""
    known = list(known)
    course = nb.get("metadata", {}).get("course", {})
    if isinstance(course, dict) and course.get("id") in known:
        return course["id"]
    for cell in nb.get("cells", [])[:3]:
        if cell.get("cell_type") == "markdown":
            for name in re.findall(r"notebooks/(\d\d_\w+)\.ipynb", cell.get("source", "")):
                if name in known:
                    return name
    stem = Path(filename).stem
    return next((name for name in known if stem.startswith(name)), None)


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
# Homework: solutions out, stubs in (as nbgrader does)
# --------------------------------------------------------------------------------------

def _student_preprocessors():
    """nbgrader's ClearSolutions (BEGIN/END SOLUTION regions become the stub) and
    ClearOutput. ``enforce_metadata=False``: the course marks exercises by the delimiters and
    tags, not by nbgrader's cell metadata (students never see nbgrader)."""
    try:
        from nbgrader.preprocessors import ClearOutput, ClearSolutions
    except ImportError as error:
        raise ToolError("building student versions needs nbgrader, an instructor "
                        "dependency: pip install -e '.[instructor]' (make does it)") from error
    stub = "\n".join(CODE_STUB)
    return [ClearSolutions(enforce_metadata=False, code_stub={"python": stub},
                           text_stub=MARKDOWN_STUB[0]), ClearOutput()]


def make_homework(nb: nbformat.NotebookNode, name: str) -> tuple[nbformat.NotebookNode, int]:
    """The student version of a notebook and the number of exercises in it."""
    student = copy.deepcopy(nb)
    student.metadata.setdefault("kernelspec", {"name": "python3", "language": "python",
                                               "display_name": "Python 3"})
    regions = []
    for index, cell in enumerate(student.cells):
        begins, ends = cell.source.count(BEGIN_SOLUTION), cell.source.count(END_SOLUTION)
        if begins != ends:  # a half-removed solution is worse than none
            raise ToolError(f"{name}, cell {index + 1} (`{first_line(cell.source)}`): "
                            f"{begins} {BEGIN_SOLUTION} but {ends} {END_SOLUTION}")
        regions.append(cell.cell_type == "code" and begins > 0)
    resources: dict = {}
    for preprocessor in _student_preprocessors():
        student, resources = preprocessor.preprocess(student, resources)
    for cell, had_solution in zip(student.cells, regions, strict=True):
        if had_solution:
            tags = cell.metadata.setdefault("tags", [])
            if SOLUTION_TAG not in tags:
                tags.append(SOLUTION_TAG)
    strip_metadata(student)
    student.metadata.setdefault("course", {})["id"] = name
    return student, sum(regions)


def homework(root: Path, out: Path, notebooks: list[Path]) -> None:
    if not notebooks:
        raise ToolError(f"no notebooks found in {root / 'notebooks'}")
    out.mkdir(parents=True, exist_ok=True)
    for path in notebooks:
        student, exercises = make_homework(read_notebook(path), path.stem)
        write_notebook(student, out / path.name)
        print(f"{out / path.name}: {exercises} exercise(s)")


# --------------------------------------------------------------------------------------
# Clean and hygiene: what a committed notebook may (not) carry
# --------------------------------------------------------------------------------------

def strip_metadata(nb: nbformat.NotebookNode) -> None:
    """Remove papermill, widget and timing metadata (notebook and cell level).

    Widget outputs keep only their text fallback (``course_tools run`` makes progress bars
    print text instead, see ``env.TEXT_PROGRESS_ENV``). Consecutive stream outputs are merged
    and text overwritten by a carriage return dropped (nbconvert's CoalesceStreams), so a
    text progress bar is saved in its final state.
    """
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    coalesce = CoalesceStreamsPreprocessor()
    for index, cell in enumerate(nb.cells):
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)  # nbclient's per-cell timestamps
        if cell.metadata.get("tags") == []:
            del cell.metadata["tags"]
        for output in cell.get("outputs", []):
            data = output.get("data")
            if data and WIDGET_VIEW in data:
                data.pop(WIDGET_VIEW)
                data.setdefault("text/plain", "")
        if cell.cell_type == "code":
            coalesce.preprocess_cell(cell, {}, index)


def path_replacements(notebook_dir: Path) -> list[tuple[str, str]]:
    """(machine path, what to show instead), most specific first."""
    notebook_dir = notebook_dir.resolve()
    pairs: list[tuple[str, str]] = []
    site_dirs = set(site.getsitepackages()) | {sysconfig.get_paths()["purelib"]}
    if site.ENABLE_USER_SITE and site.getusersitepackages():
        site_dirs.add(site.getusersitepackages())
    pairs += [(d, "site-packages") for d in site_dirs]
    if os.environ.get("COURSE_DATA"):
        pairs.append((os.environ["COURSE_DATA"], "$COURSE_DATA"))
    pairs += [(str(notebook_dir), "."), (str(notebook_dir.parent), "..")]
    pairs.append((str(Path.home()), "~"))
    pairs.append((tempfile.gettempdir(), "$TMPDIR"))
    seen, unique = set(), []
    for path, shown in sorted(pairs, key=lambda p: -len(p[0])):
        path = path.rstrip("/")
        if len(path) > 1 and path not in seen:
            seen.add(path)
            unique.append((path, shown))
    return unique


def _replace_paths(text: str, pairs: list[tuple[str, str]]) -> str:
    for path, shown in pairs:
        inner = "" if shown == "." else shown + "/"
        text = re.sub(rf"(?<![\w./-]){re.escape(path)}/", lambda _, r=inner: r, text)
        text = re.sub(rf"(?<![\w./-]){re.escape(path)}(?![\w.-])", lambda _, r=shown: r, text)
    return text


def _output_texts(output) -> Iterator[tuple[dict, str]]:
    """(container, key) for every text field of an output that may show a path."""
    if output.get("output_type") == "stream":
        yield output, "text"
    for mime in list(output.get("data", {})):
        if mime.startswith("text/") or mime == "application/json":
            yield output["data"], mime
    if output.get("output_type") == "error":
        yield output, "evalue"
        yield output, "traceback"


def remove_machine_paths(nb: nbformat.NotebookNode, notebook_dir: Path) -> None:
    pairs = path_replacements(notebook_dir)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for container, key in _output_texts(output):
                value = container[key]
                if isinstance(value, str):
                    container[key] = _replace_paths(value, pairs)
                elif isinstance(value, list):
                    container[key] = [_replace_paths(v, pairs) if isinstance(v, str) else v
                                      for v in value]


def clean_notebook(nb: nbformat.NotebookNode, notebook_dir: Path) -> nbformat.NotebookNode:
    strip_metadata(nb)
    remove_machine_paths(nb, notebook_dir)
    return nb


def clean(paths: list[Path]) -> None:
    for path in paths:
        nb = read_notebook(path)
        before = nbformat.writes(nb)
        clean_notebook(nb, path.parent)
        if nbformat.writes(nb) != before:
            write_notebook(nb, path)
            print(f"{path.name}: cleaned")
        else:
            print(f"{path.name}: already clean")


def hygiene_problems(nb: nbformat.NotebookNode) -> list[str]:
    """Everything a committed notebook must not carry, one readable line per problem."""
    problems = []
    for key in ("papermill", "widgets"):
        if key in nb.metadata:
            problems.append(f"notebook metadata has '{key}' "
                            "(run: python -m course_tools clean)")
    expected = 1
    executed_any = any(c.cell_type == "code" and c.execution_count for c in nb.cells)
    for index, cell in enumerate(nb.cells, start=1):
        where = f"cell {index} (`{first_line(cell.source)}`)"
        for key in ("papermill", "execution"):
            if key in cell.metadata:
                problems.append(f"{where}: cell metadata has '{key}'")
        if has_tag(cell, "injected-parameters"):
            problems.append(f"{where}: papermill's injected-parameters cell")
        if cell.cell_type != "code":
            continue
        if cell.execution_count is None:
            if executed_any and cell.source.strip():
                problems.append(f"{where}: not executed")
        elif cell.execution_count != expected:
            problems.append(f"{where}: execution count {cell.execution_count}, expected "
                            f"{expected} (run the notebook top to bottom)")
            expected = cell.execution_count + 1
        else:
            expected += 1
        for output in cell.outputs:
            if output.get("output_type") == "error":
                problems.append(f"{where}: error output {output.get('ename')}: "
                                f"{short(output.get('evalue', ''), 120)}")
            if WIDGET_VIEW in output.get("data", {}):
                problems.append(f"{where}: widget output (run clean)")
            for container, key in _output_texts(output):
                value = container[key]
                text = "\n".join(value) if isinstance(value, list) else str(value)
                found = MACHINE_PATH.search(text)
                if found:
                    snippet = short(text[max(0, found.start() - 20): found.end() + 40], 80)
                    problems.append(f"{where}: machine path in output: ...{snippet}...")
                    break
    if not executed_any and any(c.cell_type == "code" and c.source.strip() for c in nb.cells):
        problems.append("notebook has not been executed (no execution counts)")
    return problems


def sync_problems(nb: nbformat.NotebookNode, config: RepoConfig, name: str) -> list[str]:
    """What ``sync`` would change: badges/setup cells out of step with pyproject.toml."""
    changes = sync_notebook(copy.deepcopy(nb), config, name)
    return [f"{c} needed (run: python -m course_tools sync)" for c in changes]


# --------------------------------------------------------------------------------------
# Executing notebooks
# --------------------------------------------------------------------------------------

@contextmanager
def current_python_kernel(env: dict[str, str] | None = None,
                          scrub: bool = False) -> Iterator[str]:
    """A ``python3`` kernel that runs *this* interpreter, whatever kernelspecs the user has.

    A kernelspec written to a temporary folder at the front of JUPYTER_PATH shadows user-
    or system-wide ``python3`` specs that could point at another environment. ``env``
    entries are set for the kernel too (``None`` values unset a variable); with ``scrub``
    the kernel gets ``env`` and nothing else of this process's environment.
    """
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="course-kernel-") as folder:
        if scrub:
            os.environ.clear()
        spec_dir = Path(folder) / "kernels" / "python3"
        spec_dir.mkdir(parents=True)
        try:  # ipykernel's own spec for this interpreter (argv[0] is sys.executable)
            from ipykernel.kernelspec import get_kernel_dict
            spec = get_kernel_dict()
        except ImportError:
            spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f",
                             "{connection_file}"], "language": "python"}
        spec["display_name"] = "Python 3 (ipykernel)"
        (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(
            [folder] + ([saved["JUPYTER_PATH"]] if saved.get("JUPYTER_PATH") and not scrub
                        else []))
        os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # quiet debugger warning
        for key, value in (env or {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        try:
            yield "python3"
        finally:
            os.environ.clear()
            os.environ.update(saved)


def _error_output(cell) -> dict | None:
    return next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)


REHEARSAL_DIR = Path("build") / "rehearsal"


def run_notebooks(root: Path, paths: list[Path], smoke: bool = False,
                  timeout: float | None = None, do_sync: bool = True, rehearse: bool = False,
                  precision: str | None = None) -> int:
    """Execute notebooks in place with papermill (cwd notebooks/), clean and save them.

    One line per notebook; a failure names the notebook and the cell and leaves the
    committed notebook untouched. Returns the number of failures.

    ``rehearse``: the full mode's settings on two batches of data (``COURSE_REHEARSAL=1``);
    the notebooks stay untouched, the executed copies and their results JSON go to
    build/rehearsal/, and each line says how many outcome claims were printed unchecked.
    ``precision`` forces ``precision="auto"``'s choice (``COURSE_PRECISION``), e.g. fp16 as
    on a T4.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    if not paths:
        raise ToolError(f"no notebooks found in {root / 'notebooks'}")
    if do_sync and not rehearse:
        sync(root, paths, quiet=True)
    failures = 0
    # MPLBACKEND=Agg (set by the test session) would keep figures out of the saved outputs.
    env = {SMOKE_ENV: "1" if smoke else os.environ.get(SMOKE_ENV), "MPLBACKEND": None,
           TEXT_PROGRESS_ENV: "1"}  # text progress bars: saved outputs hold the bar
    if rehearse:
        env.update({SMOKE_ENV: None, REHEARSAL_ENV: "1"})
    if precision:
        env[PRECISION_ENV] = precision
    rehearsal_dir = root / REHEARSAL_DIR
    plan: dict[str, list[dict]] = {}
    failed_dir = Path(tempfile.mkdtemp(prefix="course-run-"))
    started_all = time.perf_counter()
    with current_python_kernel(env) as kernel:
        for path in paths:
            out = failed_dir / path.name
            log = failed_dir / f"{path.stem}.kernel.log"
            parameters = {}
            if rehearse:  # results of a rehearsal are no measurement: keep them out of results/
                parameters = {"RESULTS_JSON": str(rehearsal_dir / "results" / f"{path.stem}.json"),
                              "RESULTS_DIR": str(rehearsal_dir / "results")}
            trainings = rehearsal_dir / f"{path.stem}.trainings.jsonl"
            if rehearse:  # the kernel records each training of the full run here (t4.py)
                trainings.parent.mkdir(parents=True, exist_ok=True)
                trainings.unlink(missing_ok=True)
                os.environ[t4.LOG_ENV] = str(trainings)
            start = time.perf_counter()
            try:
                with stderr_to(log):  # the kernel's warnings, not ours to show
                    pm.execute_notebook(
                        str(path), str(out), kernel_name=kernel, cwd=str(path.parent),
                        parameters=parameters, progress_bar=False, log_output=False,
                        execution_timeout=timeout)
            except PapermillExecutionError as error:
                why = (f"cell {error.cell_index + 1} (In [{error.exec_count}]: "
                       f"`{first_line(error.source)}`) raised {error.ename}: {short(error.evalue)}")
            except Exception as error:  # timeout, dead kernel, unreadable notebook
                why = describe_exception(error)
                running = _running_cell(out)
                if running is not None:
                    index, cell = running
                    why = f"cell {index + 1} (`{first_line(cell.source)}`) {why}"
            else:
                nb = clean_notebook(read_notebook(out), path.parent)
                saved_to = rehearsal_dir / path.name if rehearse else path
                write_notebook(nb, saved_to)
                extra = ""
                if rehearse:
                    plan[path.stem] = [json.loads(line) for line in
                                       trainings.read_text(encoding="utf-8").splitlines()]
                    extra = f"  ({_unchecked_summary(nb)})"
                print(f"{path.name:<28} {time.perf_counter() - start:7.1f} s  ok{extra}",
                      flush=True)
                continue
            failures += 1
            print(f"{path.name:<28} {time.perf_counter() - start:7.1f} s  FAILED")
            print(f"  {shown(path)}: {why}\n  executed copy (with the traceback): {out}",
                  flush=True)
    print(f"{'total':<28} {time.perf_counter() - started_all:7.1f} s  "
          f"{len(paths) - failures} ok, {failures} failed"
          + (f"; executed copies in {shown(rehearsal_dir)}" if rehearse else ""), flush=True)
    if plan:
        _write_plan(root, plan)
    if not failures:
        shutil.rmtree(failed_dir, ignore_errors=True)
    return failures


def _write_plan(root: Path, plan: dict[str, list[dict]]) -> None:
    """Merge the rehearsed notebooks' trainings into course_utils/full_runs.json (the run
    banner's T4 estimate and the memory test read it)."""
    path = root / "course_utils" / t4.PLAN_FILE
    merged = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    merged.update(plan)
    path.write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n", encoding="utf-8")
    print(f"full-run plan (T4 time and memory): {len(plan)} notebook(s) written to "
          f"{shown(path)}")


def _unchecked_summary(nb: nbformat.NotebookNode) -> str:
    """'N outcome claims printed, not checked (K did not hold)' for a rehearsed notebook."""
    lines = [line for cell in nb.cells if cell.cell_type == "code"
             for output in cell.get("outputs", []) if output.get("output_type") == "stream"
             for line in output.get("text", "").splitlines() if line.startswith(NOT_CHECKED_MARK)]
    failed = sum("does NOT hold" in line for line in lines)
    return f"{len(lines)} outcome claims printed, not checked; {failed} did not hold on 2 batches"


@contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """Send file descriptor 2 (inherited by kernels) to ``path`` for a while."""
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _running_cell(executed_path: Path):
    """(index, cell) of the cell papermill was running when execution stopped, if known:
    the last one it started (the cells after it are still 'pending')."""
    try:
        nb = read_notebook(executed_path)
    except Exception:
        return None
    started = [(index, cell) for index, cell in enumerate(nb.cells)
               if cell.cell_type == "code"
               and cell.metadata.get("papermill", {}).get("status", "pending") != "pending"]
    return started[-1] if started else None


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def describe_exception(error: BaseException) -> str:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    if isinstance(error, CellTimeoutError):
        limit = re.search(r"after (\d+) seconds", str(error))
        return "did not finish within the time limit" + (f" of {limit[1]} s" if limit else "")
    if isinstance(error, DeadKernelError):
        return "killed the kernel (out of memory, or the code exited the interpreter)"
    return f"failed: {type(error).__name__}: {short(error)}"


# --------------------------------------------------------------------------------------
# check: grade a student's submission
# --------------------------------------------------------------------------------------

# Added after every check cell that calls check_homework: the grader's own measurement of
# the model the submission trained (course_utils.homework.grader_probe), never a number the
# notebook printed or stored.
PROBE_SOURCE = """\
from course_utils.homework import grader_probe as _course_grader_probe
_course_grader_probe({name!r})"""
GRADED_CHECK = "check_homework("

# The only variables a submission's kernel inherits (grading runs student code): no
# instructor HOME, tokens or credentials. HOME, TMPDIR and the caches point into the
# throwaway folder.
KERNEL_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "CUDA_VISIBLE_DEVICES",
                   "OMP_NUM_THREADS", "MKL_NUM_THREADS", "COURSE_SMOKE", "COURSE_DATA",
                   "COURSE_CACHE", "SYSTEMROOT")


@dataclass
class Exercise:
    number: int
    solution: int | None  # cell index in the submission (0-based), if identified
    check: int
    title: str


def find_exercises(nb: nbformat.NotebookNode) -> list[Exercise]:
    """Each ``check`` cell with the solution cell before it.

    The solution cell is the nearest code cell tagged ``solution`` (homework versions),
    holding a solution region (the instructor's version) or a stub; otherwise simply the
    code cell just before the check.
    """
    exercises, previous_check = [], -1
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not has_tag(cell, CHECK_TAG):
            continue
        code_before = [i for i in range(previous_check + 1, index)
                       if nb.cells[i].cell_type == "code"]
        marked = [i for i in code_before
                  if has_tag(nb.cells[i], SOLUTION_TAG) or BEGIN_SOLUTION in nb.cells[i].source
                  or "raise NotImplementedError" in nb.cells[i].source]
        solution = (marked or code_before or [None])[-1]
        title = ""
        for i in range(index, -1, -1):
            heading = [ln for ln in nb.cells[i].source.splitlines() if ln.startswith("#")] \
                if nb.cells[i].cell_type == "markdown" else []
            if heading:
                title = heading[-1].lstrip("#").strip()
                break
        exercises.append(Exercise(len(exercises) + 1, solution, index, title))
        previous_check = index
    return exercises


@dataclass
class Outcome:
    passed: bool
    reason: str


def judge(nb: nbformat.NotebookNode, exercise: Exercise, ran: set[int],
          measured: dict[int, dict] | None = None) -> Outcome:
    """Pass/fail for one exercise of an executed notebook, with the reason.

    A graded check (one that calls ``check_homework``) passes only when the grader's own
    measurement after it (``measured[check cell]``) passed too."""
    if exercise.solution is not None:
        error = _error_output(nb.cells[exercise.solution])
        if error is not None:
            if error.get("ename") == "NotImplementedError":
                return Outcome(False,
                               "not done: the solution cell still raises NotImplementedError")
            return Outcome(False, f"the solution cell raised {error.get('ename')}: "
                                  f"{short(error.get('evalue', ''))}")
    if exercise.check not in ran:
        return Outcome(False, "the check cell was never run (execution stopped earlier)")
    graded = GRADED_CHECK in nb.cells[exercise.check].source
    found = (measured or {}).get(exercise.check)
    if graded and found is not None and not found.get("passed"):
        return Outcome(False, "the grader's measurement failed: "
                              + " | ".join(short(p, 400) for p in found.get("problems", [])))
    error = _error_output(nb.cells[exercise.check])
    if error is not None:
        return Outcome(False, f"the check failed with {error.get('ename')}: "
                              f"{short(error.get('evalue', ''), 600)}")
    if graded and found is None:
        return Outcome(False, "the grader could not measure the trained model (its probe "
                              "after the check did not run)")
    return Outcome(True, "the check passed" + (" and the grader's measurement agrees"
                                               if graded else ""))


def _measurement_line(found: dict) -> str:
    if "test_acc" not in found:
        return "    measured by the grader: nothing to measure (no HomeworkRun)"
    return (f"    measured by the grader: test accuracy {found['test_acc']:.2%} on "
            f"{found.get('test_images') or '?'} test images ("
            + (f"minimum {found['minimum']:.1%}" if found.get("minimum") is not None
               else "no minimum in this mode") + "), "
            f"{found['steps']} optimizer steps (one epoch: {found['expected_steps']}), "
            f"{found['images']:,} training images in train mode, {found['device']}")


def _read_submission(path: Path) -> nbformat.NotebookNode:
    """The submission as a notebook, or a ToolError that says what the file is instead."""
    if not path.exists():
        raise ToolError("there is no such file.")
    if not path.is_file():
        raise ToolError("it is a folder, not a notebook file.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ToolError("it is not a Jupyter notebook (it is a binary file, not text).") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ToolError("it is not a Jupyter notebook (the file is not valid JSON: "
                        f"{error.msg} at line {error.lineno}).") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise ToolError("it is JSON but not a Jupyter notebook (it has no list of cells).")
    try:
        return nbformat.reads(text, as_version=4)
    except Exception as error:
        raise ToolError(f"it is not a valid Jupyter notebook ({short(error, 200)}).") from None


HOW_TO_SUBMIT = ("Submit the .ipynb file itself: on Colab File > Download > Download .ipynb, "
                 "on Kaggle File > Download notebook.")


@dataclass
class CheckReport:
    exit_code: int
    text: str


def check_submission(submission: Path, root: Path, smoke: bool = False,
                     timeout: float = 1200, total_timeout: float = 3600,
                     save_executed: Path | None = None, expect: str | None = None) -> CheckReport:
    """Execute a submission in a temporary folder and judge each exercise.

    Exit codes: 0 every exercise passed and no cell failed, 1 something failed,
    2 the file could not be checked at all (not a notebook, not a course notebook, not the
    ``expect``-ed one).
    """
    try:
        nb = _read_submission(submission)
    except ToolError as error:
        return CheckReport(2, f"Cannot check {submission.name}: {error} {HOW_TO_SUBMIT}")
    known = sorted(set(COURSE_NOTEBOOKS) | {p.stem for p in notebook_paths(root)})
    name = notebook_id(nb, submission, known)
    if name is None:
        return CheckReport(2, (
            f"Cannot check {submission.name}: it is a notebook, but not one of the course "
            f"notebooks ({', '.join(known)}); neither its metadata (course.id), its Colab/"
            "Kaggle badge links nor its file name say which one it is. Start from the course "
            "notebook you were given and submit that file."))
    if expect is not None and name != expect:
        return CheckReport(2, (
            f"Cannot check {submission.name}: this is the course notebook {name}, but "
            f"{expect} was expected. Submit the notebook of this homework."))
    reference_path = root / "notebooks" / f"{name}.ipynb"
    exercises = find_exercises(nb)
    if not exercises and reference_path.is_file():
        _retag_checks(nb, read_notebook(reference_path))  # some editors drop cell tags
        exercises = find_exercises(nb)
    if not exercises:
        return CheckReport(2, (
            f"Cannot check {submission.name}: it looks like the course notebook {name}, but it "
            f"has no cell tagged '{CHECK_TAG}', so there is nothing to grade (were the check "
            "cells deleted, or the cell tags lost?). Start again from the homework notebook."))
    notes = _restore_checks(nb, exercises, reference_path)
    if isinstance(notes, CheckReport):
        return notes
    try:  # editors write slightly off-schema files now and then; run them anyway
        nbformat.validate(nb)
    except Exception as error:
        notes.append(f"the file does not quite follow the notebook format "
                     f"({short(error, 120)}); checked anyway")

    workdir = Path(tempfile.mkdtemp(prefix="course-check-"))
    try:
        executed, ran, stopped, seconds, results = _execute_submission(
            nb, name, workdir, smoke, timeout, total_timeout, root)
        if save_executed is not None:
            write_notebook(clean_notebook(copy.deepcopy(executed), workdir / "notebooks"),
                           save_executed)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return _report(submission, name, executed, exercises, ran, stopped, seconds, results,
                   smoke, notes)


def _retag_checks(nb, reference) -> None:
    """Tag as ``check`` the cells whose source is one of the reference's check cells."""
    checks = {c.source.strip() for c in reference.cells
              if c.cell_type == "code" and has_tag(c, CHECK_TAG)}
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.strip() in checks:
            cell.metadata.setdefault("tags", []).append(CHECK_TAG)


def _restore_checks(nb, exercises: list[Exercise], reference_path: Path):
    """Use the course's own check cells, so an edited check cannot pass a wrong answer."""
    if not reference_path.is_file():
        return []
    reference = read_notebook(reference_path)
    checks = [c for c in reference.cells if c.cell_type == "code" and has_tag(c, CHECK_TAG)]
    if len(checks) != len(exercises):
        return CheckReport(2, (
            f"Cannot grade {reference_path.stem}: the submission has {len(exercises)} "
            f"check cell(s), the course notebook has {len(checks)}. A check cell was deleted or "
            "added, or the submission is from an older version of the notebook. Copy your "
            "solutions into a fresh copy of the homework notebook and submit that."))
    notes = []
    for exercise, original in zip(exercises, checks, strict=True):
        cell = nb.cells[exercise.check]
        if cell.source.strip() != original.source.strip():
            cell.source = original.source
            notes.append(f"exercise {exercise.number}: the check cell was edited; the "
                         "course's original check was used")
    return notes


def _execute_submission(nb, name: str, workdir: Path, smoke: bool, timeout: float,
                        total_timeout: float, root: Path):
    """Run with nbclient: errors are recorded and execution goes on; a cell over its time
    (or the total) stops everything. Returns the executed notebook (original cell order),
    the indices of the cells that ran, why it stopped early (or None), seconds, results."""
    from nbclient import NotebookClient
    from papermill.parameterize import parameterize_notebook

    notebooks = workdir / "notebooks"
    notebooks.mkdir(parents=True)
    results_path = notebooks / "results" / f"{name}.json"
    nb = copy.deepcopy(nb)
    for index, cell in enumerate(nb.cells):
        cell.metadata["course_index"] = index
        cell.metadata.setdefault("tags", [])  # papermill looks tags up without a default
    nb.metadata["papermill"] = {}  # parameterize_notebook records the parameters there
    run_nb = parameterize_notebook(nb, {RESULTS_PARAMETER: str(results_path)},
                                   kernel_name="python3", language="python")
    # The grader's measurement right after each graded check cell: known even when a later
    # cell hangs and the kernel has to be stopped.
    cells = []
    for cell in run_nb.cells:
        cells.append(cell)
        if has_tag(cell, CHECK_TAG) and GRADED_CHECK in cell.source:
            probe = nbformat.v4.new_code_cell(PROBE_SOURCE.format(name=name))
            probe.metadata["course_probe_for"] = cell.metadata["course_index"]
            cells.append(probe)
    run_nb.cells = cells
    write_notebook(run_nb, notebooks / f"{name}.ipynb")

    deadline = time.monotonic() + total_timeout
    state = {"cell": None, "limit": "per-cell"}

    def cell_timeout(cell) -> int:
        remaining = deadline - time.monotonic()
        state["limit"] = "total" if remaining < timeout else "per-cell"
        return max(1, int(min(timeout, remaining)))

    def on_start(cell, cell_index, **_):
        state["cell"] = cell_index

    home = workdir / "home"
    (home / "tmp").mkdir(parents=True)
    env = {key: os.environ[key] for key in KERNEL_ENV_KEEP if key in os.environ}
    env.update(HOME=str(home), TMPDIR=str(home / "tmp"), XDG_CACHE_HOME=str(home / ".cache"),
               MPLCONFIGDIR=str(home / ".matplotlib"), IPYTHONDIR=str(home / ".ipython"),
               COURSE_SMOKE="1" if smoke else os.environ.get("COURSE_SMOKE", ""))
    # The notebooks look for ./data (beside them); in the temporary folder there is none, so
    # point $COURSE_DATA at the repository's data folder unless the caller chose one.
    local_data = [d for d in (root / "notebooks" / "data", root / "data") if d.is_dir()]
    if not os.environ.get("COURSE_DATA") and local_data:
        env["COURSE_DATA"] = str(local_data[0])
    client = NotebookClient(
        run_nb, timeout=int(timeout), timeout_func=cell_timeout, allow_errors=True,
        interrupt_on_timeout=False, shutdown_kernel="immediate", record_timing=False,
        startup_timeout=120, resources={"metadata": {"path": str(notebooks)}},
        on_cell_start=on_start)
    start = time.perf_counter()
    stopped = None
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    kernel_log = workdir / "kernel.log"  # the kernel's own stderr, kept out of the report
    with current_python_kernel(env, scrub=True) as kernel, kernel_log.open("wb") as log:
        client.kernel_name = kernel
        try:
            client.execute(stderr=log)
        except CellTimeoutError:
            limit = (f"the total time limit of {total_timeout:g} s" if state["limit"] == "total"
                     else f"the per-cell time limit of {timeout:g} s")
            stopped = ("timeout", state["cell"], f"did not finish within {limit}")
        except DeadKernelError:
            stopped = ("dead", state["cell"], "killed the Python kernel (out of memory, or "
                       "the code exited the interpreter)")
        except Exception as error:  # a kernel that would not start, etc.
            lines = kernel_log.read_text(errors="replace").strip().splitlines()
            last = f" (kernel: {short(lines[-1], 200)})" if lines else ""
            stopped = ("error", state["cell"], describe_exception(error) + last)
    seconds = time.perf_counter() - start

    measured = {}  # submission cell index of the check -> the grader's measurement
    for cell in run_nb.cells:
        if "course_probe_for" not in cell.metadata:
            continue
        for output in cell.get("outputs", []):
            text = output.get("text", "")
            if output.get("output_type") == "stream" and PROBE_MARK in text:
                try:
                    found = json.loads(text.split(PROBE_MARK, 1)[1].strip().splitlines()[0])
                except (json.JSONDecodeError, IndexError):
                    continue
                measured[cell.metadata["course_probe_for"]] = found
    results = {"measured": measured}

    # Back to the submission's own cells (no injected parameters, no probe).
    executed = copy.deepcopy(run_nb)
    executed.cells = [c for c in run_nb.cells if "course_index" in c.metadata]
    ran = set()
    position = {id(c): c.metadata["course_index"] for c in executed.cells}
    stop_cell = run_nb.cells[stopped[1]] if stopped and stopped[1] is not None else None
    stopped_at = stop_cell.metadata.get("course_index") if stop_cell is not None else None
    for cell in executed.cells:
        if cell.cell_type == "code" and (cell.get("execution_count") is not None
                                         or cell.get("outputs")):
            ran.add(position[id(cell)])
        cell.metadata.pop("course_index", None)
    if stopped_at is not None:
        ran.discard(stopped_at)
    stopped = (stopped[0], stopped_at, stopped[2]) if stopped else None
    return executed, ran, stopped, seconds, results


def _report(submission, name, executed, exercises, ran, stopped, seconds, results, smoke,
            notes) -> CheckReport:
    lines = [f"Checked {submission.name} as course notebook {name} "
             f"({'smoke' if smoke else 'normal'} run, {seconds:.0f} s)."]
    all_passed = True
    exercise_cells = set()
    measured = results.get("measured", {})
    outcomes = [judge(executed, exercise, ran, measured) for exercise in exercises]
    for exercise, outcome in zip(exercises, outcomes, strict=True):
        all_passed &= outcome.passed
        exercise_cells |= {exercise.check, exercise.solution}
        title = f" \u00ab{exercise.title}\u00bb" if exercise.title else ""
        cell = exercise.solution if exercise.solution is not None else exercise.check
        where = f"cell {cell + 1}"
        lines.append(f"  exercise {exercise.number}{title} ({where}): "
                     f"{'PASSED' if outcome.passed else 'FAILED'} - {outcome.reason}")
        if exercise.check in measured:
            lines.append(_measurement_line(measured[exercise.check]))
    lines += [f"  note: {n}" for n in notes]
    if stopped:
        kind, index, why = stopped
        if index is None:
            lines.append(f"  stopped: the notebook could not be run: {why}")
        else:
            source = first_line(executed.cells[index].source)
            lines.append(f"  stopped: cell {index + 1} (`{source}`) {why}; the cells after it "
                         "were not run.")
        all_passed = False
    other = [(i, _error_output(c)) for i, c in enumerate(executed.cells)
             if i not in exercise_cells and _error_output(c) is not None]
    if other:
        all_passed = False
        index, error = other[0]
        more = f" (and {len(other) - 1} more cell(s) after it)" if len(other) > 1 else ""
        source = first_line(executed.cells[index].source)
        lines.append(f"  other errors: cell {index + 1} (`{source}`) raised {error.get('ename')}: "
                     f"{short(error.get('evalue', ''), 200)}{more}")
    passed = sum(outcome.passed for outcome in outcomes)
    lines.append(f"Result: {passed} of {len(exercises)} exercise(s) passed"
                 + ("." if all_passed else "; see above."))
    return CheckReport(0 if all_passed else 1, "\n".join(lines))


# --------------------------------------------------------------------------------------
# html
# --------------------------------------------------------------------------------------

def export_html(out: Path, paths: list[Path]) -> list[Path]:
    from nbconvert import HTMLExporter

    if not paths:
        raise ToolError("no notebooks to export")
    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    written, links = [], []
    for path in paths:
        nb = read_notebook(path)
        if not any(c.cell_type == "code" and c.execution_count for c in nb.cells):
            print(f"warning: {path.name} has not been executed; run the notebooks first")
        body, _ = exporter.from_notebook_node(
            nb, resources={"metadata": {"path": str(path.parent), "name": path.stem}})
        target = out / f"{path.stem}.html"
        target.write_text(body, encoding="utf-8")
        written.append(target)
        links.append(f'<li><a href="{target.name}">{notebook_title(nb, path.stem)}</a></li>')
        print(target)
    index = out / "index.html"
    index.write_text("<!doctype html>\n<meta charset=\"utf-8\">\n<title>Notebooks</title>\n"
                     f"<ul>\n{chr(10).join(links)}\n</ul>\n", encoding="utf-8")
    return written


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_tools",
        description="Instructor tools for the course notebooks.")
    parser.add_argument("--root", type=Path, default=None,
                        help="repository root (default: the checkout course_utils comes from)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("run", help="execute notebooks in place with papermill and clean them")
    p.add_argument("notebooks", nargs="*")
    p.add_argument("--smoke", action="store_true", help="COURSE_SMOKE=1 for the kernel")
    p.add_argument("--timeout", type=float, default=None, help="seconds per cell (default none)")
    p.add_argument("--no-sync", action="store_true",
                   help="do not rewrite the badges/setup cells from pyproject.toml first")
    p.add_argument("--rehearse", action="store_true",
                   help=f"{REHEARSAL_ENV}=1: full-mode settings on two batches; the notebooks "
                   f"stay untouched, executed copies go to {REHEARSAL_DIR}/")
    p.add_argument("--precision", choices=("fp16", "bf16", "fp32"), default=None,
                   help=f"{PRECISION_ENV}: force the precision (fp16: a T4's path, with the "
                   "gradient scaler)")

    p = commands.add_parser("clean", help="strip papermill/widget metadata and machine paths")
    p.add_argument("notebooks", nargs="+")

    p = commands.add_parser("hygiene", help="report what committed notebooks must not carry")
    p.add_argument("notebooks", nargs="*")

    p = commands.add_parser("homework", help="write student versions (solutions become stubs)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("notebooks", nargs="*")

    p = commands.add_parser("check", help="execute a submission and report each exercise")
    p.add_argument("submission", type=Path)
    p.add_argument("--smoke", action="store_true", help="COURSE_SMOKE=1 for the kernel")
    p.add_argument("--timeout", type=float, default=1200, help="seconds per cell (1200)")
    p.add_argument("--total-timeout", type=float, default=3600, help="seconds in all (3600)")
    p.add_argument("--save-executed", type=Path, default=None,
                   help="also write the executed submission here (for a closer look)")
    p.add_argument("--expect", choices=COURSE_NOTEBOOKS, default=None,
                   help="refuse a submission of another course notebook")

    p = commands.add_parser(
        "grade", help="check several submissions (make grade SUBMISSIONS=...); exit 1 if any "
        "exercise fails, 2 if a file cannot be checked")
    p.add_argument("submissions", type=Path, nargs="+")
    p.add_argument("--smoke", action="store_true", help="COURSE_SMOKE=1 for the kernel")
    p.add_argument("--timeout", type=float, default=1200, help="seconds per cell (1200)")
    p.add_argument("--total-timeout", type=float, default=3600, help="seconds in all (3600)")

    p = commands.add_parser("html", help="export the executed notebooks as HTML")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("notebooks", nargs="*")

    p = commands.add_parser("set-repo-url", help="change the repository URL everywhere")
    p.add_argument("url")
    p.add_argument("--ref", default=None, help="branch or tag students open (default: keep)")

    commands.add_parser("sync", help="rewrite badges/setup cells and README links from pyproject")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    root = (args.root or default_root()).resolve()
    try:
        if args.command == "run":
            return 1 if run_notebooks(root, notebook_paths(root, args.notebooks), args.smoke,
                                      args.timeout, not args.no_sync, args.rehearse,
                                      args.precision) else 0
        if args.command == "clean":
            clean(notebook_paths(root, args.notebooks))
        elif args.command == "hygiene":
            bad = 0
            config = read_repo_config(root)
            for path in notebook_paths(root, args.notebooks):
                nb = read_notebook(path)
                problems = hygiene_problems(nb) + sync_problems(nb, config, path.stem)
                bad += bool(problems)
                print(f"{path.name}: {'ok' if not problems else 'PROBLEMS'}")
                for problem in problems:
                    print(f"  {problem}")
            return 1 if bad else 0
        elif args.command == "homework":
            homework(root, args.out, notebook_paths(root, args.notebooks))
        elif args.command == "check":
            report = check_submission(args.submission, root, args.smoke, args.timeout,
                                      args.total_timeout, args.save_executed, args.expect)
            print(report.text)
            return report.exit_code
        elif args.command == "grade":
            codes = []
            for submission in args.submissions:
                report = check_submission(submission, root, args.smoke, args.timeout,
                                          args.total_timeout)
                print(report.text + "\n", flush=True)
                codes.append(report.exit_code)
            failed = sum(code != 0 for code in codes)
            print(f"Graded {len(codes)} submission(s): {len(codes) - failed} passed, "
                  f"{failed} did not.")
            return max(codes)
        elif args.command == "html":
            export_html(args.out, notebook_paths(root, args.notebooks))
        elif args.command == "set-repo-url":
            config = write_repo_config(root, args.url, args.ref)
            print(f"pyproject.toml: Repository = {config.url}, ref = {config.ref}")
            sync(root)
        elif args.command == "sync":
            sync(root)
    except ToolError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
