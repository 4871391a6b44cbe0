"""--val-every: validation after every N-th epoch and always the last, without changing what trains."""

from __future__ import annotations

import json
import math

import torch

from cnnlab.cli import main
from cnnlab.train.callbacks import epoch_summary
from histories import history_without_timing

FLAGS = ["--model", "tiny_test", "--shapes-per-class", "6", "--image-size", "16", "--batch-size", "16",
         "--seed", "1", "--ema", "0.5", "--augment", "light", "--epochs", "5", "--device", "cpu"]  # on CPU: compared to the last bit
VAL_COLUMNS = ("val_loss", "val_accuracy", "val_f1_macro", "val_ema_loss", "val_ema_accuracy")


def validated_epochs(history: list[dict]) -> list[int]:
    return [r["epoch"] for r in history if not math.isnan(r["val_loss"])]


def test_skipped_validation_leaves_the_training_and_the_last_scores_unchanged(tmp_path):
    runs = {every: tmp_path / f"every-{every}" for every in (1, 2, 0)}
    for every, run in runs.items():
        assert main(["train", *FLAGS, "--val-every", str(every), "--output", str(run)]) == 0
    every_epoch = history_without_timing(runs[1])
    histories = {every: history_without_timing(run) for every, run in runs.items()}

    assert validated_epochs(histories[1]) == [1, 2, 3, 4, 5]
    assert validated_epochs(histories[2]) == [2, 4, 5]  # and always the last
    assert validated_epochs(histories[0]) == [5]
    for every in (2, 0):
        for mine, full in zip(histories[every], every_epoch):
            validated = mine["epoch"] in validated_epochs(histories[every])
            for key in VAL_COLUMNS:
                assert math.isnan(mine[key]) != validated
                if validated:
                    assert mine[key] == full[key]
            # the training columns and the weights do not depend on validation
            assert {k: v for k, v in mine.items() if k.startswith("train_")} == \
                   {k: v for k, v in full.items() if k.startswith("train_")}
        a = torch.load(runs[every] / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
        b = torch.load(runs[1] / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
        assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])

    # the best checkpoint can only be a validated epoch: with validation after the last alone, that one
    best = torch.load(runs[0] / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    assert best["epoch"] == 5 and best["best"]["epoch"] == 5
    assert (runs[0] / "curves.png").stat().st_size > 10_000


def test_the_epoch_line_says_when_an_epoch_was_not_validated():
    row = {"epoch": 3, "images_per_s": 100.0, "epoch_time_s": 2.0,
           **{f"train_{k}": 0.5 for k in ("loss", "accuracy", "f1_macro")},
           **{f"{s}_{k}": math.nan for s in ("val", "val_ema") for k in ("loss", "accuracy", "f1_macro")}}
    line = epoch_summary(row, 5)
    assert "epoch 3/5" in line and "| not validated |" in line and "nan" not in line


def test_patience_counts_validations(tmp_path):
    run = tmp_path / "r"
    # as test_train_e2e's early-stopping test: val_loss cannot improve at LR ~0 without BatchNorm
    assert main(["train", "--shapes-per-class", "3", "--image-size", "32", "--augment", "none", "--epochs", "8",
                 "--val-every", "2", "--patience", "1", "--monitor", "val_loss", "--lr", "1e-12", "--dropout", "0",
                 "--model-option", "batchnorm=false", "--output", str(run)]) == 0
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 4  # validated after 2 (best) and 4 (no better: one stale validation, stop)
