"""Small building blocks shared by models: activation and downsampling chosen by name. The two
registries are the one list of choices (``--activation`` and ``--pooling`` take theirs from here)."""

from __future__ import annotations

from collections.abc import Callable

import torch
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


class AdaptiveAvgPool(nn.Module):
    """Average pooling to ``size`` x ``size`` from any input size, with ``nn.AdaptiveAvgPool2d``'s windows
    (output cell i covers inputs floor(i*n/size) to ceil((i+1)*n/size)), as two small matrix products.
    Why not ``nn.AdaptiveAvgPool2d``: its CUDA backward has no deterministic implementation, so
    ``--deterministic`` training on a GPU stops at the first step; matrix products are deterministic."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in float32 whatever autocast says, like the native op: a bf16 1/3 would be off by 0.2%
        with torch.autocast(x.device.type, enabled=False):
            rows = _window_means(x.shape[-2], self.size, x.device)
            cols = _window_means(x.shape[-1], self.size, x.device)
            return (rows @ x.float() @ cols.T).to(x.dtype)

    def extra_repr(self) -> str:
        return f"size={self.size}"


def _window_means(n: int, size: int, device: torch.device) -> torch.Tensor:
    """The ``size`` x ``n`` matrix whose row i averages input positions floor(i*n/size)..ceil((i+1)*n/size)-1."""
    m = torch.zeros(size, n, device=device)
    for i in range(size):
        start, stop = i * n // size, -(-(i + 1) * n // size)
        m[i, start:stop] = 1.0 / (stop - start)
    return m
