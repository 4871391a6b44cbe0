"""Trainer callbacks: the seams where history, curves, checkpoints, progress -- and anything a user or a
test adds -- hook into the loop without patching the Trainer.

Subclass ``Callback`` and override the hooks you need (the others do nothing), then pass it in
``Trainer.from_config(cfg, callbacks=[...])`` or append it to ``trainer.callbacks``. Hooks run in list
order; the defaults (``Trainer.default_callbacks``) come first, on the main process only, so a user's
``on_epoch_end`` sees the checkpoint of that epoch already written. User callbacks run on every
process under DDP: write files only where ``trainer.dist.is_main``.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from cnnlab import atomic
from cnnlab.runs.checkpoint import save_epoch_checkpoints
from cnnlab.runs.plots import plot_curves

if TYPE_CHECKING:
    from cnnlab.train.trainer import Trainer

logger = logging.getLogger("cnnlab")


@dataclass(frozen=True)
class BatchInfo:
    """One micro-batch, after its backward pass (and the optimiser step when it ended a window)."""

    epoch: int  # 1-based, as in history rows
    index: int  # micro-batch number in this epoch, from 0
    batches: int  # micro-batches in this epoch (on this process)
    size: int  # samples in this micro-batch (on this process)
    loss_sum: torch.Tensor  # summed per-sample loss, unscaled (a tensor: reading it syncs a GPU)


@dataclass(frozen=True)
class StepInfo:
    """One optimiser step: the end of an accumulation window."""

    epoch: int  # 1-based
    step: int  # optimiser steps since the run began, this one included (1 for the first)
    window_samples: int  # samples whose mean gradient this step applies (all processes together)


class Callback:
    """Hooks the Trainer calls; every one does nothing unless overridden."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch of ``fit`` (also when resuming)."""

    def on_epoch_start(self, trainer: Trainer) -> None:
        """After the epoch's freeze state and schedule are set, before its first micro-batch."""

    def on_before_step(self, trainer: Trainer, step: StepInfo) -> None:
        """The window's gradient is complete (and all-reduced under DDP) in ``p.grad``; the optimiser
        has not stepped yet."""

    def on_step_end(self, trainer: Trainer, step: StepInfo) -> None:
        """After the optimiser and schedule stepped; gradients are already cleared."""

    def on_batch_end(self, trainer: Trainer, batch: BatchInfo) -> None:
        """After each micro-batch (and after the step it ended, if any)."""

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        """``row`` is the epoch's history row, already in ``trainer.history``; ``trainer.best`` is updated."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last epoch (or early stop) of ``fit``."""


class Checkpoints(Callback):
    """``checkpoints/last.pt`` every epoch, ``checkpoints/best.pt`` when the monitored value improved."""

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        improved = trainer.best is not None and trainer.best["epoch"] == trainer.epoch
        save_epoch_checkpoints(trainer.run_dir, trainer.state(), improved)


class HistoryFiles(Callback):
    """``history.json`` and ``history.csv``: every epoch so far."""

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        atomic.write_json(trainer.run_dir / "history.json", trainer.history)
        atomic.write_csv(trainer.run_dir / "history.csv", trainer.history)


class Curves(Callback):
    """``curves.png``: train vs validation metrics per epoch."""

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        plot_curves(trainer.history, trainer.run_dir / "curves.png", trainer.cfg.to_dict())


class Progress(Callback):
    """A progress bar over micro-batches on a terminal, and one summary line per epoch (log level INFO)."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.seen = 0

    def on_epoch_start(self, trainer: Trainer) -> None:
        self.seen = 0
        self.bar = None
        if sys.stderr.isatty() and logger.isEnabledFor(logging.INFO):
            self.bar = tqdm(desc=f"epoch {trainer.epoch + 1}/{trainer.cfg.epochs}", unit="batch", leave=False)

    def on_batch_end(self, trainer: Trainer, batch: BatchInfo) -> None:
        if self.bar is None:
            return
        self.seen += batch.size
        self.bar.total = batch.batches
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{float(batch.loss_sum) / max(1, batch.size):.3f}",
                             img_s=f"{self.seen / max(1e-9, self.bar.format_dict['elapsed']):.0f}")

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        logger.info(epoch_summary(row, trainer.cfg.epochs))


def epoch_summary(row: dict[str, float], epochs: int) -> str:
    """The one line per epoch the CLI shows."""

    def part(split: str) -> str:
        return (f"{split} loss {row[f'{split}_loss']:.4f} acc {row[f'{split}_accuracy']:.4f} "
                f"f1_macro {row[f'{split}_f1_macro']:.4f}")

    if math.isnan(row["val_loss"]):  # --val-every skipped this epoch, or there is no validation split
        val = "not validated"
    else:
        val = part("val") + (f" | {part('val_ema')}" if "val_ema_loss" in row else "")
    return (f"epoch {int(row['epoch'])}/{epochs}  {part('train')} | {val} | "
            f"{row['images_per_s']:.0f} img/s, {row['epoch_time_s']:.1f}s")
