"""The first CNN of the course: the small MNIST classifier of the "PyTorch first steps"
material (chapter 5, convolutional networks), before any of the famous architectures.

    input 1x28x28
    conv 16@5x5, ReLU                   -> 16x24x24
    conv 32@5x5, ReLU                   -> 32x20x20
    max pool 2x2                        -> 32x10x10
    conv 64@5x5, ReLU                   -> 64x6x6
    max pool 2x2                        -> 64x3x3
    FC 100, ReLU, FC num_classes

The two halves, ``features`` (convolutions: what to look for) and ``classifier`` (fully
connected: how to decide), are the pattern of every later model in the course. Its
parameter count (10 classes) is ``course_utils.papers.PARAMS["basic_cnn"]``.
"""

from __future__ import annotations

import torch
from torch import nn

from ._input_check import check_input


class BasicCNN(nn.Module):
    """Three 5x5 convolutions and two fully connected layers for 28x28 digits."""

    input_size = (1, 28, 28)
    min_input_size = 28
    # The first Linear layer expects exactly 64x3x3 features, so the image size is fixed.
    exact_input_size = True

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.input_size = (in_channels, 28, 28)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, kernel_size=5), nn.ReLU(),  # 28 -> 24
            nn.Conv2d(16, 32, kernel_size=5), nn.ReLU(),  # 24 -> 20
            nn.MaxPool2d(kernel_size=2, stride=2),  # 20 -> 10
            nn.Conv2d(32, 64, kernel_size=5), nn.ReLU(),  # 10 -> 6
            nn.MaxPool2d(kernel_size=2, stride=2),  # 6 -> 3
        )
        # Flatten keeps the batch dimension whatever its size. Writing x.view(batch_size, -1)
        # with a fixed batch_size breaks on the last, smaller batch.
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * 3 * 3, 100), nn.ReLU(), nn.Linear(100, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x)
        return self.classifier(self.features(x))  # 64 x 3 x 3 -> num_classes


def basic_cnn(**kwargs) -> BasicCNN:
    """The lecture's first MNIST CNN (28x28 input)."""
    return BasicCNN(**kwargs)
