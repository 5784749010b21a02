"""Datasets for the course: find the files, put the images on the training device, serve batches.

    train, test = load_data("mnist", batch_size=128, image_size=32)   # LeNet-5's 32x32 input
    for x, y in train:          # x: float32 (N, C, H, W) normalised, y: int64, both on train.device
        ...

MNIST, Fashion-MNIST and CIFAR-10 (at most 150 MB as uint8) live on the device: copied there
once, each batch is a slice prepared with a few tensor operations on the device (Keller Jordan's
airbench approach) instead of a per-epoch ``DataLoader`` + ``ToTensor`` pipeline, which would
set the speed of a model as small as LeNet-5. Folder datasets (``imagefolder:<path>``, e.g.
Imagenette) are too big for that and use ``ImageFolder`` + ``DataLoader``, same interface.

Search order (first hit wins): 1. the ``root`` argument, 2. ``$COURSE_DATA``, 3. ``./data``,
4. Kaggle's ``/kaggle/input`` (a few levels deep), 5. torchvision's download into ``root`` (or
``./data``); :data:`LAYOUTS` lists the accepted layouts. When nothing is found,
:class:`DatasetNotFoundError` says where it looked and what to put where, or, with
``fallback="sample"`` (the default in smoke mode, ``COURSE_SMOKE=1``), the bundled real-MNIST
sample is used and the run banner says so. A CIFAR-10 image dump
(``cifar10/{train,test}/<class>/*.jpg``) is decoded once and cached as uint8 tensors.
"""

from __future__ import annotations

import copy
import dataclasses
import gzip
import hashlib
import math
import os
import shutil
import socket
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from course_utils import env

__all__ = ["DATASETS", "LAYOUTS", "MIN_IMAGE_SIZE", "DatasetNotFoundError", "DatasetSpec",
           "DeviceLoader", "FolderLoader", "data_roots", "list_datasets", "load_data",
           "load_sample_arrays"]

# Smaller images cannot be cropped, pooled and convolved meaningfully by any model in the course.
MIN_IMAGE_SIZE = 8
KAGGLE_INPUT = Path("/kaggle/input")
# How deep to look below /kaggle/input: <dataset>/<folder>/... (old) and
# datasets/<owner>/<dataset>/versions/<n>/... (newer nested mounts).
KAGGLE_SEARCH_DEPTH = 5
CACHE_ENV = "COURSE_CACHE"
SAMPLE_FILE = "mnist_sample.npz"


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What the loaders need to know about a dataset besides its pixels."""

    name: str
    classes: tuple[str, ...]
    mean: tuple[float, ...]      # per channel, pixel values scaled to [0, 1]
    std: tuple[float, ...]
    in_channels: int
    image_size: int              # native height = width
    flip: bool                   # a mirrored shoe is still a shoe, a mirrored 3 is no digit
    crop_padding: int            # random-crop padding (pixels at native size) when augmenting
    split_sizes: tuple[int, int]  # training and test images (a rehearsal's record of a full run)


_DIGITS = tuple(str(d) for d in range(10))
DATASETS: dict[str, DatasetSpec] = {
    # Statistics of the training sets (the usual published values).
    "mnist": DatasetSpec("mnist", _DIGITS, (0.1307,), (0.3081,), 1, 28, flip=False,
                         crop_padding=2, split_sizes=(60_000, 10_000)),
    "fashion_mnist": DatasetSpec(
        "fashion_mnist", ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                          "Shirt", "Sneaker", "Bag", "Ankle boot"),
        (0.2860,), (0.3530,), 1, 28, flip=True, crop_padding=2, split_sizes=(60_000, 10_000)),
    "cifar10": DatasetSpec(
        "cifar10", ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                    "ship", "truck"),
        # per-pixel std over the training set (not the often copied 0.2023/0.1994/0.2010)
        (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 3, 32, flip=True, crop_padding=4,
        split_sizes=(50_000, 10_000)),
}
# The bundled sample is MNIST, so it is normalised with MNIST's statistics.
DATASETS["sample"] = dataclasses.replace(DATASETS["mnist"], name="sample",
                                         split_sizes=(8_000, 2_000))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The four IDX files of MNIST and Fashion-MNIST (both use the same names).
_IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte")
_MNIST_DIRS = ("MNIST/raw", "MNIST", "mnist/raw", "mnist", "raw", ".")
_FASHION_DIRS = ("FashionMNIST/raw", "FashionMNIST", "fashion_mnist/raw", "fashion_mnist",
                 "fashion-mnist/raw", "fashion-mnist", "fashionmnist", "raw", ".")
_CIFAR_DUMP_DIRS = ("cifar10", "cifar-10", "CIFAR10", "CIFAR-10", "cifar10-jpg", ".")

# What to tell a user who has to put the files somewhere by hand.
LAYOUTS = {
    "mnist": "MNIST/raw/ with train-images-idx3-ubyte, train-labels-idx1-ubyte, "
             "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (or the same names + .gz; "
             "mnist/ works too)",
    "fashion_mnist": "FashionMNIST/raw/ with the four Fashion-MNIST files "
                     "train-images-idx3-ubyte ... t10k-labels-idx1-ubyte (or .gz)",
    "cifar10": "cifar-10-batches-py/ (torchvision's layout: data_batch_1..5, test_batch) or an "
               "image dump cifar10/train/<class>/*.jpg + cifar10/test/<class>/*.jpg "
               "(extract a .tar.gz first)",
    "imagefolder": "<path>/train/<class>/*.jpg and <path>/val/<class>/*.jpg (or test/)",
}


def list_datasets() -> list[str]:
    """The names :func:`load_data` accepts (``imagefolder:<path>`` takes any folder)."""
    return [*DATASETS, "imagefolder:<path>"]


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is in none of the searched places and could not be downloaded."""


