"""Ensembles: several trained runs predicting together by averaging their class probabilities.

Each run sees the images at its own input size and with its own normalisation (the caller loads the
images once per size); the runs must have been trained on the same classes in the same order.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cnnlab.errors import UserError
from cnnlab.runs.run import LoadedRun
from cnnlab.runs.tta import predict_probs


def check_same_classes(runs: list[LoadedRun]) -> list[str]:
    first = runs[0]
    for run in runs[1:]:
        if run.classes != first.classes:
            raise UserError(f"'{run.run_dir}' was trained on other classes than '{first.run_dir}' "
                            f"({', '.join(run.classes)} against {', '.join(first.classes)}): ensemble runs of the same data")
    return first.classes


def ensemble_probs(runs: list[LoadedRun], images: list[torch.Tensor], device: torch.device,
                   tta: str = "none") -> torch.Tensor:
    """Mean of the runs' probabilities (each averaged over the views of ``tta``); ``images[i]`` are
    the uint8 images at run ``i``'s input size, the same images in the same order for every run."""
    check_same_classes(runs)
    return torch.stack([predict_probs(run, x, device, tta) for run, x in zip(runs, images)]).mean(0)


def images_per_run(runs: list[LoadedRun], load: Callable[[int], torch.Tensor]) -> list[torch.Tensor]:
    """``load(size)`` once for each distinct input size of ``runs``, in the runs' order."""
    by_size: dict[int, torch.Tensor] = {}
    for run in runs:
        if run.image_size not in by_size:
            by_size[run.image_size] = load(run.image_size)
    return [by_size[run.image_size] for run in runs]
