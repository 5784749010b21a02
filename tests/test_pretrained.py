"""course_utils.models.pretrained: torchvision's ImageNet weights in our models, offline.

No test touches the network. torchvision's download function is replaced by a stand-in
checkpoint: random values under exactly the keys torchvision's file holds (built from a
torchvision model on the meta device, DenseNet with the old "norm.1" keys of its real
checkpoints). Random values, batch-norm statistics included, so that two swapped tensors
would change the output. Where torchvision's own builder is the reference, it loads the
same stand-in through its own code path (its DenseNet key fix included).
"""

from __future__ import annotations

import fnmatch
import re
from urllib.error import URLError

import pytest
import torch
import torchvision
from fake_weights import random_state_dict
from torch import nn

from course_utils import papers
from course_utils.models import (
    NO_WEIGHTS,
    PRETRAINED,
    WeightsUnavailableError,
    get_model,
    imagenet_weights_info,
    list_models,
    sample_images,
    top_k,
)
from course_utils.models.pretrained import (
    SAMPLE_IMAGES,
    cache_path,
    to_course_state_dict,
    torchvision_weights,
)

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny inputs: one intra-op thread is faster than two on a small busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """An empty torch cache of our own, and no network: torch.hub's download fails the way
    it fails without internet. Tests that need weights fake get_state_dict on top."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(url, *args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution (test: offline)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)


def standin_checkpoint(name: str, shared: dict, old_densenet_keys: bool = True) -> dict:
    """What torchvision's file for ``name`` holds, with random values of our own."""
    with torch.device("meta"):
        reference = getattr(torchvision.models, name)(weights=None)
    old_keys = old_densenet_keys and name.startswith("densenet")
    state = {}
    for key, value in random_state_dict(reference, shared).items():
        if key.endswith("num_batches_tracked"):
            if old_keys:
                continue  # the old files predate this counter (PyTorch 0.4.1)
            value = torch.tensor(7)  # not 0: proves the file's value was loaded
        if old_keys:
            # denselayer1.norm1.weight -> denselayer1.norm.1.weight, as in the real files
            key = re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", key)
        state[key] = value
    return state


def fake_download(monkeypatch, checkpoints: dict[str, dict]) -> list[dict]:
    """Serve ``checkpoints`` (url -> state dict) in place of torchvision's download; return
    the list of calls' keyword arguments."""
    calls = []

    def get_state_dict(self, *args, **kwargs):
        calls.append(kwargs)
        return dict(checkpoints[self.url])  # a copy: loaders may rename keys in place

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", get_state_dict)
    return calls


def url(name: str) -> str:
    return torchvision_weights(name).url


def relative_difference(got: torch.Tensor, expected: torch.Tensor) -> float:
    # Deep random nets give large logits: compare relative to the output's scale.
    return (got - expected).abs().max().item() / max(1.0, expected.abs().max().item())


# ---------------------------------------------------------------- which models


def test_every_model_has_weights_or_a_reason():
    assert set(PRETRAINED) | set(NO_WEIGHTS) == set(list_models())
    assert not set(PRETRAINED) & set(NO_WEIGHTS)
    assert set(PRETRAINED) == {
        "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
        "densenet121", "densenet169", "densenet201",
    }  # fmt: skip
    for name in PRETRAINED:
        weights = torchvision_weights(name)
        assert weights.name == "IMAGENET1K_V1"
        assert len(weights.meta["categories"]) == 1000


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("basic_cnn", ["MNIST"]),
        ("lenet5", ["MNIST"]),
        ("alexnet", ["96 filters", "64 filters", "LRN"]),
        ("googlenet", ["5x5", "3x3", "batch norm"]),
        ("resnet20", ["CIFAR-10"]),
        ("resnet110", ["CIFAR-10"]),
        ("plain20", ["CIFAR-10"]),
        ("densenet264", ["DenseNet-264"]),
    ],
)
def test_models_without_weights_say_why(monkeypatch, name, words):
    calls = fake_download(monkeypatch, {})
    with pytest.raises(ValueError, match="No published ImageNet weights") as err:
        get_model(name, weights="imagenet")
    for word in words:
        assert word in str(err.value)
    assert not calls  # refused before any download


def test_weights_names():
    assert torchvision_weights("resnet50", "IMAGENET1K_V2").name == "IMAGENET1K_V2"
    assert torchvision_weights("resnet50", "default").name == "IMAGENET1K_V2"
    assert torchvision_weights("vgg16", "ImageNet").name == "IMAGENET1K_V1"
    with pytest.raises(ValueError, match=r"Valid: 'imagenet', 'IMAGENET1K_V1'"):
        get_model("resnet18", weights="cifar10")
    with pytest.raises(ValueError, match="no trained 1000-class classifier"):
        get_model("vgg16", weights="IMAGENET1K_FEATURES")  # vgg16's features-only file


