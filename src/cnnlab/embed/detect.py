"""Faces in ordinary photos: crop the largest face with facenet-pytorch's MTCNN before embedding.

facenet-pytorch is optional: its wheel ships the three MTCNN weight files (no download), and it runs
with cnnlab's torch when installed with ``pip install --no-deps facenet-pytorch==2.6.0`` (its metadata
pins an old torch) plus ``requests``, which its package imports. MTCNN finds the face box and five
landmarks; the crop is the box with a margin, squared and resized (not rotated to level the eyes).
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from cnnlab.data.folder import to_rgb
from cnnlab.errors import UserError

INSTALL = "pip install --no-deps facenet-pytorch==2.6.0 && pip install requests"


def detect_largest_faces(paths: list[str], size: int, margin: float = 0.1) -> torch.Tensor:
    """uint8 N x 3 x size x size: the largest face of each image, or a UserError naming a file without one."""
    try:
        from facenet_pytorch import MTCNN
    except ImportError:
        raise UserError(f"--detect needs facenet-pytorch (its wheel ships the MTCNN weights): {INSTALL}") from None
    mtcnn = MTCNN(image_size=size, margin=round(margin * size), select_largest=True, post_process=False, device="cpu")
    faces = []
    for p in paths:
        if not Path(p).is_file():
            raise UserError(f"image '{p}' does not exist")
        try:
            with Image.open(p) as img:
                rgb = to_rgb(img)
        except Exception as e:  # noqa: BLE001 - say which file and why, not a decoder traceback
            raise UserError(f"cannot read image '{p}' ({type(e).__name__}): pass a JPEG, PNG, BMP, TIFF or similar file") from None
        face = mtcnn(rgb)
        if face is None:
            raise UserError(f"no face found in '{p}': pass a photo with a visible face, or leave out --detect")
        faces.append(face.round().clamp(0, 255).to(torch.uint8))
    return torch.stack(faces)
