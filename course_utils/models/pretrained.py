"""torchvision's published ImageNet weights in the course's own models.

    from course_utils.models import get_model, imagenet_weights_info, sample_images, top_k
    model = get_model("resnet50", weights="imagenet")      # downloads once, then cached
    info = imagenet_weights_info("resnet50")               # class names, preprocessing
    for name, image in sample_images():
        print(name, top_k(model, image, info))

Our VGG, ResNet and DenseNet compute exactly what torchvision's do (tests/test_models.py),
so torchvision's trained weights fit them; :data:`NO_WEIGHTS` says why the others have none
(our AlexNet and GoogLeNet follow their papers, torchvision's do not).

* ResNet-50/101/152: the weights were trained with torchvision's stride placement ("v1.5",
  stride in the 3x3) and give wrong answers with the paper's (stride in the first 1x1), so
  ``weights="imagenet"`` sets ``stride_in_3x3=True`` and refuses ``stride_in_3x3=False``.
* ``weights="imagenet"`` is torchvision's ``IMAGENET1K_V1`` (the original recipe, whose
  accuracies :data:`course_utils.papers.TORCHVISION` lists); enum member names such as
  ``"IMAGENET1K_V2"`` (a much longer modern recipe: 80.9% top-1 for ResNet-50) or
  ``"DEFAULT"`` work too.
* ``num_classes`` other than 1000: all but the last layer is loaded, which keeps its fresh
  initialisation. ``in_channels`` must stay 3. Options that change the architecture
  (``lrn=True``, ``config="C"``, VGG's ``pool_size``...) raise an error listing the misfits.

torchvision downloads the file once (into ``torch.hub.get_dir()/checkpoints``, hash
checked), :func:`to_course_state_dict` renames its keys to ours (only DenseNet's old keys
differ), and a strict load guarantees that no parameter was left out. Offline,
:class:`WeightsUnavailableError` says where the file has to go (also on Kaggle or Colab).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from itertools import chain
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

IMAGENET = "imagenet"  # weights="imagenet": torchvision's IMAGENET1K_V1 (see the docstring)
IMAGENET_CLASSES = 1000

# torchvision's DenseNet checkpoints predate a PyTorch rule (no "." inside module names):
# they store "denselayer1.norm.1.weight" where the module (ours and torchvision's) is
# "denselayer1.norm1". torchvision's own loader renames them with this same pattern
# (torchvision/models/densenet.py, _load_state_dict); get_state_dict() does not.
_DENSENET_OLD_KEYS = (
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.(?:weight|bias|running_mean|running_var))$",
    r"\1\2",
)


@dataclass(frozen=True)
class PretrainedSpec:
    """How torchvision's weights for one model become ours."""

    torchvision_name: str
    head: str  # the final 1000-class layer: the only part a different num_classes replaces
    # torchvision key -> our key, as (regex, replacement) pairs applied in order.
    renames: tuple[tuple[str, str], ...] = ()
    required: dict[str, Any] = field(default_factory=dict)  # keywords the weights need


_V15 = {"stride_in_3x3": True}  # ResNet-50+: torchvision's stride placement

PRETRAINED: dict[str, PretrainedSpec] = {
    **{name: PretrainedSpec(name, head="classifier.6")  # FC-4096, FC-4096, FC-1000
       for name in ("vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn",
                    "vgg19_bn")},
    **{name: PretrainedSpec(name, head="fc") for name in ("resnet18", "resnet34")},
    **{name: PretrainedSpec(name, head="fc", required=_V15)
       for name in ("resnet50", "resnet101", "resnet152")},
    **{name: PretrainedSpec(name, head="classifier", renames=(_DENSENET_OLD_KEYS,))
       for name in ("densenet121", "densenet169", "densenet201")},
}  # fmt: skip

_CIFAR = (
    "it is a CIFAR-10 network of the ResNet paper (Section 4.2: 32x32 images, 10 classes); "
    "no ImageNet weights exist for it. Train it with the course's fit() - it is small"
)
_MNIST = (
    "it is an MNIST network (28x28 or 32x32 grey digits, 10 classes); no ImageNet weights "
    "exist for it. Train it with the course's fit() - it takes seconds"
)

