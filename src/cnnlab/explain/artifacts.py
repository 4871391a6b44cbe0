"""What ``cnnlab explain`` writes for a run: one writer per kind, each under ``RUN/explain/<kind>/``
(never over a training artefact), atomically, returning what it wrote and the records a front end
shows (the command line prints them; a report or a web page can render the same records).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cnnlab import atomic
from cnnlab.data.imageset import ImageSet
from cnnlab.explain.cam import CamResult
from cnnlab.explain.dream import DreamRecipe, DreamResult
from cnnlab.explain.figures import dream_grid, gradcam_figure, selectivity_by_depth, top_images
from cnnlab.explain.grids import activation_grid, filter_grid
from cnnlab.explain.overlay import enlarge, heat_overlay, save_arrays, save_png
from cnnlab.explain.selectivity import LayerSelectivity, most_selective
from cnnlab.explain.targets import ClassTarget, Target
from cnnlab.runs.plots import save_figure

EXPLAIN_DIR = "explain"


def explain_dir(run_dir: str | Path, kind: str) -> Path:
    return Path(run_dir) / EXPLAIN_DIR / kind


def unique_stems(paths: Sequence[str]) -> list[str]:
    """File stems for outputs, with -2, -3 ... added where two inputs share a name."""
    seen: dict[str, int] = {}
    stems = []
    for p in paths:
        stem = Path(p).stem
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return stems


def write_gradcam(
    run_dir: Path, image_paths: Sequence[str], images: torch.Tensor, result: CamResult, classes: list[str],
    method: str, layer: str, alpha: float, overlay_only: bool = False,
) -> tuple[list[dict[str, Any]], list[Path]]:
    """Per image, files named ``<image>-<target>-<method>-<layer>``: the figure (image, map over it,
    colour bar, title with the target and the prediction; ``overlay_only``: the bare enlarged overlay),
    the map as .npz and the record as .json. Each record: image, method, layer, target, score,
    predicted class and its probability, picture."""
    probs = result.logits.softmax(1).cpu()
    out = explain_dir(run_dir, "gradcam")
    written, records = [], []
    for i, (path, stem) in enumerate(zip(image_paths, unique_stems(image_paths))):
        target = result.targets[i]
        what = target.describe(classes)
        predicted = int(probs[i].argmax())
        record = {"image": path, "method": method, "layer": layer, "target": what, "score": float(result.scores[i]),
                  "predicted": classes[predicted], "probability": float(probs[i, predicted])}
        name = f"{stem}-{what}-{method}-{layer}"
        if overlay_only:
            picture = save_png(out / f"{name}.png", enlarge(heat_overlay(images[i], result.maps[i].cpu(), alpha)))
        else:
            explained = f"class '{what}'" if isinstance(target, ClassTarget) else f"filter {what}"
            title = (f"{Path(path).name}: {method} for {explained} at {layer}\n"
                     f"predicted {record['predicted']} (probability {record['probability']:.3f})")
            picture = save_figure(gradcam_figure(images[i], result.maps[i], title, alpha), out / f"{name}.png")
        record["picture"] = str(picture)
        records.append(record)
        written += [picture,
                    save_arrays(out / f"{name}.npz", map=result.maps[i].cpu().numpy(), raw=result.raw[i].cpu().numpy(),
                                weights=result.weights[i].cpu().numpy(), image=images[i].numpy()),
                    atomic.write_json(out / f"{name}.json", record)]
    return records, written


def write_activations(run_dir: Path, image_path: str, layer: str, activations: torch.Tensor) -> list[Path]:
    """The grid of one image's activation maps at ``layer`` (C x h x w), and the maps as .npz."""
    out = explain_dir(run_dir, "activations")
    stem = f"{Path(image_path).stem}-{layer}"
    fig = activation_grid(activations, f"{Path(image_path).name}: {layer}, {len(activations)} channels "
                                       f"(tile i = channel i, row by row; one shared scale)")
    return [save_figure(fig, out / f"{stem}.png"), save_arrays(out / f"{stem}.npz", activations=activations.numpy())]


def write_filters(run_dir: Path, name: str, weight: torch.Tensor) -> list[Path]:
    """The grid of a conv layer's filters (out x in x kh x kw)."""
    n, c, h, w = weight.shape
    fig = filter_grid(weight, f"{name}: {n} filters of {c}x{h}x{w} (each scaled around 0: grey = 0)")
    return [save_figure(fig, explain_dir(run_dir, "filters") / f"{name}.png")]


def write_dream(
    run_dir: Path, result: DreamResult, targets: Sequence[Target], classes: list[str], how: DreamRecipe, size: int,
    seed: int, init: str | None,
) -> tuple[list[dict[str, Any]], list[Path]]:
    """The grid of dreamed images, the images as .npz and a JSON summary. Each record: target, score,
    high-frequency energy, and for a class target its probability."""
    records, titles = [], []
    for i, t in enumerate(targets):
        what = t.describe(classes)
        record = {"target": what, "score": float(result.scores[i]), "high_frequency_energy": float(result.high_frequency[i])}
        if isinstance(t, ClassTarget):
            record["probability"] = float(result.probabilities[i, t.index])
            titles.append(f"{what}\np={record['probability']:.3f} hf={record['high_frequency_energy']:.3f}")
        else:
            titles.append(f"{what}\nmean act {record['score']:.2f} hf={record['high_frequency_energy']:.3f}")
        records.append(record)
    out = explain_dir(run_dir, "dream")
    summary = {"method": how.name, "steps": how.steps, "lr": how.lr, "parameterization": how.parameterization,
               "size": size, "seed": seed, "init": init, "seconds": result.seconds,
               "seconds_per_target": result.seconds / len(targets), "targets": records}
    fig = dream_grid(result.images, titles, f"{how.name}: {how.steps} steps, {size}x{size}")
    written = [save_figure(fig, out / f"{how.name}.png"),
               save_arrays(out / f"{how.name}.npz", images=result.images.numpy()),
               atomic.write_json(out / f"{how.name}.json", summary)]
    return records, written


def write_units(
    run_dir: Path, layers: list[LayerSelectivity], data: ImageSet, split: str, classes: list[str], top_units: int,
    top_images_per_unit: int,
) -> tuple[list[dict], list[Path]]:
    """units.json (per-layer summaries, per-unit index and preferred class), the class means as .npz,
    selectivity by depth and the top images of the ``top_units`` most selective units of each layer."""
    out = explain_dir(run_dir, "units")
    summaries = [layer.summary() for layer in layers]
    report = {"split": split, "images": len(data), "classes": classes,
              "measured": "post-activation output of each conv block, spatial mean per image",
              "layers": summaries,
              "units": {layer.units.layer: {"selectivity": layer.index.tolist(),
                                            "preferred_class": layer.class_means.argmax(1).tolist()} for layer in layers}}
    written = [
        atomic.write_json(out / "units.json", report),
        save_arrays(out / "units.npz",
                    **{f"{layer.units.layer}.class_means": layer.class_means.numpy() for layer in layers}),
        save_figure(selectivity_by_depth(layers, f"class selectivity by depth ({split}, {len(data)} images)"),
                    out / "selectivity_by_depth.png"),
        save_figure(top_images(most_selective(layers, top_units), data, top_images_per_unit,
                               f"the {top_units} most class-selective units of each conv layer ({split}, "
                               f"{len(data)} images)"), out / "top_units.png"),
    ]
    return summaries, written
