"""Tests for course_utils.data: finding datasets, device-resident batches, folder datasets.

Offline and fast: every dataset except the bundled sample is generated in tmp_path, and
torchvision's download is replaced by a stub for the whole module (no test touches the
network). Tests on the real MNIST / CIFAR-10 use ../shared/data and skip when it is absent.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_utils import data, env
from course_utils.data import DatasetNotFoundError, load_data

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
REAL_DOWNLOAD = data._download  # before the fixture below replaces it
BACKGROUND = (0 - MNIST_MEAN) / MNIST_STD  # a black pixel after normalisation


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network, no real data roots, no notes left over from other tests."""
    calls = []

    def no_download(name, root):
        calls.append(name)
        return "network disabled in tests"

    monkeypatch.setattr(data, "_download", no_download)
    monkeypatch.delenv(env.DATA_ENV, raising=False)
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "user-cache"))
    monkeypatch.setattr(data, "KAGGLE_INPUT", tmp_path / "kaggle" / "input")
    monkeypatch.chdir(tmp_path)
    return calls


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: one thread is enough, and on a busy 2-core machine two
    threads waiting for each other make every small op up to 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def not_smoke(monkeypatch):
    monkeypatch.delenv(env.SMOKE_ENV, raising=False)


# --------------------------------------------------------------------------- fake datasets


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file (MNIST's format); gzip-compressed when the name ends in .gz."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    raw += array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def make_mnist(folder: Path, n_train=40, n_test=20, suffix="", dotted=False, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    for stem, array in arrays.items():
        name = stem.replace("-idx", ".idx") if dotted else stem
        write_idx(folder / (name + suffix), array)
    return arrays


CIFAR_CLASSES = data.DATASETS["cifar10"].classes


def class_colour(label: int) -> list[int]:
    return [25 * label, 255 - 20 * label, 100]


def make_cifar_dump(folder: Path, per_class=(3, 2)) -> None:
    """cifar10/{train,test}/<class>/NNNN.jpg, every image a flat colour of its class."""
    for split, count in zip(("train", "test"), per_class, strict=True):
        for label, cls in enumerate(CIFAR_CLASSES):
            (folder / split / cls).mkdir(parents=True, exist_ok=True)
            image = Image.new("RGB", (32, 32), tuple(class_colour(label)))
            for i in range(count):
                image.save(folder / split / cls / f"{i:04d}.jpg", quality=95)


def cifar_pickles(n=4, seed=0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    files = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 "labels": list(rng.integers(0, 10, n))}
        files[name] = pickle.dumps(entry)
    files["batches.meta"] = pickle.dumps({"label_names": list(CIFAR_CLASSES)})
    return files


def make_image_folder(folder: Path, counts=None, size=(48, 40)) -> None:
    counts = counts or {"train": 5, "val": 3}
    rng = np.random.default_rng(0)
    for split, count in counts.items():
        for cls in ("cats", "dogs"):
            (folder / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / split / cls / f"{i}.png")


def batches(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in loader]


# --------------------------------------------------------------------------- the bundled sample


def test_sample_is_shipped_small_real_and_documented():
    folder = resources.files("course_utils").joinpath("sample_data")
    npz = folder.joinpath(data.SAMPLE_FILE)
    assert npz.is_file() and folder.joinpath("README.md").is_file()
    assert Path(str(npz)).stat().st_size < 2_000_000
    arrays = data.load_sample_arrays()
    assert arrays["train_images"].shape == (8000, 28, 28)
    assert arrays["test_images"].shape == (2000, 28, 28)
    assert arrays["train_images"].dtype == np.uint8
    # every digit is well represented in both splits
    assert np.bincount(arrays["train_labels"]).min() >= 700
    assert np.bincount(arrays["test_labels"]).min() >= 170


def test_sample_loads_with_the_contract_attributes():
    train, test = load_data("sample", batch_size=100, device="cpu")
    assert (train.num_samples, test.num_samples) == (8000, 2000)
    assert (len(train), len(test)) == (80, 20)
    assert train.name == test.name == "sample"
    assert train.classes == [str(d) for d in range(10)] and train.num_classes == 10
    assert (train.in_channels, train.image_size) == (1, 28)
    assert train.mean == (MNIST_MEAN,) and train.std == (MNIST_STD,)
    assert train.fallback is None and train.augment is False
    assert train.device == torch.device("cpu") and train.batch_size == 100
    assert train.data.dtype == torch.uint8 and train.data.shape == (8000, 1, 28, 28)
    x, y = next(iter(train))
    assert x.shape == (100, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (100,) and y.dtype == torch.int64
    assert "sample" in repr(train)


def test_batches_are_normalised_with_mnist_statistics():
    _, test = load_data("sample", device="cpu")
    x, _ = test.images(2000)
    assert abs(x.mean().item()) < 0.05
    assert abs(x.std().item() - 1) < 0.05
    assert x.min().item() == pytest.approx(BACKGROUND, abs=1e-5)
    restored = test.denormalize(x)
    assert restored.min() >= 0 and restored.max() <= 1
    assert torch.allclose(restored * 255, test.data[:2000].float(), atol=1e-3)


def test_padding_to_32_keeps_the_digit_where_it_was():
    _, native = load_data("sample", device="cpu")
    _, padded = load_data("sample", device="cpu", image_size=32)
    x28, _ = native.images(16)
    x32, _ = padded.images(16)
    assert x32.shape == (16, 1, 32, 32)
    assert torch.allclose(x32[..., 2:30, 2:30], x28)   # the image itself is untouched
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert torch.allclose(x32[..., border], torch.tensor(BACKGROUND))  # black frame

    def centre_of_mass(images):
        ink = padded.denormalize(images)[:, 0]
        rows = torch.arange(ink.shape[-1], dtype=torch.float32)
        return ((ink.sum(2) * rows).sum(1) / ink.sum((1, 2)),
                (ink.sum(1) * rows).sum(1) / ink.sum((1, 2)))

    for c28, c32 in zip(centre_of_mass(x28), centre_of_mass(x32), strict=True):
        assert torch.allclose(c32, c28 + 2, atol=1e-4)
        assert (c32 - 15.5).abs().max() < 3   # MNIST digits are centred by their mass


def test_resize_to_alexnet_size_and_shrinking():
    _, native = load_data("sample", device="cpu")
    _, large = load_data("sample", device="cpu", image_size=227)
    _, small = load_data("sample", device="cpu", image_size=14)
    x28, _ = native.images(4)
    x227, _ = large.images(4)
    x14, _ = small.images(4)
    assert x227.shape == (4, 1, 227, 227) and x14.shape == (4, 1, 14, 14)
    assert torch.isfinite(x227).all() and torch.isfinite(x14).all()
    # resizing moves pixels, it does not change how much ink there is
    ink = native.denormalize(x28).mean((1, 2, 3))
    assert torch.allclose(large.denormalize(x227).mean((1, 2, 3)), ink, atol=0.01)
    assert torch.allclose(small.denormalize(x14).mean((1, 2, 3)), ink, atol=0.01)


def test_three_channel_expansion_for_colour_models():
    train, test = load_data("sample", device="cpu", in_channels=3, image_size=32)
    x, _ = next(iter(train))
    assert x.shape == (128, 3, 32, 32) and x.is_contiguous()
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    assert train.in_channels == test.in_channels == 3
    assert train.mean == (MNIST_MEAN,) * 3 and train.std == (MNIST_STD,) * 3
    assert test.denormalize(test.images(2)[0]).shape == (2, 3, 32, 32)


# --------------------------------------------------------------------------- order and batches


def test_order_depends_only_on_seed_and_epoch():
    a, _ = load_data("sample", device="cpu", batch_size=512, subset=2000)
    b, _ = load_data("sample", device="cpu", batch_size=512, subset=2000)
    a.set_epoch(3)
    b.set_epoch(3)
    first, second = batches(a), batches(b)
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2)
               for (x1, y1), (x2, y2) in zip(first, second, strict=True))
    b.set_epoch(4)
    assert not torch.equal(torch.cat([y for _, y in batches(b)]),
                           torch.cat([y for _, y in first]))
    other_seed, _ = load_data("sample", device="cpu", batch_size=512, subset=2000, seed=1)
    other_seed.set_epoch(3)
    assert not torch.equal(batches(other_seed)[0][1], first[0][1])


def test_iterating_again_moves_to_the_next_epoch():
    loader, _ = load_data("sample", device="cpu", batch_size=1000, subset=3000)
    epoch0, epoch1 = batches(loader), batches(loader)
    assert loader.epoch == 2
    loader.set_epoch(1)
    assert torch.equal(batches(loader)[0][1], epoch1[0][1])
    loader.set_epoch(0)
    assert torch.equal(batches(loader)[0][1], epoch0[0][1])
    assert not torch.equal(epoch0[0][1], epoch1[0][1])


def test_every_training_image_once_per_epoch():
    loader, _ = load_data("sample", device="cpu", batch_size=300, subset=1000)
    xs, ys = zip(*batches(loader), strict=True)
    x, y = torch.cat(xs), torch.cat(ys)
    assert torch.equal(y.sort().values, loader.targets.sort().values)
    seen = loader.denormalize(x).mul(255).round().sum((1, 2, 3)).sort().values
    stored = loader.data.float().sum((1, 2, 3)).sort().values
    assert torch.equal(seen, stored)


def test_last_partial_batch_kept_or_dropped():
    kept, _ = load_data("sample", device="cpu", batch_size=300, subset=1000)
    assert len(kept) == 4
    assert [len(y) for _, y in kept] == [300, 300, 300, 100]
    dropped, test = load_data("sample", device="cpu", batch_size=300, subset=1000,
                              drop_last=True)
    assert len(dropped) == 3
    assert [len(y) for _, y in dropped] == [300, 300, 300]
    # the test set is never shuffled nor dropped: stored order, every image
    assert len(test) == 7
    assert torch.equal(torch.cat([y for _, y in test]), test.targets)


