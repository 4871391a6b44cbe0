"""Image files a user names (predict, explain: files, folders and glob patterns) or uploads (serve),
read into uint8 tensors."""

from __future__ import annotations

import glob
import io
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from cnnlab.data.folder import DEFAULT_MAX_PIXELS, TooManyPixels, decode
from cnnlab.errors import UserError

_GLOB_CHARACTERS = set("*?[")


def image_suffixes() -> set[str]:
    """File name endings Pillow can open (.jpg, .png, .webp, ...): what a folder search picks up."""
    Image.init()
    return {suffix.lower() for suffix in Image.registered_extensions()}


def expand_image_paths(items: Iterable[str]) -> Iterator[str]:
    """Files as given; folders as every image file below them (recursively, sorted, hidden ones
    skipped); glob patterns (``photos/*.jpg``, ``**`` for any depth) as the image files they match.
    A name that is none of these is passed on, so that reading it reports it on its own line."""
    suffixes = image_suffixes()
    for item in items:
        path = Path(item)
        if path.is_dir():
            yield from _images_below(path, suffixes)
        elif not path.exists() and _GLOB_CHARACTERS & set(item):
            matches = sorted(glob.glob(item, recursive=True))
            yield from (m for m in matches if Path(m).is_file() and Path(m).suffix.lower() in suffixes)
            for folder in (Path(m) for m in matches if Path(m).is_dir()):
                yield from _images_below(folder, suffixes)
            if not matches:
                yield item
        else:
            yield item


def _images_below(folder: Path, suffixes: set[str]) -> Iterator[str]:
    for f in sorted(folder.rglob("*")):
        hidden = any(part.startswith(".") for part in f.relative_to(folder).parts)
        if f.suffix.lower() in suffixes and not hidden and f.is_file():
            yield str(f)


def read_image(path: str, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """One file as a size x size x 3 uint8 array, or a ``UserError`` saying in one line why not."""
    if Path(path).is_dir():
        raise UserError(f"image '{path}' is a folder, not an image file: name the image files")
    if not Path(path).is_file():
        raise UserError(f"image '{path}' does not exist" + (" (no file matches that pattern)"
                                                            if _GLOB_CHARACTERS & set(path) else ""))
    try:
        return decode(Path(path), size, max_pixels)
    except TooManyPixels as e:
        pixels = e.width * e.height
        raise UserError(f"image '{path}' is {e.width}x{e.height} = {pixels / 1e6:.1f} megapixels, above the limit of "
                        f"{e.limit / 1e6:.1f} megapixels: pass --max-pixels {pixels} (or more) to read it") from None
    except Exception as e:  # noqa: BLE001 - say which file and why, not a decoder traceback
        raise UserError(f"cannot read image '{path}' ({type(e).__name__}): it is damaged or not an image "
                        "(JPEG, PNG, BMP, TIFF, WebP and other formats Pillow opens are read)") from None


def to_batch(arrays: list[np.ndarray]) -> torch.Tensor:
    """H x W x 3 uint8 arrays -> N x 3 x H x W uint8 tensor."""
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def load_image_files(paths: list[str], size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Every named file, or a ``UserError`` for the first that cannot be read."""
    return to_batch([read_image(p, size, max_pixels) for p in paths])


ACCEPTED_FORMATS = "send a JPEG, PNG, BMP, GIF, TIFF or WebP file"


class ImageTooLarge(UserError):
    """An upload declaring more pixels than allowed (decompression bombs among them)."""


class NotAnImage(UserError):
    """An upload that no image decoder can read."""


def decode_upload(data: bytes, size: int, max_pixels: int) -> torch.Tensor:
    """Bytes of an uploaded image file -> uint8 3 x size x size, refusing what is not a usable image.

    Raises ``ImageTooLarge`` (judged from the header, before decoding) or ``NotAnImage``."""
    try:
        array = decode(io.BytesIO(data), size, max_pixels)
    except (TooManyPixels, Image.DecompressionBombError) as e:
        raise ImageTooLarge(f"image too large: {e}; send a smaller image") from None
    except UnidentifiedImageError:
        raise NotAnImage(f"not an image file (no known image format): {ACCEPTED_FORMATS}") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure means "not an image we can read"
        reason = f"{type(e).__name__}: {e}".splitlines()[0]
        raise NotAnImage(f"not a readable image ({reason}): {ACCEPTED_FORMATS}") from None
    return torch.tensor(array).permute(2, 0, 1).contiguous()
