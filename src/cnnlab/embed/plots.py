"""Figures of an embedding run: training curves, ROC, CMC and the genuine / impostor histograms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cnnlab.embed.protocol import ProtocolResult
from cnnlab.runs.plots import save_figure


def _save(fig: Figure, path: str | Path) -> Path:
    fig.tight_layout()
    return save_figure(fig, path)


def plot_embed_curves(history: list[dict[str, float]], path: str | Path) -> Path:
    """Training loss and dev EER per epoch."""
    fig = Figure(figsize=(8, 3.4))
    axes = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    for ax, key, title in ((axes[0], "train_loss", "training loss"), (axes[1], "dev_eer", "dev EER")):
        ax.plot(epochs, [h[key] for h in history], "-o", markersize=3)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_roc(result: ProtocolResult, path: str | Path) -> Path:
    fig = Figure(figsize=(4.6, 4))
    ax = fig.subplots()
    far = np.clip(result.roc.far, 1e-5, 1)
    ax.plot(far, result.roc.tar, label=f"AUC {result.roc.auc:.4f}")
    s = result.summary()
    ax.plot([s["far_at_threshold"]], [s["tar_at_threshold"]], "o", label=f"dev threshold {result.threshold:.3f}")
    ax.set_xscale("log")
    ax.set_xlabel("false accept rate (impostor pairs accepted)")
    ax.set_ylabel("true accept rate")
    ax.set_title("ROC, test identities")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_cmc(result: ProtocolResult, path: str | Path) -> Path:
    cmc = result.identification.cmc
    fig = Figure(figsize=(4.6, 4))
    ax = fig.subplots()
    ax.plot(np.arange(1, len(cmc) + 1), cmc, "-o", markersize=3)
    ax.set_xlabel("rank")
    ax.set_ylabel("identification rate")
    ax.set_title(f"CMC, {result.n_enrolled} enrolled per person")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_distances(result: ProtocolResult, path: str | Path) -> Path:
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    bins = np.linspace(0, 2, 81)
    ax.hist(result.test.impostor, bins=bins, density=True, alpha=0.55, label=f"impostor ({result.test.impostor.size})")
    ax.hist(result.test.genuine, bins=bins, density=True, alpha=0.55, label=f"genuine ({result.test.genuine.size})")
    ax.axvline(result.threshold, color="black", linestyle="--", label=f"threshold {result.threshold:.3f}")
    ax.set_xlabel("distance between embeddings")
    ax.set_ylabel("density")
    ax.set_title("test pairs")
    ax.legend()
    return _save(fig, path)
