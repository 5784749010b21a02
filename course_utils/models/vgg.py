"""VGG (Simonyan and Zisserman 2015, "Very deep convolutional networks for large-scale
image recognition", Table 1 configurations).

Each configuration below is a column of Table 1, written the way the paper writes it:
``"conv3-64"`` is a 3x3 convolution with 64 output channels (stride 1, padding 1, so the
size stays), ``"conv1-256"`` a 1x1 convolution (config C), ``"LRN"`` local response
normalisation (config A-LRN), ``"maxpool"`` 2x2 max pooling with stride 2. Every
convolution is followed by ReLU; the classifier is FC-4096, FC-4096, FC-num_classes with
dropout 0.5 after the first two. Module names equal torchvision's ``vgg*`` (and
``vgg*_bn``), so their state dicts load. Parameter counts: ``course_utils.papers.PARAMS``
(exact, = torchvision's; config C is "vgg16_c"), and Table 2's rounded ones in
``papers.PAPER_PARAMS``.
"""

from __future__ import annotations

import torch
from torch import nn

from ._input_check import check_input
from .alexnet import local_response_norm

CONFIGS: dict[str, list[str]] = {
    "A": ["conv3-64", "maxpool",
          "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "maxpool",
          "conv3-512", "conv3-512", "maxpool",
          "conv3-512", "conv3-512", "maxpool"],
    "A-LRN": ["conv3-64", "LRN", "maxpool",
              "conv3-128", "maxpool",
              "conv3-256", "conv3-256", "maxpool",
              "conv3-512", "conv3-512", "maxpool",
              "conv3-512", "conv3-512", "maxpool"],
    "B": ["conv3-64", "conv3-64", "maxpool",
          "conv3-128", "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "maxpool",
          "conv3-512", "conv3-512", "maxpool",
          "conv3-512", "conv3-512", "maxpool"],
    "C": ["conv3-64", "conv3-64", "maxpool",
          "conv3-128", "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "conv1-256", "maxpool",
          "conv3-512", "conv3-512", "conv1-512", "maxpool",
          "conv3-512", "conv3-512", "conv1-512", "maxpool"],
    "D": ["conv3-64", "conv3-64", "maxpool",
          "conv3-128", "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "conv3-256", "maxpool",
          "conv3-512", "conv3-512", "conv3-512", "maxpool",
          "conv3-512", "conv3-512", "conv3-512", "maxpool"],
    "E": ["conv3-64", "conv3-64", "maxpool",
          "conv3-128", "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "conv3-256", "conv3-256", "maxpool",
          "conv3-512", "conv3-512", "conv3-512", "conv3-512", "maxpool",
          "conv3-512", "conv3-512", "conv3-512", "conv3-512", "maxpool"],
}  # fmt: skip


def make_features(config: list[str], in_channels: int, batch_norm: bool) -> nn.Sequential:
    """Turn a column of Table 1 into layers: conv (+ BN) + ReLU, LRN, or max pool."""
    layers: list[nn.Module] = []
    for entry in config:
        if entry == "maxpool":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif entry == "LRN":
            layers.append(local_response_norm())
        else:  # "conv<k>-<channels>"
            kernel, channels = (int(n) for n in entry.removeprefix("conv").split("-"))
            layers.append(nn.Conv2d(in_channels, channels, kernel, padding=kernel // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(channels))
            layers.append(nn.ReLU(inplace=True))
            in_channels = channels
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """A VGG network built from one of the :data:`CONFIGS` ("A", "A-LRN", "B", "C", "D",
    "E")."""

    input_size = (3, 224, 224)
    # Five 2x2 poolings halve the image five times: 32 is the smallest that leaves 1x1.
    min_input_size = 32

    def __init__(self, config: str = "D", num_classes: int = 1000, in_channels: int = 3,
                 batch_norm: bool = False, dropout: float = 0.5, pool_size: int = 7,
                 classifier_width: int = 4096) -> None:
        super().__init__()
        if config not in CONFIGS:
            raise ValueError(f"VGG config must be one of {list(CONFIGS)}, got {config!r}")
        self.config = config
        self.in_channels = in_channels
        self.input_size = (in_channels, 224, 224)
        self.features = make_features(CONFIGS[config], in_channels, batch_norm)
        # 7x7 already at 224x224: a no-op there, and it keeps the classifier's 512*7*7 inputs
        # (and torchvision's weights) valid at other sizes. pool_size=1, classifier_width=512:
        # the small head of VGG's CIFAR-10 adaptations, where a CPU cannot afford the 120 M
        # weights of the paper's 4096-wide layers; the convolutional stack stays the paper's.
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        width = self.classifier_width = classifier_width
        self.classifier = nn.Sequential(
            nn.Linear(512 * pool_size**2, width), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
            nn.Linear(width, width), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
            nn.Linear(width, num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # He initialisation, as torchvision does; the paper pre-trained the deeper nets
        # from config A instead, then noted that Glorot initialisation works too.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                # N(0, 0.01) suits 4096-wide layers (signal scale 0.01 * sqrt(4096) = 0.64 per
                # layer); a 512-wide head would shrink it 0.23x per layer: He's rule instead.
                if self.classifier_width >= 4096:
                    nn.init.normal_(m.weight, 0, 0.01)
                else:
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x)  # shapes for a 224x224 input
        x = self.avgpool(self.features(x))  # 512 x 7 x 7
        return self.classifier(torch.flatten(x, 1))  # num_classes


def vgg11(*, lrn: bool = False, **kwargs) -> VGG:  # config A; lrn=True: A-LRN
    return VGG("A-LRN" if lrn else "A", **kwargs)


def vgg13(**kwargs) -> VGG:  # config B
    return VGG("B", **kwargs)


def vgg16(*, config: str = "D", **kwargs) -> VGG:  # config D; "C": three of its 3x3 are 1x1
    if config not in ("C", "D"):
        raise ValueError(f"VGG-16 is config 'C' or 'D' of the paper, got {config!r}")
    return VGG(config, **kwargs)


def vgg19(**kwargs) -> VGG:  # config E
    return VGG("E", **kwargs)


# With batch normalisation after each convolution (not in the paper; torchvision's vgg*_bn).
def vgg11_bn(**kwargs) -> VGG:
    return vgg11(batch_norm=True, **kwargs)


def vgg13_bn(**kwargs) -> VGG:
    return vgg13(batch_norm=True, **kwargs)


def vgg16_bn(**kwargs) -> VGG:
    return vgg16(batch_norm=True, **kwargs)


def vgg19_bn(**kwargs) -> VGG:
    return vgg19(batch_norm=True, **kwargs)
