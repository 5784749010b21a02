"""GoogLeNet (Szegedy et al., "Going deeper with convolutions", arXiv 2014 / CVPR 2015:
Table 1, Figures 2 and 3, Section 5).

    conv1        7x7/2, 64                      112x112x64
    maxpool1     3x3/2, then LRN                56x56x64
    conv2        1x1 reduce 64, 3x3/1 192, LRN  56x56x192
    maxpool2     3x3/2                          28x28x192
    inception3a, 3b                             28x28x256, 480
    maxpool3     3x3/2                          14x14x480
    inception4a .. 4e                           14x14x512 ... 832
    maxpool4     3x3/2                          7x7x832
    inception5a, 5b                             7x7x832, 1024
    avgpool      7x7/1, dropout 0.4, fc         1x1x1024 -> num_classes

The attribute names are the rows of Table 1, so per-row parameters and multiply-adds
can be read off ``named_children()``; the multiply-adds match Table 1's "ops" column
except where the printed table contradicts its own widths
(``course_utils.papers.GOOGLENET_TABLE1_NOTES``). No batch normalisation (it came in
Inception-v2); every convolution, the 1x1 reductions included, is followed by ReLU.
``aux_logits=True`` adds the two auxiliary classifiers, which training adds to the loss
with weight 0.3 and inference throws away; the parameter counts with and without them are
``course_utils.papers.PARAMS["googlenet_aux"]`` and ``["googlenet"]``. torchvision's
``googlenet`` follows a later re-implementation: batch norm, 3x3 in the "5x5" branch, no
LRN, other auxiliary pooling.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from ._input_check import check_input
from .alexnet import local_response_norm

# Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
INCEPTION_TABLE: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


class ConvReLU(nn.Sequential):
    """Convolution followed by ReLU: the paper's unit for every convolution."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1) -> None:
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2)
        super().__init__(OrderedDict(conv=conv, relu=nn.ReLU(inplace=True)))


class NaiveInception(nn.Module):
    """Figure 2(a): 1x1, 3x3 and 5x5 convolutions and 3x3 max pooling side by side,
    outputs concatenated along channels. The pooling branch passes all ``in_channels``
    through, so the width can only grow from module to module, and the 5x5 convolutions
    on a wide input are expensive: the motivation for the 1x1 reductions."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3: int, ch5x5: int) -> None:
        super().__init__()
        self.branch1x1 = ConvReLU(in_channels, ch1x1, 1)
        self.branch3x3 = ConvReLU(in_channels, ch3x3, 3)
        self.branch5x5 = ConvReLU(in_channels, ch5x5, 5)
        self.branch_pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1x1, self.branch3x3, self.branch5x5, self.branch_pool]
        return torch.cat([branch(x) for branch in branches], dim=1)


class Inception(nn.Module):
    """Figure 2(b), the module of Table 1: 1x1 convolutions reduce the channels before
    the 3x3 and 5x5 convolutions and project the pooled features."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3reduce: int, ch3x3: int,
                 ch5x5reduce: int, ch5x5: int, pool_proj: int) -> None:
        super().__init__()
        self.branch1x1 = ConvReLU(in_channels, ch1x1, 1)
        self.branch3x3 = nn.Sequential(ConvReLU(in_channels, ch3x3reduce, 1),
                                       ConvReLU(ch3x3reduce, ch3x3, 3))
        self.branch5x5 = nn.Sequential(ConvReLU(in_channels, ch5x5reduce, 1),
                                       ConvReLU(ch5x5reduce, ch5x5, 5))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                         ConvReLU(in_channels, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1x1, self.branch3x3, self.branch5x5, self.branch_pool]
        return torch.cat([branch(x) for branch in branches], dim=1)


