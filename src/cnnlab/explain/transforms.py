"""Random changes applied to a class-model image before each step (Lucent's "transforms").

A pattern that raises the score only at one exact pixel alignment (the adversarial, high-frequency
kind) stops working once the image is shifted, scaled and rotated a little at every step; patterns
that survive those changes are the ones the network recognises as the class. All parameters are
drawn per image and applied in a single ``affine_grid``/``grid_sample`` call, with reflected borders
so that no constant frame appears.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class RandomAffine:
    """Per-image random shift (up to ``jitter`` of the image side), scale in [1 - zoom, 1 + zoom] and
    rotation up to ``degrees`` either way."""

    jitter: float = 0.03  # Lucent jitters 8 px at 224 px (3.6% of the side): 1 px at 32 px
    zoom: float = 0.1
    degrees: float = 10.0

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = len(images)

        def uniform(limit: float) -> torch.Tensor:
            return (2 * torch.rand(n, generator=generator) - 1) * limit

        angle = uniform(math.radians(self.degrees))
        scale = 1 + uniform(self.zoom)
        shift = torch.stack([uniform(2 * self.jitter), uniform(2 * self.jitter)], 1)  # grid units span 2
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
