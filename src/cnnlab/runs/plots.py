"""Plots written into run directories, written atomically.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot): no global figure state, and importing
this module never switches the backend of a notebook or an application that uses matplotlib too.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from matplotlib.figure import Figure

from cnnlab import atomic
from cnnlab.metrics import METRIC_NAMES

_TITLES = {
    "loss": "loss", "accuracy": "accuracy", "precision_macro": "precision (macro)",
    "recall_macro": "recall (macro)", "f1_macro": "F1 (macro)",
}


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG (rendered with Agg whatever the current backend is)."""
    return atomic.atomic_write(path, lambda p: p.write_bytes(figure_png(fig)))


def figure_png(fig: Figure) -> bytes:
    """``fig`` as PNG bytes: what ``save_figure`` writes, for pages that embed their images."""
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, bbox_inches="tight", format="png")
    return buf.getvalue()


def plot_curves(history: list[dict], path: str | Path) -> Path:
    """Write ``curves_figure(history)`` to ``path``."""
    return save_figure(curves_figure(history), path)


def curves_figure(history: list[dict]) -> Figure:
    """Five panels (loss, accuracy, macro precision, recall, F1): train vs validation per epoch."""
    fig = Figure(figsize=(4 * len(METRIC_NAMES), 3.4))
    axes = fig.subplots(1, len(METRIC_NAMES))
    epochs = [h["epoch"] for h in history]
    for ax, name in zip(axes, METRIC_NAMES):
        for split, style in (("train", "-o"), ("val", "-s"), ("val_ema", "-^")):
            key = f"{split}_{name}"
            if history and key in history[0]:
                ax.plot(epochs, [h[key] for h in history], style, markersize=3, label=split)
        ax.set_title(_TITLES[name])
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if name != "loss":
            ax.set_ylim(-0.02, 1.02)
    axes[0].legend()
    fig.tight_layout()
    return fig


def plot_confusion(confusion: torch.Tensor, classes: list[str], path: str | Path) -> Path:
    """Write ``confusion_figure(confusion, classes)`` to ``path``."""
    return save_figure(confusion_figure(confusion, classes), path)


def confusion_figure(confusion: torch.Tensor, classes: list[str]) -> Figure:
    """Two panels: counts and row-normalised (each true class's row sums to 1). Rows = true class."""
    cm = confusion.to(torch.float64)
    rows = cm.sum(1, keepdim=True)
    norm = torch.where(rows > 0, cm / rows.clamp_min(1), torch.zeros_like(cm))
    k = len(classes)
    size = max(5.0, 0.55 * k + 2)
    fig = Figure(figsize=(2 * size + 1, size))
    axes = fig.subplots(1, 2)
    for ax, data, title, fmt in ((axes[0], cm, "counts", "{:.0f}"), (axes[1], norm, "row-normalised (recall)", "{:.2f}")):
        im = ax.imshow(data.numpy(), cmap="Blues", vmin=0)
        ax.set_title(title)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(k), classes, fontsize=8)
        top = float(data.max()) if data.numel() else 0.0
        for i in range(k):
            for j in range(k):
                v = float(data[i, j])
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=7,
                        color="white" if v > top / 2 else "black")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig
