"""bfloat16 autocast against float32, per model and input size: training images/s of one step.

One optimisation step (forward, backward, AdamW) on a random batch, channels_last and NCHW, with and
without ``torch.autocast("cpu", torch.bfloat16)``; the median of the timed steps after a warm-up. This
is what `--bf16` changes in `cnnlab train`, without data loading, so it says where bf16 pays on this
processor; whether it costs accuracy is for the AHE benchmarks to show. Like `cnnlab train`, the process
keeps freed memory for reuse (cnnlab.memory): without it the kernel maps and zeroes every step's
activations afresh, a cost that grows with their size and so flatters bf16 (half the bytes) against
float32. ``CNNLAB_KEEP_FREED_MEMORY=0`` measures with glibc's defaults instead.

    python benchmarks/bf16.py [--models ahe_cnn:64,mobilenet_v2:96,mobilenet_v2:128,efficientnet_lite0:128]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from cnnlab.memory import keep_freed_memory
from cnnlab.models import create_model
from machine import describe


def step_times(name: str, size: int, bf16: bool, channels_last: bool, batch: int, steps: int,
               compiled: bool = False, frozen_stages: int = 0) -> list[float]:
    """Seconds of ``steps + 1`` optimisation steps; the first includes kernel selection, allocations and,
    with ``compiled``, torch.compile's compilation. ``frozen_stages``: the backbone's first stages kept
    frozen, as `cnnlab train --freeze` does (BatchNorm in eval mode, no gradients, so no backward)."""
    torch.manual_seed(0)
    model = create_model(name, 10)
    if frozen_stages:  # the call `cnnlab train --freeze` makes; it also puts the frozen stages in eval mode
        model.set_trainable_stages(len(model.stages) - frozen_stages)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    forward = torch.compile(model, dynamic=False) if compiled else model  # as `cnnlab train --compile`
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=fmt)
    y = torch.randint(10, (batch,))
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            out = forward(x)
        loss = nn.functional.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return times


def images_per_second(name: str, size: int, bf16: bool, channels_last: bool, batch: int, steps: int,
                      frozen_stages: int = 0) -> float:
    """Training images/s: the median of the steps after the first (which is not timed)."""
    times = step_times(name, size, bf16, channels_last, batch, steps, frozen_stages=frozen_stages)
    return batch / statistics.median(times[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="ahe_cnn:64,mobilenet_v2:96,mobilenet_v2:128,efficientnet_lite0:128",
                   help="comma-separated NAME:SIZE")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=6)
    a = p.parse_args()
    malloc = "freed memory kept for reuse" if keep_freed_memory() else "glibc's default malloc"
    print(f"{describe()}; batch {a.batch_size}, median of {a.steps} steps; "
          f"{malloc}")
    print("| model | px | layout | float32 img/s | bf16 img/s | bf16 vs float32 |\n|---|---:|---|---:|---:|---:|")
    for item in a.models.split(","):
        name, size = item.split(":")
        for channels_last in (True, False):
            fp32, bf16 = (images_per_second(name, int(size), b, channels_last, a.batch_size, a.steps) for b in (False, True))
            layout = "channels_last" if channels_last else "NCHW"
            print(f"| {name} | {size} | {layout} | {fp32:.0f} | {bf16:.0f} | {bf16 / fp32:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