# ---------------------------------------------------------------- the name mapping


@pytest.mark.parametrize("name", list(PRETRAINED))
def test_every_torchvision_tensor_lands_in_our_model(monkeypatch, shared_weights, name):
    """Strict load of the stand-in for each model; every tensor of ours is the file's."""
    checkpoint = standin_checkpoint(name, shared_weights)
    calls = fake_download(monkeypatch, {url(name): checkpoint})
    model = get_model(name, weights="imagenet")

    assert calls == [{"progress": True, "check_hash": True, "map_location": "cpu"}]
    ours = model.state_dict()
    mapped = to_course_state_dict(name, checkpoint)
    assert len(mapped) == len(checkpoint)
    assert set(mapped) <= set(ours)
    # All that the file may lack: BatchNorm's counters, in files older than them.
    assert all(k.endswith("num_batches_tracked") for k in set(ours) - set(mapped))
    for key, value in mapped.items():
        assert torch.equal(ours[key], value), key
    if name.startswith("densenet"):
        assert any(".norm.1." in k for k in checkpoint)  # the old keys were really there
        key = "features.denseblock1.denselayer1.norm1.weight"
        assert torch.equal(ours[key], checkpoint[key.replace("norm1", "norm.1")])
    else:
        assert set(ours) == set(checkpoint)  # VGG and ResNet: the names are the same
    assert all(p.requires_grad for p in model.parameters())
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    assert model.training  # like every freshly built model
    if name in ("resnet50", "resnet101", "resnet152"):
        assert model.stride_in_3x3  # torchvision's stride placement, set automatically


def test_densenet_mapping_renames_every_old_key(monkeypatch, shared_weights):
    old = standin_checkpoint("densenet121", shared_weights)
    new = standin_checkpoint("densenet121", shared_weights, old_densenet_keys=False)
    assert {k for k in old if "denselayer" in k} & {k for k in new if "denselayer" in k} == set()
    assert len(old) < len(new)  # no num_batches_tracked in the old file
    for checkpoint in (old, new):  # a re-saved file with the new names loads too
        fake_download(monkeypatch, {url("densenet121"): checkpoint})
        ours = get_model("densenet121", weights="imagenet").state_dict()
        assert set(ours) == set(new)
        for key in new:
            if not key.endswith("num_batches_tracked"):
                assert torch.equal(ours[key], new[key]), key


def test_old_checkpoints_without_num_batches_tracked_load(monkeypatch, shared_weights):
    checkpoint = standin_checkpoint("resnet18", shared_weights)
    checkpoint = {k: v for k, v in checkpoint.items() if "num_batches_tracked" not in k}
    fake_download(monkeypatch, {url("resnet18"): checkpoint})
    model = get_model("resnet18", weights="imagenet")
    assert model.bn1.num_batches_tracked.item() == 0


# ---------------------------------------------------------------- same outputs


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "densenet121"])
def test_outputs_equal_torchvision_loading_the_same_file(monkeypatch, shared_weights, name):
    """torchvision's builder loads the stand-in its own way; ours must compute the same."""
    fake_download(monkeypatch, {url(name): standin_checkpoint(name, shared_weights)})
    theirs = getattr(torchvision.models, name)(weights="IMAGENET1K_V1").eval()
    ours = get_model(name, weights="imagenet").eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert relative_difference(ours(x), theirs(x)) < 1e-6


def test_vgg_output_equals_torchvision(monkeypatch, shared_weights):
    # torchvision's VGG builder would first draw 120M random classifier weights: load the
    # same stand-in into a meta-built one instead (same keys, checked above).
    checkpoint = standin_checkpoint("vgg11_bn", shared_weights)
    fake_download(monkeypatch, {url("vgg11_bn"): checkpoint})
    with torch.device("meta"):
        theirs = torchvision.models.vgg11_bn(weights=None)
    theirs.load_state_dict(checkpoint, assign=True)
    ours = get_model("vgg11_bn", weights="imagenet")
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert relative_difference(ours.eval()(x), theirs.eval()(x)) < 1e-6


# ---------------------------------------------------------------- options


def test_other_num_classes_loads_all_but_the_head(monkeypatch, shared_weights):
    checkpoint = standin_checkpoint("resnet18", shared_weights)
    fake_download(monkeypatch, {url("resnet18"): checkpoint})
    model = get_model("resnet18", weights="imagenet", num_classes=10)
    ours = model.state_dict()
    assert ours["fc.weight"].shape == (10, 512) and ours["fc.bias"].shape == (10,)
    for key, value in checkpoint.items():
        if not key.startswith("fc."):
            assert torch.equal(ours[key], value), key
    x = torch.randn(1, 3, 64, 64)
    assert model.eval()(x).shape == (1, 10)


