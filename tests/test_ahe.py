"""One epoch on a small subset of the real AHE training images (skips where ../shared is absent)."""

from __future__ import annotations

import json
import os

from cnnlab.cli import main

GREY = "flying_buttress/Le_Mont_Saint-Michel_en_1948_(9).jpg"  # the one greyscale image (SOURCE.txt)


def test_one_epoch_on_an_ahe_subset(ahe_train, tmp_path, capsys):
    data = tmp_path / "ahe_subset"
    for class_dir in sorted(ahe_train.iterdir()):
        files = sorted(class_dir.iterdir())
        chosen = dict.fromkeys(files[:12] + [f for f in files if not f.name.isascii()][:2])  # + non-ASCII names
        (data / class_dir.name).mkdir(parents=True)
        for f in chosen:
            os.symlink(f, data / class_dir.name / f.name)
    if not (data / GREY).exists():
        os.symlink(ahe_train / GREY, data / GREY)
    (data / "altar" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--epochs", "1", "--image-size", "64", "--output", str(run)]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 unreadable file(s)" in err
    assert (run / "skipped.txt").read_text().startswith("altar/broken.jpg\t")
    classes = json.loads((run / "classes.json").read_text())
    assert classes == ["altar", "apse", "bell_tower", "column", "dome(inner)", "dome(outer)",
                       "flying_buttress", "gargoyle", "stained_glass", "vault"]
    names = (run / "split" / "train.txt").read_text() + (run / "split" / "val.txt").read_text()
    assert GREY in names and any(not line.isascii() for line in names.splitlines())
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 1
    # The recorded validation numbers are the saved model's: `cnnlab evaluate` decodes the split's files
    # again, loads the checkpoint, and gets the same accuracy and (to rounding) loss.
    assert main(["evaluate", str(run), "--checkpoint", "last"]) == 0
    metrics = json.loads((run / "evaluation" / "val" / "metrics.json").read_text())["metrics"]
    assert metrics["images"] == len((run / "split" / "val.txt").read_text().splitlines())
    assert metrics["accuracy"] == history[0]["val_accuracy"]
    assert abs(metrics["loss"] - history[0]["val_loss"]) < 1e-3 * history[0]["val_loss"]
