"""Class activation maps: where in the image a layer's features raised the target score.

Grad-CAM (Selvaraju et al. 2017): take the gradient of the score with respect to the activations
A (N x C x h x w) of one layer, pool it per channel into weights w_c, and keep ReLU(sum_c w_c A_c):
the positions whose features push the score up. Grad-CAM++ (Chattopadhay et al. 2018) weights each
channel by its positive gradients only, each position scaled by second/third-order terms, which
helps when several instances of a class are present. One class per method over ``BaseCAM``, as in
pytorch-grad-cam; only the channel weighting differs.

The whole batch is explained in one forward and one backward pass: in eval mode images do not
interact, so the gradient of the summed scores gives each image its own gradient. The backward pass
stops at the chosen layer (``torch.autograd.grad``), so no weight gradients are computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data.batch import prepare
from cnnlab.data.normalize import Normalization
from cnnlab.explain.hooks import capture
from cnnlab.explain.targets import ClassTarget, Target, target_layers, target_scores
from cnnlab.models.outputs import logits_of


@dataclass
class CamResult:
    maps: torch.Tensor  # N x H x W, upsampled to the input size, each divided by its maximum (all 0 if none)
    raw: torch.Tensor  # N x h x w, ReLU(sum_c w_c A_c) at the layer's resolution, unscaled
    weights: torch.Tensor  # N x C, the channel weights
    scores: torch.Tensor  # N, the target score of each image
    logits: torch.Tensor  # N x classes
    targets: list[Target]  # the target of each image

    @classmethod
    def cat(cls, parts: Sequence[CamResult]) -> CamResult:
        """One result from the results of consecutive batches."""
        return cls(*(torch.cat([getattr(p, f) for p in parts]) for f in ("maps", "raw", "weights", "scores", "logits")),
                   [t for p in parts for t in p.targets])


class BaseCAM:
    """Shared machinery: capture ``layer``, take gradients of the targets' scores, weight, rectify,
    upsample. Subclasses define ``channel_weights``."""

    def __init__(self, model: nn.Module, layer: str) -> None:
        self.model = model
        self.layer = layer

    def channel_weights(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        """N x C weights from activations and gradients of shape N x C x h x w."""
        raise NotImplementedError

    def __call__(self, images: torch.Tensor, targets: Target | Sequence[Target] | None = None) -> CamResult:
        """Explain normalised ``images`` (N x 3 x H x W); ``targets``: one for all images, one per image,
        or None for each image's predicted class."""
        layers = [self.layer] + ([] if targets is None else target_layers(targets))
        # The input requires grad so that a graph exists even when every weight is frozen.
        x = images.detach().requires_grad_(True)
        with capture(self.model, list(dict.fromkeys(layers))) as cap, torch.enable_grad():
            logits = logits_of(self.model(x))
            if targets is None:
                targets = [ClassTarget(int(k)) for k in logits.argmax(1)]
            per_image = list(targets) if isinstance(targets, Sequence) else [targets] * len(x)
            scores = target_scores(targets, logits, cap.activations)
            acts = cap.activations[self.layer]
            if acts.dim() != 4:
                raise ValueError(f"layer '{self.layer}' gives {tuple(acts.shape)}, not N x C x h x w: pick a conv layer")
            # allow_unused: a filter of an earlier layer than the CAM layer does not depend on it (map 0).
            (grads,) = torch.autograd.grad(scores.sum(), acts, allow_unused=True)
        acts = acts.detach()
        grads = torch.zeros_like(acts) if grads is None else grads
        weights = self.channel_weights(acts, grads)
        raw = F.relu((weights[:, :, None, None] * acts).sum(1))
        return CamResult(upsample_and_scale(raw, images.shape[-2:]), raw, weights, scores.detach(),
                         logits.detach(), per_image)


class GradCAM(BaseCAM):
    """w_c = mean over positions of dScore/dA_c."""

    def channel_weights(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        return gradients.mean((2, 3))


class GradCAMPlusPlus(BaseCAM):
    """w_c = sum over positions of alpha * ReLU(dScore/dA_c), with
    alpha = g^2 / (2 g^2 + sum(A_c) g^3) (the closed form for an exponential score)."""

    def channel_weights(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        g2 = gradients.pow(2)
        g3 = g2 * gradients
        denominator = 2 * g2 + activations.sum((2, 3), keepdim=True) * g3
        alpha = torch.where(gradients != 0, g2 / torch.where(denominator != 0, denominator, torch.ones_like(g2)),
                            torch.zeros_like(g2))
        return (alpha * F.relu(gradients)).sum((2, 3))


# The registry: a new method is a BaseCAM subclass above and one entry here. `cnnlab explain gradcam
# --method` offers every entry, and tests/test_explain_cam.py runs its invariants on each.
CAM_METHODS: dict[str, type[BaseCAM]] = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus}


def explain_in_batches(
    cam: BaseCAM, images: torch.Tensor, norm: Normalization, device: torch.device,
    target: Target | Sequence[Target] | None, batch_size: int,
) -> CamResult:
    """Explain uint8 ``images`` (N x 3 x H x W) ``batch_size`` at a time, so memory stays bounded;
    ``target``: one for all images, one per image, or None for each image's predicted class."""
    return CamResult.cat([cam(prepare(images[i : i + batch_size], norm, device),
                              target[i : i + batch_size] if isinstance(target, Sequence) else target)
                          for i in range(0, len(images), batch_size)])


def upsample_and_scale(raw: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear upsampling of N x h x w maps to ``size``, then each divided by its maximum, so maps of
    different images share the [0, 1] colour scale of an overlay."""
    up = F.interpolate(raw[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    top = up.flatten(1).amax(1).view(-1, 1, 1)
    return torch.where(top > 0, up / top.clamp_min(torch.finfo(up.dtype).tiny), torch.zeros_like(up))


def pointing_game(maps: torch.Tensor, masks: torch.Tensor, tolerance: float = 0.0) -> torch.Tensor:
    """Per image: does the map's maximum fall on the object mask (N x H x W bool)?

    ``tolerance`` (pixels) also counts points at most that far from the mask: the original pointing
    game (Zhang et al. 2016) allows 15 px on ~224 px images, about 1/15 of the side; 0 (default) asks
    for the point to be on the mask itself. Upsampling a coarse map makes flat maxima (near the border,
    bilinear upsampling repeats the edge cells out to the image edge), so the point taken is the
    maximal pixel nearest the centroid of all maximal pixels, not the first in reading order, which
    would always sit at the plateau's top-left end."""
    n, h, w = maps.shape
    flat = maps.reshape(n, -1)
    is_max = flat == flat.amax(1, keepdim=True)
    ys = torch.arange(h, device=maps.device).repeat_interleave(w).to(maps.dtype)
    xs = torch.arange(w, device=maps.device).repeat(h).to(maps.dtype)
    count = is_max.sum(1, keepdim=True)
    cy, cx = (is_max * ys).sum(1, keepdim=True) / count, (is_max * xs).sum(1, keepdim=True) / count
    distance = torch.where(is_max, (ys - cy) ** 2 + (xs - cx) ** 2, torch.full_like(flat, float("inf")))
    point = distance.argmin(1, keepdim=True)
    to_point = (ys - ys[point]) ** 2 + (xs - xs[point]) ** 2  # N x HW squared distances from each point
    on_mask = masks.reshape(n, -1)
    nearest = torch.where(on_mask, to_point, torch.full_like(to_point, float("inf"))).amin(1)
    return nearest <= tolerance**2
