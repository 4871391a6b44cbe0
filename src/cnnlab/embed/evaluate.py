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

from cnnlab import atomic
from cnnlab.data.imageset import ImageSet
from cnnlab.embed.encoders import Eigenfaces, imagenet_encoder
from cnnlab.embed.plots import plot_cmc, plot_distances, plot_roc
from cnnlab.embed.protocol import Encoder, ProtocolResult, evaluate_protocol
from cnnlab.embed.run import LoadedEmbedder
from cnnlab.errors import UserError

THRESHOLD_FILE = "threshold.json"


@dataclass
class RunEvaluation:
    results: dict[str, ProtocolResult]  # method -> result; "cnn" first
    out_dir: Path


def baseline_encoders(run: LoadedEmbedder, train_images: ImageSet) -> dict[str, Encoder]:
    return {"eigenfaces": Eigenfaces(train_images, seed=run.config.seed),
            "imagenet_mobilenet_v2": imagenet_encoder(run.encoder.device)}


def evaluate_run(run: LoadedEmbedder, rule: str | float, n_enrolled: int, baselines: bool = False) -> RunEvaluation:
    split = run.split()
    encoders: dict[str, Encoder] = {"cnn": run.encoder}
    if baselines:
        encoders.update(baseline_encoders(run, split.train))
    results = {name: evaluate_protocol(enc, split, rule, n_enrolled, run.config.seed) for name, enc in encoders.items()}
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
