"""Reading image files a user names (predict, explain) or uploads (serve) into uint8 tensors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from cnnlab.data.folder import TooManyPixels, decode
from cnnlab.errors import UserError


def load_image_files(paths: list[str], size: int) -> torch.Tensor:
    arrays = []
    for p in paths:
        if not Path(p).is_file():
            raise UserError(f"image '{p}' does not exist")
        try:
            arrays.append(decode(Path(p), size))
        except Exception as e:  # noqa: BLE001 - say which file and why, not a decoder traceback
            raise UserError(f"cannot read image '{p}' ({type(e).__name__}): pass a JPEG, PNG, BMP, TIFF or similar file") from None
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


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
