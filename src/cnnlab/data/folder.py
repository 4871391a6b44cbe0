"""Folder-per-class image sets (``DIR/<class>/*`` or ``DIR/train/<class>/*`` + ``DIR/test/<class>/*``).

Every file is decoded with Pillow exactly once, converted to RGB whatever its mode (greyscale, RGBA,
palette, CMYK, 16-bit), resized to a square and stacked into one uint8 tensor. Files that cannot be
decoded (truncated, not an image) are skipped and reported with the reason: one bad file never ends a
run of ten thousand.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image

from cnnlab.data.imageset import ImageSet
from cnnlab.errors import UserError

# Pillow's own limit against decompression bombs (89,478,485 pixels); --max-pixels raises it.
DEFAULT_MAX_PIXELS: int = Image.MAX_IMAGE_PIXELS or 89_478_485
_OPEN_LOCK = threading.Lock()

logger = logging.getLogger("cnnlab")


@dataclass(frozen=True)
class FolderLayout:
    root: Path  # names are relative to this
    train: Path
    test: Path | None


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def find_layout(data_dir: str | Path) -> FolderLayout:
    root = Path(data_dir).expanduser()
    if root.exists() and not root.is_dir():
        raise UserError(f"data folder '{data_dir}' is a file, not a folder: pass --data DIR with one sub-folder per class")
    if not root.is_dir():
        raise UserError(f"data folder '{data_dir}' does not exist: pass --data DIR with one sub-folder per class")
    train = root / "train"
    if train.is_dir() and _class_dirs(train):
        test = root / "test"
        return FolderLayout(root, train, test if test.is_dir() and _class_dirs(test) else None)
    if not _class_dirs(root):
        raise UserError(
            f"data folder '{data_dir}' has no class sub-folders: arrange images as DIR/<class>/<image> "
            "or DIR/train/<class>/<image>"
        )
    return FolderLayout(root, root, None)


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_files(folder: Path, classes: list[str] | None = None,
               root: Path | None = None) -> tuple[list[Path], list[int], list[str], list[Skipped]]:
    """All non-hidden files under ``folder/<class>/``, sorted, with class indices, the class list, and
    the entries that are not readable files (dangling or looping symlinks), each with the reason.
    Symlinked files are followed; symlinked sub-folders inside a class are not (no loops). Skipped
    entries are named relative to ``root`` (default: ``folder``)."""
    classes = classes or [p.name for p in _class_dirs(folder)]
    files: list[Path] = []
    labels: list[int] = []
    broken: list[Skipped] = []
    for k, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        found = []
        for parent, dirs, names in os.walk(class_dir):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found += [Path(parent) / n for n in names if not n.startswith(".")]
        for f in sorted(found):
            problem = _not_a_file(f)
            if problem:
                broken.append(Skipped(f.relative_to(root or folder).as_posix(), problem))
            else:
                files.append(f)
                labels.append(k)
    return files, labels, classes, broken


def _not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file, or None."""
    try:
        path.stat()  # follows a symlink: raises if its target is missing or a loop
    except FileNotFoundError:
        return f"dangling symlink (its target {os.readlink(path)} does not exist)"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symlink loop (the link points back to itself)"
        return f"{type(e).__name__}: {e.strerror}"
    return None if path.is_file() else "not a regular file"


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB. Transparent pixels are composited onto white; 16/32-bit and
    float greyscale are rescaled to 0..255 rather than clipped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16"):
            a = a / 257.0
        elif a.max() > a.min():
            a = (a - a.min()) / (a.max() - a.min()) * 255.0
        img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


class TooManyPixels(ValueError):
    """An image whose header declares more pixels than allowed: refused before its pixels are decoded."""

    def __init__(self, width: int, height: int, limit: int) -> None:
        super().__init__(f"{width}x{height} pixels, more than the {limit:,} allowed")
        self.width, self.height, self.limit = width, height, limit


