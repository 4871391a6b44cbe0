"""Forward+backward time of the NumPy reference convolution against PyTorch on CPU.

Workload (from issue 5): input 16x32x64x64, 64 filters of 3x3, stride 1, padding 1, float32. Rows:
the vectorised im2col/col2im NumPy conv, ``torch.nn.functional.conv2d`` with autograd, and the naive
loop version (one einsum per output position) for scale. Each time is the median of ``--repeats``
runs after one warm-up; the naive version runs once. All implementations see the same arrays and the
script reports how far their outputs and gradients are from PyTorch's (max abs difference over max
magnitude; float32 sums over up to 65536 terms differ in the 5th-7th digit by summation order alone).

    python benchmarks/reference.py [--repeats 5] [--threads N] [--skip-naive]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.reference.conv import ConvGeometry, conv2d_backward, conv2d_forward
from cnnlab.reference.conv_naive import conv2d_backward_naive, conv2d_forward_naive
from machine import processor_name

Result = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # out, dx, dw, db


def timed(
    fn: Callable[[], tuple[Result, tuple[float, float]]], repeats: int
) -> tuple[list[float], list[float], Result]:
    """Call ``fn`` ``repeats`` times; collect its (forward, backward) seconds and keep the last result."""
    forward, backward = [], []
    result = None
    for _ in range(repeats):
        result, (f, b) = fn()
        forward.append(f)
        backward.append(b)
    assert result is not None
    return forward, backward, result


def numpy_vectorised(x, w, b, g, geometry) -> tuple[Result, tuple[float, float]]:
    t0 = time.perf_counter()
    out, cache = conv2d_forward(x, w, b, geometry)
    t1 = time.perf_counter()
    dx, dw, db = conv2d_backward(g, cache)
    t2 = time.perf_counter()
    return (out, dx, dw, db), (t1 - t0, t2 - t1)


def numpy_naive(x, w, b, g, geometry) -> tuple[Result, tuple[float, float]]:
    t0 = time.perf_counter()
    out = conv2d_forward_naive(x, w, b, geometry)
    t1 = time.perf_counter()
    dx, dw, db = conv2d_backward_naive(g, x, w, geometry)
    t2 = time.perf_counter()
    return (out, dx, dw, db), (t1 - t0, t2 - t1)


def pytorch(x, w, b, g, geometry) -> tuple[Result, tuple[float, float]]:
    xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    gt = torch.from_numpy(g)
    t0 = time.perf_counter()
    out = F.conv2d(xt, wt, bt, geometry.stride, geometry.padding, geometry.dilation)
    t1 = time.perf_counter()
    out.backward(gt)
    t2 = time.perf_counter()
    return (out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()), (t1 - t0, t2 - t1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="PyTorch intra-op threads")
    parser.add_argument("--skip-naive", action="store_true", help="leave out the slow loop version")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    geometry = ConvGeometry((3, 3), padding=(1, 1))
    x = rng.standard_normal((16, 32, 64, 64), dtype=np.float32)
    w = rng.standard_normal((64, 32, 3, 3), dtype=np.float32) / (32 * 9) ** 0.5
    b = rng.standard_normal(64, dtype=np.float32)
    g = rng.standard_normal((16, 64, 64, 64), dtype=np.float32)

    runs = {"numpy im2col/col2im": (numpy_vectorised, args.repeats), "torch.nn.functional.conv2d": (pytorch, args.repeats)}
    if not args.skip_naive:
        runs["numpy naive loop"] = (numpy_naive, 1)
    timings = {}
    for name, (fn, repeats) in runs.items():
        if repeats > 1:
            fn(x, w, b, g, geometry)  # warm-up: allocator, BLAS threads, oneDNN primitive cache
        timings[name] = timed(lambda fn=fn: fn(x, w, b, g, geometry), repeats)

    reference = timings["torch.nn.functional.conv2d"]
    torch_total = np.median(np.add(reference[0], reference[1]))
    print("conv2d fwd+bwd, input 16x32x64x64, 64 filters 3x3, stride 1, padding 1, float32")
    print(f"{processor_name()}, numpy {np.__version__}, torch {torch.__version__}, "
          f"torch threads {torch.get_num_threads()}, median of {args.repeats} runs\n")
    print("| implementation | forward ms | backward ms | fwd+bwd ms | vs torch | max rel diff vs torch (out, dx, dw, db) |")
    print("|---|---:|---:|---:|---:|---|")
    for name, (forward, backward, result) in timings.items():
        total = np.median(np.add(forward, backward))
        diffs = ", ".join(f"{np.max(np.abs(a - r)) / np.max(np.abs(r)):.0e}" for a, r in zip(result, reference[2]))
        print(f"| {name} | {np.median(forward) * 1e3:.0f} | {np.median(backward) * 1e3:.0f} | {total * 1e3:.0f} "
              f"| {total / torch_total:.1f}x | {diffs} |")


if __name__ == "__main__":
    main()
