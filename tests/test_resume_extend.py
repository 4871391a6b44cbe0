"""--resume RUN --epochs N: the schedule is rebuilt for the new length (cosine exactly as a run planned
for N epochs; one-cycle as one more cycle from the rate reached: no crash, no jump, ends at its floor),
the lr column records the rate each epoch used, and a run on other data, classes or model is refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.cli import main
from cnnlab.runs.config import TrainConfig
from cnnlab.train.callbacks import Callback
from cnnlab.train.trainer import Trainer

# 40 shapes, 32 for training in micro-batches of 8: 4 optimiser steps per epoch
SMALL = dict(model="tiny_test", shapes_per_class=4, image_size=16, batch_size=8, augment="none", lr=0.1)


class RatesUsed(Callback):
    """The learning rate of every optimiser step, as the optimiser applies it."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_before_step(self, trainer, step):
        self.rates.append(trainer.optimizer.param_groups[0]["lr"])


def train(tmp_path, name, **overrides) -> tuple[Trainer, RatesUsed]:
    rates = RatesUsed()
    trainer = Trainer.from_config(TrainConfig(**{**SMALL, **overrides}, output=str(tmp_path / name)), callbacks=[rates])
    trainer.fit()
    return trainer, rates


def resume(run_dir, epochs) -> tuple[Trainer, RatesUsed]:
    rates = RatesUsed()
    trainer = Trainer.resume(run_dir, epochs=epochs, callbacks=[rates])
    trainer.fit()
    return trainer, rates


def test_cosine_continues_exactly_as_a_run_planned_for_the_new_length(tmp_path):
    first, before = train(tmp_path, "r", epochs=1, schedule="cosine")
    _, after = resume(tmp_path / "r", epochs=3)
    _, planned = train(tmp_path, "planned", epochs=3, schedule="cosine")
    assert len(before.rates) == 4 and len(after.rates) == 8
    assert after.rates == planned.rates[4:]  # the same numbers, bit for bit
    assert after.rates[-1] == pytest.approx(0.1 * (1 + math.cos(math.pi * 11 / 12)) / 2)
    assert first.optimizer.param_groups[0]["lr"] == pytest.approx(0, abs=1e-12)  # 1-epoch plan: at its floor


def test_onecycle_extension_does_not_crash_jump_or_end_above_its_floor(tmp_path, capsys):
    # the reproduction, through the command line
    run = tmp_path / "y"
    base = ["--model", "tiny_test", "--shapes-per-class", "4", "--image-size", "16", "--batch-size", "8"]
    assert main(["train", *base, "--schedule", "onecycle", "--epochs", "1", "--output", str(run)]) == 0
    ended_at = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["optimizer"]["param_groups"][0]["lr"]
    trainer, after = resume(run, epochs=3)
    floor = 1e-3 / (25 * 1e4)  # OneCycleLR: max_lr / (div_factor * final_div_factor); --lr default 1e-3
    steps = np.array([ended_at, *after.rates, trainer.optimizer.param_groups[0]["lr"]])
    assert len(after.rates) == 8 and after.rates[0] == pytest.approx(ended_at)  # continues where it stood
    assert np.abs(np.diff(steps)).max() < 0.6e-3  # smooth: no step moves the rate by more than ~half the peak
    assert max(after.rates) == pytest.approx(1e-3, rel=0.05)  # one more cycle up to the peak
    assert steps[-1] == pytest.approx(floor, rel=1e-6)  # and down to the floor at the last step
    again, more = resume(run, epochs=4)  # an extended run extends again
    assert len(more.rates) == 4 and again.optimizer.param_groups[0]["lr"] == pytest.approx(floor, rel=1e-6)


def test_same_length_resume_keeps_the_saved_schedule(tmp_path):
    _, planned = train(tmp_path, "planned", epochs=2, schedule="onecycle")
    trainer = Trainer.from_config(TrainConfig(**SMALL, epochs=2, schedule="onecycle", output=str(tmp_path / "r")))
    trainer.cfg.epochs = 1  # stop after the first epoch of a two-epoch plan
    trainer.fit()
    _, after = resume(tmp_path / "r", epochs=2)
    assert after.rates == planned.rates[4:]


def test_lr_column_is_the_rate_the_epoch_used(tmp_path):
    trainer, rates = train(tmp_path, "r", epochs=2, schedule="cosine")
    assert [row["lr"] for row in trainer.history] == [rates.rates[3], rates.rates[7]]
    assert trainer.history[-1]["lr"] > 0  # not the rate after the last step (0 at the end of a cosine)


def _folder(root, classes, per_class=4):
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((12, 12, 3), 20 * k + i, np.uint8)).save(root / name / f"{i}.png")


@pytest.mark.parametrize("change, message", [
    ("rename", "the classes changed since {run} was trained (gone: b; new: c)"),
    ("delete", "the training images changed since {run} was trained ("),  # one file fewer: another split
    ("model", "the model changed since {run} was trained (4.weight: (2, 16) in the checkpoint, (3, 16) now)"),
])
def test_resume_refuses_other_data_classes_or_model(tmp_path, capsys, change, message):
    data, run = tmp_path / "data", tmp_path / "run"
    _folder(data, ["a", "b"])
    assert main(["train", "--model", "tiny_test", "--data", str(data), "--epochs", "1", "--val-fraction", "0.25",
                 "--output", str(run)]) == 0
    gone = (run / "split" / "train.txt").read_text().split("\t")[0]
    if change == "rename":
        (data / "b").rename(data / "c")
    elif change == "delete":
        (data / gone).unlink()
    else:  # the checkpoint of a model with another head: as if the registry's builder had changed
        path = run / "checkpoints" / "last.pt"
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        ckpt["model"]["4.weight"] = torch.zeros(2, 16)
        ckpt["model"]["4.bias"] = torch.zeros(2)
        ckpt["classes"] = ["a", "b", "c"]
        (data / "c").mkdir()
        Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(data / "c" / "0.png")
        Image.fromarray(np.ones((12, 12, 3), np.uint8)).save(data / "c" / "1.png")
        torch.save(ckpt, path)
        (run / "split" / "train.txt").unlink()  # the split changed too: compare the model alone
    before = sorted(p.name for p in run.rglob("*"))
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert message.format(run=run, gone=gone) in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in run.rglob("*")) == before
