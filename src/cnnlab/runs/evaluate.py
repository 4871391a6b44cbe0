"""Evaluate a finished run on its validation split or on a folder, and predict image files.

A folder may hold any subset of the run's classes (a test folder with 2 of 10): labels are mapped to
the run's class indices and macro averages are taken over the classes present. Results of each data
set go to ``RUN/evaluation/<name>/``, and a name already used by another data set is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_confusion_matrix

from cnnlab import atomic
from cnnlab.data.dataset import SHAPES, load_images
from cnnlab.data.files import read_image, to_batch
from cnnlab.data.folder import DEFAULT_MAX_PIXELS, Skipped, find_layout, load_folder
from cnnlab.data.imageset import ImageSet
from cnnlab.errors import UserError
from cnnlab.metrics import macro_over_present, per_class_report, top_k_accuracy
from cnnlab.runs.ensemble import check_same_classes, ensemble_probs
from cnnlab.runs.inference import predict_logits
from cnnlab.runs.plots import plot_confusion
from cnnlab.runs.run import LoadedRun, read_split

VALIDATION = "val"


@dataclass
class EvaluationSet:
    """Images to evaluate on, labelled with the run's class indices."""

    images: ImageSet  # classes == the run's classes
    name: str  # results go to RUN/evaluation/<name>/
    source: str  # what was read: a resolved folder, or the run's validation split
    files: list[Path] | None  # the image files on disk (None for the generated shapes dataset)
    skipped: list[Skipped] = field(default_factory=list)  # files of the folder that could not be read


