"""Random stand-in weights for comparing our models with torchvision's (test_models.py,
test_pretrained.py): every tensor gets a value that makes mistakes visible (BN scales not 1,
running statistics not 0/1), reproducibly."""

from __future__ import annotations

import torch
from torch import nn


def random_state_dict(reference: nn.Module, shared: dict) -> dict[str, torch.Tensor]:
    """Random values for every entry of ``reference.state_dict()`` (a meta model)."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, meta in reference.state_dict().items():
        shape, leaf = tuple(meta.shape), key.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            value = torch.zeros((), dtype=torch.long)
        elif (key, shape) in shared:
            value = shared[(key, shape)]
        elif leaf == "weight" and meta.dim() > 1:  # conv / linear: He-scaled normal
            fan_in = meta[0].numel()
            value = torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5
        elif leaf in ("weight", "running_var"):  # BN scale and variance
            value = torch.rand(shape, generator=generator) * 0.5 + 0.5
        else:  # biases and running means
            value = torch.randn(shape, generator=generator) * 0.1
        if value.numel() > 1_000_000:
            shared[(key, shape)] = value
        state[key] = value
    return state