# Every other registry name, with the reason it has no weights (the error message says it).
NO_WEIGHTS: dict[str, str] = {
    "basic_cnn": _MNIST,
    "lenet5": _MNIST,
    "alexnet": (
        "our AlexNet follows the 2012 paper (96 filters in conv1, 227x227 input, local "
        "response normalisation), while torchvision's alexnet weights belong to the later "
        "'one weird trick' one-tower variant (64 filters in conv1, no LRN): a different "
        "network whose weights do not fit ours. Use torchvision.models.alexnet(weights="
        "'IMAGENET1K_V1') to try the pretrained variant"
    ),
    "googlenet": (
        "our GoogLeNet follows the paper (a real 5x5 convolution in each Inception "
        "module's '5x5' branch, LRN, no batch normalisation), while torchvision's googlenet "
        "weights belong to a later re-implementation (3x3 instead of 5x5, batch norm after "
        "every convolution): a different network whose weights do not fit ours. Use "
        "torchvision.models.googlenet(weights='IMAGENET1K_V1') to try the pretrained variant"
    ),
    **{name: _CIFAR for name in ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
                                 "plain20", "plain32", "plain44", "plain56")},
    "densenet264": (
        "torchvision publishes no DenseNet-264 weights (only densenet121, 161, 169, 201; "
        "161 is a k = 48 variant the course does not build). Use densenet121/169/201"
    ),
}  # fmt: skip


class WeightsUnavailableError(OSError):
    """The weights could not be downloaded; the message says how to provide the file."""


def _spec(name: str) -> PretrainedSpec:
    key = name.lower()
    if key in PRETRAINED:
        return PRETRAINED[key]
    if key in NO_WEIGHTS:
        raise ValueError(f"No published ImageNet weights fit {name!r}: {NO_WEIGHTS[key]}.")
    raise ValueError(
        f"Unknown model {name!r}. Models with ImageNet weights: {', '.join(PRETRAINED)}."
    )


def torchvision_weights(name: str, weights: str = IMAGENET) -> torchvision.models.WeightsEnum:
    """torchvision's weights enum member for a course model (nothing is downloaded).
    ``weights``: ``"imagenet"`` (= ``IMAGENET1K_V1``) or a member name of the enum."""
    enum = torchvision.models.get_model_weights(_spec(name).torchvision_name)
    member = "IMAGENET1K_V1" if weights.lower() == IMAGENET else weights.upper()
    try:
        chosen = enum[member]  # "DEFAULT" is an alias member of every enum
    except KeyError:
        valid = ", ".join(repr(m) for m in [IMAGENET, *enum.__members__])
        raise ValueError(f"Unknown weights {weights!r} for {name!r}. Valid: {valid}.") from None
    # vgg16's IMAGENET1K_FEATURES: a convolutional stack for style transfer, whose
    # classifier was never trained (its metadata has no categories).
    if len(chosen.meta.get("categories") or ()) != IMAGENET_CLASSES:
        raise ValueError(
            f"{chosen} has no trained 1000-class classifier; use weights={IMAGENET!r}."
        )
    return chosen


