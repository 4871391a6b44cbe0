"""Turning stored uint8 images into model inputs, and running a model over many of them."""

from __future__ import annotations

import torch
from torch import nn

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


def logits_of(output: object) -> torch.Tensor:
    """The main logits of a model output (some models return (logits, aux) tuples in training)."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, (tuple, list)):
        return output[0]
    raise TypeError(f"cannot find logits in a model output of type {type(output).__name__}")


def aux_logits_of(output: object) -> torch.Tensor | None:
    """Auxiliary logits of a training-mode output (inception's ``aux_logits``), or None."""
    aux = getattr(output, "aux_logits", None)
    if isinstance(aux, torch.Tensor):
        return aux
    if isinstance(output, (tuple, list)) and len(output) > 1 and isinstance(output[1], torch.Tensor):
        return output[1]
    return None


@torch.no_grad()
def predict_logits(
    model: nn.Module, images: torch.Tensor, norm: Normalization, device: torch.device, batch_size: int = 256
) -> torch.Tensor:
    """Logits for every image (eval mode, no augmentation), on the CPU."""
    was_training = model.training
    model.eval()
    try:
        out = [logits_of(model(prepare(images[i : i + batch_size], norm, device))).float().cpu()
               for i in range(0, len(images), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)