def open_image(source: Path | BinaryIO, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """``Image.open`` with cnnlab's pixel limit in place of Pillow's, which warns above its limit and refuses
    twice that with a message that names neither the file nor a way out. Pillow's check is switched off
    (under a lock, only while the header is read) so that ``max_pixels`` alone decides; the limit is
    judged from the header, before any pixel is decoded (a small file can declare gigapixels)."""
    with _OPEN_LOCK:
        pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            img = Image.open(source)
        finally:
            Image.MAX_IMAGE_PIXELS = pillow_limit
    if img.width * img.height > max_pixels:
        img.close()
        raise TooManyPixels(img.width, img.height, max_pixels)
    return img


def decode(source: Path | BinaryIO, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode one file to a size x size x 3 uint8 array (squashed to square, bilinear with antialias)."""
    with open_image(source, max_pixels) as img:
        img.load()
        rgb = to_rgb(img)
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def _try_decode(path: Path, size: int, max_pixels: int) -> np.ndarray | str:
    try:
        return decode(path, size, max_pixels)
    except PermissionError:
        return "unreadable: permission denied"
    except TooManyPixels as e:
        return f"too large: {e} (raise the limit with --max-pixels)"
    except Exception as e:  # noqa: BLE001 - any decoder failure means "skip this file and say why"
        return f"{type(e).__name__}: {e}".splitlines()[0]


def load_folder(
    folder: Path, root: Path, size: int, classes: list[str] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[ImageSet, list[Skipped]]:
    """Decode every file of ``folder``. Without ``classes`` (a training folder) the classes are its
    sub-folders that hold at least one image: an empty one is no class (a model output nobody can
    train), so it is dropped with a warning and listed; fewer than two classes is an error."""
    fixed_classes = classes is not None
    files, labels, classes, skipped = list_files(folder, classes, root)
    if not files:
        raise UserError(f"no image files found under '{folder}': expected {folder}/<class>/<image>")
    threads = min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(threads) as pool:
        decoded = list(pool.map(lambda f: _try_decode(f, size, max_pixels), files, chunksize=64))
    arrays, kept_labels, names = [], [], []
    for f, label, result in zip(files, labels, decoded):
        rel = f.relative_to(root).as_posix()
        if isinstance(result, str):
            skipped.append(Skipped(rel, result))
            continue
        arrays.append(result)
        kept_labels.append(label)
        names.append(rel)
    if not arrays:
        raise UserError(f"none of the {len(files)} files under '{folder}' could be decoded as an image")
    if not fixed_classes:
        classes, kept_labels = _drop_empty_classes(folder, root, classes, kept_labels, skipped)
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return ImageSet(images, torch.tensor(kept_labels, dtype=torch.long), names, list(classes)), skipped


def _drop_empty_classes(folder: Path, root: Path, classes: list[str], labels: list[int],
                        skipped: list[Skipped]) -> tuple[list[str], list[int]]:
    """Classes without a single decoded image removed (and listed in ``skipped``), labels renumbered."""
    present = sorted(set(labels))
    empty = [c for k, c in enumerate(classes) if k not in set(present)]
    if len(present) < 2:
        others = f"; {', '.join(empty)} ha{'s' if len(empty) == 1 else 've'} none" if empty else ""
        raise UserError(f"'{folder}' has images of one class only ({classes[present[0]]}{others}): a classifier "
                        "needs at least two class sub-folders with images")
    if empty:
        logger.warning("ignored %d class folder(s) without images: %s", len(empty), ", ".join(empty))
        skipped += [Skipped((folder / c).relative_to(root).as_posix() + "/", "class folder without images: not a class")
                    for c in empty]
    renumber = {old: new for new, old in enumerate(present)}
    return [classes[k] for k in present], [renumber[k] for k in labels]


def fingerprint(folder: Path, root: Path) -> list[tuple[str, int, int]]:
    """(name, size, mtime) of every file: what a disk cache must match to be valid."""
    files, _, _, _ = list_files(folder)
    return [(f.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns) for f in files for st in [f.stat()]]
