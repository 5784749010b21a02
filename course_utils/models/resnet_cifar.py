"""ResNets for CIFAR-10 and their plain twins (He et al. 2016, Section 4.2, Table 6 and
Figure 6): the experiment that shows degradation and how shortcuts cure it.

    conv 3x3, 16 channels                     32x32
    stage 1: n basic blocks, 16 channels      32x32
    stage 2: n basic blocks, 32 channels      16x16   (first block stride 2)
    stage 3: n basic blocks, 64 channels      8x8     (first block stride 2)
    global average pool, FC num_classes

6n + 2 weighted layers: n = 3, 5, 7, 9, 18 give ResNet-20, 32, 44, 56, 110, built from
the :class:`~course_utils.models.resnet.BasicBlock` of ResNet-18/34. Shortcuts: the
identity, and where a stage halves the size and doubles the channels option A (every
second pixel, zero channels appended: no parameters); ``shortcut="B"``: a 1x1 conv + BN
projection there. ``residual=False``: no shortcuts, the plain network of the same depth.

Parameter counts at 10 classes: ``course_utils.papers.PARAMS`` ("resnet20" ...
"resnet110", "plain20" ... "plain56", "resnet20_b" for option B); Table 6 prints them
rounded (``papers.CIFAR10_ERRORS``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ._input_check import check_input
from .resnet import BasicBlock, conv1x1


class ZeroPadShortcut(nn.Module):
    """Option A: subsample by ``stride`` and pad the missing channels with zeros."""

    def __init__(self, extra_channels: int, stride: int) -> None:
        super().__init__()
        self.extra_channels = extra_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        # F.pad pads the last dimensions first: (W left, W right, H top, H bottom, C, C).
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


class PlainBlock(BasicBlock):
    """A basic block without its shortcut: 3x3 conv, BN, ReLU, 3x3 conv, BN, ReLU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)))


class CifarResNet(nn.Module):
    """The 6n+2-layer CIFAR network of Section 4.2, residual or plain."""

    input_size = (3, 32, 32)
    # Two stride-2 stages (total stride 4): 4x4 images still leave a 1x1 map.
    min_input_size = 4

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3,
                 residual: bool = True, shortcut: str = "A") -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 (20, 32, 44, 56, 110, ...), got {depth}")
        if shortcut not in ("A", "B"):
            raise ValueError("shortcut must be 'A' (zero padding) or 'B' (1x1 conv), "
                             f"got {shortcut!r}")
        n = (depth - 2) // 6
        self.depth, self.residual, self.shortcut = depth, residual, shortcut
        self.in_channels = in_channels
        self.input_size = (in_channels, 32, 32)
        self._channels = 16

        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(16, n, stride=1)
        self.layer2 = self._make_layer(32, n, stride=2)
        self.layer3 = self._make_layer(64, n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He initialisation, the paper's reference [13]
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, channels: int, blocks: int, stride: int) -> nn.Sequential:
        block = BasicBlock if self.residual else PlainBlock
        downsample = None
        if self.residual and (stride != 1 or self._channels != channels):
            if self.shortcut == "A":
                downsample = ZeroPadShortcut(channels - self._channels, stride)
            else:
                downsample = nn.Sequential(
                    conv1x1(self._channels, channels, stride), nn.BatchNorm2d(channels)
                )
        layers = [block(self._channels, channels, stride, downsample)]
        self._channels = channels
        layers += [block(channels, channels) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x)  # shapes for a 32x32 input
        x = self.relu(self.bn1(self.conv1(x)))  # 16 x 32 x 32
        x = self.layer1(x)  # 16 x 32 x 32
        x = self.layer2(x)  # 32 x 16 x 16
        x = self.layer3(x)  # 64 x 8 x 8
        return self.fc(torch.flatten(self.avgpool(x), 1))  # num_classes


def cifar_resnet(depth: int, **kwargs) -> CifarResNet:
    """A CIFAR ResNet of any depth 6n + 2; keywords ``residual``, ``shortcut``."""
    return CifarResNet(depth, **kwargs)


def resnet20(**kwargs) -> CifarResNet:  # n = 3
    return CifarResNet(20, **kwargs)


def resnet32(**kwargs) -> CifarResNet:  # n = 5
    return CifarResNet(32, **kwargs)


def resnet44(**kwargs) -> CifarResNet:  # n = 7
    return CifarResNet(44, **kwargs)


def resnet56(**kwargs) -> CifarResNet:  # n = 9
    return CifarResNet(56, **kwargs)


def resnet110(**kwargs) -> CifarResNet:  # n = 18
    return CifarResNet(110, **kwargs)


# The plain networks: ResNet-20 ... -56 without shortcuts (Figure 6, left).
def plain20(**kwargs) -> CifarResNet:
    return CifarResNet(20, residual=False, **kwargs)


def plain32(**kwargs) -> CifarResNet:
    return CifarResNet(32, residual=False, **kwargs)


def plain44(**kwargs) -> CifarResNet:
    return CifarResNet(44, residual=False, **kwargs)


def plain56(**kwargs) -> CifarResNet:  # worse than plain-20 in Figure 6: degradation
    return CifarResNet(56, residual=False, **kwargs)
