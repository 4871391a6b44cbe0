"""Training and data-pipeline throughput of cnnlab against plain PyTorch baselines.

1. Training images/s of ahe_cnn at 64x64: cnnlab's Trainer.train_epoch (exact accumulation
   bookkeeping, metrics, progress) vs a minimal hand-written loop over the same in-memory uint8 data
   and the same model. Target: cnnlab >= 0.95x the plain loop.
2. Data + augmentation images/s: cnnlab's decoded-once uint8 tensor + batched augmentation vs
   torchvision ImageFolder + per-image PIL transforms in a DataLoader. Target: >= 4x.

Usage: python benchmarks/throughput.py [--data DIR] [--images N] [--repeats R]
(default data: ../shared/data/ahe/64x64/train if present, else a generated folder of shapes).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from cnnlab.data.augment import PRESETS, augment_batch
from cnnlab.data.dataset import DataBundle, load_images
from cnnlab.data.normalize import Normalization
from cnnlab.data.shapes import make_shapes
from cnnlab.models import create_model
from cnnlab.train.config import TrainConfig
from cnnlab.train.inference import prepare
from cnnlab.train.trainer import Trainer

AHE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ahe" / "64x64" / "train"


def shapes_folder(root: Path, n_per_class: int) -> Path:
    s = make_shapes(n_per_class, 64, seed=0)
    for i, (img, label) in enumerate(zip(s.images, s.labels)):
        d = root / s.classes[int(label)]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(d / f"{i}.jpg", quality=95)
    return root


def plain_loop(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, norm: Normalization, bs: int) -> float:
    """The loop every tutorial writes: shuffle, slice, normalise, forward, backward, step. Two epochs;
    the second is timed (the first warms up allocators and oneDNN kernels, as it does for cnnlab)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    model.train()
    for _ in range(2):
        t0 = time.perf_counter()
        order = torch.randperm(len(labels))
        for i in range(0, len(labels), bs):
            idx = order[i : i + bs]
            x = norm(images[idx].float().div_(255)).contiguous(memory_format=torch.channels_last)
            loss = nn.functional.cross_entropy(model(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return len(labels) / (time.perf_counter() - t0)


def cnnlab_epoch(bundle: DataBundle, bs: int, augment: str, out: Path) -> float:
    """cnnlab's own epoch (metrics, accumulation plan, progress); second of two epochs timed."""
    cfg = TrainConfig(model="ahe_cnn", image_size=64, batch_size=bs, epochs=2, augment=augment, output=str(out),
                      val_fraction=0.0, schedule="none")
    trainer = Trainer(cfg, data=bundle)
    trainer.train_epoch()
    t0 = time.perf_counter()
    trainer.train_epoch()
    return len(bundle.train) / (time.perf_counter() - t0)


def bench_training(pool, n: int, repeats: int, bs: int, tmp: Path) -> list[tuple[str, float]]:
    sub = pool.subset(list(range(min(n, len(pool)))))
    bundle = DataBundle(sub, sub.subset([]), None, [], "bench")
    norm = Normalization.measure(sub.images)
    def plain() -> float:
        model = create_model("ahe_cnn", len(sub.classes)).to(memory_format=torch.channels_last)
        return plain_loop(model, sub.images, sub.labels, norm, bs)

    runs = {"plain PyTorch loop": plain,
            "cnnlab trainer (augment none)": lambda: cnnlab_epoch(bundle, bs, "none", Path(tempfile.mkdtemp(dir=tmp))),
            "cnnlab trainer (augment standard)": lambda: cnnlab_epoch(bundle, bs, "standard", Path(tempfile.mkdtemp(dir=tmp)))}
    rows: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    for r in range(repeats):  # interleaved, and each repeat starts with the next loop, so drift in
        torch.manual_seed(r)  # machine speed (turbo, neighbours) does not favour whichever runs first
        for name in names[r % len(names):] + names[: r % len(names)]:
            rows[name].append(runs[name]())
    return [(k, sorted(v)[len(v) // 2]) for k, v in rows.items()]


def bench_pipeline(folder: Path, pool, n: int, bs: int) -> list[tuple[str, float]]:
    norm = Normalization.measure(pool.images)
    pil = transforms.Compose([
        transforms.RandomResizedCrop(64, scale=(0.8, 1.0)), transforms.RandomHorizontalFlip(),
        transforms.RandomRotation(10), transforms.ColorJitter(0.2, 0.2, 0.2, 0.02),
        transforms.ToTensor(), transforms.Normalize(norm.mean, norm.std),
    ])
    ds = Subset(datasets.ImageFolder(str(folder), transform=pil), range(min(n, len(pool))))
    workers = min(2, os.cpu_count() or 1)
    loader = DataLoader(ds, batch_size=bs, shuffle=True, num_workers=workers, persistent_workers=False)
    t0 = time.perf_counter()
    count = sum(len(y) for _, y in loader)
    torchvision_rate = count / (time.perf_counter() - t0)

    g = torch.Generator().manual_seed(0)
    images = pool.images[: min(n, len(pool))]
    t0 = time.perf_counter()
    order = torch.randperm(len(images), generator=g)
    for i in range(0, len(images), bs):
        prepare(images[order[i : i + bs]], norm, torch.device("cpu"), PRESETS["standard"], g, channels_last=True)
    cnnlab_rate = len(images) / (time.perf_counter() - t0)
    return [(f"torchvision ImageFolder + PIL transforms, DataLoader({workers} workers)", torchvision_rate),
            ("cnnlab uint8 cache + batched augmentation (standard)", cnnlab_rate)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(AHE) if AHE.is_dir() else None)
    p.add_argument("--images", type=int, default=2048, help="images per training measurement")
    p.add_argument("--repeats", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=64)
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        folder = Path(a.data) if a.data else shapes_folder(tmp_path / "shapes", 300)
        print(f"data: {folder}")
        t0 = time.perf_counter()
        pool = load_images(str(folder), 64).pool
        print(f"decoded {len(pool)} images once in {time.perf_counter() - t0:.1f}s")

        train = bench_training(pool, a.images, a.repeats, a.batch_size, tmp_path)
        base = train[0][1]
        print(f"\n## Training, ahe_cnn 64x64, batch {a.batch_size}, {min(a.images, len(pool))} images, median of {a.repeats}")
        print("| loop | images/s | vs plain |\n|---|---:|---:|")
        for name, rate in train:
            print(f"| {name} | {rate:.1f} | {rate / base:.2f}x |")

        pipe = bench_pipeline(folder, pool, 4096, a.batch_size)
        base = pipe[0][1]
        print(f"\n## Data + augmentation only (no model), batch {a.batch_size}, up to 4096 images")
        print("| pipeline | images/s | vs torchvision |\n|---|---:|---:|")
        for name, rate in pipe:
            print(f"| {name} | {rate:.0f} | {rate / base:.1f}x |")


if __name__ == "__main__":
    main()
