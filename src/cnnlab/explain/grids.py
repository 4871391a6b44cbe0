"""Grids of what a layer computes: its activation maps for one image, and the first layer's filters.

Each grid is one mosaic drawn with a single ``imshow`` (not one subplot per channel), so a 512-channel
layer draws as fast as an 8-channel one. Tiles run row by row: channel i is tile i.
"""

from __future__ import annotations

import math

from matplotlib.figure import Figure
import numpy as np
import torch
from torch import nn

from cnnlab.data.batch import prepare
from cnnlab.data.normalize import Normalization
from cnnlab.errors import UserError
from cnnlab.explain.hooks import capture
from cnnlab.explain.overlay import mosaic, scale_each


@torch.no_grad()
def layer_activations(
    model: nn.Module, images: torch.Tensor, norm: Normalization, device: torch.device, layer: str
) -> torch.Tensor:
    """The output of ``layer`` for uint8 ``images`` (N x 3 x H x W): N x C x h x w float, on the CPU."""
    with capture(model, [layer]) as cap:
        model(prepare(images, norm, device))
    return cap.activations[layer].float().cpu()


def grid_columns(n: int) -> int:
    """Near-square layout, a little wider than tall."""
    return max(1, math.ceil(math.sqrt(n * 1.5)))


def activation_grid(activations: torch.Tensor, title: str) -> Figure:
    """C x h x w activations of one image -> figure of C tiles on one shared scale from 0 to the layer's
    maximum, so silent channels look dark and strong ones bright (per-channel scaling would hide that)."""
    a = activations.detach().float().cpu()
    if a.dim() != 3:
        raise UserError(f"the layer gives shape {tuple(a.shape)}, not C x h x w maps: pick a conv layer")
    top = float(a.max())
    low = min(0.0, float(a.min()))
    picture = mosaic(a.numpy(), grid_columns(len(a)), pad=1, fill=np.nan)  # NaN gaps are drawn white
    fig = Figure(figsize=_figure_size(picture))
    ax = fig.subplots()
    image = ax.imshow(picture, cmap="viridis", vmin=low, vmax=max(top, low + 1e-12), interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return fig


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The first 2-D convolution registered in the model (the one that sees the RGB image)."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
    raise UserError("the model has no 2-D convolution, so there are no filters to show")


def filter_grid(weight: torch.Tensor, title: str) -> Figure:
    """Out x In x k x k filters -> figure of one tile per filter. With 3 input channels each filter is an
    RGB picture, scaled on its own around 0 (grey = 0, bright = positive weights on that colour);
    otherwise the input channels are averaged into one grey tile."""
    w = weight.detach().float().cpu()
    tiles = scale_each(w if w.shape[1] == 3 else w.mean(1), symmetric=True)
    tiles_np = tiles.permute(0, 2, 3, 1).numpy() if tiles.dim() == 4 else tiles.numpy()
    picture = mosaic(tiles_np, grid_columns(len(w)), pad=1, fill=1.0)
    fig = Figure(figsize=_figure_size(picture))
    ax = fig.subplots()
    ax.imshow(np.clip(picture, 0, 1), cmap=None if picture.ndim == 3 else "gray", interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return fig


def _figure_size(picture: np.ndarray) -> tuple[float, float]:
    h, w = picture.shape[:2]
    scale = 8.0 / max(h, w)
    return max(3.0, w * scale), max(3.0, h * scale + 0.5)
