"""Sizing of 03's Figure-1 experiment: the four-layer CNN with ReLU or tanh on a subset.

    COURSE_DATA=<data> python benchmarks/sizing/relu_vs_tanh_figure1.py SUBSET EPOCHS BATCH INIT LRS [SCALE]

INIT: default (PyTorch), gauss (N(0, 0.01^2)) or kaiming
LRS comma-separated
SCALE multiplies
the standardised input (57 ~ 255 x std: the paper's centred raw pixels). Prints the first step
whose running training error (4-step window) is below 25%.
"""

import sys
import time

from torch import nn

from course_utils.data import load_data
from course_utils.env import seed_everything
from course_utils.train import fit

subset, epochs, batch = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
init = sys.argv[4]
scale = float(sys.argv[6]) if len(sys.argv) > 6 else 1.0
lrs = [float(x) for x in sys.argv[5].split(",")]
tr, te = load_data(
    "cifar10",
    batch_size=batch,
    image_size=32,
    subset=subset,
    test_subset=1000,
)


def net(act):
    A = nn.ReLU if act == "relu" else nn.Tanh

    class S(nn.Module):
        def forward(self, x):
            return x * scale

    m = nn.Sequential(
        S(),
        nn.Conv2d(3, 32, 5, padding=2),
        A(),
        nn.MaxPool2d(3, 2, padding=1),
        nn.Conv2d(32, 32, 5, padding=2),
        A(),
        nn.MaxPool2d(3, 2, padding=1),
        nn.Conv2d(32, 64, 5, padding=2),
        A(),
        nn.MaxPool2d(3, 2, padding=1),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 10),
    )
    if init == "gauss":
        for mod in m.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(mod.weight, 0, 0.01)
                nn.init.zeros_(mod.bias)
    elif init == "kaiming":
        for mod in m.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
                nn.init.zeros_(mod.bias)
    return m


for act in ("relu", "tanh"):
    for lr in lrs:
        seed_everything(0)
        m = net(act)
        t = time.time()
        h = fit(
            m,
            tr,
            te,
            epochs=epochs,
            lr=lr,
            momentum=0.9,
            weight_decay=0,
            progress=False,
            log_every=4,
        )
        hit = next((r["step"] for r in h.steps if 1 - r["acc"] < 0.25), None)
        errs = [round(1 - r["acc"], 2) for r in h.steps[::8]]
        print(
            f"x{scale} {init} {act} lr{lr}: steps to 25% train err {hit}; test {h.final['test_acc']:.3f} ({time.time() - t:.0f}s) {errs}",
            flush=True,
        )
