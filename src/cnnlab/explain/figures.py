"""Matplotlib figures of explanations: class-model image grid, selectivity by depth, top images of units."""

from __future__ import annotations

from matplotlib.figure import Figure
import numpy as np
import torch

from cnnlab.data.imageset import ImageSet
from cnnlab.explain.selectivity import SELECTIVE, LayerSelectivity


def dream_grid(images: torch.Tensor, titles: list[str], suptitle: str) -> Figure:
    """One tile per class-model image (N x 3 x H x W in [0, 1]) with its title."""
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
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def selectivity_by_depth(layers: list[LayerSelectivity], title: str) -> Figure:
    """Distribution of the selectivity index per conv layer (box plot, in the order the layers run),
    with the median and the fraction of units above the threshold as lines on top."""
    fig = Figure(figsize=(max(5.0, 1.1 * len(layers) + 2), 4))
    ax = fig.subplots()
    depth = np.arange(1, len(layers) + 1)
    ax.boxplot([layer.index.numpy() for layer in layers], positions=depth, widths=0.5, showfliers=False)
    ax.plot(depth, [float(layer.index.median()) for layer in layers], "-o", color="tab:blue", label="median")
    ax.plot(depth, [float((layer.index > SELECTIVE).float().mean()) for layer in layers], "-s", color="tab:red",
            label=f"fraction of units > {SELECTIVE}")
    ax.set_xticks(depth, [f"{layer.units.layer}\n({len(layer.index)} units)" for layer in layers], fontsize=7,
                  rotation=30, ha="right")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("class selectivity index")
    ax.set_xlabel("conv layer, by depth")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def top_images(units: list[tuple[LayerSelectivity, int]], data: ImageSet, per_unit: int) -> Figure:
    """One row per unit: its ``per_unit`` top-activating images, titled with their class."""
    classes = data.classes
    fig = Figure(figsize=(1.4 * (per_unit + 1) + 1.6, 1.5 * len(units)))
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
    fig.tight_layout()
    return fig

