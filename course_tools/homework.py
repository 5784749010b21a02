"""``homework``: student versions of the notebooks, and what an exercise is.

Homework regions are marked as in nbgrader: ``### BEGIN SOLUTION`` ... ``### END SOLUTION``
inside a code cell. ``homework`` runs nbgrader's ClearSolutions (the region becomes the stub)
and ClearOutput preprocessors, and tags each such cell ``solution``. The code cell tagged
``check`` after it verifies the result (:func:`find_exercises` pairs them; ``check`` grades
them).
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .clean import strip_metadata
from .notebooks import (
    CHECK_TAG,
    SOLUTION_TAG,
    ToolError,
    first_line,
    has_tag,
    notebook_paths,
    read_notebook,
    write_notebook,
)

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
MARKDOWN_STUB = ("YOUR ANSWER HERE",)


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


def write_student_versions(root: Path, out: Path, notebooks: list[Path]) -> None:
    if not notebooks:
        raise ToolError(f"no notebooks found in {root / 'notebooks'}")
    out.mkdir(parents=True, exist_ok=True)
    for path in notebooks:
        student, exercises = make_homework(read_notebook(path), path.stem)
        write_notebook(student, out / path.name)
        print(f"{out / path.name}: {exercises} exercise(s)")


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


# --------------------------------------------------------------------------------------
# Command
# --------------------------------------------------------------------------------------

def homework_command(args: argparse.Namespace) -> int:
    write_student_versions(args.root, args.out, notebook_paths(args.root, args.notebooks))
    return 0


def add_commands(commands) -> None:
    p = commands.add_parser("homework", help="write student versions (solutions become stubs)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("notebooks", nargs="*")
    p.set_defaults(func=homework_command)
