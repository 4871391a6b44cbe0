"""Small building blocks shared by models: activation and downsampling chosen by name. The two
registries are the one list of choices (``--activation`` and ``--pooling`` take theirs from here)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from cnnlab.errors import UserError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
}

# Halve the spatial size of a map with ``channels`` channels: max pool, average pool, or a learned
# stride-2 3x3 convolution.
POOLINGS: dict[str, Callable[[int], nn.Module]] = {
    "max": lambda channels: nn.MaxPool2d(2),
    "avg": lambda channels: nn.AvgPool2d(2),
    "conv": lambda channels: nn.Conv2d(channels, channels, 3, stride=2, padding=1),
}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise UserError(f"unknown activation '{name}': choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def downsample(kind: str, channels: int) -> nn.Module:
    if kind not in POOLINGS:
        raise UserError(f"unknown pooling '{kind}': choose one of {', '.join(POOLINGS)}")
    return POOLINGS[kind](channels)
