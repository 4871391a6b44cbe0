"""Trainer callbacks: when each hook runs and what it sees; the library logs through the `cnnlab` logger."""

from __future__ import annotations

import logging

import torch

from cnnlab.cli.main import main
from cnnlab.runs.config import TrainConfig
from cnnlab.train.callbacks import BatchInfo, Callback, StepInfo
from cnnlab.train.trainer import Trainer

from test_accumulate import _bundle


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_fit_start(self, trainer):
        self.events.append(("fit_start",))

    def on_epoch_start(self, trainer):
        self.events.append(("epoch_start", trainer.epoch))

    def on_before_step(self, trainer, step: StepInfo):
        grads = [p.grad for p in trainer.model.parameters()]
        self.events.append(("before_step", step.epoch, step.step, step.window_samples, all(g is not None for g in grads)))

    def on_step_end(self, trainer, step: StepInfo):
        grads = [p.grad for p in trainer.model.parameters()]
        self.events.append(("step_end", step.step, trainer.global_step, all(g is None for g in grads)))

    def on_batch_end(self, trainer, batch: BatchInfo):
        self.events.append(("batch_end", batch.index, batch.batches, batch.size))

    def on_epoch_end(self, trainer, row):
        checkpoint_written = (trainer.run_dir / "checkpoints" / "last.pt").is_file()
        self.events.append(("epoch_end", row["epoch"], len(trainer.history), checkpoint_written))

    def on_fit_end(self, trainer):
        self.events.append(("fit_end",))


def test_hooks_run_in_order_with_window_sizes_steps_and_gradients(tmp_path):
    # 10 samples, micro-batches of 4, windows of 2 micro-batches: windows of 8 and 2 samples per epoch.
    cfg = TrainConfig(model="tiny_test", epochs=2, batch_size=4, accumulate=2, augment="none", lr=0.1,
                      output=str(tmp_path / "r"), channels_last=False)
    rec = Recorder()
    trainer = Trainer.from_config(cfg, data=_bundle(10), callbacks=[rec])
    trainer.fit()

    def epoch(e: int) -> list[tuple]:  # e: epochs done; a window-ending micro-batch reports after its step
        first, second = 2 * e + 1, 2 * e + 2
        return [("epoch_start", e),
                ("batch_end", 0, 3, 4),
                ("before_step", e + 1, first, 8, True), ("step_end", first, first, True), ("batch_end", 1, 3, 4),
                ("before_step", e + 1, second, 2, True), ("step_end", second, second, True), ("batch_end", 2, 3, 2),
                ("epoch_end", e + 1, e + 1, True)]  # the default callbacks already wrote the checkpoint

    assert rec.events == [("fit_start",), *epoch(0), *epoch(1), ("fit_end",)]
    assert trainer.global_step == 4 == torch.load(tmp_path / "r" / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["global_step"]


def test_user_callback_appended_after_construction_runs_too(tmp_path):
    cfg = TrainConfig(model="tiny_test", epochs=1, batch_size=5, augment="none", output=str(tmp_path / "r"),
                      channels_last=False)
    trainer = Trainer.from_config(cfg, data=_bundle(10))
    rec = Recorder()
    trainer.callbacks.append(rec)
    trainer.fit()
    assert [e[0] for e in rec.events].count("step_end") == 2


def test_quiet_and_verbose_flags_set_the_cnnlab_logger(tmp_path, capsys):
    args = ["train", "--model", "tiny_test", "--shapes-per-class", "2", "--epochs", "1", "--augment", "none"]
    assert main(["-q", *args, "--output", str(tmp_path / "q")]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.strip() == str(tmp_path / "q")  # the run directory, on stdout
    assert logging.getLogger("cnnlab").level == logging.WARNING
    assert main([*args, "--output", str(tmp_path / "n")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("effective batch 32 = micro-batch 32 x accumulate 1 x 1 process\nepoch 1/1  train loss ")
    assert main(["-v", *args, "--output", str(tmp_path / "v")]) == 0
    assert logging.getLogger("cnnlab").level == logging.DEBUG
