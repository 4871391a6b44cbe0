"""The registry as a table: one ``ModelSummary`` per model (what ``cnnlab models`` lists), built without
allocating any weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnnlab.models.backbones import HALF, IMAGENET_MEAN, IMAGENET_STD, LITE_MEAN, LITE_STD
from cnnlab.models.registry import create_model, list_models, model_info
from cnnlab.models.weights import available, weight_specs

NORMALIZATION_NAMES = {(IMAGENET_MEAN, IMAGENET_STD): "imagenet", (HALF, HALF): "0.5/0.5", (LITE_MEAN, LITE_STD): "127/128"}


@dataclass(frozen=True)
class ModelSummary:
    name: str
    parameters: int  # for the number of classes asked for
    default_image_size: int
    min_image_size: int
    normalization: str  # imagenet, 0.5/0.5, 127/128, custom, or measured (from the training split)
    pretrained: list[str]  # tags of the published weights present in the local hub cache
    pretrained_files: list[str]  # file names of every published weights file known for the model
    description: str


def normalization_name(mean: tuple | None, std: tuple | None) -> str:
    if mean is None or std is None:
        return "measured"
    return NORMALIZATION_NAMES.get((tuple(mean), tuple(std)), "custom")


def count_parameters(name: str, num_classes: int) -> int:
    """Parameters of the model for ``num_classes`` classes, built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        model = create_model(name, num_classes)
    return sum(p.numel() for p in model.parameters())


def model_summaries(num_classes: int) -> list[ModelSummary]:
    """Every registered model, by name."""
    rows = []
    for name in list_models():
        info = model_info(name)
        rows.append(ModelSummary(
            name=name, parameters=count_parameters(name, num_classes), default_image_size=info.default_image_size,
            min_image_size=info.min_image_size, normalization=normalization_name(info.mean, info.std),
            pretrained=[s.tag for s in available(name)], pretrained_files=[s.filename for s in weight_specs(name)],
            description=info.description,
        ))
    return rows
