"""``html``: HTML pages of the executed notebooks (nbconvert's lab template), and an index."""

from __future__ import annotations

import argparse
from pathlib import Path

from .notebooks import ToolError, notebook_paths, notebook_title, read_notebook


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


def html_command(args: argparse.Namespace) -> int:
    export_html(args.out, notebook_paths(args.root, args.notebooks))
    return 0


def add_commands(commands) -> None:
    p = commands.add_parser("html", help="export the executed notebooks as HTML")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("notebooks", nargs="*")
    p.set_defaults(func=html_command)
