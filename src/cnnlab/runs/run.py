"""Run directories: where a training run writes everything, and how a finished run is loaded back.

Layout of ``runs/<time>-<model>-<data>/``::

    config.yaml            the full training config
    classes.json           class names in label order
    split/train.txt        the exact files (names relative to the data root) of each split
    split/val.txt
    skipped.txt            files that could not be decoded, with the reason (only if any)
    history.csv/.json      one row per epoch, rewritten after every epoch
    curves.png             loss, accuracy, macro precision/recall/F1, train vs validation
    checkpoints/last.pt    every epoch, for --resume
    checkpoints/best.pt    best epoch by the monitored validation metric
    grad_norms.csv         with --log-grad-norms: per-layer gradient norms (see runs/grad_flow.py)
    grad_flow.png          ... drawn by depth and over steps when training ends
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnnlab import atomic
from cnnlab.data.folder import Skipped
from cnnlab.data.imageset import ImageSet
from cnnlab.data.normalize import Normalization
from cnnlab.errors import UserError
from cnnlab.models import create_model
from cnnlab.runs.checkpoint import load_checkpoint
from cnnlab.runs.config import TrainConfig


def check_output_free(cfg: TrainConfig) -> None:
    """``cfg.output`` absent or an empty folder: checked before any work, and again when creating it."""
    if cfg.output:
        path = Path(cfg.output)
        if path.exists() and not path.is_dir():
            raise UserError(f"--output '{path}' is a file: choose a new folder name")
        if path.exists() and any(path.iterdir()):
            raise UserError(f"output folder '{path}' is not empty: choose a new --output, or continue it with --resume {path}")


def new_run_dir(cfg: TrainConfig) -> Path:
    """A fresh directory: ``cfg.output`` if given (must be empty or absent), else a readable name under runs/."""
    if cfg.output:
        check_output_free(cfg)
        path = Path(cfg.output)
        path.mkdir(parents=True, exist_ok=True)
        return path
    data = "shapes" if not cfg.data else Path(cfg.data).resolve().name
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.model}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', data)}"
    for i in range(1000):
        path = Path("runs") / (stem if i == 0 else f"{stem}-{i}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise UserError("could not find a free run directory name under runs/: pass --output DIR")


def remove_run_dir(path: Path, made: bool) -> None:
    """Undo ``new_run_dir`` for a run that failed before its first checkpoint: the folder goes if this
    run made it, else (an empty --output the user made) only what the run wrote in it."""
    if made:
        shutil.rmtree(path, ignore_errors=True)
        return
    for child in path.iterdir():
        shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)


def write_split(run_dir: Path, name: str, images: ImageSet) -> None:
    lines = [f"{n}\t{images.classes[int(k)]}" for n, k in zip(images.names, images.labels)]
    atomic.write_text(run_dir / "split" / f"{name}.txt", "\n".join(lines) + "\n")


def read_split(run_dir: str | Path, name: str) -> list[str]:
    return [file for file, _ in read_split_entries(run_dir, name)]


def read_split_entries(run_dir: str | Path, name: str) -> list[tuple[str, str]]:
    """(file name, class name) of every image of a saved split."""
    path = Path(run_dir) / "split" / f"{name}.txt"
    if not path.is_file():
        raise UserError(f"'{run_dir}' has no {path.name} split list: evaluate with --data DIR instead")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(file, label) for file, _, label in (line.partition("\t") for line in lines if line)]


def write_skipped(run_dir: Path, skipped: list[Skipped]) -> None:
    if skipped:
        atomic.write_text(run_dir / "skipped.txt", "".join(f"{s.path}\t{s.reason}\n" for s in skipped))


def read_skipped(run_dir: str | Path) -> list[Skipped]:
    """The files training could not decode, with the reason (none if the run has no skipped.txt)."""
    path = Path(run_dir) / "skipped.txt"
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Skipped(file, reason) for file, _, reason in (line.partition("\t") for line in lines if line)]


@dataclass
class LoadedRun:
    """A trained model with what is needed to feed it: classes, normalisation, input size, config."""

    run_dir: Path
    model: nn.Module
    config: TrainConfig
    classes: list[str]
    norm: Normalization
    image_size: int
    epoch: int
    weights: str = "model"  # "ema": the checkpoint serves the moving average of the weights (--ema)


def load_run(run_dir: str | Path, which: str = "best", device: torch.device | str = "cpu") -> LoadedRun:
    ckpt = load_checkpoint(run_dir, which)
    cfg = TrainConfig.from_dict(ckpt["config"], where=f"{run_dir} checkpoint")
    classes = list(ckpt["classes"])
    model = create_model(cfg.model, len(classes), **cfg.model_options)
    weights = ckpt.get("serve", "model")  # with --ema, whichever of the two validated better
    model.load_state_dict(ckpt[weights])
    model.to(device).eval()
    return LoadedRun(Path(run_dir), model, cfg, classes, Normalization.from_dict(ckpt["normalization"]),
                     int(ckpt["image_size"]), int(ckpt["epoch"]), weights)
