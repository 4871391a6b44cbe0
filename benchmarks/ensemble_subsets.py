"""Validation accuracy and macro F1 of every ensemble of two or more finished runs, to choose members.

All runs must share one validation split (the same --seed and --val-fraction). Each run's probabilities
are computed once per TTA mode, and each subset averages them, as `cnnlab evaluate RUN1 RUN2 ...` does,
so trying every subset of a handful of runs costs one evaluation per run and mode, not one per subset.

    python benchmarks/ensemble_subsets.py RUN1 RUN2 RUN3 [--tta none,flip] [--names a,b,c]

The best of many subsets on one split flatters that split: pick the members on some seeds and confirm
the choice on another seed's runs before trusting it.
"""

from __future__ import annotations

import argparse
from itertools import combinations
from pathlib import Path

import torch
from cnnlab.errors import UserError
from cnnlab.runs.ensemble import check_same_classes
from cnnlab.runs.evaluate import check_same_images, evaluation_images, prediction_scores
from cnnlab.runs.run import load_run
from cnnlab.runs.tta import predict_probs


def accuracy_and_f1(probs: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> tuple[float, float]:
    headline = prediction_scores(probs.argmax(1), labels, classes)[2]  # as `cnnlab evaluate` scores
    return headline["accuracy"], headline["f1_macro"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="finished runs on the same validation split")
    p.add_argument("--tta", default="none,flip", help="comma-separated TTA modes (default: none,flip)")
    p.add_argument("--names", help="comma-separated short names for the runs (default: their folder names)")
    a = p.parse_args()
    names = a.names.split(",") if a.names else [Path(r).name for r in a.runs]
    if len(names) != len(a.runs):
        raise SystemExit(f"--names gives {len(names)} names for {len(a.runs)} runs: give one per run")
    modes = a.tta.split(",")
    device = torch.device("cpu")
    runs = [load_run(Path(r), "best", device) for r in a.runs]
    classes = check_same_classes(runs)
    sets = [evaluation_images(run, None).images for run in runs]
    try:
        check_same_images(list(zip(runs, sets)), remedy="give runs trained with the same --seed and --val-fraction")
    except UserError as e:
        raise SystemExit(str(e)) from None
    labels = sets[0].labels
    probs = {(i, tta): predict_probs(run, s.images, device, tta) for i, (run, s) in enumerate(zip(runs, sets)) for tta in modes}
    print("| members | " + " | ".join(f"TTA {t}" for t in modes) + " |\n|---|" + "---|" * len(modes))
    for size in range(1, len(runs) + 1):
        for members in combinations(range(len(runs)), size):
            cells = [accuracy_and_f1(torch.stack([probs[i, t] for i in members]).mean(0), labels, classes) for t in modes]
            print(f"| {' + '.join(names[i] for i in members)} | " + " | ".join(f"{acc:.4f} / {f1:.4f}" for acc, f1 in cells) + " |")
    print(f"\nvalidation accuracy / macro F1 of the best checkpoints on {len(labels)} images; "
          "an ensemble averages its members' probabilities")


if __name__ == "__main__":
    main()