# --------------------------------------------------------------------------- where the files are
def data_roots(root: str | os.PathLike | None = None) -> list[tuple[str, Path | None]]:
    """Candidate folders in search order, each labelled with where it came from. A ``None`` path
    is an unset source (``$COURSE_DATA``), kept for the error messages. (Kaggle: see below.)"""
    course_data = os.environ.get(env.DATA_ENV)
    roots = [("root argument", Path(root).expanduser())] if root is not None else []
    roots.append((f"${env.DATA_ENV}", Path(course_data).expanduser() if course_data else None))
    roots.append(("./data", Path("data").absolute()))
    return roots


def _kaggle_folders() -> list[Path]:
    """Folders below /kaggle/input, breadth first. Image folders (thousands of entries) are not
    descended into: datasets are recognised from their parent."""
    if not KAGGLE_INPUT.is_dir():
        return []
    found, level = [], [KAGGLE_INPUT]
    for _ in range(KAGGLE_SEARCH_DEPTH):
        next_level = []
        for folder in level:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            if len(entries) <= 1000:
                next_level += [Path(e.path) for e in entries if e.is_dir(follow_symlinks=True)]
        found += next_level
        level = next_level
    return found


def _idx_files(folder: Path) -> list[Path] | None:
    """The four IDX files in ``folder`` (raw or .gz, '-idx' or Kaggle's '.idx' spelling)."""
    files = []
    for stem in _IDX_STEMS:
        dotted = stem.replace("-idx", ".idx")
        names = (stem, stem + ".gz", dotted, dotted + ".gz")
        # some Kaggle uploads wrap every file in a folder of its own name
        candidates = [folder / n / n if (folder / n).is_dir() else folder / n for n in names]
        hit = next((path for path in candidates if path.is_file()), None)
        if hit is None:
            return None
        files.append(hit)
    return files


def _find_in(name: str, base: Path) -> tuple[str, Any] | None:
    """The dataset ``name`` inside ``base`` in any accepted layout, as (kind, path), else None."""
    if name in ("mnist", "fashion_mnist"):
        fashion = name == "fashion_mnist"
        for sub in (_FASHION_DIRS if fashion else _MNIST_DIRS):
            folder = (base / sub).resolve() if sub == "." else base / sub
            # MNIST and Fashion-MNIST use the same file names: a bare folder of IDX files
            # counts as Fashion-MNIST only when its path says "fashion", and vice versa.
            if sub in (".", "raw") and ("fashion" in str(folder).lower()) != fashion:
                continue
            if files := _idx_files(folder):
                return "idx", files
        return None
    if name == "cifar10":
        # root may be the batches folder itself or the folder that holds it
        pickles = base if base.name == "cifar-10-batches-py" else base / "cifar-10-batches-py"
        if all((pickles / f).is_file() for f in ("data_batch_1", "test_batch")):
            return "pickles", pickles.parent
        for sub in _CIFAR_DUMP_DIRS:
            if all((base / sub / split / "airplane").is_dir() for split in ("train", "test")):
                return "dump", base / sub
        return None
    raise ValueError(name)


def _locate(name: str, root) -> tuple[Any, list[str]]:
    """Search every candidate place; return (what was found or None, places looked in)."""
    looked = []
    for label, base in data_roots(root):
        if base is None:
            looked.append(f"{label} (not set)")
            continue
        looked.append(f"{label}: {base}" + ("" if base.is_dir() else " (does not exist)"))
        if base.is_dir() and (hit := _find_in(name, base)) is not None:
            return hit, looked
    kaggle = _kaggle_folders()
    looked.append(f"{KAGGLE_INPUT} and {len(kaggle)} folders below it"
                  if KAGGLE_INPUT.is_dir() else f"{KAGGLE_INPUT} (not present)")
    for base in kaggle:
        if (hit := _find_in(name, base)) is not None:
            return hit, looked
    return None, looked


def _torchvision_class(name: str):
    from torchvision import datasets

    return {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST,
            "cifar10": datasets.CIFAR10}[name]


def _download(name: str, root) -> str | None:
    """Let torchvision download ``name`` into ``root`` (or ./data). Returns an error or None.
    (An official archive already in that folder is only checked and extracted.)"""
    target = Path(root).expanduser() if root is not None else Path("data").absolute()
    # torchvision's urllib calls have no timeout: without one an offline machine can hang.
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        for train in (True, False):
            _torchvision_class(name)(str(target), train=train, download=True)
    except Exception as error:  # network errors come in many types (URLError, HTTPError, ...)
        return f"{type(error).__name__}: {error}"
    finally:
        socket.setdefaulttimeout(old_timeout)
    return None


