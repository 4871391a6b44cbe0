"""``cnnlab embed evaluate``: the protocol on a run's own dev and test identities, its figures, and
the calibrated threshold that ``verify`` and ``identify`` use.

Written under ``RUN/evaluation/test/``: ``metrics.json`` (one entry per method: the CNN, and with
baselines Eigenfaces and ImageNet features), ``roc.png``, ``cmc.png``, ``distances.png`` (the CNN's);
and ``RUN/threshold.json`` with the model fingerprint it belongs to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from cnnlab import atomic
from cnnlab.data.split import IdentitySplit
from cnnlab.embed.config import EmbedConfig
from cnnlab.embed.data import load_faces
from cnnlab.embed.encoders import Eigenfaces, imagenet_encoder
from cnnlab.embed.plots import plot_cmc, plot_distances, plot_roc
from cnnlab.embed.protocol import ProtocolResult, evaluate_protocol
from cnnlab.embed.run import LoadedEmbedder
from cnnlab.errors import UserError

THRESHOLD_FILE = "threshold.json"
IMAGENET_SIZE = 112  # ImageNet MobileNetV2 features: best of 64 / 112 / 160 px on ORL (EER 0.16 / 0.14 / 0.17)


@dataclass
class RunEvaluation:
    results: dict[str, ProtocolResult]  # method -> result; "cnn" first
    out_dir: Path


def baseline_results(cfg: EmbedConfig, split: IdentitySplit, rule: str | float, n_enrolled: int,
                     device: torch.device) -> dict[str, ProtocolResult]:
    """Eigenfaces (fitted on ``split.train``) and off-the-shelf ImageNet MobileNetV2 features through
    the same protocol; the ImageNet network sees the same people loaded at its own size."""
    eigenfaces = Eigenfaces(split.train, seed=cfg.seed)
    large = load_faces(cfg, IMAGENET_SIZE)
    return {
        "eigenfaces": evaluate_protocol(eigenfaces, split, rule, n_enrolled, cfg.seed),
        "imagenet_mobilenet_v2": evaluate_protocol(imagenet_encoder(device, image_size=IMAGENET_SIZE), large, rule,
                                                   n_enrolled, cfg.seed),
    }


def evaluate_run(run: LoadedEmbedder, rule: str | float, n_enrolled: int, baselines: bool = False) -> RunEvaluation:
    split = run.split()
    results = {"cnn": evaluate_protocol(run.encoder, split, rule, n_enrolled, run.config.seed)}
    if baselines:
        results.update(baseline_results(run.config, split, rule, n_enrolled, run.encoder.device))
    out = run.run_dir / "evaluation" / "test"
    cnn = results["cnn"]
    atomic.write_json(out / "metrics.json", {name: r.summary() for name, r in results.items()})
    plot_roc(cnn, out / "roc.png")
    plot_cmc(cnn, out / "cmc.png")
    plot_distances(cnn, out / "distances.png")
    write_threshold(run, cnn.threshold, str(rule))
    return RunEvaluation(results, out)


def write_threshold(run: LoadedEmbedder, threshold: float, rule: str) -> Path:
    return atomic.write_json(run.run_dir / THRESHOLD_FILE,
                             {"threshold": threshold, "rule": rule, "fingerprint": run.fingerprint})


def read_threshold(run: LoadedEmbedder) -> float:
    """The dev-calibrated threshold of this run's model (written by ``cnnlab embed evaluate``)."""
    path = run.run_dir / THRESHOLD_FILE
    if not path.is_file():
        raise UserError(f"'{run.run_dir}' has no calibrated threshold yet: run `cnnlab embed evaluate {run.run_dir}` "
                        "first, or pass --threshold")
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("fingerprint") != run.fingerprint:
        raise UserError(f"{path} was calibrated for another checkpoint: run `cnnlab embed evaluate {run.run_dir}` again")
    return float(data["threshold"])
