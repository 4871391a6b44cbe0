"""The table of bad invocations, across every command: each is exit status 2, exactly one line on
stderr, no traceback, and nothing left behind (no run directory, no new file anywhere under the
working folder, the existing run unchanged). In-process (``main(argv)``) to stay fast."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A finished tiny run, a two-class and a one-class folder, an image, a text file, config files."""
    ws = tmp_path_factory.mktemp("ws")
    assert main(["train", "--model", "tiny_test", "--shapes-per-class", "4", "--image-size", "16", "--epochs", "1",
                 "--augment", "none", "--output", str(ws / "run")]) == 0
    for name, n in (("two/a", 3), ("two/b", 3), ("one/only", 3)):
        (ws / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((12, 12, 3), 40 * i, np.uint8)).save(ws / name / f"{i}.png")
    (ws / "one" / "empty").mkdir()
    (ws / "nothing").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(ws / "img.png")
    (ws / "notes.txt").write_text("not an image")
    (ws / "full").mkdir()
    (ws / "full" / "mine.txt").write_text("keep")
    configs = {"ten.yaml": "epochs: ten\n", "quoted.yaml": 'val_fraction: "0.5"\n', "unknown.yaml": "epoch: 3\n",
               "list.yaml": "- 1\n- 2\n", "broken.yaml": "epochs: [1\n", "smoothing.yaml": "label_smoothing: 1.5\n"}
    for name, text in configs.items():
        (ws / name).write_text(text)
    return ws


OUT = ["--output", "{ws}/out"]
TRAIN = ["train", "--shapes-per-class", "2", "--image-size", "16", *OUT]

CASES = [
    # train: flags argparse rejects
    (["train", "--epochs", "ten", *OUT], "argument --epochs: invalid int value: 'ten'"),
    (["train", "--optimizer", "rmsprop", *OUT], "argument --optimizer: invalid choice: 'rmsprop'"),
    (["train", "--aug", "noequals", *OUT], "expected KEY=VALUE, got 'noequals'"),
    (["train", "--no-such-flag", *OUT], "unrecognized arguments: --no-such-flag"),
    # train: values out of range (flags and YAML alike)
    ([*TRAIN, "--epochs", "0"], "--epochs must be an integer from 1 to 100000, not 0"),
    ([*TRAIN, "--config", "{ws}/ten.yaml"], "--epochs must be an integer from 1 to 100000, not 'ten'"),
    ([*TRAIN, "--config", "{ws}/quoted.yaml"], "--val-fraction must be a number in [0, 1), not '0.5'"),
    ([*TRAIN, "--config", "{ws}/smoothing.yaml"], "--label-smoothing must be a number in [0, 1), not 1.5"),
    ([*TRAIN, "--config", "{ws}/unknown.yaml"], "unknown setting 'epoch'"),
    ([*TRAIN, "--config", "{ws}/list.yaml"], "must be a mapping of setting: value"),
    ([*TRAIN, "--config", "{ws}/broken.yaml"], "is not valid YAML at line"),
    ([*TRAIN, "--config", "{ws}/missing.yaml"], "does not exist"),
    ([*TRAIN, "--device", "tpu"], "--device must be auto, cpu, cuda or cuda:N, not 'tpu'"),
    ([*TRAIN, "--label-smoothing", "1.5"], "--label-smoothing must be a number in [0, 1), not 1.5"),
    ([*TRAIN, "--momentum", "-1"], "--momentum must be a number in [0, 1), not -1.0"),
    ([*TRAIN, "--weight-decay", "-1"], "--weight-decay must be a number of at least 0, not -1.0"),
    ([*TRAIN, "--dropout", "1.5"], "dropout probability has to be between 0 and 1"),
    ([*TRAIN, "--step-gamma", "-1"], "--step-gamma must be a number in (0, 1], not -1.0"),
    ([*TRAIN, "--monitor", "val_nonsense"], "--monitor must be a history column: one of val_loss"),
    ([*TRAIN, "--batch-size", "lots"], "--batch-size must be a positive integer or 'all', not 'lots'"),
    ([*TRAIN, "--model", "resnet9000"], "unknown model 'resnet9000'"),
    ([*TRAIN, "--lr", "0"], "--lr must be a number above 0, not 0.0"),
    ([*TRAIN, "--lr", "nan"], "--lr must be a number above 0, not nan"),
    ([*TRAIN, "--val-fraction", "1"], "--val-fraction must be a number in [0, 1), not 1.0"),
    ([*TRAIN, "--image-size", "4"], "--image-size must be an integer from 8 to 4096, or sizes joined by ':'"),
    ([*TRAIN, "--aug", "rotation=500"], "--aug rotation=500 is out of range: use a number from 0 to 180"),
    ([*TRAIN, "--aug", "bogus=1"], "unknown augmentation 'bogus'"),
    ([*TRAIN, "--freeze", "bogus"], "--freeze must be none, head or a number of backbone stages, not 'bogus'"),
    ([*TRAIN, "--seed", "-1"], "--seed must be an integer from 0 to"),
    ([*TRAIN, "--data-threads", "-1"], "--data-threads must be an integer from 0 to 64, not -1"),
    ([*TRAIN, "--checkpoint-every", "-1"], "--checkpoint-every must be an integer of at least 0, not -1"),
    ([*TRAIN, "--skip-nonfinite", "-1"], "--skip-nonfinite must be an integer of at least 0, not -1"),
    ([*TRAIN, "--cache-dir", "{ws}/notes.txt"], "--cache-dir '{ws}/notes.txt' is a file, not a folder"),
    ([*TRAIN, "--pretrained", "--weights", "{ws}/w.pt"], "--pretrained and --weights both name starting weights"),
    ([*TRAIN, "--weights", "{ws}/missing.pt"], "weights file '{ws}/missing.pt' does not exist"),
    # train: data and output folders
    ([*TRAIN, "--data", "{ws}/one"], "has images of one class only (only; empty has none)"),
    ([*TRAIN, "--data", "{ws}/img.png"], "data folder '{ws}/img.png' is a file, not a folder"),
    ([*TRAIN, "--data", "{ws}/missing"], "data folder '{ws}/missing' does not exist"),
    ([*TRAIN, "--data", "{ws}/nothing"], "has no class sub-folders"),
    (["train", "--output", "{ws}/full"], "output folder '{ws}/full' is not empty"),
    (["train", "--output", "{ws}/notes.txt"], "is a file"),
    # train --resume
    (["train", "--resume", "{ws}/missing"], "run directory '{ws}/missing' does not exist"),
    (["train", "--resume", "{ws}/notes.txt"], "'{ws}/notes.txt' is a file, not a run directory"),
    (["train", "--resume", "{ws}/run", "--lr", "0.1"], "drop --lr (only --epochs may change)"),
    (["train", "--resume", "{ws}/run", "--epochs", "0"], "--epochs must be an integer from 1 to 100000, not 0"),
    # evaluate
    (["evaluate", "{ws}/missing"], "run directory '{ws}/missing' does not exist"),
    (["evaluate", "{ws}/notes.txt"], "is a file, not a run directory"),
    (["evaluate", "{ws}/run", "--top-k", "-1"], "argument --top-k: must be an integer of at least 1, not -1"),
    (["evaluate", "{ws}/run", "--top-k", "0"], "argument --top-k: must be an integer of at least 1, not 0"),
    (["evaluate", "{ws}/run", "--top-k", "50"], "--top-k 50 is more than the run's 10 classes"),
    (["evaluate", "{ws}/run", "--checkpoint", "middle"], "invalid choice: 'middle'"),
    (["evaluate", "{ws}/run", "--data", "{ws}/two"], "'{ws}/two' has classes the run was not trained on: a, b"),
    (["evaluate", "{ws}/run", "--device", "cuda:7"], "no CUDA GPU is visible"),
    # predict
    (["predict", "{ws}/run", "{ws}/img.png", "--top-k", "-2"], "argument --top-k: must be an integer of at least 1"),
    (["predict", "{ws}/run", "{ws}/img.png", "--top-k", "0"], "argument --top-k: must be an integer of at least 1"),
    (["predict", "{ws}/missing", "{ws}/img.png"], "'{ws}/missing' is not a run directory (no checkpoints/ inside)"),
    (["predict", "{ws}/run"], "no images given: pass RUN [RUN ...] IMAGE ..."),
    # models and weights
    (["models", "--classes", "-3"], "argument --classes: must be an integer of at least 2, not -3"),
    (["models", "--classes", "0"], "argument --classes: must be an integer of at least 2, not 0"),
    (["weights", "add", "{ws}/missing-12345678.pth"], "does not exist"),
    (["weights", "add", "{ws}/notes.txt"], "has no hash in its name"),
    (["weights", "add", "{ws}/two"], "is a folder"),
    (["weights", "add"], "name a weights file to add"),
    # the NumPy reference
    (["train-numpy", "--epochs", "0"], "--epochs must be at least 1"),
    (["gradcheck", "--configs", "0"], "--configs must be at least 1"),
    # explain
    (["explain", "gradcam", "{ws}/run", "{ws}/img.png", "--class", "nope"], "unknown class 'nope'"),
    (["explain", "gradcam", "{ws}/run", "{ws}/two"], "is a folder, not an image file"),
    (["explain", "gradcam", "{ws}/run", "{ws}/img.png", "--batch-size", "0"], "argument --batch-size: must be"),
    (["explain", "activations", "{ws}/run", "{ws}/img.png", "--layer", "nope"], "no layer 'nope'"),
    (["explain", "dream", "{ws}/run", "--steps", "0"], "--steps must be at least 1"),
    (["explain", "units", "{ws}/missing"], "does not exist"),
    (["explain"], "the following arguments are required: EXPLAIN_COMMAND"),
    (["tran"], "argument COMMAND: invalid choice: 'tran'"),
]


def _snapshot(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_the_table_is_long_enough_and_covers_every_command():
    assert len(CASES) >= 40
    commands = {argv[0] if argv[0] not in ("explain", "weights") else " ".join(argv[:2]) for argv, _ in CASES}
    assert {"train", "evaluate", "predict", "models", "weights add", "train-numpy", "gradcheck", "explain gradcam",
            "explain activations", "explain dream", "explain units"} <= commands


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(a).replace(" ".join(TRAIN), "TRAIN")[:70] for a, _ in CASES])
def test_bad_invocation_is_one_line_exit_2_and_leaves_nothing(workspace, argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # a default runs/ folder would appear here
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    before = _snapshot(workspace)
    argv = [a.format(ws=workspace) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message.format(ws=workspace) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("cnnlab")
    assert _snapshot(workspace) == before and os.listdir(tmp_path) == []
