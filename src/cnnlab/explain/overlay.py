"""Turning maps and tensors into pictures: heat-map overlays, mosaics, PNG files written atomically.

The datasets here are small (32-64 px), so pictures are enlarged by a whole factor with nearest-
neighbour sampling: every input pixel stays visible as a block instead of being smoothed away.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib
import numpy as np
import torch
from PIL import Image

from cnnlab import atomic

DISPLAY_SIDE = 256  # overlays are enlarged to at least this many pixels per side


def heat_overlay(image: torch.Tensor, heat: torch.Tensor, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """uint8 image 3 x H x W and a map H x W in [0, 1] -> uint8 H x W x 3 blend of image and coloured map."""
    rgb = image.permute(1, 2, 0).cpu().numpy().astype(np.float32) / 255
    colours = matplotlib.colormaps[cmap](heat.detach().float().clamp(0, 1).cpu().numpy())[..., :3]
    return (((1 - alpha) * rgb + alpha * colours) * 255).round().astype(np.uint8)


def enlarge(picture: np.ndarray, min_side: int = DISPLAY_SIDE) -> np.ndarray:
    """Repeat pixels by the smallest whole factor that makes both sides at least ``min_side``."""
    factor = max(1, -(-min_side // min(picture.shape[:2])))
    return picture.repeat(factor, axis=0).repeat(factor, axis=1)


def save_png(path: str | Path, picture: np.ndarray) -> Path:
    """uint8 H x W x 3 (or H x W) array -> PNG file, written atomically."""
    return atomic.atomic_write(path, lambda p: p.write_bytes(png_bytes(picture)))


def png_bytes(picture: np.ndarray) -> bytes:
    """uint8 H x W x 3 (or H x W) array -> the bytes of a PNG file."""
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="PNG")
    return buf.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """A ``data:`` URI: a picture a page carries inside itself, so it needs no other file or server."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def save_arrays(path: str | Path, **arrays: np.ndarray) -> Path:
    """Arrays -> one compressed .npz file, written atomically (``np.load(path)`` reads it back)."""

    def write(p: Path) -> None:
        with open(p, "wb") as f:
            np.savez_compressed(f, **arrays)

    return atomic.atomic_write(path, write)


def mosaic(tiles: np.ndarray, columns: int, pad: int = 1, fill: float = 1.0) -> np.ndarray:
    """N x h x w (x 3) tiles -> one picture, ``columns`` tiles per row, separated by ``pad`` pixels of ``fill``."""
    n, h, w = tiles.shape[:3]
    rows = -(-n // columns)
    out = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, *tiles.shape[3:]), fill, dtype=tiles.dtype)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = tile
    return out


def scale_each(maps: torch.Tensor, symmetric: bool = False) -> torch.Tensor:
    """Stretch each of N maps to [0, 1] on its own: min..max, or -m..m around 0 with ``symmetric``
    (for filter weights, where grey means 0). Constant maps become 0 (0.5 if symmetric)."""
    flat = maps.detach().float().reshape(len(maps), -1)
    if symmetric:
        m = flat.abs().amax(1).clamp_min(1e-12).view(-1, *[1] * (maps.dim() - 1))
        return (maps / m + 1) / 2
    lo = flat.amin(1).view(-1, *[1] * (maps.dim() - 1))
    span = (flat.amax(1) - flat.amin(1)).view_as(lo)
    return torch.where(span > 0, (maps - lo) / span.clamp_min(1e-12), torch.zeros_like(maps))
