"""predict on files, folders and globs (broken files reported on their line, closed pipes quiet),
evaluate on class subsets (metrics over the classes present) and oversized images."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from cnnlab.cli import main
from cnnlab.runs.evaluate import evaluation_images
from cnnlab.runs.inference import predict_logits
from cnnlab.runs.run import load_run
from folder_fixtures import colour_run, colours  # noqa: F401 - fixtures

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def album(tmp_path, colours):  # noqa: F811
    """Nested folders with images, a broken .png, a text file and a hidden image."""
    root = tmp_path / "album"
    shutil.copytree(colours / "test", root / "nested")
    (root / "nested" / "blue" / "broken.png").write_bytes(b"not an image")
    (root / "notes.txt").write_text("not an image either")
    shutil.copy(colours / "test" / "red" / "red0.png", root / ".hidden.png")
    return root


def test_predict_folder_reports_the_broken_file_on_its_line_and_goes_on(colour_run, album, capsys):  # noqa: F811
    assert main(["predict", str(colour_run), str(album), "--json", "--top-k", "2"]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    names = [Path(r["image"]).name for r in lines]
    assert names == ["blue0.png", "blue1.png", "blue2.png", "broken.png", "green0.png", "green1.png", "green2.png",
                     "red0.png", "red1.png", "red2.png"]  # recursive, sorted, image files only, hidden skipped
    broken = lines[3]
    assert set(broken) == {"image", "error"} and "cannot read image" in broken["error"]
    good = [r for r in lines if "top" in r]
    assert all(len(r["top"]) == 2 and r["top"][0]["probability"] >= r["top"][1]["probability"] for r in good)


def test_predict_matches_the_model_on_globs_and_files(colour_run, colours, capsys):  # noqa: F811
    pattern = str(colours / "test" / "*" / "*0.png")
    assert main(["predict", str(colour_run), pattern, str(colours / "test" / "red" / "red1.png"), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(r["image"]).name for r in lines] == ["blue0.png", "green0.png", "red0.png", "red1.png"]
    run = load_run(colour_run)
    data = evaluation_images(run, str(colours))
    by_name = {Path(n).name: i for i, n in enumerate(data.images.names)}
    probs = predict_logits(run.model, data.images.images, run.norm, torch.device("cpu")).softmax(1)
    for r in lines:
        expected = probs[by_name[Path(r["image"]).name]]
        assert r["top"][0]["class"] == run.classes[int(expected.argmax())]
        assert r["top"][0]["probability"] == pytest.approx(float(expected.max()), abs=1e-6)


def test_predict_into_a_closed_pipe_ends_quietly(colour_run, album):  # noqa: F811
    """As in ``cnnlab predict RUN album/ --json | head -1``: the reader takes one line and leaves."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    one = str(album / "nested" / "blue" / "blue0.png")
    many = [one] * 2000  # ~400 kB of output, more than a pipe holds: the writer is still writing when we leave
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "predict", str(colour_run), *many, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141  # 128 + SIGPIPE, as a tool ended by SIGPIPE reports
    assert json.loads(first)["image"] == one
    assert err == ""  # no BrokenPipeError traceback, no "Exception ignored" at exit


