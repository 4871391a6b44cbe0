"""The built-in ``shapes`` dataset: ten classes of simple shapes and textures, generated from a seed.

Nothing is shipped or downloaded: the same seed gives the same images on every machine. Each image
has one object at a random position, size, rotation and colour on a noisy background, and its
foreground mask is kept, so explanation methods (Grad-CAM, pointing game) can be scored against
ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

SHAPE_CLASSES: tuple[str, ...] = (
    "circle", "square", "triangle", "cross", "ring",
    "star", "crescent", "stripes", "checker", "dots",
)


@dataclass(frozen=True)
class ShapesData:
    images: torch.Tensor  # uint8, N x 3 x H x W
    labels: torch.Tensor  # int64, N
    masks: torch.Tensor  # bool, N x H x W: True on the object (a ring's hole included, see _OUTLINES)
    classes: tuple[str, ...]


def _patch(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.maximum(u.abs(), v.abs()) <= 1.0


# Each class is an implicit function of (u, v): image coordinates centred on the object, rotated and
# divided by its radius. It returns (mask, pattern): the object's extent and which of its pixels take
# the foreground colour (the rest of a textured patch takes a second, darker colour).
_SHAPES: dict[str, Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]] = {}


def _solid(name: str, f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    def shape(u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = f(u, v)
        return m, m

    _SHAPES[name] = shape


def _texture(name: str, f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    _SHAPES[name] = lambda u, v: (_patch(u, v), _patch(u, v) & f(u, v))


_rho = lambda u, v: torch.sqrt(u * u + v * v)  # noqa: E731
_solid("circle", lambda u, v: _rho(u, v) <= 1.0)
_solid("square", lambda u, v: torch.maximum(u.abs(), v.abs()) <= 0.85)
_solid("triangle", lambda u, v: (v >= -0.55) & (math.sqrt(3) * u.abs() + v <= 1.0))
_solid("cross", lambda u, v: ((u.abs() <= 0.3) & (v.abs() <= 1)) | ((v.abs() <= 0.3) & (u.abs() <= 1)))
_solid("ring", lambda u, v: (_rho(u, v) <= 1.0) & (_rho(u, v) >= 0.55))
_solid("star", lambda u, v: _rho(u, v) <= 0.5 + 0.5 * torch.cos(5 * torch.atan2(v, u)) ** 2)
_solid("crescent", lambda u, v: (_rho(u, v) <= 1.0) & (_rho(u - 0.55, v) >= 0.8))
_texture("stripes", lambda u, v: torch.sin(u * math.pi * 2.5) > 0)
_texture("checker", lambda u, v: (torch.floor(u * 2) + torch.floor(v * 2)).remainder(2) == 0)
_texture("dots", lambda u, v: ((u * 2.5).remainder(1) - 0.5) ** 2 + ((v * 2.5).remainder(1) - 0.5) ** 2 < 0.09)
assert tuple(_SHAPES) == SHAPE_CLASSES

# A shape with a hole is masked by its filled outline, as COCO's polygon masks are: the ring's hole
# shows the background, but a point in it points at the ring. (The crescent's bite is not a hole.)
_OUTLINES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"ring": lambda u, v: _rho(u, v) <= 1.0}


def make_shapes(n_per_class: int = 300, image_size: int = 64, seed: int = 0, rotation: float = 15.0) -> ShapesData:
    """Generate ``10 * n_per_class`` images, classes interleaved (image i has class i % 10); objects are
    rotated by up to ``rotation`` degrees either way."""
    g = torch.Generator().manual_seed(seed)
    n, s = n_per_class * len(SHAPE_CLASSES), image_size
    labels = torch.arange(n) % len(SHAPE_CLASSES)

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, *shape, generator=g)

    radius = uniform(0.20, 0.36) * s
    cx = uniform(0.0, 1.0) * (s - 2 * radius) + radius
    cy = uniform(0.0, 1.0) * (s - 2 * radius) + radius
    angle = uniform(-rotation, rotation) * (math.pi / 180)
    fg = uniform(0.0, 1.0, 3)
    bg = (1.0 - fg + uniform(-0.15, 0.15, 3)).clamp(0, 1)  # far from fg in every channel
    noise = uniform(0.02, 0.10)

    ys, xs = torch.meshgrid(torch.arange(s) + 0.5, torch.arange(s) + 0.5, indexing="ij")
    dx = (xs[None] - cx[:, None, None]) / radius[:, None, None]
    dy = (ys[None] - cy[:, None, None]) / radius[:, None, None]
    c, si = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    u, v = c * dx + si * dy, -si * dx + c * dy

    painted = torch.zeros(n, s, s, dtype=torch.bool)
    pattern = torch.zeros(n, s, s, dtype=torch.bool)
    masks = torch.zeros(n, s, s, dtype=torch.bool)
    for k, name in enumerate(SHAPE_CLASSES):
        idx = labels == k
        painted[idx], pattern[idx] = _SHAPES[name](u[idx], v[idx])
        masks[idx] = _OUTLINES[name](u[idx], v[idx]) if name in _OUTLINES else painted[idx]

    dark_fg = fg * 0.45 + bg * 0.55  # second colour inside textured patches, still distinct from bg
    img = bg[:, :, None, None].expand(n, 3, s, s).clone()
    img = torch.where(painted[:, None], dark_fg[:, :, None, None], img)
    img = torch.where(pattern[:, None], fg[:, :, None, None], img)
    img = img + noise[:, None, None, None] * torch.randn(n, 3, s, s, generator=g)
    images = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return ShapesData(images, labels, masks, SHAPE_CLASSES)
