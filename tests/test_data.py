"""Folder datasets with awkward files, the split, the disk cache, and the shapes generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data.dataset import load_data, load_images
from cnnlab.data.shapes import SHAPE_CLASSES, make_shapes
from cnnlab.data.split import stratified_split
from cnnlab.errors import UserError


def make_awkward_folder(root):
    """Class folders with parentheses and spaces; non-ASCII names; every odd image mode; a broken file."""
    rng = np.random.default_rng(0)
    classes = {"dome(inner)": (200, 30, 30), "bell tower": (30, 200, 30), "çapse": (30, 30, 200)}
    for name, colour in classes.items():
        d = root / name
        d.mkdir(parents=True)
        for i in range(6):
            a = np.clip(np.array(colour) + rng.integers(-20, 20, (20, 30, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(d / f"Ñandú, é ({i}).jpg")
    d = root / "dome(inner)"
    Image.fromarray(np.full((10, 10), 77, np.uint8), mode="L").save(d / "grey.png")
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:5, :, 3] = 255  # top half opaque red, bottom half transparent -> white
    Image.fromarray(rgba, mode="RGBA").save(d / "rgba.png")
    Image.fromarray(np.full((10, 10, 3), 200, np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE).save(d / "palette.png")
    Image.new("CMYK", (10, 10), (0, 255, 255, 0)).save(d / "cmyk.jpg")
    Image.fromarray(np.full((10, 10), 65535, np.uint16)).save(d / "sixteen.png")
    good = (root / "bell tower" / "Ñandú, é (0).jpg").read_bytes()
    (root / "bell tower" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "çapse" / "notes.txt").write_text("not an image")
    (root / "çapse" / ".DS_Store").write_bytes(b"\0\1")  # hidden: ignored, not reported
    return classes


def test_folder_loads_every_mode_as_rgb_and_reports_broken_files(tmp_path):
    make_awkward_folder(tmp_path)
    src = load_images(str(tmp_path), image_size=16)
    pool = src.pool
    assert pool.classes == sorted(["dome(inner)", "bell tower", "çapse"])
    assert pool.images.shape == (18 + 5, 3, 16, 16) and pool.images.dtype == torch.uint8
    assert sorted(s.path for s in src.skipped) == ["bell tower/truncated.jpg", "çapse/notes.txt"]
    assert all(s.reason for s in src.skipped)

    def pixel(name):
        return pool.images[pool.names.index(f"dome(inner)/{name}")][:, 8, 8].tolist()

    assert pixel("grey.png") == [77, 77, 77]
    assert pool.images[pool.names.index("dome(inner)/rgba.png")][:, 2, 8].tolist() == [255, 0, 0]
    assert pool.images[pool.names.index("dome(inner)/rgba.png")][:, 14, 8].tolist() == [255, 255, 255]  # onto white
    assert pixel("palette.png") == [200, 200, 200]
    assert pixel("sixteen.png") == [255, 255, 255]  # 16-bit white stays white, not clipped garbage
    r, g, b = pixel("cmyk.jpg")
    assert r > 200 and g < 60 and b < 60  # CMYK (0, 255, 255, 0) is red


def test_train_test_layout_and_class_mismatch(tmp_path):
    for split in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / split / c / f"{i}.png")
    src = load_images(str(tmp_path), 8)
    assert len(src.pool) == 6 and src.test is not None and len(src.test) == 6
    assert src.pool.names[0].startswith("train/")


def test_missing_or_flat_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_images(str(tmp_path / "nope"), 16)
    (tmp_path / "x.jpg").write_bytes(b"")
    with pytest.raises(UserError, match="no class sub-folders"):
        load_images(str(tmp_path), 16)


def test_stratified_split_is_per_class_seeded_and_disjoint():
    labels = torch.tensor([0] * 50 + [1] * 11 + [2] * 3)
    tr, va = stratified_split(labels, 0.2, seed=1)
    assert torch.bincount(labels[va]).tolist() == [10, 2, 1]
    assert len(set(tr.tolist()) & set(va.tolist())) == 0 and len(tr) + len(va) == len(labels)
    assert torch.equal(va, stratified_split(labels, 0.2, seed=1)[1])
    assert not torch.equal(va, stratified_split(labels, 0.2, seed=2)[1])


def test_disk_cache_is_reused_and_invalidated_when_a_file_changes(tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    make_awkward_folder(data)
    first = load_images(str(data), 16, cache_dir=str(cache))
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".pt"
    again = load_images(str(data), 16, cache_dir=str(cache))
    assert torch.equal(first.pool.images, again.pool.images) and again.pool.names == first.pool.names
    assert [s.path for s in again.skipped] == [s.path for s in first.skipped]
    Image.new("RGB", (8, 8), (0, 0, 0)).save(data / "çapse" / "new.png")
    changed = load_images(str(data), 16, cache_dir=str(cache))
    assert len(changed.pool) == len(first.pool) + 1 and len(list(cache.iterdir())) == 2


def test_shapes_are_deterministic_balanced_and_masked():
    a, b = make_shapes(5, 32, seed=7), make_shapes(5, 32, seed=7)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert not torch.equal(a.images, make_shapes(5, 32, seed=8).images)
    assert torch.bincount(a.labels).tolist() == [5] * len(SHAPE_CLASSES)
    frac = a.masks.float().mean(dim=(1, 2))
    assert (frac > 0.03).all() and (frac < 0.6).all()
    # The object is visible: pixels inside the mask differ from the background around it.
    img = a.images.float()
    inside = (img * a.masks[:, None]).sum((2, 3)) / a.masks[:, None].sum((2, 3))
    outside = (img * ~a.masks[:, None]).sum((2, 3)) / (~a.masks[:, None]).sum((2, 3))
    assert ((inside - outside).abs().max(dim=1).values > 40).all()


def test_a_rings_mask_is_its_filled_outline_while_its_hole_shows_the_background():
    s = make_shapes(4, 64, seed=3)
    ring = [i for i in range(len(s.labels)) if s.classes[int(s.labels[i])] == "ring"]
    for i in ring:
        mask, img = s.masks[i], s.images[i].float()
        ys, xs = torch.nonzero(mask, as_tuple=True)
        cy, cx = int(ys.float().mean().round()), int(xs.float().mean().round())
        assert mask[cy - 1 : cy + 2, cx - 1 : cx + 2].all()  # the centre (in the hole) is on the mask
        hole = img[:, cy - 1 : cy + 2, cx - 1 : cx + 2].mean((1, 2))
        background = img[:, ~mask].mean(1)
        ring_colour = img[:, mask].mean(1)
        assert (hole - background).abs().max() < 30 < (hole - ring_colour).abs().max()


def test_load_data_split_of_shapes():
    bundle = load_data(None, 32, 0.2, seed=0, shapes_per_class=10)
    assert len(bundle.train) == 80 and len(bundle.val) == 20
    assert bundle.val.class_counts() == [2] * 10 and bundle.val.masks is not None


def test_training_data_above_max_pixels_is_skipped_with_its_size_and_the_flag(tmp_path):
    """`train --max-pixels N`: a file whose header declares more than N pixels is listed, never decoded;
    the default limit keeps it."""
    from cnnlab.runs.config import TrainConfig

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("RGB", (16, 16), (40 * i, 90, 200)).save(tmp_path / cls / f"{i}.png")
    Image.new("RGB", (64, 40), (0, 0, 0)).save(tmp_path / "a" / "big.png")  # 2,560 pixels

    limited = load_images(str(tmp_path), 16, max_pixels=1000)
    assert len(limited.pool) == 6
    assert [s.path for s in limited.skipped] == ["a/big.png"]
    reason = limited.skipped[0].reason
    assert "64x40" in reason and "1,000" in reason and "--max-pixels" in reason
    default = load_images(str(tmp_path), 16)
    assert len(default.pool) == 7 and not default.skipped
    with pytest.raises(UserError, match="max_pixels|max-pixels"):
        TrainConfig(max_pixels=0).validate()
