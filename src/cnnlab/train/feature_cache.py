"""Frozen-feature cache: while the whole backbone is frozen and augmentation is off, the backbone maps
each image to the same feature vector in every epoch, so compute it once and train (and validate) the
head on the stored vectors.

Equivalent to training through the frozen network: frozen stages run in eval mode (no BatchNorm
updates, no dropout), so the body is a fixed function of the image; the head sees the same inputs
in the same order and draws the same dropout masks. Only the batch grouping of the body's forward
passes differs, which can change float rounding in the last bits.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.data.augment import AugmentConfig
from cnnlab.data.dataset import DataBundle
from cnnlab.data.normalize import Normalization
from cnnlab.models.backbones import TransferModel
from cnnlab.data.batch import prepare

logger = logging.getLogger("cnnlab")


@dataclass
class FeatureCache:
    train: torch.Tensor  # N_train x F, on the training device, in the train split's order
    val: torch.Tensor  # N_val x F
    seconds: float  # time spent computing them


def usable(model: nn.Module, augment: AugmentConfig, enabled: bool, distributed: bool) -> bool:
    return (enabled and isinstance(model, TransferModel) and model.backbone_frozen and augment.is_identity()
            and not distributed)


@torch.no_grad()
def backbone_features(
    model: TransferModel, images: torch.Tensor, norm: Normalization, device: torch.device,
    batch_size: int = 256, channels_last: bool = False, bf16: bool = False,
) -> torch.Tensor:
    """``model.features`` of every image in eval mode (as the frozen body runs in training)."""
    was_training = model.training
    model.eval()
    try:
        out = []
        for i in range(0, len(images), batch_size):
            x = prepare(images[i : i + batch_size], norm, device, channels_last=channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                out.append(model.features(x).float())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, device=device)


def update(
    cache: FeatureCache | None, model: nn.Module, data: DataBundle, norm: Normalization, device: torch.device,
    augment: AugmentConfig, enabled: bool, distributed: bool, batch_size: int, channels_last: bool, bf16: bool,
) -> FeatureCache | None:
    """The cache for the coming epoch: kept, built (first epoch with a frozen backbone) or dropped."""
    if not usable(model, augment, enabled, distributed):
        return None
    if cache is not None:
        return cache
    assert isinstance(model, TransferModel)
    t0 = time.perf_counter()
    args = dict(device=device, batch_size=batch_size, channels_last=channels_last, bf16=bf16)
    train = backbone_features(model, data.train.images, norm, **args)  # type: ignore[arg-type]
    val = backbone_features(model, data.val.images, norm, **args)  # type: ignore[arg-type]
    seconds = time.perf_counter() - t0
    logger.info(f"feature cache: backbone features of {len(train)} + {len(val)} images computed once "
                f"({train.shape[1] if train.ndim == 2 else 0} values each, {seconds:.1f}s); the head trains on them")
    return FeatureCache(train, val, seconds)
