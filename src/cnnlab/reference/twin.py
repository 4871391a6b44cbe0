"""The PyTorch twin of the NumPy CNN (``numpy_cnn``): the same weights, batches and SGD rule in float64
PyTorch, so the two loss curves must agree to rounding error step by step; any disagreement points at
a wrong gradient somewhere in the NumPy stack. Like ``gradcheck``, a check against PyTorch: the only
other module of ``cnnlab.reference`` that imports it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.reference.activations import ReLU
from cnnlab.reference.batchnorm import BatchNorm2d
from cnnlab.reference.conv import Conv2d
from cnnlab.reference.linear import Flatten, Linear
from cnnlab.reference.loss import SoftmaxCrossEntropy
from cnnlab.reference.numpy_cnn import ShapesSplit, build_numpy_cnn, minibatches
from cnnlab.reference.optim import SGD
from cnnlab.reference.pool import AvgPool2d, MaxPool2d
from cnnlab.reference.sequential import Sequential


def torch_twin(model: Sequential) -> nn.Sequential:
    """The same network in PyTorch (float64), with every parameter and batch-norm statistic copied."""
    def translate(layer: object) -> nn.Module:
        if isinstance(layer, Conv2d):
            g = layer.geometry
            return nn.Conv2d(*layer.weight.value.shape[1::-1], g.kernel, g.stride, g.padding, g.dilation, bias=layer.bias is not None)
        if isinstance(layer, MaxPool2d):
            return nn.MaxPool2d(layer.geometry.kernel, layer.geometry.stride, layer.geometry.padding)
        if isinstance(layer, AvgPool2d):
            return nn.AvgPool2d(layer.geometry.kernel, layer.geometry.stride, layer.geometry.padding)
        if isinstance(layer, BatchNorm2d):
            return nn.BatchNorm2d(len(layer.weight.value), layer.eps, layer.momentum)
        if isinstance(layer, Linear):
            return nn.Linear(*layer.weight.value.shape[::-1], bias=layer.bias is not None)
        return {ReLU: nn.ReLU, Flatten: nn.Flatten}[type(layer)]()

    twin = nn.Sequential(*(translate(layer) for layer in model.layers)).double()
    with torch.no_grad():
        for ours, theirs in zip(model.parameters(), twin.parameters(), strict=True):
            theirs.copy_(torch.from_numpy(ours.value))
        for layer, module in zip(model.layers, twin):
            if isinstance(layer, BatchNorm2d):
                module.running_mean.copy_(torch.from_numpy(layer.running_mean))
                module.running_var.copy_(torch.from_numpy(layer.running_var))
    return twin


def twin_losses(
    split: ShapesSplit, steps: int = 20, batch_size: int = 16, lr: float = 0.05, momentum: float = 0.9, seed: int = 0
) -> tuple[list[float], list[float]]:
    """Train the NumPy CNN and its PyTorch twin side by side in float64 on the same batches of a float64
    ``split``; return both loss sequences (one loss per SGD step, taken before the step)."""
    rng = np.random.default_rng(seed)
    model = build_numpy_cnn(rng, dtype=np.float64)
    twin = torch_twin(model)
    optimiser, loss_fn = SGD(model.parameters(), lr=lr, momentum=momentum), SoftmaxCrossEntropy()
    torch_optimiser = torch.optim.SGD(twin.parameters(), lr=lr, momentum=momentum)
    ours, theirs = [], []
    batches = minibatches(len(split.y_train), batch_size, rng)
    for _ in range(steps):
        batch = next(batches, None)
        if batch is None:
            batches = minibatches(len(split.y_train), batch_size, rng)
            batch = next(batches)
        x, y = split.x_train[batch], split.y_train[batch]
        ours.append(loss_fn.forward(model.forward(x), y))
        model.backward(loss_fn.backward())
        optimiser.step()

        torch_optimiser.zero_grad()
        loss = F.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        torch_optimiser.step()
        theirs.append(loss.item())
    return ours, theirs
