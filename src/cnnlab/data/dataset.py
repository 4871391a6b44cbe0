"""Where data enters cnnlab: a built-in generated set (``GENERATED``: shapes) or a folder, decoded once,
split once.

``load_images`` gives every image of a source (optionally from a disk cache keyed by the file list,
sizes, modification times and image size, so a changed file invalidates it); ``load_data`` adds the
stratified validation split.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cnnlab import atomic
from cnnlab.data.folder import DEFAULT_MAX_PIXELS, Skipped, find_layout, fingerprint, load_folder
from cnnlab.data.imageset import ImageSet
from cnnlab.data.shapes import make_shapes
from cnnlab.data.split import stratified_split

logger = logging.getLogger("cnnlab")

SHAPES = "shapes"
_CACHE_FORMAT = 1


@dataclass
class SourceImages:
    pool: ImageSet  # images to train and validate on
    test: ImageSet | None = None  # DIR/test when the folder has one
    skipped: list[Skipped] = field(default_factory=list)


@dataclass
class DataBundle:
    train: ImageSet
    val: ImageSet
    test: ImageSet | None
    skipped: list[Skipped]
    source: str

    @property
    def classes(self) -> list[str]:
        return self.train.classes


def _shapes(per_class: int, image_size: int, seed: int) -> ImageSet:
    s = make_shapes(per_class, image_size, seed)
    names = [f"shapes/{i:05d}" for i in range(len(s.labels))]
    return ImageSet(s.images, s.labels, names, list(s.classes), s.masks)


# Built-in generated datasets by the name `--data` takes (no files): a new one is a function
# (images per class, image size, seed) -> ImageSet and one entry here.
GENERATED: dict[str, Callable[[int, int, int], ImageSet]] = {SHAPES: _shapes}


def load_images(
    data: str | None, image_size: int, cache_dir: str | None = None, shapes_per_class: int = 300, shapes_seed: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> SourceImages:
    """Every image of a built-in generated dataset (``data`` None: shapes) or of a folder; files whose
    header declares more than ``max_pixels`` are skipped (listed with the reason), never decoded."""
    name = data or SHAPES
    if name in GENERATED:
        return SourceImages(GENERATED[name](shapes_per_class, image_size, shapes_seed))
    layout = find_layout(data)
    if cache_dir is None:
        return _decode_layout(layout, image_size, max_pixels)
    return _cached(layout, image_size, Path(cache_dir).expanduser(), max_pixels)


def _decode_layout(layout, image_size: int, max_pixels: int) -> SourceImages:  # type: ignore[no-untyped-def]
    pool, skipped = load_folder(layout.train, layout.root, image_size, max_pixels=max_pixels)
    test = None
    if layout.test is not None:
        test, skipped_test = load_folder(layout.test, layout.root, image_size, classes=pool.classes, max_pixels=max_pixels)
        skipped += skipped_test
    return SourceImages(pool, test, skipped)


def _cached(layout, image_size: int, cache_dir: Path, max_pixels: int) -> SourceImages:  # type: ignore[no-untyped-def]
    prints = [fingerprint(layout.train, layout.root)]
    if layout.test is not None:
        prints.append(fingerprint(layout.test, layout.root))
    key = hashlib.sha256(json.dumps([_CACHE_FORMAT, image_size, prints, max_pixels]).encode()).hexdigest()[:20]
    path = cache_dir / f"{layout.root.resolve().name}-{image_size}px-{key}.pt"
    if path.exists():
        try:
            blob = torch.load(path, weights_only=True)
            return SourceImages(
                _imageset_from(blob["pool"]),
                _imageset_from(blob["test"]) if blob["test"] else None,
                [Skipped(p, r) for p, r in blob["skipped"]],
            )
        except Exception as e:  # noqa: BLE001 - a damaged cache is rebuilt, never fatal
            logger.warning(f"cnnlab: ignoring unreadable cache {path} ({type(e).__name__}); rebuilding")
    source = _decode_layout(layout, image_size, max_pixels)
    atomic.save_torch(path, {
        "pool": _imageset_blob(source.pool),
        "test": _imageset_blob(source.test) if source.test else None,
        "skipped": [[s.path, s.reason] for s in source.skipped],
    })
    return source


def _imageset_blob(s: ImageSet) -> dict:
    return {"images": s.images, "labels": s.labels, "names": s.names, "classes": s.classes}


def _imageset_from(blob: dict) -> ImageSet:
    return ImageSet(blob["images"], blob["labels"], list(blob["names"]), list(blob["classes"]))


def load_data(
    data: str | None,
    image_size: int,
    val_fraction: float,
    seed: int,
    cache_dir: str | None = None,
    shapes_per_class: int = 300,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> DataBundle:
    source = load_images(data, image_size, cache_dir, shapes_per_class, max_pixels=max_pixels)
    train_idx, val_idx = stratified_split(source.pool.labels, val_fraction, seed)
    return DataBundle(
        source.pool.subset(train_idx), source.pool.subset(val_idx), source.test, source.skipped, data or SHAPES
    )