def test_subset_is_seeded_and_class_balanced():
    train, test = load_data("sample", device="cpu", subset=100, test_subset=50)
    assert (train.num_samples, test.num_samples) == (100, 50)
    assert torch.bincount(train.targets).tolist() == [10] * 10
    assert torch.bincount(test.targets).tolist() == [5] * 10
    again, _ = load_data("sample", device="cpu", subset=100)
    assert torch.equal(again.data, train.data)
    other, _ = load_data("sample", device="cpu", subset=100, seed=1)
    assert not torch.equal(other.data, train.data)
    half, _ = load_data("sample", device="cpu", subset=0.5)
    assert half.num_samples == 4000


def test_to_keeps_data_settings_and_epoch():
    train, _ = load_data("sample", device="cpu", subset=500, batch_size=100, augment=True)
    train.set_epoch(5)
    moved = train.to("cpu")
    assert moved is not train and moved.epoch == 5 and moved.augment == "crop"
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(batches(train),
                                                                batches(moved), strict=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_iteration_on_cuda_never_waits_for_the_host():
    train, _ = load_data("sample", device="cuda", batch_size=256, image_size=32,
                         in_channels=3, augment="crop+flip")
    assert train.data.device.type == "cuda"
    iterator = iter(train)
    next(iterator)  # the per-epoch plan is made and copied before the first batch
    torch.cuda.set_sync_debug_mode("error")
    try:
        for x, y in iterator:
            assert x.device.type == "cuda" and y.device.type == "cuda"
    finally:
        torch.cuda.set_sync_debug_mode("default")


# --------------------------------------------------------------------------- augmentation


def test_crop_augmentation_shifts_digits_and_keeps_order():
    plain, _ = load_data("sample", device="cpu", batch_size=64, subset=640)
    augmented, _ = load_data("sample", device="cpu", batch_size=64, subset=640, augment=True)
    assert augmented.augment == "crop"  # no flips for digits
    (x, y), = batches(plain)[:1]
    (xa, ya), = batches(augmented)[:1]
    assert torch.equal(y, ya) and xa.shape == x.shape
    pad = augmented.spec.crop_padding
    originals = torch.nn.functional.pad(plain.denormalize(x), (pad,) * 4)
    shifted = augmented.denormalize(xa)
    offsets = []
    for original, image in zip(originals, shifted, strict=True):
        matches = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                   if torch.allclose(original[:, dy:dy + 28, dx:dx + 28], image, atol=1e-5)]
        assert matches, "an augmented image is not a crop of its original"
        offsets.append(matches[0])
    assert len(set(offsets)) > 5     # the crops differ from image to image
    assert not torch.allclose(x, xa)


