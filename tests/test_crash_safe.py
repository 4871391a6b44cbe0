"""A run survives being killed: --checkpoint-every writes `last` inside epochs with the data order and
position, so after SIGKILL at any step it loses at most that many steps, and in --deterministic mode the
resumed run ends with the same weights and history as one never interrupted. SIGTERM and SIGINT write
a checkpoint and stop cleanly with a message. Each run is a real process (deterministic mode is global)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HELPER = str(Path(__file__).with_name("signal_at_step.py"))
# 80 training images in micro-batches of 8, windows of 2: 5 optimiser steps per epoch, 15 in all
ARGS = ["--model", "tiny_test", "--shapes-per-class", "10", "--image-size", "16", "--batch-size", "8",
        "--accumulate", "2", "--epochs", "3", "--augment", "light", "--deterministic", "--seed", "7"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}


def run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=ENV, timeout=300)


def history(run_dir: Path) -> list[dict]:
    rows = json.loads((run_dir / "history.json").read_text())
    return [{k: v for k, v in r.items() if k not in ("images_per_s", "epoch_time_s")} for r in rows]


def assert_same_run(a: Path, b: Path) -> None:
    assert history(a) == history(b)
    wa = torch.load(a / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["model"]
    wb = torch.load(b / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wb)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "uninterrupted"
    proc = run([HELPER, "none", "0", *ARGS, "--output", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.mark.slow  # three processes of training on 2 shared cores
def test_sigkill_mid_epoch_loses_at_most_checkpoint_every_steps_and_resumes_exactly(uninterrupted, tmp_path):
    out = tmp_path / "killed"
    proc = run([HELPER, "SIGKILL", "9", *ARGS, "--checkpoint-every", "3", "--output", str(out)])
    assert proc.returncode == -9  # killed right after step 9 of 15 (epoch 2 has steps 6-10), before saving it
    ckpt = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert (ckpt["global_step"], ckpt["epoch"], ckpt["in_epoch"][0]["next_batch"]) == (6, 1, 2)  # 3 steps lost
    proc = run([HELPER, "SIGKILL", "10", "--resume", str(out)])  # from inside epoch 2, killed again
    assert proc.returncode == -9
    ckpt = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert (ckpt["global_step"], ckpt["epoch"], ckpt["in_epoch"][0]["next_batch"]) == (9, 1, 8)
    proc = run([HELPER, "none", "0", "--resume", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_same_run(out, uninterrupted)


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_exits_cleanly_and_resumes_exactly(uninterrupted, tmp_path):
    out = tmp_path / "terminated"
    proc = run([HELPER, "SIGTERM", "7", *ARGS, "--output", str(out)])
    assert proc.returncode == 128 + 15, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (f"cnnlab train: stopped by SIGTERM in epoch 2 after optimiser step 7; checkpoint written: "
                    f"continue with `cnnlab train --resume {out}`")
    assert "Traceback" not in proc.stderr
    assert torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["in_epoch"][0]["next_batch"] == 4
    proc = run([HELPER, "none", "0", "--resume", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_same_run(out, uninterrupted)


def test_ctrl_c_in_the_first_epoch_keeps_a_resumable_run(tmp_path, capsys, monkeypatch):
    import signal

    from cnnlab.cli import main
    from cnnlab.train.callbacks import Callback
    from cnnlab.train.trainer import Trainer

    class CtrlC(Callback):
        def on_step_end(self, trainer, step):
            if step.step == 2:
                os.kill(os.getpid(), signal.SIGINT)

    defaults = Trainer.default_callbacks
    monkeypatch.setattr(Trainer, "default_callbacks", lambda self: [*defaults(self), CtrlC()])
    out = tmp_path / "run"
    argv = ["train", *[a for a in ARGS if a != "--deterministic"], "--output", str(out)]
    # the handler before (Python's default, or SIG_IGN where a shell started the tests in the background)
    before = signal.getsignal(signal.SIGINT)
    assert main(argv) == 130
    assert "stopped by SIGINT in epoch 1 after optimiser step 2; checkpoint written" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before  # handlers put back
    ckpt = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert (ckpt["epoch"], ckpt["global_step"], ckpt["in_epoch"][0]["next_batch"]) == (0, 2, 4)
