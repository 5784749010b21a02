"""Sizing of the CPU homework of 03 (AlexNet, 67 px) and 05 (GoogLeNet, 80 px) with fit.

COURSE_DATA=<data> python benchmarks/sizing/homework_one_epoch.py alexnet|googlenet LR AUGMENT(0/1) SEEDS [BATCH]
"""

import os
import sys
import time

from course_utils.data import load_data
from course_utils.env import seed_everything
from course_utils.models import get_model
from course_utils.train import fit

which, lr, aug, seeds = (
    sys.argv[1],
    float(sys.argv[2]),
    sys.argv[3] == "1",
    [int(s) for s in sys.argv[4].split(",")],
)
if which == "alexnet":
    kw = dict(batch_size=64, image_size=67, subset=10240, test_subset=1000)
    extra = dict(weight_decay=5e-4)
else:
    kw = dict(
        batch_size=int(sys.argv[5]) if len(sys.argv) > 5 else 32,
        image_size=80,
        subset=9600,
        test_subset=1000,
    )
    extra = dict(weight_decay=0.0, aux_weight=0.3)
for seed in seeds:
    tr, te = load_data("cifar10", root=os.environ.get("COURSE_DATA"), augment=aug, seed=seed, **kw)
    seed_everything(seed)
    m = get_model(which, num_classes=10, **({"aux_logits": True} if which == "googlenet" else {}))
    t = time.time()
    h = fit(
        m,
        tr,
        te,
        epochs=1,
        optimizer="sgd",
        lr=lr,
        momentum=0.9,
        seed=seed,
        progress=False,
        **extra,
    )
    print(
        f"{which} lr{lr} aug{aug} seed{seed}: test {h.final['test_acc']:.3f} train loss {h.final['train_loss']:.3f} ({time.time() - t:.0f}s)",
        flush=True,
    )
