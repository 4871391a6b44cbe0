"""The gallery: the most confident mistakes (what fooled the model, and where it looked) and correct
examples, each with its Grad-CAM overlays for the predicted and the true class."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnnlab.data.imageset import ImageSet
from cnnlab.explain.overlay import data_uri, png_bytes
from cnnlab.explain.run_cams import class_overlays
from cnnlab.report.folders import Picture
from cnnlab.runs.run import LoadedRun


@dataclass
class GalleryItem:
    name: str  # the image's file name (or shapes/<index>)
    true: str
    predicted: str
    probability: float  # of the predicted class
    image: str  # data URI of the image as the model saw it (resized)
    overlays: list[Picture]


@dataclass
class Gallery:
    mistakes: list[GalleryItem]
    correct: list[GalleryItem]
    layer: str  # the Grad-CAM layer


def most_confident_mistakes(probabilities: torch.Tensor, labels: torch.Tensor, count: int) -> list[int]:
    """Indices of wrongly predicted images, most confident first."""
    confidence, predicted = probabilities.max(1)
    wrong = (predicted != labels).nonzero().flatten()
    return wrong[confidence[wrong].argsort(descending=True, stable=True)][:count].tolist()


def most_confident_correct(probabilities: torch.Tensor, labels: torch.Tensor, count: int) -> list[int]:
    """For each class in order (at most ``count``), the correctly predicted image it is most sure of."""
    confidence, predicted = probabilities.max(1)
    picked = []
    for k in range(probabilities.shape[1]):
        right = ((predicted == labels) & (labels == k)).nonzero().flatten()
        if len(right):
            picked.append(int(right[confidence[right].argmax()]))
    return picked[:count]


def build_gallery(run: LoadedRun, images: ImageSet, probabilities: torch.Tensor, device: torch.device,
                  mistakes: int = 12, correct: int = 10) -> Gallery:
    """Both galleries with one Grad-CAM pass: a mistake gets overlays for its predicted and its true
    class, a correct example one (they are the same class)."""
    wrong = most_confident_mistakes(probabilities, images.labels, mistakes)
    right = most_confident_correct(probabilities, images.labels, correct)
    predicted = probabilities.argmax(1)
    chosen = wrong + wrong + right
    classes = [int(predicted[i]) for i in wrong] + [int(images.labels[i]) for i in wrong + right]
    explained = class_overlays(run, images.images[chosen], classes, device) if chosen else None

    def item(i: int, overlays: list[Picture]) -> GalleryItem:
        k = int(predicted[i])
        picture = images.images[i].permute(1, 2, 0).numpy()
        return GalleryItem(images.names[i], run.classes[int(images.labels[i])], run.classes[k],
                           float(probabilities[i, k]), data_uri(png_bytes(picture)), overlays)

    def overlay(j: int, caption: str) -> Picture:
        assert explained is not None
        return Picture(caption, data_uri(png_bytes(explained.overlays[j])))

    n = len(wrong)
    wrong_items = [item(i, [overlay(j, f"Grad-CAM for predicted {run.classes[classes[j]]}"),
                            overlay(n + j, f"Grad-CAM for true {run.classes[classes[n + j]]}")])
                   for j, i in enumerate(wrong)]
    right_items = [item(i, [overlay(2 * n + j, f"Grad-CAM for {run.classes[classes[2 * n + j]]}")])
                   for j, i in enumerate(right)]
    return Gallery(wrong_items, right_items, explained.layer if explained else "")
