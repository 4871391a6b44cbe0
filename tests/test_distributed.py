"""torchrun + DistributedDataParallel on CPU (gloo): two ranks with accumulation give the same
parameters (and logged gradient norms) as one process with the same global window, whether as two
processes of one launcher or as two "nodes" (two launchers, c10d rendezvous on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnlab.errors import UserError
from cnnlab.runs.grad_flow import read_grad_norms
from cnnlab.train.distributed import init_distributed

COMMON = ["--shapes-per-class", "6", "--image-size", "16", "--epochs", "1", "--augment", "none",
          "--dropout", "0", "--model-option", "batchnorm=false", "--optimizer", "sgd", "--lr", "0.05",
          "--val-fraction", "0.2", "--no-channels-last", "--seed", "5", "--log-grad-norms", "1",
          "--device", "cpu"]  # gloo on CPU even where a GPU is visible: the ranks share this machine
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def single_process(tmp_path_factory) -> tuple[Path, str]:
    """One process with micro-batch 10 and K=2: windows of 20, 20 and 8 over the 48 training images.
    Returns the run directory and what it printed on stderr."""
    single = tmp_path_factory.mktemp("single") / "run"
    proc = subprocess.run([sys.executable, "-m", "cnnlab", "train", *COMMON, "--batch-size", "10", "--accumulate", "2",
                           "--output", str(single)], capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return single, proc.stderr


def assert_same_weights(run: Path, reference: Path) -> None:
    a = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    b = torch.load(reference / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    for k in b["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-4, atol=1e-6, msg=k)
    assert a["history"][0]["val_accuracy"] == b["history"][0]["val_accuracy"]


def test_ddp_two_ranks_with_accumulation_equal_one_process(tmp_path, single_process):
    # 48 training images. Two ranks x micro-batch 5 x K=2 -> windows of 20, 20 and a short 8 (one
    # micro-batch of 8 dealt 4 + 4); one process with micro-batch 10 and K=2 has the same windows.
    # A --time-budget the run keeps changes nothing, with rank 0's clock broadcast after every step.
    ddp = tmp_path / "ddp"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "cnnlab",
         "train", *COMMON, "--batch-size", "5", "--accumulate", "2", "--time-budget", "600", "--output", str(ddp)],
        capture_output=True, text=True, env=ENV, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = single_process[0]
    assert_same_weights(ddp, single)
    # Gradient norms are of the all-reduced window gradient: the single process's, not one rank's half.
    ddp_norms, single_norms = read_grad_norms(ddp), read_grad_norms(single)
    assert [r["step"] for r in ddp_norms] == [r["step"] for r in single_norms] and len({r["step"] for r in ddp_norms}) == 3
    for x, y in zip(ddp_norms, single_norms):
        assert x["layer"] == y["layer"] and x["grad_norm"] == pytest.approx(y["grad_norm"], rel=1e-4)


def test_ddp_with_compile_and_accumulation_equals_one_eager_process(tmp_path, single_process):
    # --compile under DDP (compiled DDP module, no_sync inside windows) trains the weights eager training does.
    ddp = tmp_path / "ddp"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "cnnlab",
         "train", *COMMON, "--batch-size", "5", "--accumulate", "2", "--compile", "--output", str(ddp)],
        capture_output=True, text=True, env=ENV, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_weights(ddp, single_process[0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two torchrun launchers and their workers on 2 cores: about 45 s alone, more on a busy machine
def test_two_nodes_one_process_each_equal_one_process_and_all_reduce_once_per_step(tmp_path, single_process):
    """Two torchrun launchers (``--nnodes 2 --nproc-per-node 1``, c10d rendezvous on 127.0.0.1) as two
    machines would run them: the same weights as one process with the same global batch, one gradient
    all-reduce per optimiser step (not per micro-batch), and the effective batch printed and recorded."""
    env = {**ENV, "COUNT_DIR": str(tmp_path), "PYTHONPATH": os.pathsep.join(sys.path)}
    port = _free_port()
    two = tmp_path / "two_nodes"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "cnnlab-test",
                "--max-restarts", "0", str(Path(__file__).with_name("ddp_count_allreduce.py")),
                "train", *COMMON, "--batch-size", "5", "--accumulate", "2", "--output", str(two)]
    nodes = [subprocess.Popen(launcher, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    for node, (_, err) in zip(nodes, outputs):
        assert node.returncode == 0, err[-3000:]
    assert_same_weights(two, single_process[0])
    # 48 training images in windows of 20, 20 and 8: three optimiser steps, three all-reduce rounds
    for rank in (0, 1):
        counts = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert counts == {"allreduce_rounds": 3, "optimizer_steps": 3}, (rank, counts)
    stderr = "".join(err for _, err in outputs)
    assert "effective batch 20 = micro-batch 5 x accumulate 2 x 2 processes" in stderr
    assert "# effective batch 20 = micro-batch 5 x accumulate 2 x 2 processes" in (two / "config.yaml").read_text()
    assert "effective batch 20 = micro-batch 10 x accumulate 2 x 1 process" in single_process[1]


def test_more_local_ranks_than_gpus_is_a_one_line_error(monkeypatch):
    """torchrun --nproc-per-node 2 on a one-GPU node: rank 1 says what to change instead of CUDA's
    "invalid device ordinal" (seen on an H200), before any process group is started."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UserError, match=r"local rank 1, but this node has 1 CUDA GPU\(s\): use --nproc-per-node 1 "
                                        r"\(one process per GPU\), or --device cpu"):
        init_distributed("cuda")
    assert not torch.distributed.is_initialized()
