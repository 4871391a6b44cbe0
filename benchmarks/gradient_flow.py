"""Gradient flow: the experiment's table, and what --log-grad-norms costs.

1. ``cnnlab experiment gradient-flow`` with its default budget (20 conv layers, shapes at 32 px, 5 epochs):
   first-layer and last-layer gradient norm, their ratio, validation accuracy.
2. Training time per epoch of ahe_cnn on shapes (64 px) with the logging off, every 50 steps and every
   step (grad_flow.png is drawn once, when training ends, and not counted). Epoch times on a shared machine vary by more than the 2% target, so the table also gives the
   time spent inside the logging callback itself (measured around its hooks) as a share of the epoch:
   that share is the overhead, free of the machine's noise. Target: <= 2% at every 50 steps.

Usage: python benchmarks/gradient_flow.py [--repeats R] [--epochs E] [--skip-experiment]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from cnnlab.data.dataset import load_data
from cnnlab.experiment.gradient_flow import Budget, format_table, run_gradient_flow
from cnnlab.runs.config import TrainConfig
from cnnlab.train.grad_norms import GradNorms
from cnnlab.train.trainer import Trainer


class TimedGradNorms(GradNorms):
    """GradNorms that measures the seconds spent in its own hooks: in each epoch's training steps, and
    in writing grad_norms.csv at the epoch's end (not part of the epoch time)."""

    def __init__(self, every: int) -> None:
        super().__init__(every)
        self.in_steps: list[float] = []
        self.writing: list[float] = []

    def on_epoch_start(self, trainer):  # type: ignore[no-untyped-def]
        self.in_steps.append(0.0)

    def on_before_step(self, trainer, step):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        super().on_before_step(trainer, step)
        self.in_steps[-1] += time.perf_counter() - t0

    def on_step_end(self, trainer, step):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        super().on_step_end(trainer, step)
        self.in_steps[-1] += time.perf_counter() - t0

    def on_epoch_end(self, trainer, row):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        super().on_epoch_end(trainer, row)
        self.writing.append(time.perf_counter() - t0)


def epoch_times(root: Path, every: int, data, epochs: int, tag: str) -> tuple[list[float], list[float], list[float]]:
    """Per epoch after the first (warm-up): training seconds, seconds in the logging hooks during them,
    seconds writing the CSV after them."""
    cfg = TrainConfig(model="ahe_cnn", image_size=64, epochs=epochs, batch_size=32, augment="none",
                      optimizer="adamw", lr=1e-3, output=str(root / tag))
    timed = TimedGradNorms(every) if every else None
    trainer = Trainer.from_config(cfg, data=data, callbacks=[timed] if timed else [])
    trainer.fit()
    times = [len(data.train) / row["images_per_s"] for row in trainer.history[1:]]
    if timed is None:
        return times, [0.0] * len(times), [0.0] * len(times)
    return times, timed.in_steps[1:], timed.writing[1:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="runs of each setting, interleaved (default 3)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is warm-up (default 3)")
    p.add_argument("--shapes-per-class", type=int, default=100)
    p.add_argument("--skip-experiment", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not args.skip_experiment:
            budget = Budget()
            t0 = time.perf_counter()
            results = run_gradient_flow(root / "experiment", budget)
            print(f"gradient-flow experiment, default budget ({time.perf_counter() - t0:.0f} s):")
            print(format_table(results))
            print()
        data = load_data(None, 64, 0.2, 0, None, args.shapes_per_class)
        settings = {"off": 0, "every 50 steps": 50, "every step": 1}
        runs: dict[str, tuple[list[float], list[float], list[float]]] = {k: ([], [], []) for k in settings}
        for r in range(args.repeats):  # interleaved, so a busy spell of the machine hits every setting
            for name, every in settings.items():
                for total, part in zip(runs[name], epoch_times(root, every, data, args.epochs, f"{r}-{every}")):
                    total += part
        steps = -(-len(data.train) // 32)
        print(f"ahe_cnn, shapes 64 px, {len(data.train)} training images ({steps} steps/epoch), "
              f"{args.repeats} x {args.epochs - 1} timed epochs")
        print(f"{'grad-norm logging':<18} {'epoch s (median)':>16} {'vs off':>8} {'in logging hooks':>17} "
              f"{'writing s/epoch':>16}")
        base = statistics.median(runs["off"][0])
        for name, (times, in_steps, writing) in runs.items():
            med = statistics.median(times)
            print(f"{name:<18} {med:>16.2f} {med / base - 1:>+8.1%} {sum(in_steps) / sum(times):>17.2%} "
                  f"{statistics.median(writing):>16.2f}")


if __name__ == "__main__":
    main()
