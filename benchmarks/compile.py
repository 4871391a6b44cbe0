"""torch.compile against eager, per model, input size and precision: training images/s of one step,
and what the compilation costs.

One optimisation step (forward, backward, AdamW) on a random batch in channels_last, eager and under
``torch.compile(model, dynamic=False)`` as `cnnlab train --compile` runs it; the median of the timed
steps after the first, and the first step's seconds (the compilation, from an empty inductor cache
unless --warm-cache), each measured in a fresh process with cnnlab's memory reuse, as `cnnlab train`
runs. `cnnlab train --compile` pays the compilation once per image size of a run.

    python benchmarks/compile.py [--models ahe_cnn:48:bf16,ahe_cnn:64:bf16,mobilenet_v2:128:fp32,...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from machine import describe


def in_fresh_process(name: str, size: int, bf16: bool, batch: int, steps: int, compiled: bool) -> list[float]:
    """``step_times`` in a new Python process: no compiled code, worker pool or allocator state carried
    over from the previous measurement."""
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from bf16 import step_times; "
            "from cnnlab.memory import keep_freed_memory; keep_freed_memory(); "
            f"print(json.dumps(step_times({name!r}, {size}, {bf16}, True, {batch}, {steps}, compiled={compiled})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="ahe_cnn:48:bf16,ahe_cnn:64:bf16,mobilenet_v2:128:fp32",
                   help="comma-separated NAME:SIZE:fp32|bf16")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warm-cache", action="store_true", help="keep inductor's usual cache (compiles faster the second time)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        if not a.warm_cache:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        print(f"{describe()}; batch {a.batch_size}, median of "
              f"{a.steps} steps; {'warm' if a.warm_cache else 'empty'} inductor cache")
        print("| model | px | precision | eager img/s | compiled img/s | compiled vs eager | compile s |\n"
              "|---|---:|---|---:|---:|---:|---:|")
        for item in a.models.split(","):
            name, size, precision = item.split(":")
            runs = {c: in_fresh_process(name, int(size), precision == "bf16", a.batch_size, a.steps, c)
                    for c in (False, True)}
            eager, fast = (a.batch_size / statistics.median(runs[c][1:]) for c in (False, True))
            print(f"| {name} | {size} | {precision} | {eager:.0f} | {fast:.0f} | {fast / eager:.2f}x | "
                  f"{runs[True][0]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
