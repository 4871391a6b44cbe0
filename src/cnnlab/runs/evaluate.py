"""Evaluate a finished run on its validation split or on a folder, and predict single images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from cnnlab import atomic
from cnnlab.data.dataset import load_images
from cnnlab.data.files import load_image_files
from cnnlab.data.imageset import ImageSet
from cnnlab.errors import UserError
from cnnlab.metrics import EpochMetrics, per_class_report, top_k_accuracy
from cnnlab.runs.ensemble import ensemble_probs, images_per_run
from cnnlab.runs.inference import predict_logits
from cnnlab.runs.plots import plot_confusion
from cnnlab.runs.run import LoadedRun, read_split


def evaluation_images(run: LoadedRun, data: str | None) -> tuple[ImageSet, str]:
    """The run's own validation split (default), or every image of ``data`` (its test/ part if it has one)."""
    if data is None:
        source = load_images(run.config.data, run.image_size, run.config.cache_dir, run.config.shapes_per_class)
        wanted = read_split(run.run_dir, "val")
        where = {n: i for i, n in enumerate(source.pool.names)}
        missing = [n for n in wanted if n not in where]
        if missing:
            raise UserError(f"{len(missing)} validation image(s) of the run are gone from its data, e.g. '{missing[0]}': "
                            "evaluate with --data DIR")
        return source.pool.subset([where[n] for n in wanted]), "val"
    source = load_images(data, run.image_size)
    images = source.test or source.pool
    if images.classes != run.classes:
        raise UserError(f"the classes in '{data}' ({', '.join(images.classes)}) differ from the run's "
                        f"({', '.join(run.classes)}): evaluate on a folder with the same class sub-folders")
    return images, "test" if source.test else Path(data).name


@dataclass
class Scores:
    """A model's scores on a set of images, computed in memory (nothing written)."""

    metrics: dict[str, float]  # loss, accuracy, macro precision/recall/F1, top{k}_accuracy, images
    per_class: list[dict]
    confusion: torch.Tensor  # counts, rows = true class
    logits: torch.Tensor  # N x classes


def score(run: LoadedRun, images: ImageSet, device: torch.device, top_k: tuple[int, ...] = (5,), tta: str = "none",
          others: list[tuple[LoadedRun, ImageSet]] | None = None) -> Scores:
    """Scores of ``run`` on ``images``; with ``tta`` or an ensemble (``others``: more runs, each with the
    same images at its own input size) of the averaged probabilities, whose log then stands for the
    logits (the loss is the cross-entropy of the averaged probabilities)."""
    members = [(run, images), *(others or [])]
    for other, s in members[1:]:
        if s.names != images.names:
            raise UserError(f"'{other.run_dir}' validates on other images than '{run.run_dir}' (another --seed or "
                            "--val-fraction): ensemble runs with the same split, or evaluate with --data DIR")
    if len(members) == 1 and tta == "none":
        logits = predict_logits(run.model, images.images, run.norm, device)
    else:
        probs = ensemble_probs([r for r, _ in members], [s.images for _, s in members], device, tta)
        logits = probs.clamp_min(1e-12).log()
    metrics = EpochMetrics(len(run.classes))
    loss = torch.nn.functional.cross_entropy(logits, images.labels, reduction="sum")
    metrics.update(logits, images.labels, loss)
    summary = metrics.compute()
    for k in top_k:
        summary[f"top{k}_accuracy"] = top_k_accuracy(logits, images.labels, k)
    summary["images"] = len(images)
    confusion = metrics.confusion_matrix()
    return Scores(summary, per_class_report(confusion, run.classes), confusion, logits)


@dataclass
class Evaluation:
    metrics: dict[str, float]
    per_class: list[dict]
    confusion: torch.Tensor
    out_dir: Path


def evaluation_name(split: str, runs: int, tta: str) -> str:
    """Folder name under RUN/evaluation/: the split, plus the TTA mode and ensemble size if any."""
    return split + ("" if tta == "none" else f"-tta-{tta}") + ("" if runs == 1 else f"-ensemble{runs}")


def evaluate(run: LoadedRun, images: ImageSet, split: str, device: torch.device, top_k: int = 5, tta: str = "none",
             others: list[tuple[LoadedRun, ImageSet]] | None = None) -> Evaluation:
    """Score ``images`` (with ``tta``; ``others``: more runs of an ensemble, each with the same images at
    its own size) and write ``metrics.json`` and ``confusion.png`` under the first run's
    ``evaluation/`` folder named by ``evaluation_name``."""
    s = score(run, images, device, (top_k,), tta, others)
    runs = [run, *(r for r, _ in others or [])]
    out_dir = run.run_dir / "evaluation" / evaluation_name(split, len(runs), tta)
    atomic.write_json(out_dir / "metrics.json", {
        "split": split, "epoch": run.epoch, "averaging": "accuracy: micro; precision/recall/F1: macro",
        "tta": tta, "runs": [str(r.run_dir) for r in runs], "weights": [r.weights for r in runs],
        "metrics": s.metrics, "per_class": s.per_class, "confusion": s.confusion.tolist(), "classes": run.classes,
    })
    plot_confusion(s.confusion, run.classes, out_dir / "confusion.png")
    return Evaluation(s.metrics, s.per_class, s.confusion, out_dir)


def per_class_table(rows: list[dict]) -> str:
    width = max(12, *(len(r["class"]) for r in rows))
    lines = [f"{'class':<{width}}  precision  recall     f1  support"]
    lines += [f"{r['class']:<{width}}  {r['precision']:9.4f}  {r['recall']:6.4f}  {r['f1']:.4f}  {r['support']:7d}" for r in rows]
    return "\n".join(lines)


def predict(runs: list[LoadedRun], paths: list[str], device: torch.device, top_k: int = 3, tta: str = "none") -> list[dict]:
    """Top-k classes of each image file by one run or an ensemble (mean probabilities), with ``tta``."""
    run = runs[0]
    probs = ensemble_probs(runs, images_per_run(runs, lambda size: load_image_files(paths, size)), device, tta)
    top = probs.topk(min(top_k, probs.shape[1]), dim=1)
    return [
        {"image": p, "top": [{"class": run.classes[int(i)], "probability": float(v)} for v, i in zip(vals, idx)]}
        for p, vals, idx in zip(paths, top.values, top.indices)
    ]
