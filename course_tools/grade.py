"""``check`` and ``grade``: run a student's submission and judge each exercise.

A submission is executed from the top in a throwaway folder, with the course's own check
cells (:func:`restore_checks`), a per-cell and a total time limit, and a kernel that inherits
only the variables in :data:`KERNEL_ENV_KEEP`. A check that calls ``check_homework``
(course_utils.homework) is graded on the grader's own measurement of the trained model,
taken in a cell added right after the check (:data:`PROBE_SOURCE`), never on a number the
notebook printed or stored.

Which course notebook a submission is: ``metadata["course"]["id"]`` (written by
``sync``/``homework``), else its Colab/Kaggle badge links, else its file name (editors drop
metadata now and then).

nbgrader's preprocessors, and where they fit:

* ``Execute`` (nbconvert's ExecutePreprocessor) runs the submission
  (:func:`_execute_submission`): errors are recorded and execution goes on; a cell over its
  time limit stops the run.
* ``OverwriteCells`` is what :func:`restore_checks` does for nbgrader courses, but it does not
  fit: it looks each cell up in nbgrader's gradebook database (``resources["nbgrader"]
  ["db_url"]``, filled by ``nbgrader generate_assignment`` in a course directory) by its
  ``metadata.nbgrader.grade_id``, and puts back the source of a cell locked there whose
  checksum changed. The course has no gradebook, and its notebooks carry no nbgrader metadata
  (exercises are marked by tags; ``homework`` keeps only tags, and Colab or Kaggle may drop
  even those, see :func:`retag_checks`): check cells are found by their ``check`` tag and
  compared with the course notebook's by source.
* ``ClearSolutions``/``ClearOutput`` make the student versions (:mod:`.homework`).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_utils.homework import PROBE_MARK

from .clean import clean_notebook
from .homework import Exercise, find_exercises
from .kernel import PYTHON_KERNEL, describe_exception, kernel_environment, python_kernel
from .notebooks import (
    CHECK_TAG,
    COURSE_NOTEBOOKS,
    ToolError,
    first_line,
    has_tag,
    notebook_paths,
    read_notebook,
    short,
    write_notebook,
)

# Notebooks write their headline numbers to RESULTS_JSON (a papermill parameter), which
# `check` points into its temporary folder.
RESULTS_PARAMETER = "RESULTS_JSON"

# Added after every check cell that calls check_homework: the grader's own measurement of
# the model the submission trained (course_utils.homework.grader_probe).
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

HOW_TO_SUBMIT = ("Submit the .ipynb file itself: on Colab File > Download > Download .ipynb, "
                 "on Kaggle File > Download notebook.")


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


def _error_output(cell) -> dict | None:
    return next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)


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
        retag_checks(nb, read_notebook(reference_path))  # some editors drop cell tags
        exercises = find_exercises(nb)
    if not exercises:
        return CheckReport(2, (
            f"Cannot check {submission.name}: it looks like the course notebook {name}, but it "
            f"has no cell tagged '{CHECK_TAG}', so there is nothing to grade (were the check "
            "cells deleted, or the cell tags lost?). Start again from the homework notebook."))
    notes = restore_checks(nb, exercises, reference_path)
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


def retag_checks(nb, reference) -> None:
    """Tag as ``check`` the cells whose source is one of the reference's check cells."""
    checks = {c.source.strip() for c in reference.cells
              if c.cell_type == "code" and has_tag(c, CHECK_TAG)}
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.strip() in checks:
            cell.metadata.setdefault("tags", []).append(CHECK_TAG)


def restore_checks(nb, exercises: list[Exercise], reference_path: Path):
    """Use the course's own check cells, so an edited check cannot pass a wrong answer.

    Returns notes for the report, or a CheckReport when the check cells do not pair up.
    (nbgrader's OverwriteCells does this from its gradebook: see the module's docstring.)
    """
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


