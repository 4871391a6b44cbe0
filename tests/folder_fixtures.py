"""A tiny folder dataset (3 colour classes of 20x20 PNGs, train/ and test/) and one run trained on it
for a single epoch, shared by the tests that need real files and a run directory (predict, evaluate,
README commands). Importing modules get the fixtures; ``functools.cache`` builds them once a session."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main

CLASSES = ("blue", "green", "red")
CHANNEL = {"red": 0, "green": 1, "blue": 2}


def write_images(folder: Path, per_class: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for name in CLASSES:
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            a = rng.integers(0, 80, (20, 20, 3), dtype=np.uint8)
            a[..., CHANNEL[name]] += 150
            Image.fromarray(a).save(folder / name / f"{name}{i}.png")


@functools.cache
def _dataset(base: Path) -> Path:
    root = base / "colours"
    write_images(root / "train", 8, seed=0)
    write_images(root / "test", 3, seed=1)
    return root


@functools.cache
def _run(base: Path) -> Path:
    run = base / "colour-run"
    argv = ["train", "--data", str(_dataset(base)), "--image-size", "16", "--epochs", "1", "--batch-size", "8",
            "--output", str(run)]
    assert main(argv) == 0
    return run


@pytest.fixture(scope="session")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DIR with train/<class>/ (8 per class) and test/<class>/ (3 per class)."""
    return _dataset(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def colour_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run directory of ahe_cnn trained one epoch on ``colours``."""
    return _run(tmp_path_factory.getbasetemp())
