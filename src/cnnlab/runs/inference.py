"""Running a trained model over many stored images (eval mode, no augmentation)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cnnlab.data.batch import prepare
from cnnlab.data.normalize import Normalization
from cnnlab.models.outputs import logits_of


@torch.no_grad()
def predict_logits(
    model: nn.Module, images: torch.Tensor, norm: Normalization, device: torch.device, batch_size: int = 256,
    view: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Logits for every image (eval mode, no augmentation), on the CPU; ``view`` transforms each
    normalised batch first (test-time augmentation, see ``runs.tta``)."""
    view = view or (lambda x: x)
    was_training = model.training
    model.eval()
    try:
        out = [logits_of(model(view(prepare(images[i : i + batch_size], norm, device)))).float().cpu()
               for i in range(0, len(images), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)