def test_flip_augmentation_mirrors_about_half():
    plain, _ = load_data("sample", device="cpu", batch_size=400, subset=400)
    flipped, _ = load_data("sample", device="cpu", batch_size=400, subset=400,
                           augment="flip")
    (x, _), = batches(plain)
    (xf, _), = batches(flipped)
    same = (x == xf).flatten(1).all(1)
    mirrored = (x.flip(3) == xf).flatten(1).all(1)
    assert (same | mirrored).all()
    assert 0.35 < mirrored.float().mean().item() < 0.65


def test_augmentation_is_reproducible_per_epoch():
    a, _ = load_data("sample", device="cpu", subset=256, augment="crop+flip")
    b, _ = load_data("sample", device="cpu", subset=256, augment="crop+flip")
    a.set_epoch(2)
    b.set_epoch(2)
    assert torch.equal(batches(a)[0][0], batches(b)[0][0])


def test_an_epoch_can_start_at_a_later_batch_with_the_same_batches():
    """A run resumed inside an epoch: set_epoch(e, start_batch=k) yields batches k, k+1, ...
    of epoch e exactly, and the iteration after it is epoch e + 1 from its first batch."""
    loader, _ = load_data("sample", device="cpu", subset=256, batch_size=64, augment=True)
    loader.set_epoch(3)
    whole = batches(loader)
    loader.set_epoch(3, start_batch=2)
    tail = batches(loader)
    assert len(tail) == 2
    for (x, y), (x_whole, y_whole) in zip(tail, whole[2:], strict=True):
        assert torch.equal(x, x_whole) and torch.equal(y, y_whole)
    assert loader.epoch == 4 and len(batches(loader)) == 4


def test_an_image_folder_epoch_can_start_at_a_later_batch(tmp_path):
    make_image_folder(tmp_path / "pets", counts={"train": 6, "val": 1})
    loader, _ = load_data(f"imagefolder:{tmp_path / 'pets'}", device="cpu", image_size=16,
                          batch_size=4, num_workers=0, augment=True)
    loader.set_epoch(1)
    whole = batches(loader)
    assert len(whole) == 3  # 12 images in batches of 4
    loader.set_epoch(1, start_batch=1)
    tail = batches(loader)
    assert len(tail) == 2
    for (x, y), (x_whole, y_whole) in zip(tail, whole[1:], strict=True):
        assert torch.equal(x, x_whole) and torch.equal(y, y_whole)


def test_an_image_folder_run_with_dropout_resumes_inside_an_epoch_bit_identically(tmp_path):
    """The DataLoader behind an image folder must not draw from the global RNG when a resumed
    epoch starts, or every dropout mask after the resume differs from the unbroken run's."""
    from torch import nn

    from course_utils.train import Checkpoint, fit

    make_image_folder(tmp_path / "pets", counts={"train": 8, "val": 1})

    def data():
        return load_data(f"imagefolder:{tmp_path / 'pets'}", device="cpu", image_size=8,
                         batch_size=4, num_workers=0, augment=True)[0]

    def model():
        torch.manual_seed(1)
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Dropout(0.5),
                             nn.Linear(16, 2))

    straight = model()
    fit(straight, data(), None, epochs=1, lr=0.05, progress=False)

    interrupted, calls = model(), []

    def interrupt_at_step_3(module, inputs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    hook = interrupted.register_forward_pre_hook(interrupt_at_step_3)
    ckpt = tmp_path / "run.pt"
    fit(interrupted, data(), None, epochs=1, lr=0.05, progress=False,
        checkpoint=Checkpoint(ckpt, every_steps=2))
    hook.remove()
    assert torch.load(ckpt, weights_only=True)["in_epoch"]["steps"] == 2
    torch.manual_seed(123)  # a new session: another global RNG state
    resumed = model()
    fit(resumed, data(), None, epochs=1, lr=0.05, progress=False, checkpoint=ckpt)
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="imagenet"), "valid names: mnist, fashion_mnist, cifar10, sample, imagefolder"),
    (dict(batch_size=0), "batch_size must be an integer >= 1"),
    (dict(batch_size=-8), "batch_size must be an integer >= 1"),
    (dict(batch_size=2.5), "batch_size must be an integer >= 1"),
    (dict(image_size=4), "image_size=4 is too small"),
    (dict(subset=9000), "subset=9000 is larger than the 8000 images available"),
    (dict(test_subset=0), "test_subset must be an integer >= 1"),
    (dict(subset=1.5), "subset must be a number of images or a fraction in (0, 1]"),
    (dict(subset=500, batch_size=1000, drop_last=True), "leaves no batch"),
    (dict(num_workers=-1), "num_workers must be an integer >= 0"),
    (dict(in_channels=2), "in_channels must be None, 1 or 3"),
    (dict(augment="rotate"), "augment must be True, False"),
    (dict(fallback="cifar10"), "fallback must be None or 'sample'"),
    (dict(seed=-1), "seed must be an integer >= 0"),
])
def test_bad_arguments_raise_clear_errors(kwargs, message):
    kwargs = {"name": "sample", "device": "cpu", **kwargs}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_data(**kwargs)


def test_grey_output_from_colour_data_is_refused(tmp_path):
    make_cifar_dump(tmp_path / "cifar10")
    with pytest.raises(ValueError, match="in_channels=3"):
        load_data("cifar10", root=tmp_path, device="cpu", in_channels=1, download=False)


# --------------------------------------------------------------------------- finding MNIST


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_mnist_in_torchvision_layout_raw_or_gzip(tmp_path, suffix):
    arrays = make_mnist(tmp_path / "data-root" / "MNIST" / "raw", suffix=suffix)
    train, test = load_data("mnist", root=tmp_path / "data-root", device="cpu",
                            download=False, fallback=None)
    assert (train.num_samples, test.num_samples) == (40, 20)
    assert train.name == "mnist" and train.fallback is None
    assert torch.equal(train.data[:, 0], torch.tensor(arrays["train-images-idx3-ubyte"],
                                                      dtype=torch.uint8))
    assert torch.equal(test.targets, torch.arange(20) % 10)
    # torchvision reads its own layout in place; .gz files are unpacked once into the cache
    staged = list((tmp_path / "user-cache").glob("mnist-*/MNIST/raw/*"))
    assert len(staged) == (4 if suffix else 0)


def test_gzipped_mnist_loads_when_the_cache_folder_is_not_writable(tmp_path, monkeypatch):
    make_mnist(tmp_path / "data-root" / "mnist", suffix=".gz")
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "not-a-folder" / "cache"))
    train, test = load_data("mnist", root=tmp_path / "data-root", device="cpu",
                            download=False, fallback=None)
    assert (train.num_samples, test.num_samples) == (40, 20)


def test_root_search_order_course_data_then_dot_data(tmp_path, monkeypatch):
    make_mnist(tmp_path / "data" / "MNIST" / "raw", n_train=30)        # ./data
    make_mnist(tmp_path / "elsewhere" / "MNIST" / "raw", n_train=50)   # $COURSE_DATA
    make_mnist(tmp_path / "given" / "mnist", n_train=70, suffix=".gz")  # root argument
    train, _ = load_data("mnist", device="cpu", download=False)
    assert train.num_samples == 30
    monkeypatch.setenv(env.DATA_ENV, str(tmp_path / "elsewhere"))
    train, _ = load_data("mnist", device="cpu", download=False)
    assert train.num_samples == 50
    train, _ = load_data("mnist", root=tmp_path / "given", device="cpu", download=False)
    assert train.num_samples == 70


def test_kaggle_input_is_searched_and_fashion_is_not_mistaken_for_mnist(tmp_path):
    kaggle = tmp_path / "kaggle" / "input"
    make_mnist(kaggle / "fashionmnist", n_train=60, seed=1)
    with pytest.raises(DatasetNotFoundError):
        load_data("mnist", device="cpu", download=False, fallback=False)
    fashion, _ = load_data("fashion_mnist", device="cpu", download=False)
    assert fashion.num_samples == 60 and fashion.classes[0] == "T-shirt/top"
    assert fashion.augment is False
    # newer nested layout, Kaggle's '.idx' spelling, every file wrapped in a folder of its name
    nested = kaggle / "datasets" / "someone" / "mnist-dataset" / "versions" / "1"
    make_mnist(tmp_path / "tmp-mnist", n_train=80)
    for stem in data._IDX_STEMS:
        dotted = stem.replace("-idx", ".idx")
        (nested / dotted).mkdir(parents=True, exist_ok=True)
        (tmp_path / "tmp-mnist" / stem).rename(nested / dotted / dotted)
    train, _ = load_data("mnist", device="cpu", download=False)
    assert train.num_samples == 80


# --------------------------------------------------------------------------- not found


