"""A NaN/Inf loss stops the run naming epoch and step and keeps the last good checkpoint, or is skipped
up to --skip-nonfinite N times; a run directory appears only once training starts, and a run that
fails before its first checkpoint leaves nothing behind."""

from __future__ import annotations

import pytest
import torch

from cnnlab.cli import main
from cnnlab.runs.config import TrainConfig
from cnnlab.train.callbacks import Callback
from cnnlab.train.trainer import Trainer

# 40 shapes, 32 for training in micro-batches of 8: 4 optimiser steps (4 forward passes) per epoch
TINY = ["--model", "tiny_test", "--shapes-per-class", "4", "--image-size", "16", "--batch-size", "8",
        "--augment", "none"]


@pytest.fixture
def nan_at(monkeypatch):
    """Make the loss of the given forward passes (counted from 1 over the whole run) NaN."""
    calls = {"n": 0}
    original = Trainer.forward_loss

    def arm(*passes: int) -> None:
        def forward_loss(self, x, y):
            calls["n"] += 1
            logits, loss = original(self, x, y)
            return logits, loss * float("nan") if calls["n"] in passes else loss

        monkeypatch.setattr(Trainer, "forward_loss", forward_loss)

    return arm


def test_a_diverging_run_stops_naming_epoch_and_step_and_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--optimizer", "sgd", "--lr", "1e30", "--epochs", "3", "--output", str(out)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("cnnlab train: error: the loss is NaN or infinite at epoch 1, optimiser step ")
    assert "training stopped, and no checkpoint had been written yet" in last and "--skip-nonfinite N" in last
    assert not out.exists()  # failed before its first checkpoint: no debris


def test_nan_later_keeps_the_last_good_checkpoint(tmp_path, capsys, nan_at):
    nan_at(6)  # second pass of epoch 2
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "3", "--output", str(out)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    kept = out / "checkpoints" / "last.pt"
    assert last.startswith("cnnlab train: error: the loss is NaN or infinite at epoch 2, optimiser step 6 "
                           "(micro-batch 2): training stopped, the last good checkpoint is kept (" + str(kept))
    ckpt = torch.load(kept, map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 4 and all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_skip_nonfinite_skips_up_to_n_steps(tmp_path, capsys, nan_at):
    nan_at(2, 7)
    trainer = Trainer.from_config(TrainConfig(model="tiny_test", shapes_per_class=4, image_size=16, batch_size=8,
                                              augment="none", epochs=2, skip_nonfinite=2, output=str(tmp_path / "r")))
    trainer.fit()
    assert trainer.global_step == 8 - 2 and len(trainer.history) == 2
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    err = capsys.readouterr().err
    assert "the loss is NaN or infinite at epoch 1, optimiser step 2 (micro-batch 2): step skipped (1 of " \
           "--skip-nonfinite 2)" in err
    assert "at epoch 2, optimiser step 6 (micro-batch 3): step skipped (2 of --skip-nonfinite 2)" in err


def test_skip_nonfinite_stops_after_n(tmp_path, capsys, nan_at):
    nan_at(2, 3)
    assert main(["train", *TINY, "--epochs", "1", "--skip-nonfinite", "1", "--output", str(tmp_path / "r")]) == 2
    assert "optimiser step 2 (micro-batch 3) (after skipping 1): training stopped" in capsys.readouterr().err


def test_the_run_directory_appears_when_training_starts(tmp_path):
    out = tmp_path / "run"
    seen = []

    class Look(Callback):
        def on_fit_start(self, trainer):
            seen.append(sorted(p.name for p in out.iterdir()))

    trainer = Trainer.from_config(TrainConfig(model="tiny_test", shapes_per_class=4, image_size=16, epochs=1,
                                              output=str(out)), callbacks=[Look()])
    assert not out.exists()  # data loaded, model built: still nothing on disk
    trainer.fit()
    assert seen == [["classes.json", "config.yaml", "split"]]
    assert (out / "config.yaml").read_text().startswith("# effective batch 32 = micro-batch 32 x accumulate 1 x 1 process\n")


def test_an_empty_output_folder_the_user_made_stays_after_a_failure(tmp_path, nan_at):
    out = tmp_path / "mine"
    out.mkdir()
    nan_at(1)
    assert main(["train", *TINY, "--epochs", "1", "--output", str(out)]) == 2
    assert out.is_dir() and list(out.iterdir()) == []
