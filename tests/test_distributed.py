"""torchrun + DistributedDataParallel on CPU (gloo): two ranks with accumulation give the same
parameters (and logged gradient norms) as one process with the same global window."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from cnnlab.runs.grad_flow import read_grad_norms

COMMON = ["--shapes-per-class", "6", "--image-size", "16", "--epochs", "1", "--augment", "none",
          "--dropout", "0", "--model-option", "batchnorm=false", "--optimizer", "sgd", "--lr", "0.05",
          "--val-fraction", "0.2", "--no-channels-last", "--seed", "5", "--log-grad-norms", "1"]


def test_ddp_two_ranks_with_accumulation_equal_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # 48 training images. Two ranks x micro-batch 5 x K=2 -> windows of 20, 20 and a short 8 (one
    # micro-batch of 8 dealt 4 + 4); one process with micro-batch 10 and K=2 has the same windows.
    ddp = tmp_path / "ddp"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "cnnlab",
         "train", *COMMON, "--batch-size", "5", "--accumulate", "2", "--output", str(ddp)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = tmp_path / "single"
    proc = subprocess.run([sys.executable, "-m", "cnnlab", "train", *COMMON, "--batch-size", "10", "--accumulate", "2",
                           "--output", str(single)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = torch.load(ddp / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(single / "checkpoints" / "last.pt", weights_only=True)
    for k in b["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-4, atol=1e-6, msg=k)
    assert a["history"][0]["val_accuracy"] == b["history"][0]["val_accuracy"]
    # Gradient norms are of the all-reduced window gradient: the single process's, not one rank's half.
    ddp_norms, single_norms = read_grad_norms(ddp), read_grad_norms(single)
    assert [r["step"] for r in ddp_norms] == [r["step"] for r in single_norms] and len({r["step"] for r in ddp_norms}) == 3
    for x, y in zip(ddp_norms, single_norms):
        assert x["layer"] == y["layer"] and x["grad_norm"] == pytest.approx(y["grad_norm"], rel=1e-4)
