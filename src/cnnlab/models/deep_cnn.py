"""Deep stacks of identical 3x3 conv layers, plain or residual: the models of the gradient-flow experiment.

A plain layer is ``act(bn(conv(x)))``. A residual layer is the pre-activation form of He et al. (2016),
``x + conv(act(bn(x)))``: the identity path carries the signal forward and the gradient back untouched
(with ``x + act(bn(conv(x)))`` instead, the ReLU's positive outputs pile up over 20 sums and the first
logits are huge). Everything else is shared -- ``depth`` conv layers of ``width`` channels, the first
from RGB, 2x average pooling after a third and two thirds of them, global average pooling and one
linear layer -- so comparing them isolates what the skips, the activation and BatchNorm do to the
gradient reaching the first layers. Convolutions use He (Kaiming) normal initialisation, the usual one
for ReLU networks, whatever the activation. Without BatchNorm a residual stack's activations double
at every layer at this initialisation: that is what normalisation (or schemes such as Fixup) is for.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import UserError
from cnnlab.models.layers import activation
from cnnlab.models.registry import register_model


class PlainLayer(nn.Module):
    """conv -> (BatchNorm) -> activation."""

    def __init__(self, in_ch: int, out_ch: int, activation_name: str, batchnorm: bool) -> None:
        super().__init__()
        self.conv = _conv(in_ch, out_ch, bias=not batchnorm)
        self.bn = nn.BatchNorm2d(out_ch) if batchnorm else nn.Identity()
        self.act = activation(activation_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class ResidualLayer(nn.Module):
    """x + conv(activation((BatchNorm)(x))): pre-activation, so the identity path has nothing on it."""

    def __init__(self, channels: int, activation_name: str, batchnorm: bool) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels) if batchnorm else nn.Identity()
        self.act = activation(activation_name)
        self.conv = _conv(channels, channels, bias=not batchnorm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.act(self.bn(x)))


def _conv(in_ch: int, out_ch: int, bias: bool) -> nn.Conv2d:
    conv = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias)
    nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
    return conv


class DeepCNN(nn.Module):
    def __init__(self, num_classes: int, depth: int, width: int, activation_name: str, batchnorm: bool,
                 residual: bool) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise UserError(f"depth and width must be at least 1, not depth={depth}, width={width}")
        pool_after = {depth // 3, 2 * depth // 3} - {0, depth}
        layers: list[nn.Module] = [_conv(3, width, bias=True) if residual else
                                   PlainLayer(3, width, activation_name, batchnorm)]
        for i in range(1, depth):
            if i in pool_after:
                layers.append(nn.AvgPool2d(2))
            layers.append(ResidualLayer(width, activation_name, batchnorm) if residual else
                          PlainLayer(width, width, activation_name, batchnorm))
        if residual:  # pre-activation blocks leave the last sum un-normalised
            layers += [nn.BatchNorm2d(width) if batchnorm else nn.Identity(), activation(activation_name)]
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
