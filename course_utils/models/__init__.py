"""The course's model zoo, one file per architecture, each to be read beside its paper:
LeNet-5, AlexNet, VGG, GoogLeNet, ResNet, DenseNet (and ``basic_cnn``, the first MNIST CNN).

    from course_utils.models import get_model, list_models
    model = get_model("resnet50", num_classes=10)

Every model takes ``num_classes=`` and ``in_channels=``, has ``input_size`` (the paper's
(C, H, W)) and ``min_input_size`` (smallest H = W it accepts), and raises a ``ValueError``
saying what it expects when given the wrong image size or channel count. Variants are
keywords of one model, not separate names:

* ``get_model("lenet5", activation="relu", pooling="max")``: the modern LeNet;
  ``c3_table=True``: the paper's partial C3 connections
* ``get_model("alexnet", groups=2)``: the paper's two-GPU split; ``lrn=False``
* ``get_model("vgg11", lrn=True)``: VGG config A-LRN
* ``get_model("vgg16", config="C")``: VGG config C (1x1 convolutions)
* ``get_model("googlenet", aux_logits=True)``: with the two auxiliary classifiers
* ``get_model("resnet50", stride_in_3x3=True)``: torchvision's stride placement ("v1.5")
* ``get_model("resnet20")`` ... ``"resnet110"``, ``"plain20"`` ... ``"plain56"``: the CIFAR-10
  networks of the ResNet paper's Section 4.2 (``shortcut="A"`` zero padding or ``"B"``);
  ``cifar_resnet(depth, residual=...)`` for other depths 6n + 2

Pretrained (details in :mod:`course_utils.models.pretrained`): ``get_model("resnet50",
weights="imagenet")`` loads torchvision's ImageNet weights into our VGG, ResNet-18...152
and DenseNet-121/169/201 (the others say why they have none); ``imagenet_weights_info``,
``sample_images()`` and ``top_k(model, image, info)`` help try them.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .alexnet import AlexNet, alexnet
from .basic_cnn import BasicCNN, basic_cnn
from .densenet import DenseNet, densenet121, densenet169, densenet201, densenet264
from .googlenet import GoogLeNet, Inception, NaiveInception, googlenet
from .lenet import LeNet5, lenet5
from .pretrained import (
    NO_WEIGHTS,
    PRETRAINED,
    ImageNetWeights,
    WeightsUnavailableError,
    imagenet_weights_info,
    load_pretrained,
    sample_images,
    top_k,
)
from .resnet import (
    BasicBlock,
    Bottleneck,
    ResNet,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
)
from .resnet_cifar import (
    CifarResNet,
    cifar_resnet,
    plain20,
    plain32,
    plain44,
    plain56,
    resnet20,
    resnet32,
    resnet44,
    resnet56,
    resnet110,
)
from .vgg import VGG, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn

MODELS: dict[str, Callable[..., nn.Module]] = {
    "basic_cnn": basic_cnn, "lenet5": lenet5, "alexnet": alexnet,
    "vgg11": vgg11, "vgg13": vgg13, "vgg16": vgg16, "vgg19": vgg19,
    "vgg11_bn": vgg11_bn, "vgg13_bn": vgg13_bn, "vgg16_bn": vgg16_bn, "vgg19_bn": vgg19_bn,
    "googlenet": googlenet,
    "resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50,
    "resnet101": resnet101, "resnet152": resnet152,
    # CIFAR-10 ResNets and plain nets of Section 4.2 (32x32 input, 10 classes by default)
    "resnet20": resnet20, "resnet32": resnet32, "resnet44": resnet44, "resnet56": resnet56,
    "resnet110": resnet110,
    "plain20": plain20, "plain32": plain32, "plain44": plain44, "plain56": plain56,
    "densenet121": densenet121, "densenet169": densenet169, "densenet201": densenet201,
    "densenet264": densenet264,
}


def list_models() -> list[str]:
    """Names ``get_model`` accepts, in the order the course meets them."""
    return list(MODELS)


def get_model(name: str, weights: str | None = None, **kwargs) -> nn.Module:
    """Build a model by name, e.g. ``get_model("vgg16", num_classes=10)``.

    Keywords go to the model (``num_classes``, ``in_channels``, the variants in the module
    docstring); an unknown name raises ``ValueError`` listing the valid ones.
    ``weights=None``: random initialisation; ``weights="imagenet"``: torchvision's ImageNet
    weights, downloaded once (the rules are in :mod:`course_utils.models.pretrained`).
    """
    key = name.lower()
    if key not in MODELS:
        raise ValueError(f"Unknown model {name!r}. Valid names: {', '.join(MODELS)}.")
    if weights is None:
        return MODELS[key](**kwargs)
    return load_pretrained(key, MODELS[key], weights, **kwargs)


__all__ = [
    "MODELS", "NO_WEIGHTS", "PRETRAINED", "AlexNet", "BasicBlock", "BasicCNN", "Bottleneck",
    "CifarResNet", "DenseNet", "GoogLeNet", "ImageNetWeights", "Inception", "LeNet5",
    "NaiveInception", "ResNet", "VGG", "WeightsUnavailableError", "cifar_resnet", "get_model",
    "imagenet_weights_info", "list_models", "load_pretrained", "sample_images", "top_k",
]
