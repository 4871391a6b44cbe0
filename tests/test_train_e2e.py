"""End to end through the CLI: train on shapes, resume, evaluate, predict, and the errors users see."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
import torch
import yaml
from PIL import Image

from ctrl_c import ctrl_c_cli_run
from histories import history_without_timing
from cnnlab.cli import main
from cnnlab.metrics import METRIC_NAMES

# on CPU: tests compare runs to the last bit, which CUDA's kernels do not repeat without --deterministic
FAST = ["--shapes-per-class", "40", "--image-size", "32", "--batch-size", "32", "--seed", "3", "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run that learns: 150 shapes per class (1,200 for training), 10 epochs, default settings
    otherwise; measured at 0.90 validation accuracy."""
    run = tmp_path_factory.mktemp("runs") / "full"
    assert main(["train", "--shapes-per-class", "150", "--epochs", "10", "--augment", "none", "--output", str(run)]) == 0
    return run


def test_training_on_shapes_reaches_the_stated_accuracy(trained):
    history = json.loads((trained / "history.json").read_text())
    assert history[-1]["val_accuracy"] >= 0.85
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 4


def test_run_directory_has_every_artefact(trained):
    for name in ("config.yaml", "classes.json", "split/train.txt", "split/val.txt", "history.csv", "history.json",
                 "curves.png", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (trained / name).is_file(), name
    cfg = yaml.safe_load((trained / "config.yaml").read_text())
    assert cfg["epochs"] == 10 and cfg["model"] == "ahe_cnn" and cfg["image_size"] is None
    rows = list(csv.DictReader((trained / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 11))
    for split in ("train", "val"):
        for m in METRIC_NAMES:
            assert 0 <= float(rows[-1][f"{split}_{m}"]) < 10
    with Image.open(trained / "curves.png") as im:
        assert im.width > 1000 and im.height > 200
    ckpt = torch.load(trained / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    assert ckpt["classes"][0] == "circle" and isinstance(ckpt["config"], dict)
    assert len((trained / "split" / "val.txt").read_text().splitlines()) == 300


def test_resume_gives_the_same_history_as_an_uninterrupted_run(tmp_path, monkeypatch):
    uninterrupted = tmp_path / "uninterrupted"
    assert main(["train", *FAST, "--epochs", "3", "--output", str(uninterrupted)]) == 0
    run = tmp_path / "resumed"
    assert ctrl_c_cli_run(monkeypatch, ["train", *FAST, "--epochs", "3", "--output", str(run)], epoch=2) == 130
    assert len(history_without_timing(run)) == 2
    assert main(["train", "--resume", str(run)]) == 0
    assert history_without_timing(run) == history_without_timing(uninterrupted)
    a = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["model"]
    b = torch.load(uninterrupted / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_evaluate_writes_metrics_and_confusion(trained, capsys):
    assert main(["evaluate", str(trained)]) == 0
    out = capsys.readouterr().out
    assert "precision_macro" in out and "support" in out
    report = json.loads((trained / "evaluation" / "val" / "metrics.json").read_text())
    cm = torch.tensor(report["confusion"])
    assert cm.sum() == 300 and cm.sum(1).tolist() == [30] * 10  # rows are true classes
    assert report["metrics"]["accuracy"] == pytest.approx(cm.diag().sum().item() / 300)
    assert report["metrics"]["top5_accuracy"] >= report["metrics"]["accuracy"]
    best = torch.load(trained / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    assert report["metrics"]["accuracy"] == pytest.approx(best["history"][best["best"]["epoch"] - 1]["val_accuracy"])
    with Image.open(trained / "evaluation" / "val" / "confusion.png") as im:
        assert im.width > 500


def test_predict_text_and_json(trained, tmp_path, capsys):
    from cnnlab.data.shapes import make_shapes

    s = make_shapes(3, 32, seed=99)  # three new images per class at the run's size (resizing would shift the noise)
    paths = []
    for i in range(30):
        p = tmp_path / f"img {i}.png"
        Image.fromarray(s.images[i].permute(1, 2, 0).numpy()).save(p)
        paths.append(str(p))
    assert main(["predict", str(trained), *paths, "--json", "--top-k", "3"]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]  # JSON lines
    assert [r["image"] for r in results] == paths
    for r in results:
        probs = [t["probability"] for t in r["top"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    correct = sum(r["top"][0]["class"] == s.classes[int(k)] for r, k in zip(results, s.labels))
    assert correct >= 21  # a ~0.90-accuracy model on 30 fresh images (P(fewer than 21) < 1%)
    assert main(["predict", str(trained), paths[0]]) == 0
    assert capsys.readouterr().out.startswith(paths[0] + ": ")


def test_config_file_with_flags_winning(tmp_path):
    from cnnlab.cli.train import add_train_arguments, config_from_args
    import argparse

    (tmp_path / "c.yaml").write_text("epochs: 7\nlr: 0.01\naugment: strong\nmodel_options: {pooling: avg}\n")
    p = argparse.ArgumentParser()
    add_train_arguments(p)
    cfg = config_from_args(p.parse_args(["--config", str(tmp_path / "c.yaml"), "--lr", "0.5", "--activation", "gelu"]))
    assert (cfg.epochs, cfg.lr, cfg.augment) == (7, 0.5, "strong")
    assert cfg.model_options == {"pooling": "avg", "activation": "gelu"}


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "/no/such/folder"], "data folder '/no/such/folder' does not exist"),
    (["train", "--batch-size", "lots"], "--batch-size must be a positive integer or 'all'"),
    (["train", "--model", "resnet9000"], "unknown model 'resnet9000'"),
    (["train", "--data-threads", "-1"], "--data-threads must be an integer from 0 to 64, not -1"),
    (["evaluate", "/no/such/run"], "run directory '/no/such/run' does not exist"),
])
def test_bad_input_is_one_line_exit_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_bad_config_and_nonempty_output_from_a_real_process(tmp_path):
    (tmp_path / "bad.yaml").write_text("epochs: [1\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    for args, message in ((["--config", str(tmp_path / "bad.yaml")], "is not valid YAML"),
                          (["--output", str(tmp_path / "out")], "is not empty")):
        proc = subprocess.run([sys.executable, "-m", "cnnlab", "train", *args], capture_output=True, text=True)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


TINY = ["--shapes-per-class", "3", "--image-size", "32", "--augment", "none", "--seed", "0"]


@pytest.mark.parametrize("extra, steps", [
    (["--batch-size", "all"], 1),  # full-batch gradient descent: one step per epoch
    (["--batch-size", "1", "--optimizer", "sgd"], 20),  # single-sample SGD over 20 training images
    (["--batch-size", "4", "--accumulate", "3", "--bf16"], 2),  # bf16 autocast with accumulation
])
def test_batch_modes(extra, steps, tmp_path, caplog):
    from cnnlab.train.trainer import Trainer
    from cnnlab.cli.train import add_train_arguments, config_from_args
    import argparse

    p = argparse.ArgumentParser()
    add_train_arguments(p)
    trainer = Trainer(config_from_args(p.parse_args([*TINY, *extra, "--epochs", "1", "--output", str(tmp_path / "r")])))
    trainer.fit()
    assert trainer.schedule.last_epoch == steps
    warned = "BatchNorm statistics see micro-batches of 4 images, not the 12" in caplog.text
    assert warned == ("--accumulate" in extra)


def test_early_stopping_with_patience(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["train", *TINY, "--epochs", "6", "--patience", "1", "--monitor", "val_loss", "--lr", "1e-12",
                 "--dropout", "0", "--model-option", "batchnorm=false", "--output", str(run)]) == 0
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 2  # val_loss cannot improve: LR ~0, and no BatchNorm statistics to drift
    assert "early stop: val_loss did not improve for 1 epochs" in capsys.readouterr().err
