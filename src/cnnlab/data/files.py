"""Reading image files a user names (predict, explain) into one uint8 batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cnnlab.data.folder import decode
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