def _not_found_message(name: str, looked: list[str], why_no_download: str) -> str:
    places = "\n".join(f"  - {place}" for place in looked)
    layout = LAYOUTS["imagefolder" if name.startswith("imagefolder") else name]
    return (f"Dataset '{name}' not found, and {why_no_download}.\nLooked in:\n{places}\n"
            f"To provide it, put {layout}\ninto a folder and pass load_data(..., root='<folder>') "
            f"or set {env.DATA_ENV}=<folder> (./data is searched too; on Kaggle, add the dataset "
            f"as an input). Or use load_data(..., fallback='sample') to train on the bundled "
            f"10,000-image MNIST sample instead.")


# --------------------------------------------------------------------------- reading the files
def _cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "course_utils")).expanduser()


def _cache_entry(source: Path, label: str, suffix: str = "") -> Path:
    """``label`` plus a hash of the absolute path: two copies of a dataset never share an entry."""
    tag = hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:10]
    return _cache_dir() / f"{label}-{tag}{suffix}"


def _idx_root(name: str, files: list[Path]) -> Path:
    """A root for ``torchvision.datasets.MNIST`` / ``FashionMNIST``, which read only
    ``<root>/<MNIST|FashionMNIST>/raw/<exact name>``: other layouts are linked (or, when
    gzip-compressed, unpacked once) into that layout in the cache folder."""
    dataset = _torchvision_class(name)
    folder = files[0].parent
    in_place = folder.parts[-2:] == (dataset.__name__, "raw")  # already torchvision's layout
    if in_place and tuple(f.name for f in files) == _IDX_STEMS:
        return folder.parent.parent
    try:
        return _stage_idx(files, _cache_entry(folder, name), dataset.__name__)
    except OSError:  # the cache folder is not writable: a private temporary folder is
        return _stage_idx(files, Path(tempfile.mkdtemp(prefix="course_utils-")), dataset.__name__)


def _stage_idx(files: list[Path], root: Path, dataset: str) -> Path:
    raw = root / dataset / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for source, stem in zip(files, _IDX_STEMS, strict=True):
        target = raw / stem
        if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
            continue
        tmp = raw / f"{stem}.{os.getpid()}.tmp"  # then os.replace: atomic for readers
        try:
            if source.suffix == ".gz":
                with gzip.open(source) as packed, open(tmp, "wb") as out:
                    shutil.copyfileobj(packed, out)
            else:
                tmp.symlink_to(source.resolve())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return root


def _round_robin(labels: torch.Tensor) -> torch.Tensor:
    """An order that takes one image of each class in turn (stable within a class). Image dumps
    are sorted by class: stored like that, ``images(10)`` would show ten airplanes."""
    rank = torch.empty_like(labels)
    for cls in labels.unique():
        members = (labels == cls).nonzero().squeeze(1)
        rank[members] = torch.arange(len(members))
    return torch.argsort(rank * (int(labels.max()) + 1) + labels, stable=True)


def _decode_dump(source: Path, classes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """``{train,test}/<class>/<image>`` through ``torchvision.datasets.ImageFolder`` (its
    file order; PIL decodes) as uint8 tensors."""
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import PILToTensor

    out = {}
    for split in ("train", "test"):
        folder = ImageFolder(str(source / split), transform=PILToTensor())
        if tuple(folder.classes) != classes:
            raise DatasetNotFoundError(f"{source / split} has the classes {folder.classes}, "
                                       f"expected {list(classes)}")
        images = [image for image, _ in folder]
        if len({image.shape for image in images}) != 1:
            raise ValueError(f"the images in {source / split} have different sizes: use "
                             f"load_data('imagefolder:<folder>') for such data")
        labels = torch.tensor(folder.targets)
        order = _round_robin(labels)
        out[f"{split}_images"], out[f"{split}_labels"] = torch.stack(images)[order], labels[order]
    return out


def _load_image_dump(source: Path, classes: tuple[str, ...]) -> tuple[torch.Tensor, ...]:
    """An image dump as uint8 tensors: decoded once (~10-25 s for CIFAR-10's 60,000 JPEGs on
    two cores), then read back from ``decoded_uint8.pt`` beside it, or in the user cache
    (``$COURSE_CACHE``, else ~/.cache/course_utils) when the folder is read-only (Kaggle)."""
    keys = ("train_images", "train_labels", "test_images", "test_labels")
    caches = [source / "decoded_uint8.pt", _cache_entry(source, source.name, ".decoded_uint8.pt")]
    # Cheap fingerprint to notice a stale cache: per class folder its name, file count, mtime.
    signature = [[split, entry.name, len(os.listdir(entry.path)), entry.stat().st_mtime_ns]
                 for split in ("train", "test")
                 for entry in sorted(os.scandir(source / split), key=lambda e: e.name)
                 if entry.is_dir()]
    for cache in caches:
        try:
            saved = torch.load(cache, weights_only=True)
            if saved["signature"] == signature and tuple(saved["classes"]) == classes:
                return tuple(saved[k] for k in keys)
        except Exception:  # missing, truncated or foreign: decode again and overwrite it
            pass
    arrays = _decode_dump(source, classes)
    payload = {**arrays, "classes": list(classes), "signature": signature}
    # The permission bits, not just os.access: root (Docker, some CI) ignores them, and a
    # dataset folder marked read-only must stay untouched all the same.
    read_only = not os.access(source, os.W_OK) or not source.stat().st_mode & 0o222
    for cache in caches[1:] if read_only else caches:
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save(payload, tmp)
            os.replace(tmp, cache)  # atomic: a parallel reader never sees half a file
            break
        except OSError:  # not writable after all: try the next place
            tmp.unlink(missing_ok=True)
    return tuple(arrays[k] for k in keys)


def load_sample_arrays() -> dict[str, np.ndarray]:
    """The bundled MNIST sample as numpy arrays (see sample_data/README.md for provenance)."""
    with resources.files("course_utils").joinpath("sample_data", SAMPLE_FILE).open("rb") as f:
        with np.load(f) as npz:
            return {key: npz[key] for key in npz.files}


def _load_arrays(name: str, found) -> tuple[torch.Tensor, ...]:
    """(train_images uint8 (N, C, H, W), train_labels int64, test_images, test_labels)."""
    if name == "sample":
        a = {key: torch.from_numpy(array) for key, array in load_sample_arrays().items()}
        return (a["train_images"][:, None], a["train_labels"].long(), a["test_images"][:, None],
                a["test_labels"].long())
    kind, path = found
    if kind == "dump":
        return _load_image_dump(path, DATASETS[name].classes)
    # IDX files or CIFAR-10's python batches (torchvision checks their MD5) via torchvision
    root = _idx_root(name, path) if kind == "idx" else path
    arrays = []
    for train in (True, False):
        split = _torchvision_class(name)(str(root), train=train)
        if kind == "idx":  # .data uint8 (N, 28, 28)
            arrays += [split.data[:, None], split.targets]
        else:  # .data uint8 (N, 32, 32, 3)
            arrays += [torch.from_numpy(split.data).permute(0, 3, 1, 2).contiguous(),
                       torch.tensor(split.targets)]
    return tuple(arrays)


# --------------------------------------------------------------------------- batches on the device
def _epoch_generator(seed: int, epoch: int, extra: int = 0) -> torch.Generator:
    """A CPU generator whose stream depends only on (seed, epoch): resumed runs repeat it."""
    state = np.random.SeedSequence([seed, epoch, extra]).generate_state(2, dtype=np.uint32)
    generator = torch.Generator()
    generator.manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)
    return generator


