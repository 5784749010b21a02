"""Sizing of 06's degradation experiment: plain/residual 20 and 56, seeds 0-2.

    COURSE_DATA=<data> python benchmarks/sizing/degradation_seeds.py IMAGE_SIZE BATCH STEPS LR

Prints the last-quarter running training loss and the test accuracy (1,000 images) per run.
"""

import os
import sys
import time

from course_utils.data import load_data
from course_utils.env import seed_everything
from course_utils.models import get_model
from course_utils.train import fit

size, batch, steps, lr = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
tr, te = load_data(
    "cifar10",
    root=os.environ.get("COURSE_DATA"),
    batch_size=batch,
    image_size=size,
    subset=batch * steps,
    test_subset=1000,
    seed=0,
)
res = {}
for seed in (0, 1, 2):
    for name in ("plain20", "plain56", "resnet20", "resnet56"):
        seed_everything(seed)
        net = get_model(name, num_classes=10)
        t = time.time()
        h = fit(
            net,
            tr,
            te,
            epochs=1,
            lr=lr,
            momentum=0.9,
            weight_decay=1e-4,
            seed=seed,
            progress=False,
            log_every=max(1, steps // 20),
        )
        L = [r["loss"] for r in h.steps]
        q = max(1, len(L) // 4)
        res[name, seed] = (sum(L[-q:]) / q, h.final["test_acc"], h.final.get("train_acc"))
        print(
            f"{size}px b{batch} s{steps} lr{lr} seed{seed} {name:9s} lastq {res[name, seed][0]:.3f} "
            f"test {h.final['test_acc']:.3f} ({time.time() - t:.0f}s) curve {[round(x, 2) for x in L[::4]]}",
            flush=True,
        )
