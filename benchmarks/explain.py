"""Explanation costs and findings for ahe_cnn trained on AHE (Architectural Heritage Elements).

1. Grad-CAM throughput: images/s of batched Grad-CAM and Grad-CAM++ at the default layer (and, as the
   worst case, at the first conv block) against a plain forward + backward of the same batch
   (cross-entropy, weight gradients: one training step without the optimiser). Target: Grad-CAM >=
   0.75x the plain pass. Median of --repeats after a warm-up.
2. Class-model images: seconds per class for ``plain`` and ``regularized`` at the same step budget
   (all classes in one batch), with the mean target probability and high-frequency energy reached.
3. Unit selectivity by layer on the run's validation split: median index, fraction of units above
   0.5, dead units.

The run: --run DIR reuses a finished ahe_cnn run; otherwise a short one is trained on the AHE images
with ``cnnlab train`` (--epochs, --image-size) into runs/bench-explain-ahe-<time>.

    python benchmarks/explain.py [--run DIR] [--epochs 3] [--image-size 32] [--batch 64] [--repeats 5]
                                 [--dream-steps 1000] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnlab.cli import main as cnnlab
from cnnlab.data.imageset import ImageSet
from cnnlab.explain.cam import CAM_METHODS, GradCAM
from cnnlab.explain.dream import RECIPES, dream, recipe
from cnnlab.explain.layers import conv_units, default_cam_layer
from cnnlab.explain.selectivity import measure_selectivity, selectivity_table
from cnnlab.explain.targets import ClassTarget
from cnnlab.runs.evaluate import evaluation_images
from cnnlab.data.batch import prepare
from cnnlab.runs.run import LoadedRun, load_run
from machine import describe

AHE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ahe" / "64x64" / "train"


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def train_short_run(epochs: int, image_size: int) -> Path:
    if not AHE.is_dir():
        sys.exit(f"AHE images not found at {AHE}: pass --run DIR of an ahe_cnn run")
    out = Path("runs") / f"bench-explain-ahe-{time.strftime('%Y%m%d-%H%M%S')}"
    args = ["train", "--data", str(AHE), "--model", "ahe_cnn", "--image-size", str(image_size), "--epochs", str(epochs),
            "--batch-size", "64", "--lr", "2e-3", "--schedule", "onecycle", "--augment", "standard", "--seed", "0",
            "--output", str(out)]
    print("cnnlab " + " ".join(args), flush=True)
    t0 = time.perf_counter()
    if cnnlab(args) != 0:
        sys.exit("training failed")
    print(f"trained in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    return out


def gradcam_throughput(run: LoadedRun, images: torch.Tensor, repeats: int) -> None:
    x = prepare(images, run.norm, torch.device("cpu"))
    labels = torch.zeros(len(x), dtype=torch.long)
    model, layer = run.model, default_cam_layer(run.model, run.image_size)
    first = conv_units(model, run.image_size)[0].layer

    def plain_pass() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), labels).backward()

    model.eval()
    plain = median_seconds(plain_pass, repeats)
    model.zero_grad(set_to_none=True)
    print(f"\n## Grad-CAM throughput ({len(x)} images of {run.image_size}x{run.image_size}, layer {layer}, "
          f"median of {repeats})\n")
    print("| pass | seconds | images/s | vs plain |\n|---|---:|---:|---:|")
    print(f"| plain forward + backward | {plain:.4f} | {len(x) / plain:.0f} | 1.00x |")
    cams = [(f"{method} (batched)", cls(model, layer)) for method, cls in CAM_METHODS.items()]
    cams.append((f"gradcam at {first} (backward through every layer)", GradCAM(model, first)))
    for name, cam in cams:
        s = median_seconds(lambda: cam(x), repeats)
        print(f"| {name} | {s:.4f} | {len(x) / s:.0f} | {plain / s:.2f}x |")


def dream_cost(run: LoadedRun, steps: int) -> None:
    targets = [ClassTarget(k) for k in range(len(run.classes))]
    k = torch.arange(len(targets))
    print(f"\n## Class-model images ({len(targets)} classes in one batch, {steps} steps, "
          f"{run.image_size}x{run.image_size})\n")
    print("| method | seconds per class | mean target probability | min | mean high-frequency energy |\n"
          "|---|---:|---:|---:|---:|")
    for method in RECIPES:
        r = dream(run.model, run.norm, targets, run.image_size, recipe(method, steps))
        p = r.probabilities[k, k]
        print(f"| {method} | {r.seconds / len(targets):.2f} | {p.mean():.3f} | {p.min():.3f} | "
              f"{r.high_frequency.mean():.3f} |")


def selectivity(run: LoadedRun, data: ImageSet, split: str) -> None:
    t0 = time.perf_counter()
    layers = measure_selectivity(run.model, data, run.norm, run.image_size, torch.device("cpu"))
    print(f"\n## Unit selectivity by layer ({split} split, {len(data)} images, "
          f"{time.perf_counter() - t0:.1f}s)\n")
    print(selectivity_table([layer.summary() for layer in layers]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="finished ahe_cnn run to reuse (default: train a short one on AHE)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--dream-steps", type=int, default=1000)
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run_dir = Path(args.run) if args.run else train_short_run(args.epochs, args.image_size)
    run = load_run(run_dir)
    history = run_dir / "history.json"
    print(f"\nrun {run_dir}: {run.config.model} at {run.image_size}px, epoch {run.epoch}; {describe()}")
    if history.is_file():
        best = max(json.loads(history.read_text()), key=lambda h: h["val_accuracy"])
        print(f"best validation accuracy {best['val_accuracy']:.4f} at epoch {best['epoch']}")
    evaluation = evaluation_images(run, None)
    data, split = evaluation.images, evaluation.name
    gradcam_throughput(run, data.images[: args.batch], args.repeats)
    dream_cost(run, args.dream_steps)
    selectivity(run, data, split)


if __name__ == "__main__":
    main()
