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

61,706 parameters for 10 classes (the paper says "about 60,000").

Simplifications that every modern re-implementation makes, and that do not change the
layer sizes: S2/S4 are plain average pooling (the paper's subsampling units also have
a trainable coefficient and bias), C3 connects to all six S2 maps (the paper's Table I
connects each C3 map to a subset, to break symmetry and save parameters), the
activation is plain ``tanh`` (the paper scales it, 1.7159 tanh(2x/3)), and the output
is a linear layer trained with cross-entropy (the paper uses Euclidean RBF units).
"""

from __future__ import annotations

import torch
from torch import nn

from ._input_check import check_input

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
POOLINGS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


class LeNet5(nn.Module):
    """LeNet-5. ``activation="relu"`` and ``pooling="max"`` give the modern variant the
    lecture compares against the original tanh + average pooling."""

    input_size = (1, 32, 32)
    min_input_size = 32
    # C5 is a 5x5 convolution that must see exactly 5x5 maps, so the image size is fixed.
    exact_input_size = True

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        activation: str = "tanh",
        pooling: str = "avg",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {sorted(POOLINGS)}, got {pooling!r}")
        self.in_channels = in_channels
        self.input_size = (in_channels, 32, 32)
        act, pool = ACTIVATIONS[activation], POOLINGS[pooling]

        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5),  # C1: 32 -> 28
            act(),
            pool(kernel_size=2, stride=2),  # S2: 28 -> 14
            nn.Conv2d(6, 16, kernel_size=5),  # C3: 14 -> 10
            act(),
            pool(kernel_size=2, stride=2),  # S4: 10 -> 5
            nn.Conv2d(16, 120, kernel_size=5),  # C5: 5 -> 1
            act(),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(120, 84),  # F6
            act(),
            nn.Linear(84, num_classes),  # output
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x)
        return self.classifier(self.features(x))


def lenet5(**kwargs) -> LeNet5:
    """LeNet-5 with tanh and average pooling (LeCun et al. 1998, Fig. 2)."""
    return LeNet5(**kwargs)
