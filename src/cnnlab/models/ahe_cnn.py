"""The reference CNN for the AHE task.

Five 3x3 conv blocks (3->32->64->128->256->512), each Conv -> BatchNorm -> activation, with a 2x
downsampling after blocks 1-4, then Flatten and three fully connected layers 2048->1024->512->classes,
each preceded by Dropout. At 32x32 input the last block is 512x2x2 = 2048 features; for other sizes
an adaptive average pool to 2x2 (``layers.AdaptiveAvgPool``, deterministic on GPUs too) keeps the head's
input at 2048.
"""

from __future__ import annotations

from torch import nn

from cnnlab.models.layers import AdaptiveAvgPool, activation, downsample
from cnnlab.models.registry import register_model

WIDTHS = (32, 64, 128, 256, 512)


class AheCNN(nn.Module):
    def __init__(
        self,
        num_classes: int,
        pooling: str = "max",
        activation_name: str = "relu",
        dropout: float = 0.25,
        batchnorm: bool = True,
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        in_ch = 3
        for i, out_ch in enumerate(WIDTHS):
            block = nn.Sequential()
            block.add_module("conv", nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=not batchnorm))
            if batchnorm:
                block.add_module("bn", nn.BatchNorm2d(out_ch))
            block.add_module("act", activation(activation_name))
            if i < len(WIDTHS) - 1:
                block.add_module("pool", downsample(pooling, out_ch))
            blocks.append(block)
            in_ch = out_ch
        self.features = nn.Sequential(*blocks)
        self.pool = AdaptiveAvgPool(2)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout), nn.Linear(512 * 4, 1024), activation(activation_name),
            nn.Dropout(dropout), nn.Linear(1024, 512), activation(activation_name),
            nn.Dropout(dropout), nn.Linear(512, num_classes),
        )

    def forward(self, x):  # type: ignore[no-untyped-def]
        x = self.features(x)
        if x.shape[-2:] != (2, 2):
            x = self.pool(x)
        return self.classifier(x)


@register_model("ahe_cnn", default_image_size=32, min_image_size=16)
def ahe_cnn(
    num_classes: int,
    pooling: str = "max",
    activation: str = "relu",
    dropout: float = 0.25,
    batchnorm: bool = True,
) -> nn.Module:
    """Reference CNN: 5 conv blocks 32..512 with BatchNorm, FC 2048-1024-512-classes with dropout."""
    return AheCNN(num_classes, pooling=pooling, activation_name=activation, dropout=dropout, batchnorm=batchnorm)
