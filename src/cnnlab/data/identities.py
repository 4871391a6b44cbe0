"""The built-in ``identities`` dataset: procedurally drawn grey "faces", generated from a seed.

Each identity is a fixed set of shape parameters (face outline, hairline and hair tone, eye spacing
and size, brows, nose, mouth, beard, skin tone); each image of it varies pose (in-plane rotation,
yaw as a sideways shift of the features, scale, position), lighting (a gain and a gradient from a
random direction), expression-like jitter (smile, open mouth, raised brows, half-closed eyes),
background and noise. Identity ``i`` draws its parameters and then its images' variations, in that
order, from a generator of its own seeded by (seed, i): its first image is the same whether 1 or 10
are generated, and identities ``[a, b)`` can be made without making the others. No files: large
experiments and CI run anywhere. Images are grey, stored as 3 equal channels like a decoded ORL file.
"""

from __future__ import annotations

import math

import torch

from cnnlab.data.imageset import ImageSet

IDENTITIES = "identities"

# name: (low, high) of a uniform draw. Lengths are fractions of the image side or of the face radii.
_IDENTITY = {
    "face_w": (0.27, 0.37), "face_h": (0.36, 0.46), "skin": (0.45, 0.85),
    "hair": (0.05, 0.55), "hairline": (-0.75, -0.35), "hair_volume": (1.0, 1.25),
    "eye_dx": (0.30, 0.48), "eye_y": (-0.28, -0.05), "eye_rx": (0.10, 0.20), "eye_ry": (0.05, 0.11),
    "brow_gap": (0.10, 0.22), "brow_thick": (0.03, 0.08), "brow_slant": (-0.35, 0.35), "brow_tone": (0.1, 0.5),
    "nose_len": (0.18, 0.42), "nose_w": (0.06, 0.16), "mouth_y": (0.38, 0.62), "mouth_w": (0.18, 0.42),
    "lip": (0.03, 0.08), "beard": (0.0, 1.0), "jaw": (0.0, 0.25),
}
_IMAGE = {
    "angle": (-12.0, 12.0), "yaw": (-0.25, 0.25), "scale": (0.88, 1.12), "dx": (-0.06, 0.06), "dy": (-0.06, 0.06),
    "gain": (0.7, 1.2), "light_dir": (0.0, 2 * math.pi), "light": (0.0, 0.35), "smile": (-0.08, 0.15),
    "open": (0.0, 0.05), "brow_raise": (-0.04, 0.06), "eye_open": (0.45, 1.1), "background": (0.05, 0.55),
    "noise": (0.01, 0.06),
}


def _draw(spec: dict[str, tuple[float, float]], g: torch.Generator, n: int = 1) -> torch.Tensor:
    lo = torch.tensor([a for a, _ in spec.values()])
    hi = torch.tensor([b for _, b in spec.values()])
    return lo + (hi - lo) * torch.rand(n, len(spec), generator=g)


def _soft(inside: torch.Tensor, sharpness: float = 14.0) -> torch.Tensor:
    """A soft 0..1 mask from a signed "inside" measure (positive inside), anti-aliased edges."""
    return torch.sigmoid(inside * sharpness)


def _ellipse(x: torch.Tensor, y: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, rx: torch.Tensor,
             ry: torch.Tensor) -> torch.Tensor:
    return _soft(1 - torch.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2))


