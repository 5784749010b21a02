"""One clear error instead of a matmul shape error deep inside the network.

Every model calls :func:`check_input` on the first line of ``forward``. It only reads
``x.shape`` (plain Python integers), so it costs nothing, works on meta tensors
(``torch.utils.flop_counter``), under torchinfo and torch.compile, and steps aside while
``torch.fx`` traces the model (e.g. torchvision's ``create_feature_extractor``).
"""

from __future__ import annotations

import torch
from torch import nn


def check_input(model: nn.Module, x: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``x`` is an (N, C, H, W) batch the model can take, from
    ``model.in_channels``, ``input_size`` (the paper's (C, H, W)), ``min_input_size``
    (smallest H = W that works) and ``exact_input_size`` (set where fully connected layers
    fix the image size, e.g. LeNet-5)."""
    if isinstance(x, torch.fx.Proxy):  # symbolic tracing: there is no shape to check
        return
    name = type(model).__name__
    _, height, width = model.input_size
    native = f"{model.in_channels}x{height}x{width}"
    shape = tuple(x.shape)
    if x.dim() != 4:
        raise ValueError(
            f"{name} expects a batch of images shaped (N, C, H, W), e.g. "
            f"(N, {model.in_channels}, {height}, {width}); got a tensor of shape {shape}."
        )
    if x.shape[1] != model.in_channels:
        raise ValueError(
            f"{name} expects {model.in_channels} input channel(s) (native input {native}), "
            f"got shape {shape}. Build the model with in_channels={x.shape[1]}, or load the "
            f"data with load_data(..., in_channels={model.in_channels})."
        )
    if getattr(model, "exact_input_size", False) and (x.shape[2], x.shape[3]) != (height, width):
        raise ValueError(
            f"{name} expects exactly {height}x{width} images (input {native}), got shape "
            f"{shape}. Resize or pad them in the data layer: "
            f"load_data(..., image_size={height})."
        )
    if min(x.shape[2], x.shape[3]) < model.min_input_size:
        raise ValueError(
            f"{name} needs images of at least {model.min_input_size}x{model.min_input_size} "
            f"(native input {native}), got shape {shape}. Let the data layer resize them: "
            f"load_data(..., image_size={height})."
        )
