"""The in-memory form every dataset takes: decoded once into one uint8 tensor."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class ImageSet:
    """Images of one split, decoded and resized once.

    ``names`` identifies each image for people and for saved split lists: a path relative to the data
    root for folder datasets, ``shapes/<index>`` for the built-in one. ``masks`` (object masks) exist
    only where the dataset knows them (the ``shapes`` dataset).
    """

    images: torch.Tensor  # uint8, N x 3 x H x W
    labels: torch.Tensor  # int64, N
    names: list[str]
    classes: list[str]
    masks: torch.Tensor | None = None  # bool, N x H x W

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor | list[int]) -> ImageSet:
        index = torch.as_tensor(index, dtype=torch.long)
        return ImageSet(
            images=self.images[index],
            labels=self.labels[index],
            names=[self.names[i] for i in index.tolist()],
            classes=self.classes,
            masks=None if self.masks is None else self.masks[index],
        )

    def resized(self, size: int, chunk: int = 512) -> ImageSet:
        """The same images at ``size`` x ``size`` (bilinear with antialias, as decoding resizes; in
        chunks, so the float copy stays small). Progressive resizing derives its smaller sizes this way."""
        if self.images.shape[-1] == size and self.images.shape[-2] == size:
            return self
        parts = [F.interpolate(self.images[i : i + chunk].float(), size=(size, size), mode="bilinear",
                               antialias=True, align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
                 for i in range(0, len(self.images), chunk)]
        images = torch.cat(parts) if parts else self.images.new_empty(0, 3, size, size)
        return ImageSet(images, self.labels, self.names, self.classes, None)  # masks are only used unresized

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=len(self.classes)).tolist()
