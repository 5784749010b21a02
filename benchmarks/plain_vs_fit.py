"""``load_data`` + ``fit`` against the plain loop a student writes from the lecture code.

The plain loop is the lecture's MNIST example (a torchvision dataset with ``ToTensor``, a
``DataLoader`` with two worker processes, fp32, ``loss.item()`` after every step), with the
same model, the same initial weights, the same optimizer settings (SGD, momentum 0.9,
fit's default learning rate and weight decay) and the same images. Both run in this one
process, one after the other (``--repeats 2`` runs plain, fit, fit, plain so that a change
in the machine's load hits both alike). Printed per run: training images/s, seconds for
the epoch (training + test pass), test accuracy, and achieved FLOP/s (3 x 2 x MACs per
training image: forward, and backward at twice the forward's cost) against a matmul peak
measured at the start of the run.

    python benchmarks/plain_vs_fit.py --model lenet5 --dataset mnist --image-size 32
    python benchmarks/plain_vs_fit.py --model resnet18 --dataset cifar10 --image-size 64 \\
        --subset 2560 --test-subset 1000

Data: ``$COURSE_DATA`` if set, else ``../shared/data`` beside the repository (MNIST's .gz
files are unpacked and the CIFAR-10 JPEG archive extracted into ``--cache``), else the
bundled MNIST sample (written out as MNIST files so that torchvision can read it too).
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import platform
import shutil
import statistics
import struct
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn, optim
from torch.utils.data import DataLoader, Subset

from course_utils import env
from course_utils.analysis import count_macs
from course_utils.data import load_data, load_sample_arrays
from course_utils.models import get_model
from course_utils.train import DEFAULT_WEIGHT_DECAY, default_lr, fit

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


# --------------------------------------------------------------------------- data
def _write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's IDX format: magic (0, 0, type 0x08 = uint8, ndim), sizes, bytes."""
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                     *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def mnist_root(cache: Path) -> tuple[Path, str]:
    """A folder with MNIST/raw/*-ubyte (torchvision's layout) and where it came from."""
    course_data = os.environ.get(env.DATA_ENV)
    if course_data and (Path(course_data) / "MNIST" / "raw").is_dir():
        return Path(course_data), f"${env.DATA_ENV}"
    if (SHARED / "mnist").is_dir():
        raw = cache / "MNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for gz in (SHARED / "mnist").glob("*.gz"):
            target = raw / gz.name[:-3]
            if not target.exists():
                with gzip.open(gz, "rb") as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        return cache, "../shared/data/mnist"
    sample = load_sample_arrays()
    raw = cache / "sample" / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", sample[f"{split}_images"])
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", sample[f"{split}_labels"])
    return cache / "sample", "bundled sample (no real MNIST found)"


def cifar_root(cache: Path) -> tuple[Path, str]:
    """A folder with cifar10/{train,test}/<class>/*.jpg."""
    course_data = os.environ.get(env.DATA_ENV)
    if course_data and (Path(course_data) / "cifar10" / "train").is_dir():
        return Path(course_data), f"${env.DATA_ENV}"
    archive = SHARED / "cifar10-jpg.tar.gz"
    if archive.is_file():
        target = cache / "cifar10"
        if not (target / "test").is_dir():
            target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(archive) as tar:
                tar.extractall(target, filter="data")
            inner = [p for p in target.iterdir() if p.is_dir()]
            if not (target / "train").is_dir() and len(inner) == 1:  # archive has a top folder
                for part in inner[0].iterdir():
                    part.rename(target / part.name)
        return cache, "../shared/data/cifar10-jpg.tar.gz"
    raise SystemExit("CIFAR-10 not found: set COURSE_DATA or put ../shared/data in place")