def test_paper_stride_is_refused_for_resnet50(monkeypatch):
    calls = fake_download(monkeypatch, {})
    with pytest.raises(ValueError, match=r"stride_in_3x3=True.*'ResNet v1.5'"):
        get_model("resnet50", weights="imagenet", stride_in_3x3=False)
    assert not calls


def test_in_channels_must_be_3(monkeypatch):
    fake_download(monkeypatch, {})
    with pytest.raises(ValueError, match=r"RGB input \(in_channels=3\)"):
        get_model("resnet18", weights="imagenet", in_channels=1)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("vgg11", {"lrn": True}, "not in the model: features.11.bias"),  # LRN shifts indices
        ("vgg16", {"config": "C"}, r"different shapes: features.14.weight"),
        ("vgg16", {"pool_size": 1, "classifier_width": 512}, "different shapes"),
    ],
)
def test_architecture_options_that_do_not_fit_are_named(
    monkeypatch, shared_weights, name, kwargs, message
):
    fake_download(monkeypatch, {url(name): standin_checkpoint(name, shared_weights)})
    with pytest.raises(ValueError, match="do not fit") as err:
        get_model(name, weights="imagenet", **kwargs)
    assert re.search(message, str(err.value)), str(err.value)


# ---------------------------------------------------------------- offline


def test_offline_error_says_where_the_file_goes(tmp_path):
    with pytest.raises(WeightsUnavailableError) as err:
        get_model("resnet50", weights="imagenet")
    message = str(err.value)
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    assert str(expected) in message  # follows TORCH_HOME, as torch.hub does
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in message
    assert "name resolution" in message  # the original error is kept
    assert "Kaggle Dataset" in message and "/kaggle/input/" in message
    assert "Colab" in message and "TORCH_HOME" in message
    assert isinstance(err.value, OSError)


def test_a_file_put_in_the_cache_is_used_offline(shared_weights):
    """What the offline message tells students to do works: no download, same weights."""
    checkpoint = standin_checkpoint("resnet18", shared_weights)
    path = cache_path(torchvision_weights("resnet18"))
    path.parent.mkdir(parents=True)
    torch.save(checkpoint, path)
    model = get_model("resnet18", weights="imagenet")  # the download would raise
    assert torch.equal(model.fc.weight, checkpoint["fc.weight"])


# ---------------------------------------------------------------- using the weights


def test_imagenet_weights_info():
    info = imagenet_weights_info("resnet50")
    assert len(info.categories) == 1000 and info.categories[0] == "tench"
    assert info.top1 == pytest.approx(papers.TORCHVISION["resnet50"]["acc1"])
    assert info.top5 == pytest.approx(papers.TORCHVISION["resnet50"]["acc5"])
    assert info.file.name == info.url.rsplit("/", 1)[-1]
    _, image = sample_images()[0]
    assert info.transforms(image).shape == (3, 224, 224)
    assert imagenet_weights_info("resnet50", "IMAGENET1K_V2").top1 > info.top1
    with pytest.raises(ValueError, match="MNIST"):
        imagenet_weights_info("lenet5")


def test_top_k_on_the_sample_images(monkeypatch, shared_weights):
    fake_download(monkeypatch, {url("resnet18"): standin_checkpoint("resnet18", shared_weights)})
    model = get_model("resnet18", weights="imagenet")
    info = imagenet_weights_info("resnet18")
    for _, image in sample_images()[:2]:
        best = top_k(model, image, info, k=5)
        assert len(best) == 5
        assert all(name in info.categories for name, _ in best)
        probabilities = [p for _, p in best]
        assert probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1 + 1e-6
    assert model.training  # top_k put it back the way it was


# ---------------------------------------------------------------- sample images


def test_sample_images_load_and_are_documented(repo_root):
    images = sample_images()
    assert 3 <= len(images) <= 5
    folder = repo_root / "course_utils" / SAMPLE_IMAGES
    readme = (folder / "README.md").read_text(encoding="utf-8")
    files = sorted(p.name for p in folder.glob("*.jpg"))
    assert [f"{name}.jpg" for name, _ in images] == files
    for name, image in images:
        assert image.mode == "RGB" and min(image.size) <= 256
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}.jpg`"))
        assert "public domain" in row or "CC0" in row, row  # only such images ship
    assert sum(p.stat().st_size for p in folder.glob("*.jpg")) < 150_000


def test_sample_images_are_package_data(repo_root):
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["course_utils"]
    for path in (repo_root / "course_utils" / SAMPLE_IMAGES).iterdir():
        relative = f"{SAMPLE_IMAGES}/{path.name}"
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative


def test_get_model_without_weights_is_unchanged():
    # get_model without weights is unchanged: a fresh model in training mode.
    with torch.device("meta"):
        model = get_model("resnet18")
    assert isinstance(model, nn.Module) and model.training
