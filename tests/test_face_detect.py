"""--detect: the largest face of an ordinary photo cropped with facenet-pytorch's MTCNN (optional)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnlab.embed.detect import detect_largest_faces
from cnnlab.errors import UserError

pytest.importorskip("facenet_pytorch", reason="facenet-pytorch is optional: pip install --no-deps facenet-pytorch==2.6.0 requests")
skimage_data = pytest.importorskip("skimage.data")


def test_the_astronauts_face_is_cropped(tmp_path):
    photo = skimage_data.astronaut()  # 512 x 512, one face at about x 181-268, y 62-172
    path = tmp_path / "astronaut.png"
    Image.fromarray(photo).save(path)
    crop = detect_largest_faces([str(path)], 48, margin=0.0)
    assert crop.shape == (1, 3, 48, 48)
    expected = np.asarray(Image.fromarray(photo[62:172, 181:268]).resize((48, 48)), dtype=np.float64)
    got = crop[0].permute(1, 2, 0).numpy().astype(np.float64)
    corr = np.corrcoef(expected.ravel(), got.ravel())[0, 1]
    assert corr > 0.8, corr
    sky = np.asarray(Image.fromarray(photo[:110, 400:487]).resize((48, 48)), dtype=np.float64)  # elsewhere
    assert np.corrcoef(sky.ravel(), got.ravel())[0, 1] < 0.5


def test_a_photo_without_a_face_is_a_user_error(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((120, 120, 3), 128, np.uint8)).save(path)
    with pytest.raises(UserError, match="no face found in"):
        detect_largest_faces([str(path)], 32)
