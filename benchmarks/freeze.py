"""What freezing a backbone's first stages saves: training images/s of one step, per model and size.

A frozen stage (`cnnlab train --freeze N` trains the head and the top N stages) still runs forward, but
needs no backward pass: neither weight gradients nor gradients for its input. The first stages work on
the largest feature maps (stride 2 and 4), so they cost far more of a backward pass than their few
weights suggest. One optimisation step (forward, backward, AdamW) on a random batch in float32,
channels_last, with freed memory kept for reuse as `cnnlab train` does; the median of the timed steps
after a warm-up (``benchmarks/bf16.py``'s measurement). Whether freezing costs accuracy is for
``benchmarks/ahe_best.py`` to show (its "with stages 1-2 frozen" variants).

    python benchmarks/freeze.py [--models mobilenet_v2:96,mobilenet_v2:128,efficientnet_lite0:128] [--frozen 0,1,2,3]
"""

from __future__ import annotations

import argparse

import torch
from bf16 import images_per_second

from cnnlab.memory import keep_freed_memory
from cnnlab.models import create_model
from machine import describe


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="mobilenet_v2:96,mobilenet_v2:128,efficientnet_lite0:128",
                   help="comma-separated NAME:SIZE")
    p.add_argument("--frozen", default="0,1,2,3", help="comma-separated numbers of first stages frozen")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=6)
    a = p.parse_args()
    keep_freed_memory()
    print(f"{describe()}; float32, channels_last, batch {a.batch_size}, "
          f"median of {a.steps} steps")
    print("| model | px | stages frozen | --freeze | img/s | vs none frozen |\n|---|---:|---|---|---:|---:|")
    for item in a.models.split(","):
        name, size = item.split(":")
        stages = len(create_model(name, 10).stages)
        base = 0.0
        for frozen in sorted({0, *(int(f) for f in a.frozen.split(","))}):  # none frozen first: the baseline
            ips = images_per_second(name, int(size), False, True, a.batch_size, a.steps, frozen_stages=frozen)
            base = base or ips
            which = "none" if frozen == 0 else f"1-{frozen} of {stages}" if frozen > 1 else f"1 of {stages}"
            flag = "none" if frozen == 0 else str(stages - frozen)
            print(f"| {name} | {size} | {which} | {flag} | {ips:.0f} | {ips / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