def plain_datasets(dataset: str, root: Path, image_size: int, channels: int):
    """What the lecture builds: a torchvision dataset whose transform ends in ToTensor."""
    from torchvision import transforms

    steps = []
    if dataset == "mnist":
        if image_size == 32:
            steps.append(transforms.Pad(2))  # LeNet-5's 32x32: a black frame, as in the paper
        elif image_size != 28:
            steps.append(transforms.Resize(image_size))
        if channels == 3:
            steps.append(transforms.Grayscale(3))
        tf = transforms.Compose([*steps, transforms.ToTensor()])
        return (torchvision.datasets.MNIST(str(root), train=True, transform=tf),
                torchvision.datasets.MNIST(str(root), train=False, transform=tf))
    if image_size != 32:
        steps.append(transforms.Resize(image_size))
    tf = transforms.Compose([*steps, transforms.ToTensor()])
    folder = root / "cifar10"
    return (torchvision.datasets.ImageFolder(str(folder / "train"), transform=tf),
            torchvision.datasets.ImageFolder(str(folder / "test"), transform=tf))


def same_subset(dataset, indices):
    return dataset if indices is None else Subset(dataset, indices.tolist())


# --------------------------------------------------------------------------- the two loops
def plain_loop(model, train_set, test_set, batch_size, lr, weight_decay, device):
    """The lecture's loop (seed 003), with SGD. Returns what it measured."""
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, num_workers=2,
                              drop_last=True)
    # the lecture also drops the last test batch; we keep it so both see all test images
    test_loader = DataLoader(test_set, batch_size=batch_size, shuffle=False, num_workers=2)
    model = model.to(device)
    loss_func = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    loss_arr = []
    start = time.perf_counter()
    images = 0
    model.train()
    for image, label in train_loader:
        x = image.to(device)
        y_ = label.to(device)
        optimizer.zero_grad()
        output = model.forward(x)
        loss = loss_func(output, y_)
        loss.backward()
        optimizer.step()
        loss_arr.append(loss.item())
        images += len(label)
    train_seconds = time.perf_counter() - start
    correct = total = 0
    model.eval()
    with torch.no_grad():
        for image, label in test_loader:
            x = image.to(device)
            y_ = label.to(device)
            output = model.forward(x)
            _, output_index = torch.max(output, 1)
            total += label.size(0)
            correct += (output_index == y_).sum().float()
    seconds = time.perf_counter() - start
    return {"train_images": images, "train_seconds": train_seconds, "seconds": seconds,
            "test_acc": float(correct / total), "precision": "fp32"}


def fit_loop(model, name, root, args, device):
    start = time.perf_counter()
    train, test = load_data(name, root=root, batch_size=args.batch_size,
                            image_size=args.image_size, subset=args.subset,
                            test_subset=args.test_subset, device=device, fallback=None)
    setup = time.perf_counter() - start
    history = fit(model, train, test, epochs=1, progress=False)
    f = history.final
    return {"train_images": history.epochs[0]["train_images"],
            "train_seconds": history.epochs[0]["train_seconds"], "seconds": f["seconds"],
            "test_acc": f["test_acc"], "precision": f["precision"], "setup_seconds": setup,
            "train_samples": train.num_samples}


