"""Deep stacks of identical 3x3 conv layers, plain or residual: the models of the gradient-flow experiment.

``plain_cnn`` and ``residual_cnn`` differ in one line: a residual layer adds its input to its output,
``x + act(bn(conv(x)))``, so the backward pass has an identity path around every layer; a plain layer
is ``act(bn(conv(x)))``. Everything else is shared -- a stem conv from RGB to ``width`` channels that
counts as the first of ``depth`` conv layers, 2x average pooling after a third and two thirds of the
layers, global average pooling and one linear layer -- so comparing them isolates what the skip
connections, the activation and BatchNorm do to the gradient reaching the first layers. Convolutions
use He (Kaiming) normal initialisation, the usual one for ReLU networks, whatever the activation.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import UserError
from cnnlab.models.layers import activation
from cnnlab.models.registry import register_model


class ConvLayer(nn.Module):
    """conv -> (BatchNorm) -> activation, plus the input when ``residual``."""

    def __init__(self, in_ch: int, out_ch: int, activation_name: str, batchnorm: bool, residual: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=not batchnorm)
        self.bn = nn.BatchNorm2d(out_ch) if batchnorm else nn.Identity()
        self.act = activation(activation_name)
        self.residual = residual and in_ch == out_ch
        nn.init.kaiming_normal_(self.conv.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn(self.conv(x)))
        return x + y if self.residual else y


class DeepCNN(nn.Module):
    def __init__(self, num_classes: int, depth: int, width: int, activation_name: str, batchnorm: bool,
                 residual: bool) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise UserError(f"depth and width must be at least 1, not depth={depth}, width={width}")
        pool_after = {depth // 3, 2 * depth // 3} - {0, depth}
        layers: list[nn.Module] = []
        for i in range(depth):
            layers.append(ConvLayer(3 if i == 0 else width, width, activation_name, batchnorm, residual))
            if i + 1 in pool_after:
                layers.append(nn.AvgPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("plain_cnn", default_image_size=32, min_image_size=8)
def plain_cnn(num_classes: int, depth: int = 20, width: int = 16, activation: str = "relu",
              batchnorm: bool = False) -> nn.Module:
    """`depth` identical 3x3 conv layers without skip connections (gradient-flow experiment)."""
    return DeepCNN(num_classes, depth, width, activation, batchnorm, residual=False)


@register_model("residual_cnn", default_image_size=32, min_image_size=8)
def residual_cnn(num_classes: int, depth: int = 20, width: int = 16, activation: str = "relu",
                 batchnorm: bool = True) -> nn.Module:
    """plain_cnn with an identity skip around every conv layer after the stem."""
    return DeepCNN(num_classes, depth, width, activation, batchnorm, residual=True)
