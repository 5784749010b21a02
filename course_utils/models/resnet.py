"""ResNet (He, Zhang, Ren, Sun 2016, "Deep residual learning for image recognition",
Table 1 architectures, Figure 5 blocks).

    conv1    7x7, 64, stride 2                     112x112
             3x3 max pool, stride 2                56x56
    conv2_x  blocks x [3, 4, 6, 3, ...] (layer1)   56x56
    conv3_x  (layer2, first block stride 2)        28x28
    conv4_x  (layer3, first block stride 2)        14x14
    conv5_x  (layer4, first block stride 2)        7x7
             global average pool, FC num_classes   1x1

ResNet-18/34 use :class:`BasicBlock` (3x3, 3x3), ResNet-50/101/152 :class:`Bottleneck`
(1x1 reduce, 3x3, 1x1 expand x4); the blocks per stage are in the factories below. Batch
norm after every convolution, ReLU after the addition. The shortcut is the identity, or a
1x1 convolution + BN (projection shortcut, option B) where the shape changes.

The paper strides a bottleneck's first 1x1 convolution (the default here: Table 1's
multiply-adds, ``course_utils.papers.MACS``); torchvision strides the 3x3
(``stride_in_3x3=True``, "ResNet v1.5": more multiply-adds, slightly more accurate,
``papers.TORCHVISION``). Module names equal torchvision's (``layer1``, ``conv1``/``bn1``,
``downsample``...), so its state dicts load directly, and the parameter counts are
torchvision's (``papers.PARAMS``).
"""

from __future__ import annotations

import torch
from torch import nn

from ._input_check import check_input


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (the batch norm after it has one)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Figure 5 left: x -> 3x3 -> BN -> ReLU -> 3x3 -> BN, + shortcut(x), ReLU."""

    expansion = 1  # output channels = channels * expansion

    def __init__(self, in_channels: int, channels: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """Figure 5 right: x -> 1x1 (reduce) -> 3x3 -> 1x1 (expand x4), BN after each, ReLU
    after the first two and after adding the shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1,
                 downsample: nn.Module | None = None,
                 stride_in_3x3: bool = False) -> None:
        super().__init__()
        stride_1x1, stride_3x3 = (1, stride) if stride_in_3x3 else (stride, 1)
        self.conv1 = conv1x1(in_channels, channels, stride_1x1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels, stride_3x3)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = conv1x1(channels, channels * self.expansion)
        self.bn3 = nn.BatchNorm2d(channels * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    """ResNet for ImageNet-sized images from a block type and blocks per stage."""

    input_size = (3, 224, 224)
    # The network halves the image five times (total stride 32). Smaller images still
    # run, but only because padding keeps 1x1 maps alive: no new information.
    min_input_size = 32

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: list[int],
                 num_classes: int = 1000, in_channels: int = 3, stride_in_3x3: bool = False,
                 zero_init_residual: bool = False) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.input_size = (in_channels, 224, 224)
        self.stride_in_3x3 = stride_in_3x3
        self._channels = 64  # channels entering the next stage

        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], stride=1)  # conv2_x
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)  # conv3_x
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)  # conv4_x
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)  # conv5_x
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        self._init_weights(zero_init_residual)

    def _make_layer(self, block: type[BasicBlock | Bottleneck], channels: int, blocks: int,
                    stride: int) -> nn.Sequential:
        """One stage: the first block may change size and width, the rest keep them."""
        out_channels = channels * block.expansion
        downsample = None
        if stride != 1 or self._channels != out_channels:
            # Projection shortcut (option B): match the residual's shape with 1x1 conv + BN.
            downsample = nn.Sequential(
                conv1x1(self._channels, out_channels, stride), nn.BatchNorm2d(out_channels)
            )
        # Where the stride goes is a choice only a bottleneck has (1x1 or 3x3); a basic
        # block's convolutions are all 3x3.
        placement = {"stride_in_3x3": self.stride_in_3x3} if issubclass(block, Bottleneck) else {}
        layers = [block(self._channels, channels, stride, downsample, **placement)]
        self._channels = out_channels
        for _ in range(1, blocks):
            layers.append(block(out_channels, channels, **placement))
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual: bool) -> None:
        # He initialisation (He et al. 2015, the paper's reference [13]), as torchvision.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            # Each block starts as the identity (Goyal et al. 2017): helps large batches.
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x)  # shapes below for a 224x224 input (Table 1; C = 1 or 4)
        x = self.relu(self.bn1(self.conv1(x)))  # conv1: 64 x 112 x 112
        x = self.maxpool(x)  # 64 x 56 x 56
        x = self.layer1(x)  # conv2_x: 64C x 56 x 56
        x = self.layer2(x)  # conv3_x: 128C x 28 x 28
        x = self.layer3(x)  # conv4_x: 256C x 14 x 14
        x = self.layer4(x)  # conv5_x: 512C x 7 x 7
        x = torch.flatten(self.avgpool(x), 1)  # 512C
        return self.fc(x)  # num_classes


# Table 1: the block type and the blocks per stage of each depth (its multiply-adds are in
# course_utils.papers.MACS).
def resnet18(**kwargs) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], **kwargs)


def resnet34(**kwargs) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], **kwargs)


def resnet50(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)


def resnet101(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], **kwargs)


def resnet152(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 8, 36, 3], **kwargs)
