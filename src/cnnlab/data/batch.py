"""Turning stored uint8 images into model inputs: to float, augmented (training), normalised."""

from __future__ import annotations

import torch

from cnnlab.data.augment import AugmentConfig, augment_batch
from cnnlab.data.normalize import Normalization, to_unit_float


def prepare(
    images: torch.Tensor,
    norm: Normalization,
    device: torch.device,
    augment: AugmentConfig | None = None,
    generator: torch.Generator | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """uint8 N x 3 x H x W -> normalised float32 on ``device``, augmented when ``augment`` is given."""
    x = to_unit_float(images.to(device, non_blocking=True))
    if augment is not None and generator is not None:
        x = augment_batch(x, augment, generator)
    return norm(x, torch.channels_last if channels_last else torch.contiguous_format)