class InceptionAux(nn.Module):
    """Section 5: an auxiliary classifier on top of inception 4a or 4d. 5x5 average pooling
    with stride 3 (14x14 -> 4x4), 1x1 convolution with 128 filters and ReLU, FC 1024 with
    ReLU, dropout 0.7, FC num_classes."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(kernel_size=5, stride=3)
        self.conv = ConvReLU(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(p=0.7)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The adaptive pooling is a no-op at 224x224 (already 4x4); it keeps fc1's 2048
        # inputs valid at other image sizes.
        x = F.adaptive_avg_pool2d(self.pool(x), 4)  # 512 or 528 x 4 x 4
        x = torch.flatten(self.conv(x), 1)  # 128 x 4 x 4 = 2048
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


class GoogLeNet(nn.Module):
    """GoogLeNet as in Table 1. In training mode with ``aux_logits=True`` the forward pass
    returns ``(logits, aux1, aux2)``; otherwise just ``logits``."""

    input_size = (3, 224, 224)
    # Five stride-2 steps (total stride 32). The auxiliary heads additionally need at
    # least 5x5 maps at inception 4a for their 5x5 pooling: 79x79 images or larger.
    min_input_size = 32
    min_input_size_aux = 79

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, aux_logits: bool = False,
                 lrn: bool = True, dropout: float = 0.4) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.input_size = (in_channels, 224, 224)
        self.aux_logits = aux_logits
        if aux_logits:
            self.min_input_size = self.min_input_size_aux

        def norm() -> nn.Module:
            # The paper gives no LRN constants; these are the reference Caffe model's
            # (bvlc_googlenet: k = 1, size 5, alpha 1e-4, beta 0.75). Caffe divides alpha by
            # the size before use, AlexNet's formula does not: there it is 1e-4 / 5.
            return local_response_norm(k=1.0, alpha=1e-4 / 5) if lrn else nn.Identity()

        # Caffe rounds pooled sizes up (ceil_mode): 112 -> 56 -> 28 -> 14 -> 7.
        self.conv1 = ConvReLU(in_channels, 64, 7, stride=2)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.lrn1 = norm()
        self.conv2 = nn.Sequential(  # 1x1 reduce, then 3x3
            OrderedDict(reduce=ConvReLU(64, 64, 1), conv=ConvReLU(64, 192, 3))
        )
        self.lrn2 = norm()
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(192, *INCEPTION_TABLE["3a"])
        self.inception3b = Inception(256, *INCEPTION_TABLE["3b"])
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, *INCEPTION_TABLE["4a"])
        self.inception4b = Inception(512, *INCEPTION_TABLE["4b"])
        self.inception4c = Inception(512, *INCEPTION_TABLE["4c"])
        self.inception4d = Inception(512, *INCEPTION_TABLE["4d"])
        self.inception4e = Inception(528, *INCEPTION_TABLE["4e"])
        self.maxpool4 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, *INCEPTION_TABLE["5a"])
        self.inception5b = Inception(832, *INCEPTION_TABLE["5b"])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))  # 7x7 / 1 at 224x224
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)
        # Assigned after the main path so that printing the model follows Table 1.
        self.aux1 = InceptionAux(512, num_classes) if aux_logits else None  # on 4a
        self.aux2 = InceptionAux(528, num_classes) if aux_logits else None  # on 4d
        self._init_weights()

    def _init_weights(self) -> None:
        # He initialisation keeps the signal alive through 22 layers without batch norm
        # (the 2014 paper used Caffe's Xavier fill and relied on the auxiliary heads).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        check_input(self, x)  # shapes below for a 224x224 input, as in Table 1
        x = self.conv1(x)  # 64 x 112 x 112
        x = self.lrn1(self.maxpool1(x))  # 64 x 56 x 56
        x = self.conv2(x)  # 192 x 56 x 56 (1x1 reduce + 3x3)
        x = self.maxpool2(self.lrn2(x))  # 192 x 28 x 28
        x = self.inception3a(x)  # 256 x 28 x 28
        x = self.inception3b(x)  # 480 x 28 x 28
        x = self.maxpool3(x)  # 480 x 14 x 14
        x = self.inception4a(x)  # 512 x 14 x 14
        with_aux = self.aux_logits and self.training
        aux1 = self.aux1(x) if with_aux else None  # first auxiliary classifier
        x = self.inception4b(x)  # 512 x 14 x 14
        x = self.inception4c(x)  # 512 x 14 x 14
        x = self.inception4d(x)  # 528 x 14 x 14
        aux2 = self.aux2(x) if with_aux else None  # second auxiliary classifier
        x = self.inception4e(x)  # 832 x 14 x 14
        x = self.maxpool4(x)  # 832 x 7 x 7
        x = self.inception5a(x)  # 832 x 7 x 7
        x = self.inception5b(x)  # 1024 x 7 x 7
        x = torch.flatten(self.avgpool(x), 1)  # 1024
        logits = self.fc(self.dropout(x))  # num_classes
        return (logits, aux1, aux2) if with_aux else logits


def googlenet(**kwargs) -> GoogLeNet:
    """GoogLeNet (Szegedy et al. 2015, Table 1). Keywords: ``aux_logits``, ``lrn``."""
    return GoogLeNet(**kwargs)
