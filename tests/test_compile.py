"""--compile: the compiled training step learns what the eager one learns (same losses), compiles once
per image size (the epoch's last, smaller micro-batch runs eagerly), and a machine without a C++
compiler gets a one-line error before any work."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from cnnlab.cli import main
from cnnlab.runs.config import TrainConfig


def _fit(tmp_path, name: str, compile: bool):
    from cnnlab.train.trainer import Trainer

    # 5 shapes x 10 classes, one per class for validation: 40 training images = micro-batches of 16, 16, 8.
    cfg = TrainConfig(model="tiny_test", shapes_per_class=5, image_size="16:24", size_epochs="1", epochs=2,
                      batch_size=16, augment="none", compile=compile, output=str(tmp_path / name))
    trainer = Trainer(cfg)
    trainer.fit()
    return trainer


def test_compiled_training_matches_eager_and_compiles_once_per_image_size(tmp_path):
    torch._dynamo.reset()
    counters.clear()
    eager = _fit(tmp_path, "eager", compile=False)
    assert counters["stats"]["unique_graphs"] == 0
    fast = _fit(tmp_path, "compiled", compile=True)
    assert [row["image_size"] for row in fast.history] == [16, 24]
    assert counters["stats"]["unique_graphs"] == 2  # 16 px and 24 px; not the 8-image micro-batches
    for a, b in zip(eager.history, fast.history):
        for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), key
    for k, v in eager.model.state_dict().items():  # the compiled step trained the model that is saved
        torch.testing.assert_close(fast.model.state_dict()[k], v, rtol=1e-3, atol=1e-5)


def test_compile_without_a_cpp_compiler_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: None)
    run = tmp_path / "run"
    argv = ["train", "--model", "tiny_test", "--shapes-per-class", "2", "--image-size", "16", "--compile",
            "--device", "cpu", "--output", str(run)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["cnnlab train: error: --compile on CPU needs a C++ compiler (g++ or clang++) on PATH: install one (e.g. "
                   "apt-get install g++), set CXX, or train without --compile"]
    assert not run.exists()
