"""Train ahe_cnn from scratch on the AHE training images and report validation numbers.

The validation split is cnnlab's stratified, seeded 20% of every class of the training pool; the
official AHE test set is not used (it is an independent benchmark). Usage:

    python benchmarks/ahe.py [--variants NAME,...|all] [--seeds 0,1,2] [-- extra cnnlab train flags]

Each variant runs `cnnlab train` (the recommended settings plus the variant's changes; extra flags
after -- override both), then its best checkpoint is evaluated without and with test-time
augmentation, one table row each: validation accuracy, macro F1, wall minutes (data loading
included). Target: >= 0.93 validation accuracy within 20 minutes on 2 CPU cores.
The recommendation depends on the processor: where bfloat16 is native, bf16 autocast with 16 epochs at
48 px then 32 at 64 px, EMA and --compile; elsewhere float32 for 17 epochs at 64 px with EMA; both aim
at 20 minutes on 2 CPU cores.
"""

from __future__ import annotations

import torch

from ahe_variants import run
from machine import native_bf16

COMMON = ["--model", "ahe_cnn", "--image-size", "64", "--batch-size", "64", "--optimizer", "adamw", "--lr", "2e-3",
          "--weight-decay", "5e-4", "--schedule", "onecycle", "--augment", "standard", "--label-smoothing", "0.1"]
# With native bfloat16 (AVX512-BF16 or AMX; measured on a 2-core AMD EPYC with AVX512-BF16: 501 against
# 288 img/s in float32 at 64 px), 45 epochs at 64 px take 17-18 minutes; two runs ended at 0.900 and
# 0.910 validation accuracy (best epochs 0.909 and 0.914). Without it oneDNN emulates bf16 (no speed-up
# expected; not measured here), so 17 float32 epochs, which fit 20 minutes here, reached 0.8845.
# On a 2-core Intel Xeon with AVX512-BF16 (benchmarks/bf16.py: 298 against 180 img/s), the recommended
# "EMA 0.999" variant took 18.8-19.8 minutes with memory reuse (19-34 s per epoch; 29.3 minutes before
# it), seeds 0-2: mean 0.9143 validation accuracy, 0.9283 (0.9245-0.9348) with --tta flip+scales.
# The recommendation since: 16 epochs at 48 px then 32 at 64 px, EMA 0.999, --compile; seeds 0-2 with
# flip+scales: mean 0.9309 (0.9294-0.9329), in 19.6-24.6 minutes on the same machine (its speed varied);
# on a 2-core AMD EPYC with AVX512-BF16 (2026-12-02): mean 0.9342 (0.9319-0.9373) in 11.3-12.5 minutes.
BF16 = ["--bf16", "--epochs", "45"]
FP32 = ["--no-bf16", "--epochs", "17"]
# name -> flags on top of COMMON and the processor's BF16/FP32 choice. The first is the recommendation.
VARIANTS: dict[str, list[str]] = {
    "EMA + progressive 48:64 px for 16+32 epochs + torch.compile": ["--ema", "0.999", "--image-size", "48:64",
                                                                     "--size-epochs", "16", "--epochs", "48",
                                                                     "--compile"],
    "EMA 0.999": ["--ema", "0.999"],
    "no EMA (the previous recommendation)": [],
    "EMA + progressive 48:64 px for 22+28 epochs": ["--ema", "0.999", "--image-size", "48:64", "--size-epochs", "22",
                                                 "--epochs", "50"],
    "EMA + progressive 48:64 px for 52 epochs": ["--ema", "0.999", "--image-size", "48:64", "--size-epochs", "20",
                                             "--epochs", "52"],
    "EMA + progressive 48:64 px for 20+32 epochs + torch.compile": ["--ema", "0.999", "--image-size", "48:64",
                                                                     "--size-epochs", "20", "--epochs", "52",
                                                                     "--compile"],
    "EMA + mixup 0.2 / cutmix 1.0 on half the batches": ["--ema", "0.999", "--mixup", "0.2", "--cutmix", "1.0",
                                                        "--mix-prob", "0.5"],
}


def main() -> None:
    native = torch.cuda.is_available() or native_bf16()
    # The progressive variants' epoch counts are sized for native bf16; without it the recommendation
    # is "EMA 0.999" with the 17 float32 epochs of FP32.
    variants = VARIANTS if native else dict(sorted(VARIANTS.items(), key=lambda item: item[0] != "EMA 0.999"))
    run(__doc__, "bench-ahe", [*COMMON, *(BF16 if native else FP32)], variants)


if __name__ == "__main__":
    main()
