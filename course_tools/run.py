"""``run``: execute the course notebooks in place with papermill, clean and save them.

Notebooks run from ``notebooks/``, in a kernel of this interpreter (:mod:`.kernel`) whose
environment says how to run: ``COURSE_SMOKE`` for ``--smoke``, text progress bars (so that the
saved outputs hold the bar), no ``MPLBACKEND`` (so that figures are saved). ``--rehearse`` runs
the full mode's settings on two batches of data and leaves the notebooks untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
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

from .clean import clean_notebook
from .kernel import PYTHON_KERNEL, describe_exception, kernel_environment, python_kernel
from .links import sync
from .notebooks import (
    ToolError,
    first_line,
    notebook_paths,
    read_notebook,
    short,
    shown,
    write_notebook,
)

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
    changes = {SMOKE_ENV: "1" if smoke else os.environ.get(SMOKE_ENV), "MPLBACKEND": None,
               TEXT_PROGRESS_ENV: "1"}  # text progress bars: saved outputs hold the bar
    if rehearse:
        changes.update({SMOKE_ENV: None, REHEARSAL_ENV: "1"})
    if precision:
        changes[PRECISION_ENV] = precision
    rehearsal_dir = root / REHEARSAL_DIR
    plan: dict[str, list[dict]] = {}
    failed_dir = Path(tempfile.mkdtemp(prefix="course-run-"))
    started_all = time.perf_counter()
    for path in paths:
        out = failed_dir / path.name
        log = failed_dir / f"{path.stem}.kernel.log"
        parameters = {}
        notebook_changes = dict(changes)
        trainings = rehearsal_dir / f"{path.stem}.trainings.jsonl"
        if rehearse:  # results of a rehearsal are no measurement: keep them out of results/
            parameters = {"RESULTS_JSON": str(rehearsal_dir / "results" / f"{path.stem}.json"),
                          "RESULTS_DIR": str(rehearsal_dir / "results")}
            # the kernel records each training of the full run here (t4.py)
            trainings.parent.mkdir(parents=True, exist_ok=True)
            trainings.unlink(missing_ok=True)
            notebook_changes[t4.LOG_ENV] = str(trainings)
        start = time.perf_counter()
        try:
            with stderr_to(log):  # the kernel's warnings, not ours to show
                pm.execute_notebook(
                    str(path), str(out), kernel_name=PYTHON_KERNEL, cwd=str(path.parent),
                    parameters=parameters, progress_bar=False, log_output=False,
                    execution_timeout=timeout,
                    kernel_manager_class=python_kernel(kernel_environment(notebook_changes)))
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
    """Send file descriptor 2 (inherited by kernels) to ``path`` for a while: the kernel's
    warnings and papermill's log lines stay out of the one-line-per-notebook report."""
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


# --------------------------------------------------------------------------------------
# Command
# --------------------------------------------------------------------------------------

def run_command(args: argparse.Namespace) -> int:
    failures = run_notebooks(args.root, notebook_paths(args.root, args.notebooks), args.smoke,
                             args.timeout, not args.no_sync, args.rehearse, args.precision)
    return 1 if failures else 0


def add_commands(commands) -> None:
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
    p.set_defaults(func=run_command)
