"""The GPU check: each notebook's homework in full mode, as a T4 (fp16) and as bf16 runs it.

For every notebook 02-07 and each forced precision (``COURSE_PRECISION``), the notebook's own
code cells run in this process up to and including the homework (the instructor's reference
solution), skipping the cells tagged ``experiment``; then the check's own measurement
(``course_utils.homework.measure``) is taken. Recorded per run: device, precision, images/s
and seconds of the student's loop (timed inside ``run.batches()``), peak GPU memory, test
accuracy against the full-mode minimum, optimizer steps. The report is one JSON and one
Markdown table (``--out``).

    python benchmarks/gpu_check.py --out gpu_check            # on a GPU machine
    python benchmarks/gpu_check.py --dry-run --out /tmp/gc    # here: smoke sizes, on the CPU

``--dry-run`` runs the same code in smoke mode (COURSE_SMOKE=1) on whatever device there is,
so that the script is known to work before a GPU is lent. It needs no IPython or papermill:
the notebooks' ``display``/``Code`` calls go to a small stand-in, and ``%`` lines are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
NOTEBOOKS = ["02_lenet", "03_alexnet", "04_vgg", "05_inception", "06_resnet", "07_densenet"]
SKIP_TAG = "experiment"  # cells that only run an experiment: not needed for the homework


def _ipython_stand_in() -> None:
    """The notebooks import IPython.display; a GPU machine without IPython gets a stand-in."""
    try:
        import IPython.display  # noqa: F401
    except ImportError:
        display = types.ModuleType("IPython.display")
        display.display = lambda *args, **kwargs: None
        display.Code = lambda *args, **kwargs: None
        package = types.ModuleType("IPython")
        package.display = display
        sys.modules.update({"IPython": package, "IPython.display": display})


def homework_cells(name: str) -> list[str]:
    """The code of the notebook's cells up to and including the homework solution."""
    cells = json.loads((REPO / "notebooks" / f"{name}.ipynb").read_text(encoding="utf-8"))["cells"]
    last = max(i for i, c in enumerate(cells) if "### BEGIN SOLUTION" in "".join(c["source"]))
    sources = []
    for index, cell in enumerate(cells):
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and SKIP_TAG not in cell["metadata"].get("tags", []):
            sources.append("\n".join(  # an IPython magic (%pip, %matplotlib) becomes `pass`
                line[:len(line) - len(line.lstrip())] + "pass"
                if line.lstrip().startswith("%") else line for line in source.splitlines()))
        if index == last:  # 07 has two parts (the batch size, then the loop): up to the loop
            return sources
    raise ValueError(f"{name}: no homework solution cell")


def run_homework(name: str, precision: str) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from course_utils import homework

    os.environ["COURSE_PRECISION"] = precision
    namespace: dict = {"__name__": "__main__"}
    cwd = os.getcwd()
    os.chdir(REPO / "notebooks")  # notebooks run from notebooks/
    started = time.perf_counter()
    try:
        for index, source in enumerate(homework_cells(name)):
            if "### BEGIN SOLUTION" in source and torch.cuda.is_available():
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            exec(compile(source, f"{name}[{index}]", "exec"), namespace)
            plt.close("all")
    finally:
        os.chdir(cwd)
    run = namespace["run"]
    found = homework.measure(run, name)
    minimum, why = homework.minimum_for(name, found["mode"], found["data"])
    peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    return {"notebook": name, "precision": found["precision"], "device": found["device"],
            "mode": found["mode"], "data": found["data"],
            "images_per_s": run.timed_images / run.train_seconds if run.train_seconds else None,
            "train_seconds": run.train_seconds, "steps": found["steps"],
            "expected_steps": found["expected_steps"], "test_acc": found["test_acc"],
            "minimum": minimum, "minimum_note": why,
            "passed": minimum is None or found["test_acc"] >= minimum,
            "peak_memory_bytes": peak, "prefix_seconds": time.perf_counter() - started}


def markdown(rows: list[dict]) -> str:
    lines = ["| notebook | precision | device | images/s | train s | peak GiB | steps | "
             "test acc | minimum | passed |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['notebook']} | {r['precision']} | error: {r['error']} |"
                         " | | | | | | no |")
            continue
        peak = "-" if r["peak_memory_bytes"] is None else f"{r['peak_memory_bytes'] / 2**30:.2f}"
        minimum = "-" if r["minimum"] is None else f"{r['minimum']:.1%}"
        lines.append(f"| {r['notebook']} | {r['precision']} | {r['device']} | "
                     f"{r['images_per_s']:,.0f} | {r['train_seconds']:.1f} | {peak} | "
                     f"{r['steps']}/{r['expected_steps']} | {r['test_acc']:.2%} | {minimum} | "
                     f"{'yes' if r['passed'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", default=NOTEBOOKS)
    parser.add_argument("--precisions", nargs="+", default=["fp16", "bf16"],
                        choices=["fp16", "bf16", "fp32"])
    parser.add_argument("--dry-run", action="store_true",
                        help="smoke sizes (COURSE_SMOKE=1) on any device, to test this script")
    parser.add_argument("--out", type=Path, default=Path("gpu_check"),
                        help="writes OUT.json and OUT.md")
    args = parser.parse_args()
    if args.dry_run:
        os.environ["COURSE_SMOKE"] = "1"
    else:
        os.environ.pop("COURSE_SMOKE", None)
    os.environ.pop("COURSE_REHEARSAL", None)
    _ipython_stand_in()
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA GPU here: run with --dry-run to test the script on this machine")
        return 2
    rows = []
    for name in args.notebooks:
        for precision in args.precisions:
            try:
                row = run_homework(name, precision)
            except Exception as error:  # report it and go on with the next run
                row = {"notebook": name, "precision": precision,
                       "error": f"{type(error).__name__}: {str(error)[:300]}"}
            rows.append(row)
            print(json.dumps(row), flush=True)
    report = {"when": time.strftime("%Y-%m-%d %H:%M"), "python": platform.python_version(),
              "torch": torch.__version__, "dry_run": args.dry_run,
              "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(
        f"GPU check, {report['when']}, {report['gpu'] or 'no GPU (dry run)'}, torch "
        f"{report['torch']}\n\n" + markdown(rows))
    print(markdown(rows))
    failed = [r for r in rows if "error" in r or not r["passed"]]
    print(f"{len(rows) - len(failed)} of {len(rows)} runs passed; report in "
          f"{args.out.with_suffix('.md')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