def test_missing_dataset_error_lists_every_place_and_the_fix(tmp_path, not_smoke, monkeypatch,
                                                             offline):
    monkeypatch.setenv(env.DATA_ENV, str(tmp_path / "course-data"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_data("mnist", root=tmp_path / "my-root", device="cpu", fallback=None)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert offline == ["mnist"]  # the download was tried (and failed)
    for expected in [f"root argument: {tmp_path / 'my-root'} (does not exist)",
                     f"$COURSE_DATA: {tmp_path / 'course-data'}", f"./data: {tmp_path / 'data'}",
                     f"{tmp_path / 'kaggle' / 'input'} (not present)",
                     "network disabled in tests", "MNIST/raw/", "train-images-idx3-ubyte",
                     "COURSE_DATA=<folder>", "fallback='sample'"]:
        assert expected in message, f"{expected!r} missing from:\n{message}"


def test_no_download_attempt_when_switched_off_or_in_smoke_mode(tmp_path, monkeypatch,
                                                                offline):
    monkeypatch.delenv(env.SMOKE_ENV, raising=False)
    with pytest.raises(DatasetNotFoundError, match=r"downloading is off \(download=False\)"):
        load_data("cifar10", device="cpu", download=False)
    monkeypatch.setenv(env.SMOKE_ENV, "1")
    train, _ = load_data("cifar10", device="cpu")   # smoke: no download, fall back
    assert offline == [] and train.name == "sample"


def test_fallback_to_the_sample_is_announced_and_recorded(tmp_path, not_smoke, capsys):
    train, test = load_data("cifar10", root=tmp_path, device="cpu", download=False,
                            fallback="sample", batch_size=64)
    assert train.name == test.name == "sample"
    assert "cifar10 not found" in train.fallback and test.fallback == train.fallback
    # a model built for CIFAR-10 gets what it expects: 3 channels, 32x32
    assert (train.in_channels, train.image_size) == (3, 32)
    x, y = next(iter(train))
    assert x.shape == (64, 3, 32, 32)
    printed = capsys.readouterr().out
    assert "DATA FALLBACK" in printed and "cifar10 not found" in printed
    # explicit choices win, and a subset larger than the sample is clamped, not an error
    train, _ = load_data("mnist", root=tmp_path, device="cpu", download=False,
                         fallback="sample", image_size=227, in_channels=1, subset=50_000)
    assert (train.in_channels, train.image_size, train.num_samples) == (1, 227, 8000)


def test_smoke_mode_falls_back_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv(env.SMOKE_ENV, "1")
    train, _ = load_data("fashion_mnist", root=tmp_path, device="cpu")
    assert train.fallback and train.name == "sample" and train.in_channels == 1


# --------------------------------------------------------------------------- CIFAR-10


def test_cifar_jpeg_dump_is_decoded_once_then_cached(tmp_path, monkeypatch):
    dump = tmp_path / "root" / "cifar10"
    make_cifar_dump(dump)
    train, test = load_data("cifar10", root=tmp_path / "root", device="cpu", download=False,
                            batch_size=8)
    assert (train.num_samples, test.num_samples) == (30, 20)
    assert train.data.shape == (30, 3, 32, 32) and train.data.dtype == torch.uint8
    assert train.classes == list(CIFAR_CLASSES)
    assert train.augment is False and train.mean == (0.4914, 0.4822, 0.4465)
    # stored one class after the other, in turn: images(10) shows every class once
    assert train.targets[:10].tolist() == list(range(10))
    for image, label in zip(train.data, train.targets, strict=True):
        expected = torch.tensor(class_colour(int(label)), dtype=torch.float32)
        assert (image.float().mean((1, 2)) - expected).abs().max() < 4   # JPEG is lossy
    assert (dump / "decoded_uint8.pt").is_file()

    def no_decoding(*args):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(data, "_decode_dump", no_decoding)
    again, _ = load_data("cifar10", root=tmp_path / "root", device="cpu", download=False)
    assert torch.equal(again.data, train.data)
    # a changed folder makes the cache stale
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "_download", lambda name, root: "offline")
    (dump / "train" / "cat" / "0000.jpg").rename(dump / "train" / "cat" / "9999.jpg.bak")
    changed, _ = load_data("cifar10", root=tmp_path / "root", device="cpu", download=False)
    assert changed.num_samples == 29


def test_read_only_dump_is_cached_in_the_user_cache(tmp_path):
    dump = tmp_path / "readonly" / "cifar10"
    make_cifar_dump(dump, per_class=(1, 1))
    dump.chmod(0o555)
    try:
        train, _ = load_data("cifar10", root=tmp_path / "readonly", device="cpu",
                             download=False)
    finally:
        dump.chmod(0o755)
    assert train.num_samples == 10
    assert not (dump / "decoded_uint8.pt").exists()
    assert len(list((tmp_path / "user-cache").glob("cifar10-*.decoded_uint8.pt"))) == 1


def test_a_packed_dump_is_not_read_and_the_message_says_extract_it(tmp_path, not_smoke):
    make_cifar_dump(tmp_path / "src" / "cifar10", per_class=(2, 1))
    (tmp_path / "root").mkdir()
    with tarfile.open(tmp_path / "root" / "cifar10-jpg.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "src" / "cifar10", arcname="cifar10")
    with pytest.raises(DatasetNotFoundError, match=r"extract a \.tar\.gz first"):
        load_data("cifar10", root=tmp_path / "root", device="cpu", download=False)


def md5(raw: bytes) -> str:
    return hashlib.md5(raw).hexdigest()


@pytest.fixture
def fake_cifar_checksums(monkeypatch):
    """torchvision checks CIFAR-10's files against their published MD5 sums: make it accept
    the stand-in files of these tests (and no others)."""
    from torchvision.datasets import CIFAR10

    files = cifar_pickles()
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5(files[f"data_batch_{i}"])]
                                                for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(files["test_batch"])]])
    monkeypatch.setattr(CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                          "md5": md5(files["batches.meta"])})
    return files, monkeypatch


