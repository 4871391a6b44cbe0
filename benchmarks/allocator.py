"""Training speed with glibc's default malloc against cnnlab's ``keep_freed_memory`` (see cnnlab.memory).

Each measurement is a fresh process (the malloc settings are per process): a plain training loop over
the same in-memory images, the first epoch a warm-up, then the median images/s of the timed epochs,
with the page faults and kernel CPU time those epochs cost. The two settings alternate, so drift in
machine speed does not favour either.

Usage: python benchmarks/allocator.py [--repeats 3] [--epochs 3] [--images 512] [--models mobilenet_v2@128,ahe_cnn@64]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

AHE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ahe" / "64x64" / "train"


def child(model_name: str, size: int, images: int, epochs: int) -> dict[str, float]:
    """One process's measurement: a plain AdamW loop, ``light`` augmentation, channels_last, batch 64."""
    import torch
    from torch import nn

    from cnnlab.data.augment import PRESETS, augment_batch
    from cnnlab.data.dataset import load_images
    from cnnlab.data.normalize import Normalization
    from cnnlab.data.shapes import make_shapes
    from cnnlab.memory import keep_freed_memory
    from cnnlab.models import create_model, model_info

    kept = keep_freed_memory()
    if AHE.is_dir():
        pool = load_images(str(AHE), size).pool
        x_all, y_all = pool.images[:images], pool.labels[:images]
    else:
        s = make_shapes(images // 10 + 1, size, seed=0)
        x_all, y_all = s.images[:images], s.labels[:images]
    info = model_info(model_name)
    norm = Normalization(info.mean, info.std) if info.mean else Normalization.measure(x_all)
    model = create_model(model_name, 10).to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    rates, faults, sys_s = [], 0, 0.0
    for epoch in range(epochs + 1):
        before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for i in range(0, len(y_all), 64):
            g = torch.Generator().manual_seed(i)
            x = norm(augment_batch(x_all[i : i + 64].float().div_(255), PRESETS["light"], g), torch.channels_last)
            loss = nn.functional.cross_entropy(model(x), y_all[i : i + 64])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        after = resource.getrusage(resource.RUSAGE_SELF)
        if epoch:  # the first epoch warms up allocators and oneDNN kernels
            rates.append(len(y_all) / (time.perf_counter() - t0))
            faults += after.ru_minflt - before.ru_minflt
            sys_s += after.ru_stime - before.ru_stime
    return {"kept": kept, "rate": sorted(rates)[len(rates) // 2], "faults": faults / epochs, "sys": sys_s / epochs}


def measure(model: str, size: int, keep: bool, a: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, "CNNLAB_KEEP_FREED_MEMORY": "1" if keep else "0"}
    out = subprocess.run([sys.executable, __file__, "--child", f"{model}@{size}", "--images", str(a.images),
                          "--epochs", str(a.epochs)], env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="mobilenet_v2@128,ahe_cnn@64", help="model@pixels, comma-separated")
    p.add_argument("--repeats", type=int, default=3, help="processes per setting and model")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per process (after one warm-up epoch)")
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        name, size = a.child.split("@")
        print(json.dumps(child(name, int(size), a.images, a.epochs)))
        return
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {a.images} images, batch 64, float32, "
          f"median over {a.repeats} processes of each one's median of {a.epochs} timed epochs")
    print("| model | malloc | images/s | page faults per epoch | kernel CPU s per epoch | vs glibc default |")
    print("|---|---|---:|---:|---:|---:|")
    for spec in a.models.split(","):
        name, size = spec.split("@")
        runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        for r in range(a.repeats):
            for keep in (False, True) if r % 2 == 0 else (True, False):
                runs[keep].append(measure(name, int(size), keep, a))
        med = {k: {m: sorted(x[m] for x in v)[len(v) // 2] for m in ("rate", "faults", "sys")} for k, v in runs.items()}
        for keep, label in ((False, "glibc default"), (True, "keep_freed_memory")):
            m = med[keep]
            print(f"| {name} @{size} | {label} | {m['rate']:.1f} | {m['faults']:,.0f} | {m['sys']:.2f} | "
                  f"{m['rate'] / med[False]['rate']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