def _submission_env(home: Path, smoke: bool, root: Path) -> dict[str, str]:
    """The kernel's whole environment: :data:`KERNEL_ENV_KEEP` of ours, a home in ``home``."""
    changes = {key: os.environ[key] for key in KERNEL_ENV_KEEP if key in os.environ}
    changes.update(HOME=str(home), TMPDIR=str(home / "tmp"),
                   XDG_CACHE_HOME=str(home / ".cache"), MPLCONFIGDIR=str(home / ".matplotlib"),
                   IPYTHONDIR=str(home / ".ipython"),
                   COURSE_SMOKE="1" if smoke else os.environ.get("COURSE_SMOKE", ""))
    # The notebooks look for ./data (beside them); in the temporary folder there is none, so
    # point $COURSE_DATA at the repository's data folder unless the caller chose one.
    local_data = [d for d in (root / "notebooks" / "data", root / "data") if d.is_dir()]
    if not os.environ.get("COURSE_DATA") and local_data:
        changes["COURSE_DATA"] = str(local_data[0])
    return kernel_environment(changes, inherit=False)


def _execute_submission(nb, name: str, workdir: Path, smoke: bool, timeout: float,
                        total_timeout: float, root: Path):
    """Run with nbgrader's Execute: errors are recorded and execution goes on; a cell over its
    time (or the total) stops everything. Returns the executed notebook (original cell order),
    the indices of the cells that ran, why it stopped early (or None), seconds, results."""
    try:
        from nbgrader.preprocessors import Execute
    except ImportError as error:
        raise ToolError("grading needs nbgrader, an instructor dependency: "
                        "pip install -e '.[instructor]' (make grade does it)") from error
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
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
                                   kernel_name=PYTHON_KERNEL, language="python")
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
    start = time.perf_counter()
    stopped = None
    kernel_log = workdir / "kernel.log"  # the kernel's own stderr, kept out of the report
    with kernel_log.open("wb") as log:
        executor = Execute(
            kernel_name=PYTHON_KERNEL,
            kernel_manager_class=python_kernel(_submission_env(home, smoke, root), stderr=log),
            timeout=int(timeout), timeout_func=cell_timeout, on_cell_start=on_start,
            # A cell over its time stops the run (Execute's default would interrupt it and go
            # on): the report then names that cell, and the cells after it were not run.
            interrupt_on_timeout=False,
            raise_on_iopub_timeout=False,  # output arriving late is no failure of the student's
            allow_errors=True, shutdown_kernel="immediate", record_timing=False,
            startup_timeout=120)
        try:
            executor.preprocess(run_nb, {"metadata": {"path": str(notebooks)}})
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
# Commands
# --------------------------------------------------------------------------------------

def check_command(args: argparse.Namespace) -> int:
    report = check_submission(args.submission, args.root, args.smoke, args.timeout,
                              args.total_timeout, args.save_executed, args.expect)
    print(report.text)
    return report.exit_code


def grade_command(args: argparse.Namespace) -> int:
    codes = []
    for submission in args.submissions:
        report = check_submission(submission, args.root, args.smoke, args.timeout,
                                  args.total_timeout)
        print(report.text + "\n", flush=True)
        codes.append(report.exit_code)
    failed = sum(code != 0 for code in codes)
    print(f"Graded {len(codes)} submission(s): {len(codes) - failed} passed, "
          f"{failed} did not.")
    return max(codes)


def add_commands(commands) -> None:
    p = commands.add_parser("check", help="execute a submission and report each exercise")
    p.add_argument("submission", type=Path)
    p.add_argument("--smoke", action="store_true", help="COURSE_SMOKE=1 for the kernel")
    p.add_argument("--timeout", type=float, default=1200, help="seconds per cell (1200)")
    p.add_argument("--total-timeout", type=float, default=3600, help="seconds in all (3600)")
    p.add_argument("--save-executed", type=Path, default=None,
                   help="also write the executed submission here (for a closer look)")
    p.add_argument("--expect", choices=COURSE_NOTEBOOKS, default=None,
                   help="refuse a submission of another course notebook")
    p.set_defaults(func=check_command)

    p = commands.add_parser(
        "grade", help="check several submissions (make grade SUBMISSIONS=...); exit 1 if any "
        "exercise fails, 2 if a file cannot be checked")
    p.add_argument("submissions", type=Path, nargs="+")
    p.add_argument("--smoke", action="store_true", help="COURSE_SMOKE=1 for the kernel")
    p.add_argument("--timeout", type=float, default=1200, help="seconds per cell (1200)")
    p.add_argument("--total-timeout", type=float, default=3600, help="seconds in all (3600)")
    p.set_defaults(func=grade_command)
