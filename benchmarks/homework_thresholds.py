"""Measure the homework's reference solution over several seeds, per run mode.

Each notebook is cut right after its homework (setup ... solution cell), the grader's own
measurement (``course_utils.homework.grader_probe``) is appended, and the result is executed
with papermill for every seed. The check cell itself is left out, so that a seed below the
current threshold is still reported. The table goes to benchmarks/homework_thresholds.md
(appended, with the CPU, the mode and the command); course_utils.minimums.MINIMUMS is set
by hand from it, below the worst seed with a margin.

    python benchmarks/homework_thresholds.py --seeds 0 1 2 [--smoke] [NOTEBOOK ...]

Run from the repository root; COURSE_DATA selects the data (the smoke mode of CI has none and
falls back to the bundled MNIST sample).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import papermill

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from course_tools.kernel import PYTHON_KERNEL, python_kernel  # noqa: E402
from course_utils.env import cpu_name  # noqa: E402
from course_utils.homework import PROBE_MARK  # noqa: E402
from course_utils.minimums import minimum_for  # noqa: E402

NOTEBOOKS = ["01_design_patterns", "02_lenet", "03_alexnet", "04_vgg", "05_inception", "06_resnet",
             "07_densenet"]


def homework_prefix(name: str) -> nbformat.NotebookNode:
    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    # the last solution cell: 07's homework has two parts (the batch size, then the loop)
    solution = max(i for i, c in enumerate(nb.cells) if "### BEGIN SOLUTION" in c.source)
    nb.cells = nb.cells[: solution + 1] + [nbformat.v4.new_code_cell(
        f"from course_utils.homework import grader_probe\ngrader_probe({name!r})")]
    return nb


def measure(name: str, seed: int, workdir: Path) -> dict:
    source = workdir / f"{name}-{seed}.ipynb"
    nbformat.write(homework_prefix(name), source)
    out = workdir / f"{name}-{seed}-out.ipynb"
    started = time.perf_counter()
    papermill.execute_notebook(
        str(source), str(out), parameters={"SEED": seed, "RESULTS_JSON": str(workdir / "r.json")},
        cwd=str(REPO / "notebooks"), kernel_name=PYTHON_KERNEL,
        kernel_manager_class=python_kernel(), progress_bar=False)
    executed = nbformat.read(out, as_version=4)
    text = "".join(o.get("text", "") for o in executed.cells[-1].outputs)
    found = json.loads(text.split(PROBE_MARK, 1)[1].strip().splitlines()[0])
    found["notebook_seconds"] = time.perf_counter() - started
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", default=NOTEBOOKS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "homework_thresholds.md")
    args = parser.parse_args()
    if args.smoke:
        os.environ["COURSE_SMOKE"] = "1"
    lines = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.notebooks:
            results = [measure(name, seed, Path(folder)) for seed in args.seeds]
            accs = [r["test_acc"] for r in results]
            first = results[0]
            mode, source = first["mode"], first["data"]
            current = minimum_for(name, mode, source).accuracy
            lines.append(
                f"| {name} | {mode} | {source} | "
                + ", ".join(f"{a:.2%}" for a in accs)
                + f" | {min(accs):.2%} | {'-' if current is None else f'{current:.0%}'} | "
                f"{first['steps']} steps x {first['images'] // max(first['steps'], 1)} | "
                f"{sum(r['notebook_seconds'] for r in results) / len(results):.0f} s |")
            print(lines[-1], flush=True)
    header = (f"\n### {time.strftime('%Y-%m-%d')}, {cpu_name()}, {os.cpu_count()} cores, "
              f"`{' '.join(['python', *sys.argv])}`"
              f"{' (COURSE_SMOKE=1)' if args.smoke else ''}\n\n"
              "| notebook | mode | data | seeds' test accuracy | worst | threshold | steps x batch "
              "| s per run |\n|---|---|---|---|---|---|---|---|\n")
    with args.out.open("a", encoding="utf-8") as table:
        table.write(header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
