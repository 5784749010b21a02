"""Do ``fit``'s defaults (``lr=None``, no schedule) carry LeNet-5 past 97.5 % in one epoch at
every batch size a student might pick?

Trains LeNet-5 for one epoch on the full MNIST (60,000 images at 32x32) at each batch size
and initialisation seed and prints the test accuracy (10,000 images). ``--lrs`` adds fixed
learning rates next to the default (``default``), as used to choose the default rule.

    COURSE_DATA=<data> python benchmarks/lenet5_batch_sizes.py --seeds 0 1 2 --threads 1
    COURSE_DATA=<data> python benchmarks/lenet5_batch_sizes.py --batch-sizes 256 512 \\
        --lrs default 0.2 0.3
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from course_utils.data import load_data
from course_utils.models import get_model
from course_utils.train import default_lr, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None, help="data root (default: load_data's search)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--lrs", nargs="+", default=["default"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--optimizer", default="sgd", help="fit's optimizer (sgd, adam, adamw)")
    parser.add_argument("--schedule", default=None, help="fit's schedule (default: none)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    print("| batch | lr | " + " | ".join(f"seed {s}" for s in args.seeds)
          + " | worst | seconds (last) |")
    print("|---:|---|" + "---:|" * (len(args.seeds) + 2))
    for batch_size in args.batch_sizes:
        train, test = load_data("mnist", root=args.root, image_size=32, batch_size=batch_size,
                                fallback=None)
        for lr in args.lrs:
            accs = []
            for seed in args.seeds:
                torch.manual_seed(seed)
                model = get_model("lenet5")
                chosen = None if lr == "default" else float(lr)
                start = time.perf_counter()
                history = fit(model, train, test, epochs=1, lr=chosen, seed=seed,
                              optimizer=args.optimizer, schedule=args.schedule,
                              precision=args.precision, progress=False)
                seconds = time.perf_counter() - start
                accs.append(history.final["test_acc"])
            label = (f"default ({default_lr(model, args.optimizer):g})" if lr == "default"
                     else lr)
            label += "".join(f", {v}" for v in (args.optimizer, args.schedule, args.precision)
                             if v not in ("sgd", None, "auto"))
            print(f"| {batch_size} | {label} | " + " | ".join(f"{a:.2%}" for a in accs)
                  + f" | {min(accs):.2%} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