def _subset_indices(subset: int | float | None, labels: torch.Tensor, seed: int, what: str,
                    clamp: bool = False) -> torch.Tensor | None:
    """Sorted indices of a seeded pick of a checked ``subset`` (None: keep all) with the classes
    as balanced as possible (shuffle, then deal round-robin over the classes). ``clamp``: a
    number larger than the set keeps all of it instead of failing."""
    if subset is None:
        return None
    available = len(labels)
    if isinstance(subset, float):
        size = max(1, round(subset * available))
    elif subset > available and not clamp:
        raise ValueError(f"{what}={subset} is larger than the {available} images available")
    else:
        size = min(subset, available)
    labels = labels.cpu()
    shuffled = torch.randperm(available, generator=_epoch_generator(seed, 0, extra=1))
    return shuffled[_round_robin(labels[shuffled])[:size]].sort().values


def _random_crop(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, pad: int) -> torch.Tensor:
    """Per-image random crop of a zero-padded batch: the classic RandomCrop(size, padding)."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = dy[:, None] + torch.arange(h, device=x.device)         # (N, H) source rows
    cols = dx[:, None] + torch.arange(w, device=x.device)         # (N, W) source columns
    # Two gathers (rows, then columns) instead of one 4-D fancy index: ~1.5x faster on CPU.
    padded = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * pad))
    return padded.gather(3, cols[:, None, None, :].expand(n, c, h, w))


class _LoaderBase:
    """What both loaders share: the attributes of the data contract (DESIGN.md section 3)."""

    def __init__(self, *, name: str, split: str, classes, targets: torch.Tensor,
                 batch_size: int, image_size: int, in_channels: int, mean: tuple[float, ...],
                 std: tuple[float, ...], augment: str | bool, shuffle: bool, drop_last: bool,
                 seed: int, device, fallback: str | None = None) -> None:
        self.name, self.split, self.classes = name, split, list(classes)
        self.num_classes, self.device = len(self.classes), torch.device(device)
        self.targets = targets.to(self.device)       # int64 (N,), in stored order
        self.num_samples = len(targets)
        self.batch_size, self.image_size, self.in_channels = batch_size, image_size, in_channels
        self.mean, self.std, self.fallback = mean, std, fallback
        self.augment, self.shuffle, self.drop_last = augment, shuffle, drop_last
        self.seed, self.epoch, self.start_batch = seed, 0, 0
        self._stats_cache = {}

    def __len__(self) -> int:
        """Batches per epoch."""
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """The next iteration is epoch ``epoch`` (without calls, each iteration moves on to the
        next epoch), starting at batch ``start_batch`` without preparing the ones before it."""
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def _next_epoch(self) -> tuple[int, int]:
        """(epoch, first batch) of the iteration that starts now; later ones start at 0."""
        epoch, start_batch = self.epoch, self.start_batch
        self.epoch, self.start_batch = epoch + 1, 0
        return epoch, start_batch

    def to(self, device):
        """The same data on another device (same seed, epoch and settings)."""
        other = copy.copy(self)
        other._stats_cache = {}
        other.device = torch.device(device)
        other.targets = self.targets.to(device)
        return other

    def _stats(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        """mean and std as (1, C, 1, 1) tensors on ``device``, made once per device: creating
        them for every batch would be a host-to-device copy per step."""
        device = torch.device(device)
        if device not in self._stats_cache:
            self._stats_cache[device] = (torch.tensor(self.mean, device=device).view(1, -1, 1, 1),
                                         torch.tensor(self.std, device=device).view(1, -1, 1, 1))
        return self._stats_cache[device]

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 pixels -> float (x / 255 - mean) / std, as one multiply and one subtract."""
        scale, shift = self._affine(x.device, x.shape[1])
        return x.float().mul_(scale).sub_(shift)

    def _affine(self, device, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift) with x_uint8 * scale - shift = (x / 255 - mean) / std, cached."""
        key = (torch.device(device), channels)
        if key not in self._stats_cache:
            mean, std = self._stats(device)
            mean, std = mean[:, :channels], std[:, :channels]
            self._stats_cache[key] = (1 / (255 * std), mean / std)
        return self._stats_cache[key]

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the normalisation: images in [0, 1] for plotting."""
        mean, std = self._stats(x.device)
        return (x * std + mean).clamp(0, 1)

    def __repr__(self) -> str:
        extra = f", fallback={self.fallback!r}" if self.fallback else ""
        return (f"{type(self).__name__}({self.name!r}, split={self.split!r}, "
                f"num_samples={self.num_samples}, batch_size={self.batch_size}, "
                f"batches={len(self)}, image=({self.in_channels}, {self.image_size}, "
                f"{self.image_size}), augment={self.augment!r}, device={str(self.device)!r}"
                f"{extra})")


