"""Train ahe_cnn from scratch on the AHE training images and report validation numbers.

The validation split is cnnlab's stratified, seeded 20% of every class of the training pool; the
official AHE test set is not used (it is an independent benchmark). Usage:

    python benchmarks/ahe.py [--data DIR] [--epochs N] [--image-size S] [other cnnlab train flags]

It runs `cnnlab train` with the recommended settings (any extra flags override them; --output is the
benchmark's own), then prints a table of validation accuracy and macro F1 by epoch with wall time.
The recommendation depends on the processor: bfloat16 autocast for 45 epochs where it is native,
float32 for 17 epochs elsewhere; both aim at 20 minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from cnnlab.cli import main as cnnlab

AHE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ahe" / "64x64" / "train"
COMMON = ["--model", "ahe_cnn", "--image-size", "64", "--batch-size", "64", "--optimizer", "adamw", "--lr", "2e-3",
          "--weight-decay", "5e-4", "--schedule", "onecycle", "--augment", "standard", "--label-smoothing", "0.1",
          "--seed", "0"]
# With native bfloat16 (AVX512-BF16 or AMX; measured on a 2-core AMD EPYC with AVX512-BF16: 501 against
# 288 img/s in float32 at 64 px), 45 epochs at 64 px take 17-18 minutes; two runs ended at 0.900 and
# 0.910 validation accuracy (best epochs 0.909 and 0.914). Without it oneDNN emulates bf16 (no speed-up
# expected; not measured here), so 17 float32 epochs, which fit 20 minutes here, reached 0.8845.
BF16 = ["--bf16", "--epochs", "45"]
FP32 = ["--no-bf16", "--epochs", "17"]


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 convolutions natively (private torch helpers, so guarded)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def main() -> None:
    extra = sys.argv[1:]
    if "--data" not in extra:
        if not AHE.is_dir():
            sys.exit(f"AHE images not found at {AHE}: pass --data DIR")
        extra = ["--data", str(AHE), *extra]
    out = Path("runs") / f"bench-ahe-{time.strftime('%Y%m%d-%H%M%S')}"
    recommended = COMMON + (BF16 if torch.cuda.is_available() or native_bf16() else FP32)
    args = ["train", *recommended, *extra, "--output", str(out)]
    print("cnnlab " + " ".join(args), flush=True)
    t0 = time.perf_counter()
    if cnnlab(args) != 0:
        sys.exit(1)
    wall = time.perf_counter() - t0
    history = json.loads((out / "history.json").read_text())
    print("\n| epoch | train acc | val acc | val F1 (macro) | val loss | elapsed (s) |\n|---:|---:|---:|---:|---:|---:|")
    elapsed = 0.0
    for h in history:
        elapsed += h["epoch_time_s"]
        print(f"| {h['epoch']} | {h['train_accuracy']:.4f} | {h['val_accuracy']:.4f} | {h['val_f1_macro']:.4f} "
              f"| {h['val_loss']:.4f} | {elapsed:.0f} |")
    best = max(history, key=lambda h: h["val_accuracy"])
    last = history[-1]
    print(f"\nlast epoch {last['epoch']}: validation accuracy {last['val_accuracy']:.4f} (macro F1 {last['val_f1_macro']:.4f})")
    print(f"best validation accuracy {best['val_accuracy']:.4f} (macro F1 {best['val_f1_macro']:.4f}) at epoch "
          f"{best['epoch']}; total wall time {wall / 60:.1f} min including data loading; run: {out}")


if __name__ == "__main__":
    main()
