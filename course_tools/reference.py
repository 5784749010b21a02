"""``reference``: the longer training runs behind a notebook's reference curves.

``reference resnet-figure6 --data ROOT`` trains plain-20/56 and ResNet-20/56 on CIFAR-10 at
32x32 with the paper's recipe (SGD, momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided
by 10 at 50% and 75% of the run, 4-pixel-padded random crops and flips) compressed from 64k
steps (164 epochs) to ``--epochs``. One seed per network, as in the paper's figure.

Each network trains with a fit checkpoint in ``--checkpoints``: stop it at any time and run the
same command again to continue where it stopped. After each network the package's
``course_utils/reference_runs/resnet_figure6.json`` is rewritten with every finished run, and
the machine, precision and settings that made it, so that the notebook can say how its curves
were made. Run it alone: a second CPU-heavy job on the same cores slows both many times over.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import torch

from course_utils.data import load_data
from course_utils.device import resolve_precision
from course_utils.env import cpu_name, device_name, get_device
from course_utils.models import get_model

from .notebooks import ToolError

FIGURE6_MODELS = ("resnet20", "resnet56", "plain20", "plain56")  # the missing half first
PAPER = ("He et al. 2016, Deep Residual Learning for Image Recognition, section 4.2 and "
         "Figure 6: 64k steps of 128 (164 epochs), lr 0.1 /10 at 32k and 48k steps, "
         "weight decay 1e-4, momentum 0.9, crops from 4-pixel padding and flips")


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        return device_name(device)
    return f"{cpu_name()}, {torch.get_num_threads()} threads"


def milestones(epochs: int) -> list[int]:
    """The paper's decays at 32k and 48k of 64k steps: 50% and 75% of the run, in epochs."""
    return sorted({max(1, round(epochs * 0.5)), max(1, round(epochs * 0.75))})


def _epoch_rows(history) -> list[dict]:
    return [{"epoch": i + 1, "train_error": round(100 - 100 * e["train_acc"], 2),
             "test_error": round(100 - 100 * e["test_acc"], 2),
             "train_loss": round(e["train_loss"], 4), "lr": round(e["lr"], 6),
             "seconds": round(e["seconds"], 1)} for i, e in enumerate(history.epochs)]


def resnet_figure6(args: argparse.Namespace) -> int:
    from course_utils.train import fit  # heavy import only for this command

    out = args.out or args.root / "course_utils" / "reference_runs" / "resnet_figure6.json"
    device = get_device()
    precision = resolve_precision(args.precision, device)  # fit's own policy, recorded below
    train, test = load_data("cifar10", root=args.data, batch_size=128, augment="crop+flip",
                            subset=args.subset, test_subset=args.test_subset, seed=0)
    if train.fallback:
        raise ToolError("CIFAR-10 was not found; give its folder with --data")
    settings = {"epochs": args.epochs, "batch_size": 128, "lr": 0.1, "momentum": 0.9,
                "weight_decay": 1e-4, "milestones": milestones(args.epochs),
                "augment": "crop+flip", "image_size": 32, "train_images": train.num_samples,
                "test_images": test.num_samples, "seed": 0, "precision": precision}
    done = json.loads(out.read_text()) if out.exists() else {}
    if done.get("settings") != settings:
        done = {}  # other settings: the old curves do not belong with the new ones
    runs = done.get("runs", {})
    for name in args.models:
        if name in runs and len(runs[name]["epochs"]) == args.epochs:
            print(f"{name}: finished already ({out.name})")
            continue
        print(f"{name}: training {args.epochs} epochs on {device_name(device)}", flush=True)
        history = fit(get_model(name), train, test, epochs=args.epochs, lr=0.1, momentum=0.9,
                      weight_decay=1e-4, precision=precision, seed=0,
                      schedule=lambda opt: torch.optim.lr_scheduler.MultiStepLR(
                          opt, settings["milestones"], gamma=0.1),
                      checkpoint=args.checkpoints / f"figure6_{name}.ckpt",
                      progress=not args.quiet)
        if history.final.get("interrupted"):
            print(f"{name}: interrupted; run the same command again to continue")
            return 1
        runs[name] = {"epochs": _epoch_rows(history)}
        record = {"how": PAPER, "command": "python -m course_tools reference resnet-figure6 "
                  f"--epochs {args.epochs}", "settings": settings,
                  "machine": _machine(device), "torch": torch.__version__,
                  "date": datetime.date.today().isoformat(), "runs": runs}
        tmp = out.with_name(out.name + ".tmp")  # a stop mid-write keeps the old file
        tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        tmp.replace(out)
        last = runs[name]["epochs"][-1]
        print(f"{name}: train error {last['train_error']}%, test error {last['test_error']}% "
              f"-> {out}", flush=True)
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("reference", help="train the runs behind a notebook's reference "
                            "curves (resumable)")
    p.add_argument("name", choices=["resnet-figure6"])
    p.add_argument("--data", default=None, help="folder that holds CIFAR-10")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--models", nargs="+", default=list(FIGURE6_MODELS), choices=FIGURE6_MODELS)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--subset", type=int, default=None, help="train images (a quick try only)")
    p.add_argument("--test-subset", type=int, default=None)
    p.add_argument("--checkpoints", type=Path, default=Path("build") / "reference")
    p.add_argument("--out", type=Path, default=None, help="default: the package's JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=resnet_figure6)
