"""Mixup and CutMix on whole micro-batches, with soft targets.

Each micro-batch is mixed with probability ``prob`` (one of mixup or cutmix, 50/50 when both are on,
as timm's ``Mixup`` switches): image ``i`` is blended with image ``n - 1 - i`` of the same batch
(timm's batch mode), with a weight ``lam`` drawn from Beta(alpha, alpha). CutMix pastes a box of the
partner image instead and sets ``lam`` to the share of the image that stayed. The target is then
``lam * onehot(y_i) + (1 - lam) * onehot(y_partner)``; cross-entropy with label smoothing takes such
probability targets as they are.

Written here rather than taken from timm or torchvision v2 because every random number must come
from the micro-batch's own generator (results must not depend on --data-threads or on resuming), and
both libraries draw from the global RNGs. ``lam`` comes from NumPy's Beta sampler seeded from that
generator (torch's Beta sampler takes no generator).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Mixing:
    mixup: float = 0.0  # Beta parameter, 0 = off
    cutmix: float = 0.0
    prob: float = 1.0

    @property
    def enabled(self) -> bool:
        return (self.mixup > 0 or self.cutmix > 0) and self.prob > 0

    def apply(self, x: torch.Tensor, y: torch.Tensor, num_classes: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, targets) of one micro-batch: ``y`` unchanged (class indices) when the batch is not
        mixed, else N x num_classes probabilities that sum to 1."""
        if not self.enabled or len(y) < 2:
            return x, y
        draws = torch.rand(2, generator=g, device=g.device).tolist()
        if draws[0] >= self.prob:
            return x, y
        use_cutmix = self.cutmix > 0 and (self.mixup == 0 or draws[1] < 0.5)
        rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=g, device=g.device)))
        lam = float(rng.beta(*(2 * [self.cutmix if use_cutmix else self.mixup])))
        partner = x.flip(0)
        if use_cutmix:
            x, lam = _paste_box(x, partner, lam, rng)
        else:
            x = torch.lerp(partner, x, lam)  # lam * x + (1 - lam) * partner
        return x, mixed_targets(y, lam, num_classes)


def mixed_targets(y: torch.Tensor, lam: float, num_classes: int) -> torch.Tensor:
    """``lam`` of each image's own class, ``1 - lam`` of its partner's (image n - 1 - i)."""
    onehot = F.one_hot(y, num_classes).float()
    return lam * onehot + (1 - lam) * onehot.flip(0)


def _paste_box(x: torch.Tensor, partner: torch.Tensor, lam: float, rng: np.random.Generator) -> tuple[torch.Tensor, float]:
    """CutMix: a box of area about ``1 - lam`` (centre uniform, clipped at the border) from ``partner``;
    returns the images and the exact share of each image that is still its own."""
    h, w = x.shape[-2:]
    cut = np.sqrt(1 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    out = x.clone()
    out[..., y0:y1, x0:x1] = partner[..., y0:y1, x0:x1]
    return out, 1 - (y1 - y0) * (x1 - x0) / (h * w)