def test_cifar_python_pickles_through_torchvision(tmp_path, fake_cifar_checksums):
    files, _ = fake_cifar_checksums
    folder = tmp_path / "root" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, raw in files.items():
        (folder / name).write_bytes(raw)
    train, test = load_data("cifar10", root=tmp_path / "root", device="cpu", download=False,
                            augment=True)
    assert (train.num_samples, test.num_samples) == (20, 4)
    assert train.augment == "crop+flip"
    first = pickle.loads(files["data_batch_1"])
    assert torch.equal(train.data[0], torch.tensor(first["data"][0]).view(3, 32, 32))
    assert train.targets[:4].tolist() == first["labels"]
    x, _ = next(iter(train))
    assert x.shape == (20, 3, 32, 32)
    # root may also name the batches folder itself
    same, _ = load_data("cifar10", root=folder, device="cpu", download=False)
    assert torch.equal(same.data, train.data)
    # a damaged file fails torchvision's checksum: the error says so instead of training on it
    (folder / "test_batch").write_bytes(b"broken")
    with pytest.raises(RuntimeError, match="corrupted"):
        load_data("cifar10", root=tmp_path / "root", device="cpu", download=False)


def test_official_archive_in_the_root_is_checked_and_extracted_offline(tmp_path, not_smoke,
                                                                      fake_cifar_checksums):
    """The official cifar-10-python.tar.gz in root (or ./data) goes through torchvision's
    download step, which finds the file, checks its MD5 and extracts it: no network."""
    from torchvision.datasets import CIFAR10

    files, monkeypatch = fake_cifar_checksums
    (tmp_path / "root").mkdir()
    archive_path = tmp_path / "root" / CIFAR10.filename
    with tarfile.open(archive_path, "w:gz") as archive:
        for name, raw in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5(archive_path.read_bytes()))
    monkeypatch.setattr(data, "_download", REAL_DOWNLOAD)
    monkeypatch.setattr(CIFAR10, "url", "http://127.0.0.1:9/unreachable.tar.gz")
    train, test = load_data("cifar10", root=tmp_path / "root", device="cpu")
    assert (train.num_samples, test.num_samples, train.fallback) == (20, 4, None)


# --------------------------------------------------------------------------- image folders