# --------------------------------------------------------------------------- peak
def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048,
                seconds: float = 2.0) -> float:
    """Best FLOP/s of an n x n matmul over ``seconds``: the practical ceiling the models are
    compared to. Best-of, because other jobs on a shared machine only ever slow it down."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


# --------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "cifar10"])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--subset", type=int, default=None, help="training images (default all)")
    parser.add_argument("--test-subset", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=1, help="1: plain, fit; 2: plain, fit, "
                        "fit, plain; ...")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/course_bench"))
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = env.get_device()
    root, source = (mnist_root if args.dataset == "mnist" else cifar_root)(args.cache)
    channels = 1 if args.model == "lenet5" else 3

    torch.manual_seed(0)
    reference = get_model(args.model, num_classes=10, in_channels=channels)
    macs = count_macs(reference, (1, channels, args.image_size, args.image_size))
    lr = default_lr(reference, "sgd")
    peak32 = matmul_peak(device, torch.float32)
    peak16 = matmul_peak(device, torch.bfloat16)
    print(f"# {args.model} on {args.dataset} at {args.image_size}x{args.image_size}, batch "
          f"{args.batch_size}, data: {source}")
    print(f"# device: {env.device_name(device)}, torch {torch.__version__}, load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"# matmul peak: fp32 {peak32 / 1e9:.0f} GFLOP/s, bf16 {peak16 / 1e9:.0f} GFLOP/s; "
          f"model: {macs / 1e6:.2f} MMACs per image, SGD lr {lr} momentum 0.9")

    start = time.perf_counter()
    plain_train, plain_test = plain_datasets(args.dataset, root, args.image_size, channels)
    plain_setup = time.perf_counter() - start
    # the same images on both sides: load_data's seeded, class-balanced subset would differ,
    # so the plain loop takes a seeded random subset of the same size (same class balance
    # in expectation); with no subset both see everything
    gen = torch.Generator().manual_seed(0)
    train_idx = (torch.randperm(len(plain_train), generator=gen)[:args.subset]
                 if args.subset else None)
    test_idx = (torch.randperm(len(plain_test), generator=gen)[:args.test_subset]
                if args.test_subset else None)
    plain_train, plain_test = same_subset(plain_train, train_idx), same_subset(plain_test,
                                                                               test_idx)

    order = []
    for r in range(args.repeats):
        order += ["plain", "fit"] if r % 2 == 0 else ["fit", "plain"]
    runs = []
    print("| run | loop | precision | train img/s | epoch s (train+test) | test acc | "
          "achieved GFLOP/s | of matmul peak |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for i, which in enumerate(order):
        model = copy.deepcopy(reference)
        if which == "plain":
            r = plain_loop(model, plain_train, plain_test, args.batch_size, lr,
                           DEFAULT_WEIGHT_DECAY["sgd"], device)
            r["setup_seconds"] = plain_setup
        else:
            r = fit_loop(model, args.dataset, root, args, device)
        r["loop"] = which
        r["images_per_s"] = r["train_images"] / r["train_seconds"]
        r["flops_per_s"] = 6 * macs * r["images_per_s"]
        peak = peak16 if r["precision"] == "bf16" else peak32
        r["of_peak"] = r["flops_per_s"] / peak
        runs.append(r)
        print(f"| {i + 1} | {which} | {r['precision']} | {r['images_per_s']:.0f} | "
              f"{r['seconds']:.1f} | {r['test_acc']:.4f} | {r['flops_per_s'] / 1e9:.1f} | "
              f"{r['of_peak']:.1%} |", flush=True)

    # the peak once more (best of both): the machine's load may have changed meanwhile
    peak32 = max(peak32, matmul_peak(device, torch.float32))
    peak16 = max(peak16, matmul_peak(device, torch.bfloat16))
    for r in runs:
        r["of_peak"] = r["flops_per_s"] / (peak16 if r["precision"] == "bf16" else peak32)
    print(f"\nmatmul peak (best of start and end): fp32 {peak32 / 1e9:.0f} GFLOP/s, bf16 "
          f"{peak16 / 1e9:.0f} GFLOP/s; of peak: " + ", ".join(
              f"run {i + 1} {r['of_peak']:.1%}" for i, r in enumerate(runs)))

    def med(loop, key):
        return statistics.median(r[key] for r in runs if r["loop"] == loop)

    speed = med("fit", "images_per_s") / med("plain", "images_per_s")
    epoch = med("plain", "seconds") / med("fit", "seconds")
    print(f"fit / plain: {speed:.2f}x training images/s, {epoch:.2f}x faster epoch "
          f"(train + test pass); test acc plain {med('plain', 'test_acc'):.4f}, fit "
          f"{med('fit', 'test_acc'):.4f}; setup (not timed above): plain "
          f"{med('plain', 'setup_seconds'):.1f} s, fit {med('fit', 'setup_seconds'):.1f} s")
    if args.json:
        args.json.write_text(json.dumps({
            "args": {k: str(v) for k, v in vars(args).items()}, "source": source,
            "device": env.device_name(device), "platform": platform.platform(),
            "macs_per_image": macs, "peak_fp32": peak32, "peak_bf16": peak16, "runs": runs,
            "speedup_images_per_s": speed, "speedup_epoch": epoch}, indent=1))


if __name__ == "__main__":
    main()