def test_evaluate_on_a_subset_folder_matches_metrics_computed_by_hand(colour_run, colours, tmp_path, capsys):  # noqa: F811
    subset = tmp_path / "two-classes"
    for name in ("blue", "red"):
        shutil.copytree(colours / "test" / name, subset / name)
    assert main(["evaluate", str(colour_run), "--data", str(subset)]) == 0
    out = capsys.readouterr().out
    assert "2 of the run's 3 classes present (blue, red): macro precision, recall and F1 are over these" in out
    saved = json.loads((colour_run / "evaluation" / "two-classes" / "metrics.json").read_text())
    assert saved["classes_present"] == ["blue", "red"] and "over the 2 classes present" in saved["averaging"]

    run = load_run(colour_run)
    files = sorted(subset.rglob("*.png"))
    truth = [run.classes.index(f.parent.name) for f in files]
    images = torch.stack([torch.from_numpy(np.array(
        Image.open(f).convert("RGB").resize((16, 16), Image.Resampling.BILINEAR))).permute(2, 0, 1) for f in files])
    predicted = predict_logits(run.model, images, run.norm, torch.device("cpu")).argmax(1).tolist()
    present = [run.classes.index("blue"), run.classes.index("red")]
    p, r, f1, _ = precision_recall_fscore_support(truth, predicted, labels=present, average="macro", zero_division=0)
    m = saved["metrics"]
    assert m["images"] == 6
    assert m["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert (m["precision_macro"], m["recall_macro"], m["f1_macro"]) == pytest.approx((p, r, f1))
    assert [row["class"] for row in saved["per_class"]] == ["blue", "red"]


def test_evaluate_refuses_a_superset_naming_the_unknown_classes(colour_run, colours, tmp_path, capsys):  # noqa: F811
    superset = tmp_path / "more"
    shutil.copytree(colours / "test", superset)
    for extra in ("purple", "teal"):
        shutil.copytree(colours / "test" / "blue", superset / extra)
    assert main(["evaluate", str(colour_run), "--data", str(superset)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "classes the run was not trained on: purple, teal" in err


def test_evaluate_keeps_each_data_sets_results_and_warns_about_training_files(colour_run, colours, tmp_path, capsys):  # noqa: F811
    first, second = tmp_path / "a" / "holdout", tmp_path / "b" / "holdout"
    shutil.copytree(colours / "test", first)
    (first / "red" / "empty.png").write_bytes(b"")
    shutil.copytree(colours / "train", second)  # same folder name, other images: all of them training files
    assert main(["evaluate", str(colour_run), "--data", str(first)]) == 0
    captured = capsys.readouterr()
    assert "byte-identical" not in captured.err
    assert "warning: 1 file(s) could not be read and are not counted, e.g. red/empty.png: " in captured.err
    assert captured.out.startswith("holdout: 9 images from ")
    assert main(["evaluate", str(colour_run), "--data", str(second)]) == 2
    refused = capsys.readouterr().err
    assert f"holds the results for '{first.resolve()}': pass --name NAME to keep both" in refused
    assert main(["evaluate", str(colour_run), "--data", str(second), "--name", "train-copy"]) == 0
    captured = capsys.readouterr()
    train_split = len((colour_run / "split" / "train.txt").read_text().splitlines())
    assert f"warning: {train_split} of the 24 evaluated images are byte-identical" in captured.err
    saved = {d.name: json.loads((d / "metrics.json").read_text()) for d in (colour_run / "evaluation").iterdir()}
    assert saved["holdout"]["data"] == str(first.resolve()) and saved["train-copy"]["data"] == str(second.resolve())
    assert saved["train-copy"]["identical_to_training_files"] == train_split


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG with a valid header (signature, IHDR and an empty IDAT) and no pixel data: enough for a
    size check, which must refuse the file before decoding it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b""))
    return path


def test_image_above_the_pixel_limit_is_one_line_naming_size_limit_and_flag(colour_run, tmp_path, capsys):  # noqa: F811
    big = png_header(tmp_path / "big.png", 14_000, 14_000)  # 196 megapixels: Pillow itself refuses it obscurely
    assert main(["explain", "gradcam", str(colour_run), str(big), "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"cnnlab explain: error: image '{big}' is 14000x14000 = 196.0 megapixels, above the limit of 89.5 megapixels: "
        "pass --max-pixels 196000000 (or more) to read it")


def test_max_pixels_alone_decides_and_pillow_warns_nothing(colour_run, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's limit scaled down: it would warn at 1,000 pixels
    above, far_above = tmp_path / "above.png", tmp_path / "far.png"  # and raise at 2,000
    Image.new("RGB", (40, 40)).save(above)
    Image.new("RGB", (50, 50)).save(far_above)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["predict", str(colour_run), str(above), str(far_above), "--max-pixels", "2500", "--json"]) == 0
        assert main(["predict", str(colour_run), str(far_above), "--max-pixels", "2499"]) == 1
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    out = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["image"] for line in out[:2]] == [str(above), str(far_above)]
    assert out[2] == (f"{far_above}: error: image '{far_above}' is 50x50 = 0.0 megapixels, above the limit of 0.0 "
                      "megapixels: pass --max-pixels 2500 (or more) to read it")
    assert Image.MAX_IMAGE_PIXELS == 1000  # Pillow's own setting is left as it was
