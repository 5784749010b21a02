"""Which precision trains faster on this CPU: fp32 or bf16 autocast (and does channels_last help)?

The answer decides ``fit(precision="auto")`` on CPUs (course_utils.device.resolve_precision).
For every (model, image size) below it times full training steps (forward, backward, SGD
update) of the four variants fp32 / bf16 x contiguous / channels_last, interleaved in rounds
so that other jobs on a shared machine slow all of them alike, and prints the median step
time and images/s of each plus the speed-up over fp32.

    python benchmarks/cpu_precision.py              # the table in benchmarks/README.md
    python benchmarks/cpu_precision.py --only lenet5@32 resnet18@32 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from course_utils.analysis import count_macs
from course_utils.device import cpu_supports_bf16, resolve_precision, use_channels_last
from course_utils.models import get_model

# (model, image size, batch size): the course's models at the sizes its notebooks train at
# on a CPU (small) and at their native size (large). Batch sizes keep one step near a second.
CONFIGS = [
    ("lenet5", 32, 128),
    ("resnet18", 32, 128),
    ("resnet18", 64, 64),
    ("vgg11", 64, 32),
    ("densenet121", 64, 32),
    ("googlenet", 224, 8),
    ("alexnet", 227, 16),
    ("resnet50", 224, 8),
    ("vgg16", 224, 4),
]
VARIANTS = [("fp32", False), ("bf16", False), ("fp32", True), ("bf16", True)]


def make_step(name: str, size: int, batch: int, precision: str, channels_last: bool):
    torch.manual_seed(0)
    channels = 1 if name == "lenet5" else 3
    model = get_model(name, num_classes=10, in_channels=channels)
    x = torch.randn(batch, channels, size, size)
    y = torch.randint(0, 10, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return model, step


def measure(name: str, size: int, batch: int, rounds: int, steps: int) -> dict:
    built = {v: make_step(name, size, batch, *v) for v in VARIANTS}
    macs = count_macs(built[VARIANTS[0]][0], (1, 1 if name == "lenet5" else 3, size, size))
    for _, step in built.values():  # warm-up: oneDNN builds its kernels on first use
        step()
        step()
    times = {v: [] for v in VARIANTS}
    for _ in range(rounds):
        for v, (_, step) in built.items():
            start = time.perf_counter()
            for _ in range(steps):
                step()
            times[v].append((time.perf_counter() - start) / steps)
    median = {v: statistics.median(t) for v, t in times.items()}
    return {"macs": macs, "median": median, "batch": batch}


def _rate(images_per_s: float) -> str:
    return f"{images_per_s:.0f}" if images_per_s >= 100 else f"{images_per_s:.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="configs as model@size, e.g. lenet5@32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="steps per variant per round")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice, one per core). On a "
                             "crowded machine 1 thread avoids OpenMP spin-waiting")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = CONFIGS
    if args.only:
        wanted = set(args.only)
        configs = [c for c in CONFIGS if f"{c[0]}@{c[1]}" in wanted]
    print(f"# CPU: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, native bf16: "
          f"{cpu_supports_bf16()}, load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print("| model @ size | batch | GMACs/img | fp32 img/s | bf16 | fp32+CL | bf16+CL | "
          "bf16 / fp32 | auto picks |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, size, batch in configs:
        r = measure(name, size, batch, args.rounds, args.steps)
        ips = {v: batch / t for v, t in r["median"].items()}
        base = ips[("fp32", False)]
        cells = [_rate(ips[v]) if v == ("fp32", False) else
                 f"{_rate(ips[v])} ({ips[v] / base:.2f}x)" for v in VARIANTS]
        speedup = ips[("bf16", False)] / base
        print(f"| {name} @ {size} | {batch} | {r['macs'] / 1e9:.4f} | " + " | ".join(cells)
              + f" | {speedup:.2f} | {resolve_precision('auto', 'cpu')}"
              + ("+CL" if use_channels_last("cpu") else "") + " |",
              flush=True)


if __name__ == "__main__":
    main()