def cache_path(weights: torchvision.models.WeightsEnum) -> Path:
    """Where torchvision keeps (and first looks for) the downloaded file: the same rule as
    ``torch.hub.load_state_dict_from_url``, i.e. ``$TORCH_HOME/hub/checkpoints/<file>``."""
    filename = os.path.basename(urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


@dataclass(frozen=True)
class ImageNetWeights:
    """What a notebook needs to use the weights of one model."""

    model: str
    weights: torchvision.models.WeightsEnum
    categories: list[str]  # the 1000 class names in output order: logits[i] is categories[i]
    # PIL image (or uint8 tensor) -> normalised float tensor: exactly the evaluation
    # preprocessing (resize 256, centre crop 224, ImageNet mean/std for IMAGENET1K_V1)
    transforms: Callable[[Any], torch.Tensor]
    top1: float  # accuracy (%) torchvision measured on ImageNet's validation set, one crop
    top5: float
    url: str
    file: Path  # where the download is cached

    def __repr__(self) -> str:
        return (
            f"ImageNetWeights({self.model!r}, {self.weights}, top-1 {self.top1:.1f}%, "
            f"top-5 {self.top5:.1f}%, file {str(self.file)!r})"
        )


def imagenet_weights_info(name: str, weights: str = IMAGENET) -> ImageNetWeights:
    """Class names, preprocessing and published accuracy of a model's ImageNet weights,
    read from torchvision's weights metadata; nothing is downloaded."""
    chosen = torchvision_weights(name, weights)
    metrics = chosen.meta["_metrics"]["ImageNet-1K"]
    return ImageNetWeights(
        model=name.lower(), weights=chosen, categories=list(chosen.meta["categories"]),
        transforms=chosen.transforms(), top1=metrics["acc@1"], top5=metrics["acc@5"],
        url=chosen.url, file=cache_path(chosen),
    )


def download_state_dict(weights: torchvision.models.WeightsEnum,
                        progress: bool = True) -> dict[str, torch.Tensor]:
    """torchvision's state dict for ``weights``: from the cache, else downloaded (hash
    checked). Offline, a :class:`WeightsUnavailableError` explains how to add the file."""
    try:
        return weights.get_state_dict(progress=progress, check_hash=True, map_location="cpu")
    except OSError as err:  # URLError, HTTPError, timeouts, DNS failures: all OSError
        raise WeightsUnavailableError(_offline_message(weights, err)) from err


def _offline_message(weights: torchvision.models.WeightsEnum, err: Exception) -> str:
    path = cache_path(weights)
    folder, file = path.parent, path.name
    return (
        f"Could not download the ImageNet weights {weights} ({err}).\n"
        f"torchvision looks for the file here before it downloads anything:\n"
        f"    {path}\n"
        f"(torch.hub.get_dir()/checkpoints; the environment variable TORCH_HOME moves it to "
        f"$TORCH_HOME/hub/checkpoints). To work without internet, download\n"
        f"    {weights.url}\n"
        f"on a machine that has it and put the file there, keeping its name {file}:\n"
        f"* Kaggle: either switch on Settings > Internet (needs a phone-verified account), or "
        f"upload {file} as a Kaggle Dataset, add it to the notebook (Add Input) and copy it "
        f"into the folder:\n"
        f"    import os, shutil\n"
        f"    os.makedirs({str(folder)!r}, exist_ok=True)\n"
        f"    shutil.copy('/kaggle/input/<your-dataset>/{file}', {str(folder)!r})\n"
        f"  (or, if the dataset keeps the file under hub/checkpoints/, set "
        f"os.environ['TORCH_HOME'] = '/kaggle/input/<your-dataset>' before loading).\n"
        f"* Colab: upload {file} (Files panel, or Google Drive mounted with "
        f"google.colab.drive.mount) and copy it into the same folder the same way."
    )


def to_course_state_dict(name: str, state_dict: dict[str, torch.Tensor]) -> dict:
    """torchvision's keys -> ours, per :data:`PRETRAINED`'s ``renames``; values untouched."""
    renames = _spec(name).renames
    mapped = {}
    for key, value in state_dict.items():
        for pattern, replacement in renames:
            key = re.sub(pattern, replacement, key)
        if key in mapped:
            raise ValueError(f"Two torchvision keys map to {key!r}: the renames are wrong.")
        mapped[key] = value
    return mapped


def _check_fits(model: nn.Module, state: dict, name: str, kwargs: dict) -> None:
    """Same keys, same shapes, or an error that lists the differences (a model built with
    options that change the architecture cannot take the standard weights)."""
    ours = model.state_dict()
    differences = {
        "missing from the weights": sorted(set(ours) - set(state)),
        "not in the model": sorted(set(state) - set(ours)),
        "different shapes": sorted(
            f"{k}: ours {tuple(ours[k].shape)}, weights {tuple(state[k].shape)}"
            for k in set(ours) & set(state)
            if ours[k].shape != state[k].shape
        ),
    }
    problems = []
    for label, items in differences.items():
        if items:
            more = f" ... ({len(items)} in all)" if len(items) > 5 else ""
            problems.append(f"{label}: {', '.join(items[:5])}{more}")
    if problems:
        options = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "none"
        raise ValueError(
            f"torchvision's weights do not fit {name} built with options ({options}): "
            + "; ".join(problems)
            + ". The weights are for the standard architecture: leave out options that change "
            "it (lrn, config, pool_size, classifier_width, block sizes ...)."
        )


def load_pretrained(name: str, factory: Callable[..., nn.Module], weights: str = IMAGENET,
                    progress: bool = True, **kwargs: Any) -> nn.Module:
    """Build ``factory(**kwargs)`` and load torchvision's ImageNet weights into it (what
    ``get_model(name, weights=...)`` does; the rules are in the module docstring)."""
    spec = _spec(name)
    chosen = torchvision_weights(name, weights)  # a bad name fails before any download
    for key, needed in spec.required.items():
        if kwargs.get(key, needed) != needed:
            raise ValueError(
                f"{name} with weights={weights!r} needs {key}={needed!r}: torchvision trained "
                f"these weights with the stride in the 3x3 convolution of each bottleneck "
                f"('ResNet v1.5'); with the paper's placement (stride in the first 1x1) they "
                f"compute something else. Leave {key} out (it is set for you) or train the "
                f"paper's version from scratch."
            )
        kwargs[key] = needed
    if kwargs.get("in_channels", 3) != 3:
        raise ValueError(
            f"ImageNet weights expect RGB input (in_channels=3), got in_channels="
            f"{kwargs['in_channels']}. For grey images repeat the channel: x.expand(-1, 3, -1, -1)."
        )
    new_head = kwargs.get("num_classes", IMAGENET_CLASSES) != IMAGENET_CLASSES

    state = to_course_state_dict(name, download_state_dict(chosen, progress))
    if new_head:
        # Built normally (the head gets the model's own initialisation); that head goes into
        # the state dict in place of the 1000-class one, so the load can stay strict.
        model = factory(**kwargs)
        own = model.state_dict()
        for key in [k for k in state if k.startswith(spec.head + ".")]:
            state[key] = own[key]
    else:
        # Every parameter comes from the file, so the model is built on the meta device
        # (no memory, no random initialisation: 0.5 GB and a second or two saved for VGG)
        # and the file's tensors are assigned in place of the empty ones.
        with torch.device("meta"):
            model = factory(**kwargs)
    # Checkpoints saved before PyTorch 0.4.1 have no BatchNorm "num_batches_tracked"
    # counter. It only matters when training with momentum=None; 0 is what BatchNorm
    # itself assumes for such files. Added explicitly so that the strict check can be strict.
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value, device="cpu")
    _check_fits(model, state, name, kwargs)
    model.load_state_dict(state, strict=True, assign=not new_head)
    if not new_head:
        tensors = chain(model.named_parameters(), model.named_buffers())
        leftover = [n for n, t in tensors if t.is_meta]
        if leftover:  # a tensor outside the state dict: a bug here, not the user's
            raise RuntimeError(f"{name}: not loaded from the weights: {leftover}")
    return model  # in training mode like any new model; top_k() and evaluate() switch to eval


@torch.no_grad()
def top_k(model: nn.Module, image: Any, info: ImageNetWeights,
          k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most probable ImageNet classes for one PIL image, as (name, probability),
    with the weights' own preprocessing; leaves the model in the train/eval mode it was in."""
    was_training = model.training
    device = next(model.parameters()).device
    x = info.transforms(image).unsqueeze(0).to(device)
    probs = model.eval()(x).softmax(dim=1)[0]
    model.train(was_training)
    values, indices = probs.topk(k)
    return [(info.categories[i], p) for i, p in zip(indices.tolist(), values.tolist(), strict=True)]


SAMPLE_IMAGES = "sample_images"


def sample_images() -> list[tuple[str, Any]]:
    """The photos shipped with the package (see sample_images/README.md for sources and
    licenses), as (name, PIL RGB image) in alphabetical order."""
    from PIL import Image  # Pillow comes with torchvision

    folder = resources.files("course_utils").joinpath(SAMPLE_IMAGES)
    images = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".jpg"):
            with entry.open("rb") as f:
                image = Image.open(f)
                image.load()  # read now: the file closes when the block ends
            images.append((entry.name.removesuffix(".jpg"), image.convert("RGB")))
    return images
