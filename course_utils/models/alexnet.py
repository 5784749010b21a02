"""AlexNet (Krizhevsky, Sutskever, Hinton 2012, "ImageNet classification with deep
convolutional neural networks", Section 3 and Figure 2).

    input 3x227x227
    conv1  96 @ 11x11 / 4, ReLU, LRN, max pool 3x3 / 2   -> 96x55x55 -> 96x27x27
    conv2 256 @  5x5,      ReLU, LRN, max pool 3x3 / 2   -> 256x27x27 -> 256x13x13
    conv3 384 @  3x3,      ReLU                          -> 384x13x13
    conv4 384 @  3x3,      ReLU                          -> 384x13x13
    conv5 256 @  3x3,      ReLU, max pool 3x3 / 2        -> 256x13x13 -> 256x6x6
    fc6 4096, fc7 4096 (ReLU, dropout 0.5), fc8 num_classes

The paper says 224x224, but 11x11 filters at stride 4 only give its 55x55 maps from
227x227 (227 - 11) / 4 + 1 = 55. Pooling windows overlap (3x3 at stride 2, Section
3.4). With ``groups=2`` conv2, conv4 and conv5 only see the kernel maps on their own
GPU, exactly the two-GPU split of Figure 2 (conv3 and the FC layers cross GPUs). The
parameter counts of both, one tower (``groups=1``, the default) and two, are in
``course_utils.papers.PARAMS`` ("alexnet", "alexnet_groups2"); the paper's rounded one is in
``papers.PAPER_PARAMS``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ._input_check import check_input


def local_response_norm(k: float = 2.0, alpha: float = 1e-4, beta: float = 0.75,
                        size: int = 5) -> nn.LocalResponseNorm:
    """Local response normalisation with its constants written as Section 3.3 writes them:
    each activation is divided by (k + alpha * sum of squares over ``size`` neighbouring
    maps) ** beta. The defaults are AlexNet's (VGG's A-LRN uses them too); GoogLeNet passes
    its own. PyTorch, like Caffe, divides alpha by the size first, so it gets alpha * size."""
    return nn.LocalResponseNorm(size=size, alpha=alpha * size, beta=beta, k=k)


class AlexNet(nn.Module):
    """AlexNet, one tower by default. ``groups=2``: the paper's two-GPU split; ``lrn=False``:
    no local response normalisation; ``activation="tanh"``: the saturating units Section 3.1
    / Figure 1 compares ReLU against; ``paper_init=True``: the paper's initialisation.

    Default initialisation: He normal (fan_in) weights, zero biases, the scale that keeps
    ReLU activations from shrinking layer after layer (He et al. 2015). PyTorch's default
    shrinks the signal about 50x through the eight layers and two LRNs, so one epoch with
    the paper's SGD settings learns nothing; the paper's N(0, 0.01) needed many epochs."""

    input_size = (3, 227, 227)
    # Smallest image for which conv5 still leaves a map for the last 3x3 max pool:
    # 67 -> conv1 15 -> pool 7 -> conv2 7 -> pool 3 -> conv3..5 3 -> pool 1.
    min_input_size = 67

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, groups: int = 1,
                 lrn: bool = True, dropout: float = 0.5, paper_init: bool = False,
                 activation: str = "relu") -> None:
        super().__init__()
        if activation not in ("relu", "tanh"):
            raise ValueError(f"activation must be 'relu' (paper) or 'tanh', got {activation!r}")
        if groups not in (1, 2):
            raise ValueError(f"groups must be 1 (one tower) or 2 (two GPUs), got {groups}")
        self.in_channels = in_channels
        self.input_size = (in_channels, 227, 227)

        def act() -> nn.Module:
            return nn.ReLU(inplace=True) if activation == "relu" else nn.Tanh()

        def norm() -> nn.Module:
            return local_response_norm() if lrn else nn.Identity()

        def pool() -> nn.Module:  # overlapping pooling (Section 3.4)
            return nn.MaxPool2d(kernel_size=3, stride=2)

        # Layers named as in the paper (model.features.conv1, model.classifier.fc6, ...);
        # integer indexing (model.features[0]) works as well.
        self.features = nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(in_channels, 96, 11, stride=4), act1=act(), norm1=norm(),  # 55x55
            pool1=pool(),  # 27x27
            conv2=nn.Conv2d(96, 256, 5, padding=2, groups=groups), act2=act(), norm2=norm(),
            pool2=pool(),  # 13x13
            conv3=nn.Conv2d(256, 384, 3, padding=1), act3=act(),  # sees both GPUs' maps
            conv4=nn.Conv2d(384, 384, 3, padding=1, groups=groups), act4=act(),
            conv5=nn.Conv2d(384, 256, 3, padding=1, groups=groups), act5=act(),
            pool5=pool(),  # 6x6
        ))
        # 6x6 already at 227x227, so this does nothing there; it lets other sizes through.
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        # Section 4.2: dropout on the outputs of the first two fully connected layers.
        self.classifier = nn.Sequential(OrderedDict(
            fc6=nn.Linear(256 * 6 * 6, 4096), act6=act(), drop6=nn.Dropout(p=dropout),
            fc7=nn.Linear(4096, 4096), act7=act(), drop7=nn.Dropout(p=dropout),
            fc8=nn.Linear(4096, num_classes),
        ))
        if paper_init:
            self._paper_init()
        else:
            self._he_init(activation)

    def _he_init(self, activation: str) -> None:
        for layer in self.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity=activation)
                nn.init.zeros_(layer.bias)

    def _paper_init(self) -> None:
        """Section 5: weights ~ N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden
        FC layers (to give ReLUs positive inputs early on), 0 elsewhere."""
        f, c = self.features, self.classifier
        for layer in [f.conv1, f.conv2, f.conv3, f.conv4, f.conv5, c.fc6, c.fc7, c.fc8]:
            nn.init.normal_(layer.weight, mean=0.0, std=0.01)
            nn.init.zeros_(layer.bias)
        for layer in [f.conv2, f.conv4, f.conv5, c.fc6, c.fc7]:
            nn.init.ones_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x)  # shapes for a 227x227 input
        x = self.avgpool(self.features(x))  # 256 x 6 x 6
        return self.classifier(torch.flatten(x, 1))  # num_classes


def alexnet(**kwargs) -> AlexNet:
    """AlexNet (Krizhevsky et al. 2012). Keywords: ``groups``, ``lrn``, ``activation``,
    ``paper_init``."""
    return AlexNet(**kwargs)
