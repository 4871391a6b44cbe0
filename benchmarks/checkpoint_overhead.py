"""What --checkpoint-every costs: the time of one mid-epoch checkpoint against one optimiser step.

For each model it builds the trainer as `cnnlab train` would (built-in shapes at the given size, batch
64), trains a few steps to time an optimiser step, then writes the mid-epoch checkpoint (model,
optimiser, schedule, RNG, the epoch's order, seeds and metric inputs so far) the way --checkpoint-every
does, and prints a table: milliseconds per checkpoint, per step, and the overhead at a few intervals.
Usage:

    python benchmarks/checkpoint_overhead.py [--models ahe_cnn,mobilenet_v2] [--image-size 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from cnnlab.runs.checkpoint import checkpoint_path
from cnnlab.runs.config import TrainConfig
from cnnlab.train.callbacks import Callback
from cnnlab.train.trainer import Trainer

INTERVALS = (10, 50, 200)


class StepTimes(Callback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self.t0 = time.perf_counter()

    def on_step_end(self, trainer: Trainer, step) -> None:  # noqa: ANN001
        now = time.perf_counter()
        self.times.append(now - self.t0)
        self.t0 = now


def measure(model: str, image_size: int, repeats: int, out: str) -> dict[str, float]:
    steps = StepTimes()
    cfg = TrainConfig(model=model, image_size=image_size, shapes_per_class=40, batch_size=64, epochs=1,
                      augment="standard", output=os.path.join(out, model))
    trainer = Trainer.from_config(cfg, callbacks=[steps])
    trainer.fit()  # 320 images: 5 steps; the first warms up
    step_s = statistics.median(steps.times[1:])
    trainer.progress = _mid_epoch_progress(trainer)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        trainer.checkpoint_in_epoch()
        times.append(time.perf_counter() - t0)
    size = checkpoint_path(trainer.run_dir, "last").stat().st_size
    return {"params": sum(p.numel() for p in trainer.model.parameters()), "mb": size / 1e6,
            "ckpt_ms": 1e3 * statistics.median(times), "step_ms": 1e3 * step_s}


def _mid_epoch_progress(trainer: Trainer):  # noqa: ANN202
    """Half of an AHE-sized epoch (8,104 images, micro-batches of 64) done: what the checkpoint carries."""
    from cnnlab.train.mid_epoch import EpochProgress

    n, batch = 8104, 64
    progress = EpochProgress(torch.randperm(n), list(range(n // batch + 1)))
    for i in range(n // batch // 2):
        progress.record(i, torch.randn(batch, 10), torch.randint(10, (batch,)), torch.tensor(1.0))
    return progress


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="ahe_cnn,mobilenet_v2")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    head = (f"{'model':<14} {'params':>8} {'ckpt MB':>8} {'ms/ckpt':>8} {'ms/step':>8} "
            + " ".join(f"{'every ' + str(k):>9}" for k in INTERVALS))
    print(f"--checkpoint-every overhead, {args.image_size} px, batch 64, {torch.get_num_threads()} threads "
          f"(overhead = checkpoint time / (interval x step time))")
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory() as out:
        for model in args.models.split(","):
            r = measure(model, args.image_size, args.repeats, out)
            over = " ".join(f"{100 * r['ckpt_ms'] / (k * r['step_ms']):8.1f}%" for k in INTERVALS)
            print(f"{model:<14} {r['params'] / 1e6:7.1f}M {r['mb']:8.1f} {r['ckpt_ms']:8.0f} {r['step_ms']:8.0f} {over}")


if __name__ == "__main__":
    main()
