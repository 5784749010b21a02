"""Do ``fit``'s defaults (``lr=None``, no schedule) carry LeNet-5 past 97.5 % in one epoch at
every batch size a student might pick?

Trains LeNet-5 for one epoch on the full MNIST (60,000 images at 32x32) at each batch size
and initialisation seed and prints the test accuracy (10,000 images). ``--lrs`` adds fixed
learning rates next to the default (``default``), as used to choose the default rule.

    COURSE_DATA=<data> python benchmarks/lenet5_batch_sizes.py --seeds 0 1 2 --threads 1
    COURSE_DATA=<data> python benchmarks/lenet5_batch_sizes.py --batch-sizes 256 512 \\
        --lrs default 0.2 0.3
    COURSE_DATA=<data> python benchmarks/lenet5_batch_sizes.py --batch-sizes 512 \\
        --variant lecun --lrs 0.2 0.3 --momentum 0.95

``--variant`` changes the model before training, to see whether a model-side change would let
the defaults reach 97.5 %: "stanh" swaps every tanh for the paper's 1.7159 tanh(2x/3)
(LeCun et al. 1998, Appendix A), "lecun" draws weights from N(0, 1/fan-in) with zero biases.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import torch
from torch import nn

from course_utils.data import load_data
from course_utils.models import get_model
from course_utils.train import default_lr, fit

VARIANTS = ("none", "stanh", "lecun", "stanh+lecun")


class ScaledTanh(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2 / 3))


def lenet5(variant: str) -> nn.Module:
    """LeNet-5 as shipped, or changed as ``variant`` says (see the module docstring)."""
    model = get_model("lenet5")
    if variant in ("stanh", "stanh+lecun"):
        for block in (model.features, model.classifier):
            for name, module in list(block.named_children()):
                if isinstance(module, nn.Tanh):
                    setattr(block, name, ScaledTanh())
    if variant in ("lecun", "stanh+lecun"):
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(module.weight, 0, 1 / math.sqrt(module.weight[0].numel()))
                nn.init.zeros_(module.bias)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None, help="data root (default: load_data's search)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--lrs", nargs="+", default=["default"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--optimizer", default="sgd", help="fit's optimizer (sgd, adam, adamw)")
    parser.add_argument("--schedule", default=None, help="fit's schedule (default: none)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    parser.add_argument("--variant", choices=VARIANTS, default="none", help="model change")
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
                model = lenet5(args.variant)
                chosen = None if lr == "default" else float(lr)
                start = time.perf_counter()
                history = fit(model, train, test, epochs=1, lr=chosen, seed=seed,
                              optimizer=args.optimizer, schedule=args.schedule,
                              momentum=args.momentum,
                              precision=args.precision, progress=False)
                seconds = time.perf_counter() - start
                accs.append(history.final["test_acc"])
            label = (f"default ({default_lr(model, args.optimizer, batch_size):g})" if lr == "default"
                     else lr)
            label += "".join(f", {v}" for v in (args.optimizer, args.schedule, args.precision,
                                                args.variant) if v not in ("sgd", None, "auto", "none"))
            label += f", momentum {args.momentum:g}" if args.momentum != 0.9 else ""
            print(f"| {batch_size} | {label} | " + " | ".join(f"{a:.2%}" for a in accs)
                  + f" | {min(accs):.2%} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
