"""Test-time augmentation: a model's class probabilities averaged over transformed views of each image.

``flip`` adds the mirror image; ``flip+scales`` adds a centre zoom (a crop of 1/1.15 of the side,
resized back to the input size) and its mirror: four views. Probabilities (softmax outputs) are
averaged, not logits, so a view the model is unsure about cannot outvote a confident one by a large
logit scale; averaged probabilities are also what ensembles average (``runs.ensemble``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from cnnlab.errors import UserError
from cnnlab.runs.inference import predict_logits
from cnnlab.runs.run import LoadedRun

TTA_MODES = ("none", "flip", "flip+scales")
ZOOM = 1.15


def hflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def zoom(x: torch.Tensor, factor: float = ZOOM) -> torch.Tensor:
    """The centre 1/factor of each side, resized back to the full size."""
    h, w = x.shape[-2:]
    ch, cw = round(h / factor), round(w / factor)
    top, left = (h - ch) // 2, (w - cw) // 2
    return F.interpolate(x[..., top : top + ch, left : left + cw], size=(h, w), mode="bilinear", align_corners=False)


def views(mode: str) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    if mode not in TTA_MODES:
        raise UserError(f"unknown --tta '{mode}': choose one of {', '.join(TTA_MODES)}")
    identity: Callable[[torch.Tensor], torch.Tensor] = lambda x: x  # noqa: E731
    out = [identity]
    if mode != "none":
        out.append(hflip)
    if mode == "flip+scales":
        out += [zoom, lambda x: hflip(zoom(x))]
    return out


def predict_probs(run: LoadedRun, images: torch.Tensor, device: torch.device, tta: str = "none",
                  batch_size: int = 256) -> torch.Tensor:
    """N x classes probabilities of ``run`` for uint8 ``images`` at the run's size, averaged over the
    views of ``tta``; on the CPU."""
    probs = [predict_logits(run.model, images, run.norm, device, batch_size, view).softmax(dim=1) for view in views(tta)]
    return torch.stack(probs).mean(0)
