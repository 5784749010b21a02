"""Sizing of 04's section 7: VGG-16 (+ CIFAR head) with or without batch norm, 32 px.

    COURSE_DATA=<data> python benchmarks/sizing/vgg16_init_and_bn.py SUBSET LR NAME:INIT,... [BATCH]

INIT: a std for N(0, std^2) on every layer, or "he" (the model's default).
"""

import sys
import time

from torch import nn

from course_utils.data import load_data
from course_utils.env import seed_everything
from course_utils.models import get_model
from course_utils.train import fit

subset, lr = int(sys.argv[1]), float(sys.argv[2])
bs = int(sys.argv[4]) if len(sys.argv) > 4 else 64
variants = sys.argv[3].split(",")
tr, te = load_data(
    "cifar10",
    batch_size=bs,
    image_size=32,
    subset=subset,
    test_subset=1000,
    augment=False,
)
head = dict(pool_size=1, classifier_width=512)


def paper_init(m, std):
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(mod.weight, 0, std)
            nn.init.zeros_(mod.bias)


for v in variants:
    name, init = v.split(":")
    seed_everything(0)
    m = get_model(name, num_classes=10, **head)
    if init != "he":
        paper_init(m, float(init))
    t = time.time()
    h = fit(
        m,
        tr,
        te,
        epochs=1,
        lr=lr,
        momentum=0.9,
        weight_decay=5e-4,
        progress=False,
        log_every=8,
    )
    L = [round(r["loss"], 2) for r in h.steps]
    print(
        f"{v} lr{lr} b{bs} n{subset}: test {h.final['test_acc']:.3f} loss {h.final['test_loss']:.3f} ({time.time() - t:.0f}s) {L}",
        flush=True,
    )
