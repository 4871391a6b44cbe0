"""Class-model images: gradient ascent on the input to maximise a target (a class logit or a filter).

The three ingredients are kept apart as in Lucent: what is maximised (a target from ``targets``),
how the image is represented (``params``) and how it is randomly changed at each step
(``transforms``). Two recipes:

``plain``        the classic one (Simonyan et al. 2014): Adam at lr 1e-2 on the pixels, nothing else.
                 It reaches the target quickly, but with high-frequency patterns that look like noise.
``regularized``  Fourier/decorrelated parameterisation, a random shift/scale/rotation at every step,
                 and L2 and total-variation penalties: smoother images that still reach the target.

All targets are optimised together as one batch (the model is in eval mode, so images do not
interact), and the backward pass stops at the image (``torch.autograd.grad``): the model's weights and
their ``.grad`` are never touched. Each result reports the target probability and a high-frequency
energy measure, so the recipes can be compared by numbers, not only by eye.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from cnnlab.data.normalize import Normalization
from cnnlab.errors import UserError
from cnnlab.explain.hooks import capture
from cnnlab.explain.params import FourierImage, PixelImage
from cnnlab.explain.targets import Target, target_layers, target_scores
from cnnlab.explain.transforms import RandomAffine
from cnnlab.models.outputs import logits_of


@dataclass(frozen=True)
class DreamRecipe:
    name: str
    steps: int
    lr: float
    parameterization: str  # "pixel" or "fourier"
    transform: RandomAffine | None
    l2: float  # weight of the mean squared distance from grey (0.5), per image
    tv: float  # weight of the mean absolute difference between neighbouring pixels, per image


RECIPES: dict[str, DreamRecipe] = {
    "plain": DreamRecipe("plain", 1000, 1e-2, "pixel", None, 0.0, 0.0),
    "regularized": DreamRecipe("regularized", 1000, 5e-2, "fourier", RandomAffine(), 1.0, 4.0),
}


def recipe(method: str, steps: int | None = None) -> DreamRecipe:
    if method not in RECIPES:
        raise UserError(f"unknown dream method '{method}': choose one of {', '.join(RECIPES)}")
    if steps is not None and steps < 1:
        raise UserError(f"--steps must be at least 1, not {steps}")
    return RECIPES[method] if steps is None else replace(RECIPES[method], steps=steps)


@dataclass
class DreamResult:
    images: torch.Tensor  # N x 3 x H x W in [0, 1]
    scores: torch.Tensor  # N, the target score of each final image
    probabilities: torch.Tensor  # N x classes, softmax of the final images
    high_frequency: torch.Tensor  # N, see high_frequency_energy
    seconds: float


def dream(
    model: nn.Module,
    norm: Normalization,
    targets: Sequence[Target],
    size: int,
    how: DreamRecipe,
    init: torch.Tensor | None = None,
    seed: int = 0,
) -> DreamResult:
    """One image per target, ``size`` x ``size``, from noise or from ``init`` (N x 3 x H x W in [0, 1])."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    image = _parameterization(how.parameterization, len(targets), size, init, generator).to(device)
    optimizer = torch.optim.Adam(image.parameters(), lr=how.lr)
    start = time.perf_counter()
    with capture(model, target_layers(targets)) as cap, torch.enable_grad():
        for _ in range(how.steps):
            x = image()
            seen = how.transform(x, generator) if how.transform is not None else x
            scores = target_scores(targets, logits_of(model(norm(seen))), cap.activations)
            loss = -scores.sum()
            if how.l2:
                loss = loss + how.l2 * (x - 0.5).pow(2).flatten(1).mean(1).sum()
            if how.tv:
                loss = loss + how.tv * total_variation(x).sum()
            grads = torch.autograd.grad(loss, list(image.parameters()))
            for p, g in zip(image.parameters(), grads):
                p.grad = g
            optimizer.step()
            image.project()
        with torch.no_grad():
            final = image().detach()
            logits = logits_of(model(norm(final)))
            scores = target_scores(targets, logits, cap.activations)
    return DreamResult(final.cpu(), scores.cpu(), logits.softmax(1).cpu(), high_frequency_energy(final).cpu(),
                       time.perf_counter() - start)


def _parameterization(
    kind: str, n: int, size: int, init: torch.Tensor | None, generator: torch.Generator
) -> PixelImage | FourierImage:
    if init is not None:
        init = init.expand(n, -1, -1, -1) if len(init) == 1 else init
        if init.shape != (n, 3, size, size):
            raise UserError(f"the start image must be 3 x {size} x {size} (one, or one per target), not {tuple(init.shape)}")
        return PixelImage(init) if kind == "pixel" else FourierImage.from_image(init)
    return PixelImage.noise(n, size, generator) if kind == "pixel" else FourierImage.noise(n, size, generator)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Per image: mean absolute difference between horizontally and vertically neighbouring pixels."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().flatten(1).mean(1)
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().flatten(1).mean(1)
    return dx + dy


HIGH_FREQUENCY_CUTOFF = 0.25  # cycles per pixel
HF_DEFINITION = (f"hf: share of the image's spectral energy above {HIGH_FREQUENCY_CUTOFF} cycles/pixel "
                 "(white noise about 0.8, smooth images near 0)")


def high_frequency_energy(images: torch.Tensor, cutoff: float = HIGH_FREQUENCY_CUTOFF) -> torch.Tensor:
    """Per image: the fraction of spectral energy (mean removed, summed over colour channels) at radial
    frequencies above ``cutoff`` cycles per pixel; Nyquist is 0.5. White noise gives about 0.8
    (the share of the frequency square outside that radius), smooth images close to 0."""
    x = images.float() - images.float().mean((-2, -1), keepdim=True)
    power = torch.fft.fft2(x).abs().pow(2).sum(1)  # N x H x W
    h, w = power.shape[-2:]
    fy = torch.fft.fftfreq(h, device=x.device)[:, None]
    fx = torch.fft.fftfreq(w, device=x.device)[None, :]
    high = (fx * fx + fy * fy).sqrt() > cutoff
    total = power.flatten(1).sum(1)
    return torch.where(total > 0, (power * high).flatten(1).sum(1) / total.clamp_min(1e-30), torch.zeros_like(total))
