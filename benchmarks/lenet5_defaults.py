"""Which learning rate should ``fit`` default to, so that LeNet-5 passes 97.5 % in one epoch?

Trains LeNet-5 (the course's tanh + average-pooling version) for one epoch on the full
MNIST (60,000 images at 32x32, batch 128, ``load_data`` defaults) with several optimizer
settings and initialisation seeds and prints the test accuracy of each. The chosen default
(SGD, momentum 0.9, lr 0.1 for small or batch-normalised models) is the first row.

    python benchmarks/lenet5_defaults.py                 # the table in benchmarks/README.md
    python benchmarks/lenet5_defaults.py --seeds 0 1 2 --threads 1
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from course_utils.data import load_data
from course_utils.models import get_model
from course_utils.train import fit

SETTINGS = [
    ("fit defaults (SGD 0.9, lr 0.1)", {}),
    ("SGD 0.9, lr 0.05", {"lr": 0.05}),
    ("SGD 0.9, lr 0.01", {"lr": 0.01}),
    ("Adam, lr 1e-3", {"optimizer": "adam"}),
    ("SGD 0.9, lr 0.1, one-cycle", {"schedule": "onecycle"}),
    ("SGD 0.9, lr 0.1, fp32", {"precision": "fp32"}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None, help="data root (default: load_data's search)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--only-defaults", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    train, test = load_data("mnist", root=args.root, image_size=32, fallback=None)
    print(f"# {train.num_samples} training / {test.num_samples} test images, batch "
          f"{train.batch_size}; {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.1f}")
    print("| setting | precision | " + " | ".join(f"init seed {s}" for s in args.seeds)
          + " | seconds (last) |")
    print("|---|---|" + "---:|" * (len(args.seeds) + 1))
    for label, kwargs in SETTINGS[:1] if args.only_defaults else SETTINGS:
        accs = []
        for seed in args.seeds:
            torch.manual_seed(seed)
            start = time.perf_counter()
            history = fit(get_model("lenet5"), train, test, epochs=1, progress=False, **kwargs)
            seconds = time.perf_counter() - start
            accs.append(history.final["test_acc"])
        print(f"| {label} | {history.final['precision']} | "
              + " | ".join(f"{a:.2%}" for a in accs) + f" | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
