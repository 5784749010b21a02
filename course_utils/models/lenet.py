"""LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998, "Gradient-based learning applied to
document recognition", Section II.B and Fig. 2).

    input 1x32x32
    C1: conv 6@5x5      -> 6x28x28
    S2: subsample 2x2   -> 6x14x14
    C3: conv 16@5x5     -> 16x10x10
    S4: subsample 2x2   -> 16x5x5
    C5: conv 120@5x5    -> 120x1x1
    F6: full 84
    output: full num_classes

The parameter count (10 classes) is ``course_utils.papers.PARAMS["lenet5"]``, a little
over the paper's, whose per-layer counts are ``papers.LENET5_LAYER_PARAMS``.

Simplifications that every modern re-implementation makes, and that do not change the
layer sizes: S2/S4 are plain average pooling (the paper's subsampling units also have a
trainable coefficient and bias), C3 connects to all six S2 maps (``c3_table=True``: the
paper's Table I, a subset per C3 map), the activation is plain ``tanh`` (the paper scales
it, 1.7159 tanh(2x/3)), and the output is a linear layer trained with cross-entropy (the
paper uses Euclidean RBF units).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ._input_check import check_input

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
POOLINGS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}

# Table I of the paper: which of the six S2 maps each of the sixteen C3 maps sees.
C3_TABLE = [
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),  # 3 neighbours
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),  # 4 maps, not neighbours
    (0, 1, 2, 3, 4, 5),  # all six
]  # fmt: skip


class C3PartialConv(nn.Module):
    """C3 as in the paper: each output map is a 5x5 convolution over only the S2 maps
    that Table I connects to it: fewer trainable parameters than a full C3
    (``papers.LENET5_LAYER_PARAMS["C3"]`` instead of 2,416). The paper's reasons: fewer
    connections, and different inputs force the maps to differ."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(len(maps), 1, kernel_size=5) for maps in C3_TABLE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = [conv(x[:, list(inputs)]) for conv, inputs in zip(self.convs, C3_TABLE, strict=True)]
        return torch.cat(maps, dim=1)


class LeNet5(nn.Module):
    """LeNet-5. ``activation="relu"`` and ``pooling="max"`` give the modern variant the
    lecture compares against the original tanh + average pooling; ``c3_table=True`` the
    paper's partial S2-C3 connections (``papers.PARAMS["lenet5_c3_table"]`` parameters)."""

    input_size = (1, 32, 32)
    min_input_size = 32
    # C5 is a 5x5 convolution that must see exactly 5x5 maps, so the image size is fixed.
    exact_input_size = True

    def __init__(self, num_classes: int = 10, in_channels: int = 1, activation: str = "tanh",
                 pooling: str = "avg", c3_table: bool = False) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {sorted(POOLINGS)}, got {pooling!r}")
        self.in_channels = in_channels
        self.input_size = (in_channels, 32, 32)
        act, pool = ACTIVATIONS[activation], POOLINGS[pooling]

        # Named as in the paper (C1, S2, ...), so e.g. model.features.c1 holds C1's filters.
        self.features = nn.Sequential(OrderedDict(
            c1=nn.Conv2d(in_channels, 6, kernel_size=5), c1_act=act(),  # 32 -> 28
            s2=pool(kernel_size=2, stride=2),  # 28 -> 14
            c3=C3PartialConv() if c3_table else nn.Conv2d(6, 16, kernel_size=5),  # 14 -> 10
            c3_act=act(),
            s4=pool(kernel_size=2, stride=2),  # 10 -> 5
            c5=nn.Conv2d(16, 120, kernel_size=5), c5_act=act(),  # 5 -> 1
        ))
        self.classifier = nn.Sequential(OrderedDict(
            flatten=nn.Flatten(), f6=nn.Linear(120, 84), f6_act=act(),
            output=nn.Linear(84, num_classes),
        ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x)
        return self.classifier(self.features(x))  # 120 x 1 x 1 -> num_classes


def lenet5(**kwargs) -> LeNet5:
    """LeNet-5 with tanh and average pooling (LeCun et al. 1998, Fig. 2)."""
    return LeNet5(**kwargs)
