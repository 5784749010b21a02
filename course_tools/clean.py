"""``clean`` and ``hygiene``: what a committed notebook may (not) carry.

A committed notebook is executed top to bottom, without errors, and shows nothing of the
machine it ran on. ``clean`` removes what an execution leaves behind:

* metadata: nbconvert's ``ClearMetadataPreprocessor`` keeps only what the course uses
  (:data:`NOTEBOOK_METADATA_KEPT`, :data:`CELL_METADATA_KEPT`); papermill's parameters and
  cell status, nbclient's timings, widget state and editor settings go;
* progress bars: nbconvert's ``CoalesceStreamsPreprocessor`` merges stream outputs and drops
  text a carriage return overwrote, so a text progress bar is saved in its final state;
* widget views and machine paths in outputs: no library does these (nbstripout and
  nbconvert clear metadata or whole outputs, not parts of an output), so the code is here.

``hygiene`` lists what ``clean`` (or ``run``, or ``sync``) would still have to fix.
"""

from __future__ import annotations

import argparse
import os
import re
import site
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nbformat

from .links import read_repo_config, sync_problems
from .notebooks import (
    first_line,
    has_tag,
    notebook_paths,
    read_notebook,
    short,
    write_notebook,
)

# All the metadata the course uses: the kernel, the language (editors' highlighting) and
# which course notebook this is (``check`` reads it); on cells, only their tags.
NOTEBOOK_METADATA_KEPT = frozenset({"kernelspec", "language_info", "course"})
CELL_METADATA_KEPT = frozenset({"tags"})

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

# Outputs must not show where the notebook happened to run.
MACHINE_PATH = re.compile(r"(?<![\w.:/~$-])(?:/work/|/home/|/root/|/tmp/|/Users/|[A-Za-z]:\\)")


def strip_metadata(nb: nbformat.NotebookNode) -> None:
    """Keep only the metadata the course uses; save progress bars and widgets as text.

    Widget outputs keep only their text fallback: the widget state they refer to is not
    saved (``course_tools run`` makes progress bars print text instead, see
    ``course_utils.env.TEXT_PROGRESS_ENV``). In place.
    """
    from nbconvert.preprocessors import ClearMetadataPreprocessor, CoalesceStreamsPreprocessor

    clear = ClearMetadataPreprocessor(preserve_nb_metadata_mask=set(NOTEBOOK_METADATA_KEPT),
                                      preserve_cell_metadata_mask=set(CELL_METADATA_KEPT))
    clear.preprocess(nb, {})
    CoalesceStreamsPreprocessor().preprocess(nb, {})
    # The preprocessor writes plain dicts; the commands read metadata as NotebookNodes.
    nb.metadata = nbformat.from_dict(nb.metadata)
    for cell in nb.cells:
        if cell.cell_type != "code":  # it clears code cells only, and papermill marks them all
            cell.metadata = dict(clear.nested_filter(cell.metadata.items(), CELL_METADATA_KEPT))
        cell.metadata = nbformat.from_dict(cell.metadata)
        if cell.metadata.get("tags") == []:  # papermill adds empty ones
            del cell.metadata["tags"]
        for output in cell.get("outputs", []):
            data = output.get("data")
            if data and WIDGET_VIEW in data:
                data.pop(WIDGET_VIEW)
                data.setdefault("text/plain", "")


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
    """``nb`` as it may be committed (in place): see the module's docstring."""
    strip_metadata(nb)
    remove_machine_paths(nb, notebook_dir)
    return nb


def clean_notebooks(paths: list[Path]) -> None:
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


# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------

def clean_command(args: argparse.Namespace) -> int:
    clean_notebooks(notebook_paths(args.root, args.notebooks))
    return 0


def hygiene_command(args: argparse.Namespace) -> int:
    bad = 0
    config = read_repo_config(args.root)
    for path in notebook_paths(args.root, args.notebooks):
        nb = read_notebook(path)
        problems = hygiene_problems(nb) + sync_problems(nb, config, path.stem)
        bad += bool(problems)
        print(f"{path.name}: {'ok' if not problems else 'PROBLEMS'}")
        for problem in problems:
            print(f"  {problem}")
    return 1 if bad else 0


def add_commands(commands) -> None:
    p = commands.add_parser("clean", help="strip papermill/widget metadata and machine paths")
    p.add_argument("notebooks", nargs="+")
    p.set_defaults(func=clean_command)

    p = commands.add_parser("hygiene", help="report what committed notebooks must not carry")
    p.add_argument("notebooks", nargs="*")
    p.set_defaults(func=hygiene_command)