def evaluation_images(run: LoadedRun, data: str | None, name: str | None = None,
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> EvaluationSet:
    """The run's own validation split (default), or every image of ``data`` (its test/ part if it has one)."""
    if data is None:
        source = load_images(run.config.data, run.image_size, run.config.cache_dir, run.config.shapes_per_class)
        wanted = read_split(run.run_dir, VALIDATION)
        where = {n: i for i, n in enumerate(source.pool.names)}
        missing = [n for n in wanted if n not in where]
        if missing:
            raise UserError(f"{len(missing)} validation image(s) of the run are gone from its data, e.g. '{missing[0]}': "
                            "evaluate with --data DIR")
        images = source.pool.subset([where[n] for n in wanted])
        root = find_layout(run.config.data).root if run.config.data not in (None, SHAPES) else None
        files = [root / n for n in images.names] if root else None
        return EvaluationSet(images, name or VALIDATION, f"validation split of {run.run_dir.resolve()}", files)
    layout = find_layout(data)
    folder = layout.test or layout.train
    images, skipped = load_folder(folder, layout.root, run.image_size, max_pixels=max_pixels)
    unknown = [c for c in images.classes if c not in run.classes]
    if unknown:
        raise UserError(f"'{folder}' has classes the run was not trained on: {', '.join(unknown)}; evaluate on "
                        f"a folder whose sub-folders are among the run's {len(run.classes)} classes")
    to_run = torch.tensor([run.classes.index(c) for c in images.classes], dtype=torch.long)
    relabelled = ImageSet(images.images, to_run[images.labels], images.names, list(run.classes))
    return EvaluationSet(relabelled, name or Path(data).resolve().name, str(folder.resolve()),
                         [layout.root / n for n in images.names], skipped)


@dataclass
class Scores:
    """A model's scores on a set of images, computed in memory (nothing written)."""

    metrics: dict[str, float]  # loss, accuracy, macro precision/recall/F1 over the classes present, top{k}_accuracy, images
    per_class: list[dict]  # one row per class present
    confusion: torch.Tensor  # counts, all run classes x all run classes, rows = true class
    logits: torch.Tensor  # N x classes
    present: list[str]  # classes with at least one image


def check_same_images(members: list[tuple[LoadedRun, ImageSet]],
                      remedy: str = "ensemble runs with the same split, or evaluate with --data DIR") -> None:
    """Runs are averaged image by image, so every member must score the same images in the same order.
    ``remedy`` ends the refusal: each caller names the fixes its own options allow."""
    (run, images), *others = members
    for other, s in others:
        if s.names != images.names:
            raise UserError(f"'{other.run_dir}' validates on other images than '{run.run_dir}' (another --seed or "
                            f"--val-fraction): {remedy}")


def prediction_scores(predicted: torch.Tensor, labels: torch.Tensor,
                      classes: list[str]) -> tuple[torch.Tensor, list[dict], dict[str, float]]:
    """Confusion matrix, per-class rows, and accuracy with macro precision/recall/F1 over the classes
    present: the headline numbers of every evaluation, single run or ensemble."""
    confusion = multiclass_confusion_matrix(predicted, labels, len(classes))
    rows = per_class_report(confusion, classes)
    return confusion, rows, {"accuracy": float((predicted == labels).float().mean()), **macro_over_present(rows)}


def score(run: LoadedRun, images: ImageSet, device: torch.device, top_k: tuple[int, ...] = (5,), tta: str = "none",
          others: list[tuple[LoadedRun, ImageSet]] | None = None) -> Scores:
    """Loss, accuracy, top-k accuracies and macro precision/recall/F1 over the classes present. With
    ``tta`` or an ensemble (``others``: more runs, each with the same images at its own input size) the
    log of the averaged probabilities stands for the logits (the loss is their cross-entropy)."""
    members = [(run, images), *(others or [])]
    check_same_images(members)
    if len(members) == 1 and tta == "none":
        logits = predict_logits(run.model, images.images, run.norm, device)
    else:
        logits = ensemble_probs([r for r, _ in members], [s.images for _, s in members], device, tta).clamp_min(1e-12).log()
    confusion, rows, headline = prediction_scores(logits.argmax(1), images.labels, run.classes)
    present = [r for r in rows if r["support"] > 0]
    summary = {"loss": float(F.cross_entropy(logits, images.labels)), **headline,
               **{f"top{k}_accuracy": top_k_accuracy(logits, images.labels, k) for k in top_k},
               "images": len(images)}
    return Scores(summary, present, confusion, logits, [str(r["class"]) for r in present])


def evaluation_name(name: str, runs: int, tta: str) -> str:
    """Folder name under RUN/evaluation/: the data set's name, plus the TTA mode and ensemble size if any."""
    return name + ("" if tta == "none" else f"-tta-{tta}") + ("" if runs == 1 else f"-ensemble{runs}")


def results_dir(run: LoadedRun, data: EvaluationSet, runs: int = 1, tta: str = "none") -> Path:
    """``RUN/evaluation/<name>[-tta-<mode>][-ensemble<N>]/``, unless it holds another data set's results
    (never overwritten)."""
    if not data.name or data.name in (".", "..") or "/" in data.name or "\\" in data.name:
        raise UserError(f"--name '{data.name}' must be a plain folder name, e.g. --name test-2024")
    out = run.run_dir / "evaluation" / evaluation_name(data.name, runs, tta)
    earlier = json.loads((out / "metrics.json").read_text(encoding="utf-8")) if (out / "metrics.json").is_file() else None
    if earlier is not None and earlier.get("data", data.source) != data.source:
        raise UserError(f"{out} holds the results for '{earlier.get('data')}': pass --name NAME to keep both")
    return out


def write_evaluation(runs: list[LoadedRun], data: EvaluationSet, result: Scores, identical: int | None,
                     tta: str = "none") -> Path:
    """metrics.json and confusion.png (rows: the classes present) under the first run's ``results_dir``."""
    run = runs[0]
    out = results_dir(run, data, len(runs), tta)
    present = [run.classes.index(c) for c in result.present]
    atomic.write_json(out / "metrics.json", {
        "data": data.source, "name": data.name, "epoch": run.epoch,
        "tta": tta, "runs": [str(r.run_dir) for r in runs], "weights": [r.weights for r in runs],
        "averaging": f"accuracy: micro; precision/recall/F1: macro over the {len(present)} classes present",
        "classes_present": result.present, "metrics": result.metrics, "per_class": result.per_class,
        "identical_to_training_files": identical,
        "confusion": result.confusion.tolist(), "classes": run.classes,
    })
    plot_confusion(result.confusion[present], run.classes, out / "confusion.png", rows=result.present)
    return out


def per_class_table(rows: list[dict]) -> str:
    width = max(12, *(len(r["class"]) for r in rows))
    lines = [f"{'class':<{width}}  precision  recall     f1  support"]
    lines += [f"{r['class']:<{width}}  {r['precision']:9.4f}  {r['recall']:6.4f}  {r['f1']:.4f}  {r['support']:7d}" for r in rows]
    return "\n".join(lines)


@dataclass
class Prediction:
    """One image's top classes, or why it could not be read."""

    image: str
    top: list[tuple[str, float]] | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        if self.error is not None:
            return {"image": self.image, "error": self.error}
        return {"image": self.image, "top": [{"class": c, "probability": p} for c, p in self.top or []]}


def predict(runs: list[LoadedRun], paths: Iterable[str], device: torch.device, top_k: int = 3, tta: str = "none",
            batch_size: int = 64, max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[Prediction]:
    """Predictions of one run or an ensemble (mean probabilities), with ``tta``, in the order of
    ``paths``, ``batch_size`` files at a time (the first results come before the last file is read); a
    file that cannot be read gives a Prediction with ``error``."""
    classes = check_same_classes(runs)
    remaining = iter(paths)
    while chunk := list(islice(remaining, batch_size)):
        errors: dict[int, str] = {}
        arrays: dict[int, dict[int, np.ndarray]] = {}  # input size -> file index -> image
        for size in dict.fromkeys(r.image_size for r in runs):
            arrays[size] = {}
            for i, path in enumerate(chunk):
                if i in errors:
                    continue
                try:
                    arrays[size][i] = read_image(path, size, max_pixels)
                except UserError as e:
                    errors[i] = str(e)
        readable = [i for i in range(len(chunk)) if i not in errors]
        best: dict[int, list[tuple[str, float]]] = {}
        if readable:
            batches = [to_batch([arrays[r.image_size][i] for i in readable]) for r in runs]
            probs = ensemble_probs(runs, batches, device, tta)
            top = probs.topk(min(top_k, probs.shape[1]), dim=1)
            best = {i: [(classes[int(c)], float(p)) for p, c in zip(values, indices)]
                    for i, values, indices in zip(readable, top.values, top.indices)}
        for i, path in enumerate(chunk):
            yield Prediction(path, top=best[i]) if i in best else Prediction(path, error=errors[i])
