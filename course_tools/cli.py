"""``python -m course_tools <command>``: the command line.

Each command lives in its own module, which adds its subcommand to the parser with
``set_defaults(func=...)``; :func:`main` calls that function::

    run.py       run [--smoke] [--timeout S] [NOTEBOOK ...]
                     execute notebooks/ in place (papermill), clean them
                 run --rehearse [--precision P] [NOTEBOOK ...]
                     full-mode settings on two batches of data; copies go to build/rehearsal/
    clean.py     clean NOTEBOOK ...
                     strip papermill/widget metadata and machine paths
                 hygiene [NOTEBOOK ...]
                     list what a committed notebook must not carry
    homework.py  homework --out DIR [NOTEBOOK ...]
                     student versions: solutions become stubs
    grade.py     check SUBMISSION.ipynb [--smoke] [--timeout S] [--total-timeout S] [--expect NAME]
                     run a student's notebook, report each exercise
                 grade SUBMISSION.ipynb ... [--smoke]
                     check each; exit status 1 if any fails
    html.py      html --out DIR [NOTEBOOK ...]
                     HTML pages of the executed notebooks
    links.py     set-repo-url URL [--ref REF]
                     change the repository URL everywhere
                 sync
                     rewrite badges/setup cells/README from pyproject
    reference.py reference resnet-figure6 --data ROOT [--epochs N]
                     the longer runs behind 06's Figure 6 reference curves (resumable)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import clean, grade, homework, html, links, reference, run
from .notebooks import ToolError, default_root


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_tools",
        description="Instructor tools for the course notebooks.")
    parser.add_argument("--root", type=Path, default=None,
                        help="repository root (default: the checkout course_utils comes from)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (run, clean, homework, grade, html, links, reference):
        module.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.root = (args.root or default_root()).resolve()
    try:
        return args.func(args)
    except ToolError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
