"""DenseNet-BC (Huang, Liu, van der Maaten, Weinberger 2017, "Densely connected
convolutional networks", Table 1, ImageNet architectures, growth rate k = 32).

    conv0     7x7 conv, 2k channels, stride 2; 3x3 max pool, stride 2   56x56
    block 1   [BN-ReLU-1x1 conv 4k, BN-ReLU-3x3 conv k] x 6              56x56
    trans 1   BN-ReLU-1x1 conv (halve the channels), 2x2 avg pool / 2    28x28
    block 2   x 12                                                       28x28
    trans 2                                                              14x14
    block 3   x 24 / 32 / 48 / 64 (121 / 169 / 201 / 264)               14x14
    trans 3                                                              7x7
    block 4   x 16 / 32 / 32 / 48                                        7x7
              BN-ReLU, global average pool, FC num_classes

Every layer of a block sees the concatenation of the block input and all earlier
layers' outputs, and adds k new channels ("growth rate"). The 1x1 "bottleneck" (B) and
the transitions' compression 0.5 (C) make it DenseNet-BC. Module names equal
torchvision's, so its state dicts load directly; the parameter counts are in
``course_utils.papers.PARAMS``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from ._input_check import check_input


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (4k channels) then BN-ReLU-3x3 conv (k channels): k new maps."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int = 4) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(x)))


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers; each one's output is concatenated onto its input."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(in_channels + i * growth_rate, growth_rate)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.values():
            x = torch.cat([x, layer(x)], dim=1)
        return x


class Transition(nn.Sequential):
    """Between blocks: BN-ReLU-1x1 conv (compression: fewer channels), 2x2 average pool."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """DenseNet-BC from the number of layers in each of the four dense blocks."""

    input_size = (3, 224, 224)
    # Like ResNet the image is halved five times; 32x32 leaves 1x1 before the last
    # pooling. (The paper's CIFAR DenseNets are a different, three-block design.)
    min_input_size = 32

    def __init__(self, block_config: tuple[int, int, int, int], growth_rate: int = 32,
                 num_classes: int = 1000, in_channels: int = 3,
                 compression: float = 0.5) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.input_size = (in_channels, 224, 224)
        channels = 2 * growth_rate  # the stem's width (Section 3, "Implementation details")
        self.features = nn.Sequential(OrderedDict(
            conv0=nn.Conv2d(in_channels, channels, 7, stride=2, padding=3, bias=False),
            norm0=nn.BatchNorm2d(channels), relu0=nn.ReLU(inplace=True),
            pool0=nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        ))
        for i, layers in enumerate(block_config, start=1):
            self.features.add_module(f"denseblock{i}", DenseBlock(layers, channels, growth_rate))
            channels += layers * growth_rate
            if i < len(block_config):
                reduced = int(channels * compression)
                self.features.add_module(f"transition{i}", Transition(channels, reduced))
                channels = reduced
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.classifier = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # As torchvision: He initialisation for convolutions.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x)  # shapes for a 224x224 input; C = 1024 for DenseNet-121
        x = F.relu(self.features(x))  # C x 7 x 7; the final BN (norm5) is followed by ReLU
        x = F.adaptive_avg_pool2d(x, 1)  # C x 1 x 1
        return self.classifier(torch.flatten(x, 1))  # num_classes


# Table 1: the layers in each of the four dense blocks, k = 32.
def densenet121(**kwargs) -> DenseNet:
    return DenseNet((6, 12, 24, 16), **kwargs)


def densenet169(**kwargs) -> DenseNet:
    return DenseNet((6, 12, 32, 32), **kwargs)


def densenet201(**kwargs) -> DenseNet:
    return DenseNet((6, 12, 48, 32), **kwargs)


def densenet264(**kwargs) -> DenseNet:
    return DenseNet((6, 12, 64, 48), **kwargs)