class DeviceLoader(_LoaderBase):
    """Batches cut from a uint8 image tensor (``data``) that lives on the training device.

    ``for x, y in loader`` yields ``x`` float32 ``(B, in_channels, image_size, image_size)``
    normalised with the dataset's mean/std and ``y`` int64, both on ``loader.device``. Each batch
    is a slice of ``data`` (through a seeded permutation when shuffling), augmented while still
    uint8 (random crop of the image padded with black, horizontal flip except for digits),
    framed in black when a little smaller than ``image_size`` (MNIST 28 -> LeNet-5's 32, as in
    LeNet's paper), normalised, otherwise resized bilinearly (antialiased when shrinking); a grey
    channel is repeated for ``in_channels=3``. The randomness of an epoch is drawn on the CPU
    from (seed, epoch), so batches are the same on every device. The last partial batch is
    yielded unless ``drop_last=True``.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, spec: DatasetSpec,
                 split: str, batch_size: int, image_size: int, in_channels: int,
                 augment: str | bool, shuffle: bool, drop_last: bool, seed: int,
                 device: torch.device, fallback: str | None = None) -> None:
        repeat = in_channels // spec.in_channels
        super().__init__(name=spec.name, split=split, classes=spec.classes, targets=labels,
                         batch_size=batch_size, image_size=image_size, in_channels=in_channels,
                         mean=spec.mean * repeat, std=spec.std * repeat, augment=augment,
                         shuffle=shuffle, drop_last=drop_last, seed=seed, device=device,
                         fallback=fallback)
        self.spec = spec
        self.data = images.to(self.device)          # uint8 (N, C, H, W): the stored pixels

    def to(self, device) -> DeviceLoader:
        other = super().to(device)
        other.data = self.data.to(device)
        return other

    def __iter__(self):
        epoch, start_batch = self._next_epoch()
        # The epoch's order, crops and flips: drawn at once on the CPU, moved to the device once.
        generator = _epoch_generator(self.seed, epoch)
        n, bs = self.num_samples, self.batch_size
        order = torch.randperm(n, generator=generator).to(self.device) if self.shuffle else None
        crop = flip = None
        if self.augment and "crop" in self.augment:
            pad = self.spec.crop_padding
            crop = torch.randint(0, 2 * pad + 1, (2, n), generator=generator).to(self.device)
        if self.augment and "flip" in self.augment:
            flip = (torch.rand(n, generator=generator) < 0.5).to(self.device)
        stop = n - n % bs if self.drop_last else n
        for start in range(start_batch * bs, stop, bs):
            end = min(start + bs, n)
            index = order[start:end] if order is not None else slice(start, end)
            x = self._transform(self.data[index], None if crop is None else crop[:, start:end],
                                None if flip is None else flip[start:end])
            yield x, self.targets[index]

    def _transform(self, x: torch.Tensor, crop=None, flip=None) -> torch.Tensor:
        # Geometry first, on the uint8 pixels (a quarter of the bytes of float32); zero is
        # black, the background of the digits and the classic fill of RandomCrop(padding=4).
        if crop is not None:
            x = _random_crop(x, crop[0], crop[1], self.spec.crop_padding)
        if flip is not None:
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        native, size = x.shape[-1], self.image_size
        grow = size - native
        if 0 < grow <= 8 and grow % 2 == 0:
            x = F.pad(x, (grow // 2,) * 4)  # a black frame, as LeNet-5 saw MNIST: 28 -> 32
        x = self._normalize(x)
        if x.shape[-1] != size:
            # Resizing after normalising is the same (interpolation is linear) and cheaper
            # when enlarging. Antialiasing when shrinking, or thin strokes alias away.
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=size < native)
        if self.in_channels != x.shape[1]:
            x = x.expand(-1, self.in_channels, -1, -1).contiguous()  # grey -> 3 equal channels
        return x

    def images(self, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` images of the set (stored order), transformed without augmentation."""
        return self._transform(self.data[:n]), self.targets[:n]


