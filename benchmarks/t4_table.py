"""The T4 tables of benchmarks/README.md, from course_utils/full_runs.json (``make rehearse``).

    python benchmarks/t4_table.py

Prints two Markdown tables: every full-mode training of every notebook with its fp16
training memory (one T4; per GPU of Kaggle's 2xT4 where the notebook trains with
devices="all") and its estimated T4 time, and per notebook the "Run all" estimate.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from course_utils import t4  # noqa: E402


def main() -> None:
    plan = t4.full_runs()
    print("| notebook | training | model | image | batch | images x epochs | steps | "
          "MACs/image | fp16 memory | T4 estimate |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for notebook, rows in plan.items():
        for r in rows:
            gpus = " per GPU of 2xT4" if r["gpus"] == 2 else ""
            print(f"| {notebook} | {r['what']} | {r['model']} | {r['image_size']} | "
                  f"{r['batch_size']} | {r['train_images']:,} x {r['epochs']} | {r['steps']:,} | "
                  f"{r['macs'] / 1e9:.3g} G | {r['memory_bytes'] / 2**30:.2f} GiB{gpus} | "
                  f"{t4.duration(t4.training_seconds(r))} |")
    print()
    print("| notebook | trainings | peak fp16 memory | Run all on one T4 (training only) |")
    print("|---|---|---|---|")
    for notebook, rows in plan.items():
        total = sum(t4.training_seconds(r) for r in rows)
        peak = max(r["memory_bytes"] for r in rows)
        print(f"| {notebook} | {len(rows)} | {peak / 2**30:.2f} GiB | {total / 60:.1f} min |")


if __name__ == "__main__":
    main()
