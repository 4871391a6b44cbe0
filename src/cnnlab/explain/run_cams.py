"""Grad-CAM overlays of a trained run's images for chosen classes, held in memory.

The HTML report embeds them and the web app returns them, so the pictures are made here once, as
arrays, and each front end encodes them as it needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cnnlab.explain.cam import GradCAM, explain_in_batches
from cnnlab.explain.layers import default_cam_layer
from cnnlab.explain.overlay import heat_overlay
from cnnlab.explain.targets import ClassTarget
from cnnlab.runs.run import LoadedRun


@dataclass
class ClassOverlays:
    probabilities: torch.Tensor  # N x classes: softmax of the logits of the explained forward pass
    classes: list[int]  # the class each overlay explains
    overlays: list[np.ndarray]  # uint8 H x W x 3 per image: the image blended with its class's map
    layer: str


def class_overlays(
    run: LoadedRun,
    images: torch.Tensor,
    classes: Sequence[int] | None,
    device: torch.device,
    layer: str | None = None,
    alpha: float = 0.5,
    batch_size: int = 64,
) -> ClassOverlays:
    """Grad-CAM overlay of image i for class ``classes[i]`` (None: each image's predicted class), at
    the image's own size (an overlay is enlarged where it is shown), with the probabilities of the
    same forward pass."""
    layer = layer or default_cam_layer(run.model, run.image_size)
    targets = None if classes is None else [ClassTarget(int(k)) for k in classes]
    result = explain_in_batches(GradCAM(run.model, layer), images, run.norm, device, targets, batch_size)
    overlays = [heat_overlay(image, heat.cpu(), alpha) for image, heat in zip(images, result.maps)]
    explained = [t.index for t in result.targets if isinstance(t, ClassTarget)]
    return ClassOverlays(result.logits.softmax(1).cpu(), explained, overlays, layer)
