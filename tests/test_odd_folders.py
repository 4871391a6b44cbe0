"""Odd data folders: empty class folders, a single class, dangling and looping symlinks, unreadable
files -- each either listed in skipped.txt with its reason or refused with one line. (Images above
the pixel limit: tests/test_predict_evaluate.py.)"""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.data import folder as folder_module
from cnnlab.data.dataset import load_images
from cnnlab.errors import UserError


def write_images(d, n, colour):
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((12, 12, 3), colour, np.uint8)).save(d / f"{i}.png")


def test_empty_class_folders_are_ignored_listed_and_warned_about(tmp_path, caplog):
    write_images(tmp_path / "a", 3, 10)
    (tmp_path / "b_empty").mkdir()
    write_images(tmp_path / "c", 3, 200)
    (tmp_path / "d_only_text").mkdir()
    (tmp_path / "d_only_text" / "readme.txt").write_text("not an image")
    with caplog.at_level("WARNING", logger="cnnlab"):
        src = load_images(str(tmp_path), 8)
    assert src.pool.classes == ["a", "c"]
    assert src.pool.labels.tolist() == [0, 0, 0, 1, 1, 1]  # renumbered: no gap where b was
    reasons = {s.path: s.reason for s in src.skipped}
    assert reasons["b_empty/"] == reasons["d_only_text/"] == "class folder without images: not a class"
    assert "ignored 2 class folder(s) without images: b_empty, d_only_text" in caplog.text


def test_one_class_is_a_one_line_error_and_leaves_nothing(tmp_path, capsys):
    write_images(tmp_path / "data" / "only", 4, 50)
    (tmp_path / "data" / "empty").mkdir()
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "data"), "--epochs", "1", "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("has images of one class only (only; empty has none): a classifier needs at least two class sub-folders "
                        "with images") and len(err.splitlines()) == 1
    assert not out.exists()


def test_dangling_and_looping_symlinks_are_listed_with_the_reason(tmp_path):
    write_images(tmp_path / "a", 2, 10)
    write_images(tmp_path / "b", 2, 200)
    os.symlink(tmp_path / "gone.png", tmp_path / "a" / "dangling.png")
    os.symlink(tmp_path / "b" / "loop.png", tmp_path / "b" / "loop.png")
    os.symlink(tmp_path / "a" / "0.png", tmp_path / "b" / "linked.png")  # a good link is followed
    src = load_images(str(tmp_path), 8)
    reasons = {s.path: s.reason for s in src.skipped}
    assert reasons["a/dangling.png"] == f"dangling symlink (its target {tmp_path / 'gone.png'} does not exist)"
    assert reasons["b/loop.png"] == "symlink loop (the link points back to itself)"
    assert "b/linked.png" in src.pool.names and len(src.pool) == 5


def test_unreadable_file_is_listed_with_the_reason(tmp_path, monkeypatch):
    write_images(tmp_path / "a", 2, 10)
    write_images(tmp_path / "b", 2, 200)
    locked = tmp_path / "b" / "1.png"
    if os.geteuid() != 0:
        locked.chmod(0)
    else:  # root reads any file whatever its mode: make opening this one fail as it would for a user
        original = folder_module.decode

        def denied(path, size, *limit):
            if path == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return original(path, size, *limit)

        monkeypatch.setattr(folder_module, "decode", denied)
    src = load_images(str(tmp_path), 8)
    assert [(s.path, s.reason) for s in src.skipped] == [("b/1.png", "unreadable: permission denied")]


def test_a_file_given_as_data_folder_is_called_a_file(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"")
    with pytest.raises(UserError, match="is a file, not a folder"):
        load_images(str(tmp_path / "x.jpg"), 8)
