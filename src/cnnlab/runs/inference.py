"""Running a trained model over many stored images (eval mode, no augmentation)."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.data.batch import prepare
from cnnlab.data.normalize import Normalization
from cnnlab.models.outputs import logits_of


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
