"""What the report shows, collected as plain data; ``page`` turns it into HTML."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cnnlab.data.folder import Skipped
from cnnlab.data.imageset import ImageSet
from cnnlab.embed.run import LoadedEmbedder
from cnnlab.explain.overlay import data_uri
from cnnlab.report.folders import FileSection, folder_section, format_value
from cnnlab.report.gallery import Gallery, build_gallery
from cnnlab.runs.evaluate import evaluation_images, score
from cnnlab.runs.plots import confusion_figure, curves_figure, figure_png
from cnnlab.runs.run import LoadedRun, read_skipped, read_split_entries

TOP_K = (1, 3, 5)
# Sub-folders of RUN/explain/ the report shows (what `cnnlab explain dream/units/filters` write).
EXPLAIN_FOLDERS = (("dream", "Class-model images"), ("units", "Unit selectivity by layer"),
                   ("filters", "First-layer filters"))


@dataclass
class SplitSection:
    """Scores and gallery of the model on one set of images."""

    title: str
    anchor: str  # the section's id in the page
    metrics: list[tuple[str, str]]
    top_k: list[tuple[int, float]]
    per_class: list[dict]
    confusion: str  # data URI: counts and row-normalised
    gallery: Gallery


@dataclass
class Report:
    run_name: str
    model: str
    epoch: int
    checkpoint: str
    image_size: int
    config: list[tuple[str, str]]
    class_counts: list[tuple[str, int, int]]  # class, training images, validation images
    skipped: list[Skipped]
    curves: str | None  # data URI, None before the first epoch's history
    splits: list[SplitSection]
    explain: list[FileSection]
    evaluations: list[FileSection]
    kind: str = "classification"  # or "embedding": a face run (people, not classes; no validation split)
    people: list[tuple[str, int]] = field(default_factory=list)  # embedding runs: split, number of people


def collect(run: LoadedRun, device: torch.device, checkpoint: str = "best", data: str | None = None) -> Report:
    """Everything the page shows: the run's own files, its scores on the validation split (and on
    ``data`` if given), Grad-CAM overlays, and the files under ``explain/`` and ``evaluation/``."""
    run_dir = run.run_dir
    val = evaluation_images(run, None).images
    splits = [split_section(run, val, "Validation split", "val", device)]
    if data is not None:
        other = evaluation_images(run, data)
        splits.append(split_section(run, other.images, f"Split '{other.name}' ({data})", "other-split", device))
    return Report(
        run_name=run_dir.resolve().name, model=run.config.model, epoch=run.epoch, checkpoint=checkpoint,
        image_size=run.image_size,
        config=[(k, format_value(v)) for k, v in run.config.to_dict().items()],
        class_counts=class_counts(run),
        skipped=read_skipped(run_dir),
        curves=curves(run_dir),
        splits=splits,
        explain=[s for sub, title in EXPLAIN_FOLDERS
                 if (s := folder_section(run_dir, run_dir / "explain" / sub, title)) is not None],
        evaluations=evaluation_sections(run_dir),
    )


def collect_embedding(run: LoadedEmbedder, checkpoint: str = "best") -> Report:
    """A face (embedding) run: config, people per split, its own curves (loss and dev EER), and what
    `cnnlab embed evaluate` wrote under evaluation/ (ROC, CMC, distance histograms, threshold)."""
    run_dir = run.run_dir
    history = run_dir / "history.json"
    epochs = len(json.loads(history.read_text(encoding="utf-8"))) if history.is_file() else 0
    curves_png = run_dir / "curves.png"
    return Report(
        run_name=run_dir.resolve().name, model=run.config.model, epoch=epochs, checkpoint=checkpoint,
        image_size=run.image_size,
        config=[(k, format_value(v)) for k, v in run.config.to_dict().items()],
        class_counts=[], skipped=[],
        curves=data_uri(curves_png.read_bytes()) if curves_png.is_file() else None,
        splits=[], explain=[], evaluations=evaluation_sections(run_dir),
        kind="embedding", people=[(name, len(ids)) for name, ids in run.identities.items()],
    )


def class_counts(run: LoadedRun) -> list[tuple[str, int, int]]:
    train, val = (Counter(label for _, label in read_split_entries(run.run_dir, s)) for s in ("train", "val"))
    return [(c, train[c], val[c]) for c in run.classes]


def curves(run_dir: Path) -> str | None:
    path = run_dir / "history.json"
    if not path.is_file():
        return None
    history = json.loads(path.read_text(encoding="utf-8"))
    return data_uri(figure_png(curves_figure(history))) if history else None


def split_section(run: LoadedRun, images: ImageSet, title: str, anchor: str, device: torch.device) -> SplitSection:
    ks = tuple(k for k in TOP_K if k <= len(run.classes))
    s = score(run, images, device, ks)
    metrics = [(name, format_value(s.metrics[name]))
               for name in ("images", "loss", "accuracy", "precision_macro", "recall_macro", "f1_macro")]
    return SplitSection(title, anchor, metrics, [(k, s.metrics[f"top{k}_accuracy"]) for k in ks], s.per_class,
                        data_uri(figure_png(confusion_figure(s.confusion, run.classes))),
                        build_gallery(run, images, s.logits.softmax(1), device))


def evaluation_sections(run_dir: Path) -> list[FileSection]:
    """Every folder under RUN/evaluation/ (``cnnlab evaluate``'s, a face evaluation's, ...) that holds
    PNG or JSON files, shown generically."""
    root = run_dir / "evaluation"
    if not root.is_dir():
        return []
    folders = [root, *sorted(p for p in root.rglob("*") if p.is_dir())]
    return [s for f in folders if (s := folder_section(run_dir, f, f"Evaluation: {f.relative_to(run_dir).as_posix()}"))]
