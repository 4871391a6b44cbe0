"""A tiny trained run on a folder whose class names would be markup if they were not escaped, shared
by the report and the web app tests (trained once per pytest session, like ``explain_fixtures``).

The folder holds three classes of ``shapes`` images saved as PNG files: one class folder is named
``<img src=x onerror=alert(1)>`` (a folder name cannot hold the ``/`` of ``</script>``; the tests
that need that exact name rewrite it into a checkpoint), one ``circle & "ring"``, one ``square``,
plus one file that is not an image, so the run has a skipped file with a reason.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from PIL import Image

from cnnlab.data.shapes import SHAPE_CLASSES, make_shapes
from cnnlab.runs.config import TrainConfig

MARKUP_CLASS = "<img src=x onerror=alert(1)>"
FOLDERS = {"circle": MARKUP_CLASS, "ring": 'circle & "ring"', "square": "square"}
PER_CLASS = 16
SETTINGS = dict(model="ahe_cnn", image_size=16, epochs=3, batch_size=8, lr=2e-3, augment="none", seed=0,
                val_fraction=0.25)


def write_folder(root: Path) -> Path:
    shapes = make_shapes(PER_CLASS, 32, seed=5)
    for i, (image, label) in enumerate(zip(shapes.images, shapes.labels)):
        shape = SHAPE_CLASSES[int(label)]
        if shape in FOLDERS:
            folder = root / FOLDERS[shape]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{shape}-{i:03d}.png")
    (root / "square" / "broken.jpg").write_bytes(b"this is not a JPEG")
    return root


@functools.cache
def _trained(base: Path) -> tuple[Path, Path]:
    from cnnlab.train.trainer import Trainer

    folder = write_folder(base / "web-data")
    run = Trainer.from_config(TrainConfig(data=str(folder), output=str(base / "web-run"), **SETTINGS)).fit()
    return folder, run


@pytest.fixture(scope="session")
def web_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _trained(tmp_path_factory.getbasetemp())[0]


@pytest.fixture(scope="session")
def web_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run directory of the trained tiny model (never modified by a test: copy it to change it)."""
    return _trained(tmp_path_factory.getbasetemp())[1]
