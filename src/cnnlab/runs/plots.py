"""Plots written into run directories, written atomically.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot): no global figure state, and importing
this module never switches the backend of a notebook or an application that uses matplotlib too.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

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


@dataclass(frozen=True)
class Switch:
    """A change of what trains, drawn as a vertical line between two epochs."""

    after_epoch: int
    label: str


def freeze_switches(config: dict[str, Any]) -> list[Switch]:
    """From a run's config: where ``--freeze-epochs`` ends the head-only phase (gradual unfreezing
    then adds one backbone stage per epoch from there on)."""
    epochs = int(config.get("freeze_epochs") or 0)
    if not epochs:
        return []
    how = "gradually, a stage per epoch" if config.get("unfreeze") == "gradual" else "all at once"
    return [Switch(epochs, f"unfreeze {how}")]


def curves_figure(history: list[dict], monitor: str = "val_accuracy", switches: list[Switch] | None = None) -> Figure:
    """Five panels (loss, accuracy, macro precision, recall, F1): train vs validation per epoch, integer
    epoch ticks, the best epoch by ``monitor`` as a dotted line and freeze switches as dashed lines."""
    fig = Figure(figsize=(4 * len(METRIC_NAMES), 3.6))
    axes = fig.subplots(1, len(METRIC_NAMES))
    epochs = [h["epoch"] for h in history]
    best = _best_epoch(history, monitor)
    for ax, name in zip(axes, METRIC_NAMES):
        for split, style in (("train", "-o"), ("val", "-s"), ("val_ema", "-^")):
            key = f"{split}_{name}"
            # epochs that --val-every did not validate hold NaN: left out, so the line joins the others
            points = [(h["epoch"], h[key]) for h in history if key in h and not math.isnan(h[key])]
            if points:
                ax.plot(*zip(*points), style, markersize=3, label=split)
        if best is not None:
            ax.axvline(best, color="tab:green", linestyle=":", label=f"best epoch ({best})")
        for switch in switches or []:
            ax.axvline(switch.after_epoch + 0.5, color="tab:grey", linestyle="--", label=switch.label)
        ax.set_title(_TITLES[name])
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if epochs:
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        ax.grid(alpha=0.3)
        if name != "loss":
            ax.set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=8)
    if best is not None:
        fig.suptitle(f"best epoch {best} by {monitor} (the best checkpoint)", fontsize=10)
    fig.tight_layout()
    return fig


def _best_epoch(history: list[dict], monitor: str) -> int | None:
    """The epoch the best checkpoint comes from: highest ``monitor``, lowest for a loss."""
    rows = [h for h in history if monitor in h and not math.isnan(h[monitor])]
    if not rows:
        return None
    pick = min if monitor.endswith("loss") else max
    return int(pick(rows, key=lambda h: h[monitor])["epoch"])


def plot_curves(history: list[dict], path: str | Path, config: dict[str, Any] | None = None) -> Path:
    """Write ``curves_figure`` to ``path``; ``config`` (the run's settings) gives the monitored column and
    the freeze switches."""
    config = config or {}
    return save_figure(curves_figure(history, config.get("monitor", "val_accuracy"), freeze_switches(config)), path)


def plot_confusion(confusion: torch.Tensor, classes: list[str], path: str | Path, rows: list[str] | None = None) -> Path:
    """Write ``confusion_figure(confusion, classes, rows)`` to ``path``."""
    return save_figure(confusion_figure(confusion, classes, rows), path)


def confusion_figure(confusion: torch.Tensor, classes: list[str], rows: list[str] | None = None) -> Figure:
    """Two panels: counts and row-normalised (each true class's row sums to 1). Rows = true class
    (``rows``, default ``classes``; fewer when a data set has only some of the classes), columns =
    predicted class."""
    rows = classes if rows is None else rows
    cm = confusion.to(torch.float64)
    totals = cm.sum(1, keepdim=True)
    norm = torch.where(totals > 0, cm / totals.clamp_min(1), torch.zeros_like(cm))
    k, r = len(classes), len(rows)
    size = max(5.0, 0.55 * k + 2)
    fig = Figure(figsize=(2 * size + 1, max(3.0, 0.55 * r + 2)))
    axes = fig.subplots(1, 2)
    for ax, data, title, fmt in ((axes[0], cm, "counts", "{:.0f}"), (axes[1], norm, "row-normalised (recall)", "{:.2f}")):
        im = ax.imshow(data.numpy(), cmap="Blues", vmin=0)
        ax.set_title(title)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(r), rows, fontsize=8)
        top = float(data.max()) if data.numel() else 0.0
        for i in range(r):
            for j in range(k):
                v = float(data[i, j])
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=7,
                        color="white" if v > top / 2 else "black")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig
