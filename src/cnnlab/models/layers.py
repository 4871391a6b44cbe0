"""Small building blocks shared by models: activation and pooling chosen by name."""

from __future__ import annotations

from torch import nn

from cnnlab.errors import UserError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
}
POOLINGS = ("max", "avg", "conv")


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise UserError(f"unknown activation '{name}': choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def downsample(kind: str, channels: int) -> nn.Module:
    """Halve the spatial size: max pool, average pool, or a learned stride-2 3x3 convolution."""
    if kind == "max":
        return nn.MaxPool2d(2)
    if kind == "avg":
        return nn.AvgPool2d(2)
    if kind == "conv":
        return nn.Conv2d(channels, channels, 3, stride=2, padding=1)
    raise UserError(f"unknown pooling '{kind}': choose one of {', '.join(POOLINGS)}")
