"""Matplotlib figures of explanations: Grad-CAM beside its image, class-model image grid, selectivity by
depth, top images of units."""

from __future__ import annotations

import textwrap

from matplotlib.figure import Figure
import numpy as np
import torch

from cnnlab.data.imageset import ImageSet
from cnnlab.explain.dream import HF_DEFINITION
from cnnlab.explain.selectivity import DEFINITION, SELECTIVE, LayerSelectivity


def gradcam_figure(image: torch.Tensor, heat: torch.Tensor, title: str, alpha: float = 0.5) -> Figure:
    """The image (uint8 3 x H x W) beside it with the class activation map (H x W in [0, 1]) laid over
    it, a colour bar for the map and ``title`` (what was explained, what the model predicted)."""
    picture = image.permute(1, 2, 0).cpu().numpy()
    fig = Figure(figsize=(7.6, 4.0))
    original, overlay = fig.subplots(1, 2)
    original.imshow(picture, interpolation="nearest")
    original.set_title("image", fontsize=9)
    overlay.imshow(picture, interpolation="nearest")
    heat_map = overlay.imshow(heat.detach().float().cpu().numpy(), cmap="jet", vmin=0, vmax=1, alpha=alpha,
                              interpolation="nearest")
    overlay.set_title("class activation map over the image", fontsize=9)
    for ax in (original, overlay):
        ax.axis("off")
    bar = fig.colorbar(heat_map, ax=overlay, fraction=0.046, pad=0.04)
    bar.solids.set_alpha(1)  # the scale in full colour, not as faint as the see-through overlay
    bar.set_label("relative importance (1 = this image's maximum)", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def dream_grid(images: torch.Tensor, titles: list[str], suptitle: str) -> Figure:
    """One tile per class-model image (N x 3 x H x W in [0, 1]) with its title (which gives ``hf``);
    below ``suptitle``, what ``hf`` measures."""
    n = len(images)
    cols = min(n, 5)
    rows = -(-n // cols)
    fig = Figure(figsize=(2.2 * cols, 2.9 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, images, titles):
        ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
        ax.set_title(title, fontsize=8)
    width = int(2.2 * cols * 12)  # characters that fit across the figure at this font size
    fig.suptitle("\n".join([suptitle, *textwrap.wrap(HF_DEFINITION, width)]), fontsize=9)
    fig.tight_layout()
    return fig


def selectivity_by_depth(layers: list[LayerSelectivity], title: str) -> Figure:
    """Distribution of the selectivity index per conv layer (box plot with its median line, in the order
    the layers run) and the fraction of units above the threshold as a line on top."""
    fig = Figure(figsize=(max(6.5, 1.1 * len(layers) + 2), 4.4))
    ax = fig.subplots()
    depth = np.arange(1, len(layers) + 1)
    boxes = ax.boxplot([layer.index.numpy() for layer in layers], positions=depth, widths=0.5, showfliers=False,
                       medianprops={"color": "tab:blue", "linewidth": 2})
    ax.plot(depth, [float((layer.index > SELECTIVE).float().mean()) for layer in layers], "-s", color="tab:red",
            label=f"fraction of units with SI > {SELECTIVE}")
    boxes["medians"][0].set_label("median SI (box: quartiles, whiskers: 1.5 IQR)")
    ax.set_xticks(depth, [f"{layer.units.layer}\n({len(layer.index)} units)" for layer in layers], fontsize=7,
                  rotation=30, ha="right")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("class selectivity index (SI)")
    ax.set_xlabel("conv layer, by depth (input side on the left)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.text(0.01, 0.005, textwrap.fill(DEFINITION, 130), fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def top_images(units: list[tuple[LayerSelectivity, int]], data: ImageSet, per_unit: int, title: str) -> Figure:
    """One row per unit: its ``per_unit`` top-activating images (most activating first), titled with
    their class; ``title`` above and the definition of SI below."""
    classes = data.classes
    fig = Figure(figsize=(1.4 * (per_unit + 1) + 1.6, 1.5 * len(units) + 1.1))
    axes = fig.subplots(len(units), per_unit + 1, squeeze=False)
    for row, (layer, channel) in zip(axes, units):
        for ax in row:
            ax.axis("off")
        best = int(layer.class_means[channel].argmax())
        row[0].text(0, 0.5, f"{layer.units.layer}\nunit {channel}\nSI {float(layer.index[channel]):.2f}\n"
                    f"prefers {classes[best]}", fontsize=7, va="center", transform=row[0].transAxes)
        top = layer.activations[:, channel].argsort(descending=True)[:per_unit]
        for ax, i in zip(row[1:], top.tolist()):
            ax.imshow(data.images[i].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_title(classes[int(data.labels[i])], fontsize=6)
    fig.suptitle(f"{title}\nunit (layer, channel, SI, preferred class), then its top images by mean activation, "
                 "highest first, each titled with its true class", fontsize=9)
    fig.text(0.01, 0.005, textwrap.fill(DEFINITION, 110), fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