# --------------------------------------------------------------------------- folder datasets
class _SeededTransform(torch.utils.data.Dataset):
    """Applies a random transform seeded from (seed, epoch, first index of the batch): the
    DataLoader fetches whole batches through ``__getitems__``, and one seed per batch (seeding
    costs as much as decoding a small image) makes the augmentation the same whatever the number
    of workers. ``fork_rng`` leaves the main process's random state alone."""

    def __init__(self, dataset, transform, seed: int) -> None:
        self.dataset, self.transform, self.seed, self.epoch = dataset, transform, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, indices: list[int]) -> list:
        with torch.random.fork_rng(devices=[]):
            state = np.random.SeedSequence([self.seed, self.epoch, indices[0]]).generate_state(1)
            torch.manual_seed(int(state[0]))
            return [(self.transform(image), label)
                    for image, label in (self.dataset[i] for i in indices)]

    def __getitem__(self, index: int):
        return self.__getitems__([index])[0]


class FolderLoader(_LoaderBase):
    """``ImageFolder`` + ``DataLoader`` with the interface of :class:`DeviceLoader`. Workers
    decode and resize with PIL and hand over uint8 tensors (4x less to copy than float),
    normalised on the device. Shuffling and augmentation depend only on (seed, epoch)."""

    def __init__(self, folder: Path, *, split: str, name: str, batch_size: int,
                 image_size: int | None, in_channels: int | None, augment: bool,
                 shuffle: bool, drop_last: bool, seed: int, device: torch.device,
                 num_workers: int, subset: int | float | None = None) -> None:
        from torchvision import datasets
        from torchvision import transforms as T

        found = datasets.ImageFolder(str(folder))
        if len(found) == 0:
            raise DatasetNotFoundError(f"no images in {folder}")
        targets = torch.tensor(found.targets)
        keep = _subset_indices(subset, targets, seed, "subset" if split == "train" else "test_subset")
        self.dataset = found if keep is None else torch.utils.data.Subset(found, keep.tolist())
        targets = targets if keep is None else targets[keep]
        native = min(found[0][0].size)
        # ImageNet-sized photos default to 224; small images (a CIFAR dump) keep their size.
        size = image_size or min(native, 224)
        in_channels = in_channels or 3
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3 for image folders, got {in_channels}")
        grey = [T.Grayscale(1)] if in_channels == 1 else []
        # Standard evaluation view: resize to size/0.875 (256 for 224), centre crop. Images
        # that are not larger than the target are only resized.
        resize = round(size / 0.875) if native > size else size
        self.eval_transform = T.Compose([T.Resize(resize), T.CenterCrop(size), *grey,
                                         T.PILToTensor()])
        train_transform = self.eval_transform
        if augment:
            # scale >= 0.35 rather than ImageNet's 0.08: short runs on small sets (Imagenette)
            # learn faster from crops that still show most of the object.
            train_transform = T.Compose([T.RandomResizedCrop(size, scale=(0.35, 1.0)),
                                         T.RandomHorizontalFlip(), *grey, T.PILToTensor()])
        # ImageNet's statistics; for grey images the mean of its three channels
        super().__init__(name=name, split=split, classes=found.classes,
                         targets=targets, batch_size=batch_size,
                         image_size=size, in_channels=in_channels,
                         mean=IMAGENET_MEAN if in_channels == 3 else (0.449,),
                         std=IMAGENET_STD if in_channels == 3 else (0.226,),
                         augment="crop+flip" if augment else False, shuffle=shuffle,
                         drop_last=drop_last, seed=seed, device=device)
        self.spec, self.num_workers = None, num_workers
        self._seeded = _SeededTransform(self.dataset, train_transform, seed)

    def to(self, device) -> FolderLoader:
        other = super().to(device)
        other._seeded = copy.copy(self._seeded)
        return other

    def __iter__(self):
        epoch, start_batch = self._next_epoch()
        self._seeded.epoch = epoch  # copied into the workers when the iterator starts
        order = (torch.randperm(self.num_samples, generator=_epoch_generator(self.seed, epoch))
                 if self.shuffle else torch.arange(self.num_samples))
        # generator: the DataLoader draws its workers' base seed from it, not from the global
        # RNG, so a resumed epoch leaves dropout's random stream where an unbroken run has it.
        loader = torch.utils.data.DataLoader(
            self._seeded, batch_size=self.batch_size,
            sampler=order[start_batch * self.batch_size:].tolist(), num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda", drop_last=self.drop_last,
            generator=_epoch_generator(self.seed, epoch))
        for x, y in loader:
            yield (self._normalize(x.to(self.device, non_blocking=True)),
                   y.to(self.device, non_blocking=True))

    def images(self, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
        n = min(n, self.num_samples)
        pairs = [self.dataset[i] for i in range(n)]
        x = torch.stack([self.eval_transform(img) for img, _ in pairs]).to(self.device)
        return self._normalize(x), torch.tensor([label for _, label in pairs], device=self.device)


def _find_image_folder(path: str, root) -> tuple[Path | None, list[str]]:
    """``path`` as given, or relative to each data root; it must hold train/ and val|test/."""
    given = Path(path).expanduser()
    candidates = [("as given", given)]
    if not given.is_absolute():
        candidates += [(label, base / given) for label, base in data_roots(root) if base]
        candidates += [("kaggle", base / given) for base in [KAGGLE_INPUT, *_kaggle_folders()]
                       if KAGGLE_INPUT.is_dir()]
    looked = []
    for label, folder in candidates:
        looked.append(f"{folder} ({label})")
        if (folder / "train").is_dir() and any((folder / s).is_dir() for s in ("val", "test")):
            return folder, looked
    return None, looked


# --------------------------------------------------------------------------- the entry point
def _check_int(value, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_subset(subset, what: str) -> int | float | None:
    """None, a number of images (int >= 1) or a fraction in (0, 1]."""
    if subset is None or (isinstance(subset, float) and 0 < subset <= 1):
        return subset
    if isinstance(subset, float):
        raise ValueError(f"{what} must be a number of images or a fraction in (0, 1], "
                         f"got {subset!r}")
    return _check_int(subset, what, 1)


def _full_run_size(subset: int | float | None, total: int | None) -> int | None:
    """The images a full run trains on: ``subset`` of a split of ``total`` images."""
    if total is None:  # an image folder: its size is known only once it is read
        return subset if isinstance(subset, int) else None
    if subset is None:
        return total
    return max(1, round(subset * total)) if isinstance(subset, float) else min(subset, total)


def _rehearsal_size(subset: int | float | None, images: int) -> int:
    """A rehearsal's cut of a requested subset: at most ``images`` images."""
    return images if subset is None or isinstance(subset, float) else min(subset, images)


def load_data(name: str, root: str | os.PathLike | None = None, batch_size: int = 128,
              image_size: int | None = None, subset: int | float | None = None,
              augment: bool | str = False, device: str | torch.device | None = None,
              seed: int = 0, fallback: str | None = None, in_channels: int | None = None,
              drop_last: bool = False, download: bool | None = None, num_workers: int = 2,
              test_subset: int | float | None = None, test_batch_size: int | None = None,
              ) -> tuple[DeviceLoader | FolderLoader, DeviceLoader | FolderLoader]:
    """Load a dataset as ``(train, test)`` loaders (see :class:`DeviceLoader`).

    name: ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``, ``"sample"`` (the bundled 10,000
        real MNIST digits) or ``"imagefolder:<path>"`` (``<path>/train`` and ``<path>/val`` or
        ``<path>/test``, e.g. Imagenette; a relative path is also looked for in the data roots).
    root: folder to search first (see the module docstring for the full search order).
    image_size: output height = width. None keeps the native size (28 MNIST, 32 CIFAR-10;
        for folders the image size, at most 224). MNIST to 32 is zero padding (LeNet-5).
    subset: use only this many training images (int) or this fraction (float in (0, 1]):
        a seeded, class-balanced pick. ``test_subset`` does the same for the test set.
    augment: True = random crop (+ horizontal flip where it keeps the label: not for digits);
        or explicitly ``"crop"``, ``"flip"``, ``"crop+flip"``. Only the training set is
        augmented.
    device: where the data lives and batches are produced; default ``env.get_device()``.
    seed: shuffling and augmentation of epoch e depend only on (seed, e).
    fallback: ``"sample"`` = use the bundled MNIST sample if the dataset cannot be found or
        downloaded (announced in the output and recorded in ``.fallback``). None means
        ``"sample"`` in smoke mode (``COURSE_SMOKE=1``) and no fallback otherwise.
    in_channels: 3 repeats grey images three times (colour models on MNIST). Default: the
        dataset's own; when falling back from a colour dataset, 3.
    download: try torchvision's download when nothing is found. None means yes, except in
        smoke mode (CI is offline; it would only waste time).
    test_batch_size: batch size of the test loader (default: ``batch_size``).
    """
    # -- arguments first: a typo should fail before anything is read or downloaded
    if not isinstance(name, str):
        raise ValueError(f"dataset name must be a string, got {name!r}")
    key = name.strip().lower().replace("-", "_")
    is_folder = key.startswith("imagefolder:")
    if not is_folder and key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(list_datasets())}")
    batch_size = _check_int(batch_size, "batch_size", 1)
    test_batch_size = (batch_size if test_batch_size is None
                       else _check_int(test_batch_size, "test_batch_size", 1))
    num_workers = _check_int(num_workers, "num_workers", 0)
    if augment not in (True, False, None, "crop", "flip", "crop+flip"):
        raise ValueError(f"augment must be True, False, 'crop', 'flip' or 'crop+flip', "
                         f"got {augment!r}")
    subset, test_subset = _check_subset(subset, "subset"), _check_subset(test_subset, "test_subset")
    if image_size is not None:
        image_size = _check_int(image_size, "image_size", 1)
        if image_size < MIN_IMAGE_SIZE:
            raise ValueError(f"image_size={image_size} is too small: at least {MIN_IMAGE_SIZE} "
                             f"pixels (LeNet-5 wants 32, AlexNet 227, the others 224)")
    if in_channels not in (None, 1, 3):
        raise ValueError(f"in_channels must be None, 1 or 3, got {in_channels!r}")
    seed = _check_int(seed, "seed", 0)
    short_run = env.is_smoke() or env.is_rehearsal()  # offline CI runs: sample, no download
    if fallback is None and short_run:
        fallback = "sample"
    if fallback not in (None, False, "sample"):
        raise ValueError(f"fallback must be None or 'sample', got {fallback!r}")
    no_download = "downloading is off (download=False)"
    if download is None:
        download = not short_run
        no_download = (f"smoke mode does not download ({env.SMOKE_ENV}=1)" if env.is_smoke() else
                       f"a rehearsal does not download ({env.REHEARSAL_ENV}=1)")
    full_run = None  # a rehearsal remembers what the full run would train on (t4.py's plan)
    if env.is_rehearsal():  # full-mode settings, but a couple of batches (env.REHEARSAL_BATCHES)
        sizes = DATASETS[key].split_sizes if key in DATASETS else (None, None)
        full_run = (_full_run_size(subset, sizes[0]), _full_run_size(test_subset, sizes[1]))
        subset = _rehearsal_size(subset, env.REHEARSAL_BATCHES * batch_size)
        test_subset = _rehearsal_size(test_subset, test_batch_size)
    device = env.get_device() if device is None else torch.device(device)

    # -- find the files (or fall back to the sample)
    spec, found, reason = DATASETS.get(key), None, None  # spec None: an image folder
    if is_folder:
        folder, looked = _find_image_folder(name.split(":", 1)[1], root)
        if folder is not None:
            return _load_folder(name, folder, batch_size=batch_size,
                                test_batch_size=test_batch_size, image_size=image_size,
                                subset=subset, test_subset=test_subset, augment=bool(augment),
                                device=device, seed=seed, in_channels=in_channels,
                                drop_last=drop_last, num_workers=num_workers)
        if fallback != "sample":
            raise DatasetNotFoundError(
                _not_found_message(name, looked, "image folders are never downloaded"))
        reason = f"{name} not found (no train/ and val/ or test/ subfolders)"
    elif key != "sample":
        found, looked = _locate(key, root)
        why = no_download
        if found is None and download:
            error = _download(key, root)
            if error is None:
                found, looked = _locate(key, root)
            why = (f"the download failed ({error})" if error else
                   "the download did not leave the files where expected")
        if found is None:
            if fallback != "sample":
                raise DatasetNotFoundError(_not_found_message(key, looked, why))
            reason = f"{key} not found and {why}"

    # A model built for the requested (colour) dataset expects its channels and size.
    in_channels = in_channels or (spec.in_channels if spec else 3)
    image_size = image_size or (spec.image_size if spec else 32)
    if reason is not None:
        print(f"[course_utils] DATA FALLBACK: {reason}. Using the bundled MNIST sample (8,000 "
              f"train / 2,000 test real digits) instead; accuracies are not comparable with "
              f"{name}.")
        spec, key, found = DATASETS["sample"], "sample", None

    train_x, train_y, test_x, test_y = _load_arrays(key, found)
    if in_channels < spec.in_channels:
        raise ValueError(f"{key} has {spec.in_channels} channels; in_channels={in_channels} would "
                         f"throw colour away: build the model with in_channels={spec.in_channels}")
    # clamp: the fallback sample (or a rehearsal's data) may be smaller than the subset asked for
    clamp = reason is not None or env.is_rehearsal()
    keep = _subset_indices(subset, train_y, seed, "subset", clamp=clamp)
    if keep is not None:
        train_x, train_y = train_x[keep], train_y[keep]
    keep = _subset_indices(test_subset, test_y, seed, "test_subset", clamp=clamp)
    if keep is not None:
        test_x, test_y = test_x[keep], test_y[keep]

    if drop_last and len(train_y) < batch_size:
        raise ValueError(f"drop_last=True with batch_size={batch_size} and only {len(train_y)} "
                         f"training images leaves no batch at all")
    common = dict(spec=spec, image_size=image_size, in_channels=in_channels, seed=seed,
                  device=device, fallback=reason)
    # augment=True: random crop, plus flips where they keep the label (not for digits)
    augment = ("crop+flip" if spec.flip else "crop") if augment is True else augment or False
    train = DeviceLoader(train_x, train_y, split="train", batch_size=batch_size, augment=augment,
                         shuffle=True, drop_last=drop_last, **common)
    test = DeviceLoader(test_x, test_y, split="test", batch_size=test_batch_size,
                        augment=False, shuffle=False, drop_last=False, **common)
    if full_run is not None:
        train.full_run_images, test.full_run_images = full_run
    return train, test


def _load_folder(name: str, folder: Path, *, batch_size, test_batch_size, image_size, subset,
                 test_subset, augment, device, seed, in_channels, drop_last, num_workers):
    test_dir = folder / "val" if (folder / "val").is_dir() else folder / "test"
    common = dict(name=name, image_size=image_size, in_channels=in_channels, seed=seed,
                  device=device, num_workers=num_workers)
    train = FolderLoader(folder / "train", split="train", batch_size=batch_size, subset=subset,
                         augment=augment, shuffle=True, drop_last=drop_last, **common)
    common["image_size"] = train.image_size  # both splits at the size the first image chose
    test = FolderLoader(test_dir, split="test", batch_size=test_batch_size, subset=test_subset,
                        augment=False, shuffle=False, drop_last=False, **common)
    if train.classes != test.classes:
        raise ValueError(f"{folder}: train/ and {test_dir.name}/ have different classes")
    return train, test
