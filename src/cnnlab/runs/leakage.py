"""Whether evaluated images are files the run trained on: byte-identical copies inflate every score.

Files are compared by size first and hashed (SHA-256) only where sizes match, so checking a test
folder against ten thousand training files reads few of them.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

from cnnlab.data.dataset import SHAPES
from cnnlab.data.folder import find_layout
from cnnlab.runs.run import LoadedRun, read_split


def _digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def training_files(run: LoadedRun) -> list[Path] | None:
    """The run's training-split files, or None where they cannot be found (the generated shapes
    dataset, or a data folder that has moved since training)."""
    data = run.config.data
    if data in (None, SHAPES) or not Path(data).is_dir():
        return None
    root = find_layout(data).root
    return [root / name for name in read_split(run.run_dir, "train")]


def identical_to_training(run: LoadedRun, files: list[Path]) -> list[Path] | None:
    """Those of ``files`` whose bytes equal a training-split file's; None when the training files
    are not available to compare with."""
    train = training_files(run)
    if train is None:
        return None
    by_size: dict[int, list[Path]] = defaultdict(list)
    for f in train:
        if f.is_file():
            by_size[f.stat().st_size].append(f)
    candidates = [f for f in files if f.stat().st_size in by_size]
    train_hashes = {_digest(t) for size in {f.stat().st_size for f in candidates} for t in by_size[size]}
    return [f for f in candidates if _digest(f) in train_hashes]