def test_image_folder_loader(tmp_path):
    make_image_folder(tmp_path / "pets")
    train, test = load_data(f"imagefolder:{tmp_path / 'pets'}", batch_size=4, device="cpu",
                            image_size=32, num_workers=0)
    assert train.classes == test.classes == ["cats", "dogs"] and train.num_classes == 2
    assert (train.num_samples, test.num_samples) == (10, 6)
    assert (len(train), len(test)) == (3, 2)
    assert (train.in_channels, train.image_size) == (3, 32)
    sizes = [len(y) for _, y in train]
    assert sizes == [4, 4, 2]
    x, y = next(iter(test))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(torch.cat([y for _, y in test]), test.targets)
    images, labels = test.images(3)
    assert images.shape == (3, 3, 32, 32) and torch.equal(images, x[:3])
    assert 0 <= test.denormalize(images).min() and test.denormalize(images).max() <= 1
    # default size: the images' own (they are smaller than 224)
    train, _ = load_data(f"imagefolder:{tmp_path / 'pets'}", device="cpu", num_workers=0)
    assert train.image_size == 40


def test_image_folder_relative_path_test_split_and_subset(tmp_path):
    make_image_folder(tmp_path / "root" / "pets", counts={"train": 6, "test": 2})
    train, test = load_data("imagefolder:pets", root=tmp_path / "root", device="cpu",
                            image_size=16, num_workers=0, subset=4, in_channels=1)
    assert train.num_samples == 4 and test.num_samples == 4
    assert sorted(train.targets.tolist()) == [0, 0, 1, 1]
    x, _ = next(iter(train))
    assert x.shape == (4, 1, 16, 16)


def test_image_folder_augmentation_is_reproducible_with_any_worker_count(tmp_path):
    make_image_folder(tmp_path / "pets", counts={"train": 4, "val": 1})
    name = f"imagefolder:{tmp_path / 'pets'}"
    plain, _ = load_data(name, device="cpu", image_size=24, batch_size=8, num_workers=0,
                         augment=True)
    workers, _ = load_data(name, device="cpu", image_size=24, batch_size=8, num_workers=1,
                           augment=True)
    for loader in (plain, workers):
        loader.set_epoch(1)
    (x0, y0), = batches(plain)
    (x1, y1), = batches(workers)
    assert torch.equal(x0, x1) and torch.equal(y0, y1)
    plain.set_epoch(2)
    (x2, _), = batches(plain)
    assert not torch.equal(x0, x2)


def test_missing_image_folder(tmp_path, not_smoke):
    with pytest.raises(DatasetNotFoundError, match="train/<class>"):
        load_data(f"imagefolder:{tmp_path / 'nowhere'}", device="cpu")
    train, _ = load_data(f"imagefolder:{tmp_path / 'nowhere'}", device="cpu",
                         fallback="sample")
    assert train.name == "sample" and train.in_channels == 3 and train.fallback


# --------------------------------------------------------------------------- real data


def test_real_mnist_counts_and_the_sample_is_its_first_images(shared_data, not_smoke):
    train, test = load_data("mnist", root=shared_data, device="cpu", download=False)
    assert (train.num_samples, test.num_samples) == (60000, 10000)
    assert train.fallback is None and train.name == "mnist"
    sample = data.load_sample_arrays()
    assert np.array_equal(train.data[:8000, 0].numpy(), sample["train_images"])
    assert np.array_equal(test.targets[:2000].numpy(), sample["test_labels"])
    x, _ = test.images(10000)
    assert abs(x.mean().item()) < 0.02 and abs(x.std().item() - 1) < 0.02


@pytest.mark.slow
def test_real_cifar10_counts(shared_data, not_smoke, monkeypatch):
    # the course machine's copy is a packed image dump: extract it once per machine, as
    # shared/data/README.md says, and keep the decoded copy between runs
    monkeypatch.delenv(data.CACHE_ENV)
    extracted = data._cache_dir() / "test-cifar10-extracted"
    if not (extracted / "cifar10" / "test" / "truck").is_dir():
        with tarfile.open(shared_data / "cifar10-jpg.tar.gz") as archive:
            archive.extractall(extracted / "partial", filter="data")
        (extracted / "partial").rename(extracted / "cifar10")
    train, test = load_data("cifar10", root=extracted, device="cpu", download=False)
    assert (train.num_samples, test.num_samples) == (50000, 10000)
    assert torch.bincount(train.targets).tolist() == [5000] * 10
    assert torch.bincount(test.targets).tolist() == [1000] * 10
    x, _ = test.images(10000)
    assert (x.mean((0, 2, 3)).abs() < 0.1).all() and ((x.std((0, 2, 3)) - 1).abs() < 0.1).all()