def _render(p: dict[str, torch.Tensor], v: dict[str, torch.Tensor], size: int, g: torch.Generator) -> torch.Tensor:
    """Grey images N x size x size in [0, 1] from identity parameters ``p`` and image variations ``v``
    (each an N x 1 x 1 tensor)."""
    n = next(iter(p.values())).shape[0]
    grid = (torch.arange(size) + 0.5) / size - 0.5
    ys, xs = torch.meshgrid(grid, grid, indexing="ij")
    # Image coordinates -> face coordinates: undo shift, rotation and scale.
    a = v["angle"] * (math.pi / 180)
    x0, y0 = xs - v["dx"], ys - v["dy"]
    x = (torch.cos(a) * x0 + torch.sin(a) * y0) / v["scale"]
    y = (-torch.sin(a) * x0 + torch.cos(a) * y0) / v["scale"]
    fw, fh = p["face_w"] * (1 - 0.3 * v["yaw"].abs()), p["face_h"]
    shift = v["yaw"] * fw * 0.5  # the features move sideways as the head turns
    u, w = (x - shift) / fw, y / fh  # feature coordinates in face radii

    img = v["background"].expand(n, size, size).clone()
    hair = _ellipse(x, y, 0 * x, -0.08 * fh, fw * 1.12 * p["hair_volume"], fh * 1.08)
    img = torch.lerp(img, p["hair"].expand_as(img), hair)
    jaw = 1 - p["jaw"] * (w.clamp(min=0) ** 2)  # a narrower chin
    face = _ellipse(x / jaw, y, 0 * x, 0 * y, fw, fh) * _soft((w - p["hairline"]) * 3)
    img = torch.lerp(img, p["skin"].expand_as(img), face)
    beard = face * _soft((w - p["mouth_y"] + 0.12) * 3) * (p["beard"] > 0.7)
    img = torch.lerp(img, (p["skin"] * 0.4).expand_as(img), beard * 0.8)
    for side in (-1.0, 1.0):
        ex, ey = side * p["eye_dx"], p["eye_y"]
        eye = _ellipse(u, w, ex, ey, p["eye_rx"], p["eye_ry"] * v["eye_open"])
        img = torch.lerp(img, torch.full_like(img, 0.92), eye * 0.8)
        pupil = _ellipse(u, w, ex, ey, p["eye_ry"] * 0.9, p["eye_ry"] * 0.9 * v["eye_open"])
        img = torch.lerp(img, torch.full_like(img, 0.08), pupil)
        by = ey - p["eye_ry"] - p["brow_gap"] - v["brow_raise"] + side * p["brow_slant"] * (u - ex)
        brow = _soft(1 - (u - ex).abs() / (p["eye_rx"] * 1.3)) * _soft(1 - (w - by).abs() / p["brow_thick"])
        img = torch.lerp(img, p["brow_tone"].expand_as(img), brow)
    nose_bottom = p["eye_y"] + p["nose_len"] + 0.15
    nose = _soft(1 - u.abs() / p["nose_w"]) * _soft(1 - (w - nose_bottom).abs() / 0.05)
    img = img * (1 - 0.35 * nose)
    curve = p["mouth_y"] - v["smile"] * (1 - (u / p["mouth_w"]) ** 2)
    mouth = _soft(1 - u.abs() / p["mouth_w"]) * _soft(1 - (w - curve).abs() / (p["lip"] + v["open"]))
    img = torch.lerp(img, (p["skin"] * 0.35).expand_as(img), mouth)
    light = v["gain"] + v["light"] * (xs * torch.cos(v["light_dir"]) + ys * torch.sin(v["light_dir"])) * 2
    img = img * light + v["noise"] * torch.randn(n, size, size, generator=g)
    return img.clamp(0, 1)


def identity_name(i: int) -> str:
    return f"id{i:05d}"


def make_identities(identities: range, per_identity: int, image_size: int = 64, seed: int = 0,
                    chunk: int = 512) -> ImageSet:
    """Images ``per_identity`` of each identity in ``identities`` (labels 0.. in that order; class
    names ``id00042`` carry the global identity number, image names ``identities/id00042/03``)."""
    params, variations = [], []
    for i in identities:
        g = torch.Generator().manual_seed(seed * 1_000_003 + i)
        params.append(_draw(_IDENTITY, g).expand(per_identity, -1))
        variations.append(_draw(_IMAGE, g, per_identity))
    p_all, v_all = torch.cat(params), torch.cat(variations)
    noise_gen = torch.Generator().manual_seed(seed)
    grey = []
    for s in range(0, len(p_all), chunk):
        p = {k: p_all[s : s + chunk, j].view(-1, 1, 1) for j, k in enumerate(_IDENTITY)}
        v = {k: v_all[s : s + chunk, j].view(-1, 1, 1) for j, k in enumerate(_IMAGE)}
        grey.append((_render(p, v, image_size, noise_gen) * 255).round().to(torch.uint8))
    images = torch.cat(grey)[:, None].expand(-1, 3, -1, -1).contiguous()
    labels = torch.arange(len(identities)).repeat_interleave(per_identity)
    classes = [identity_name(i) for i in identities]
    names = [f"{IDENTITIES}/{classes[k]}/{j:02d}" for k in range(len(identities)) for j in range(per_identity)]
    return ImageSet(images, labels, names, classes)
