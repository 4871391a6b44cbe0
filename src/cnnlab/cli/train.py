"""Sub-commands ``train``, ``evaluate`` and ``predict``."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from cnnlab.cli.types import int_at_least
from cnnlab.errors import UserError
from cnnlab.cli.help import add_command, show_config_defaults
from cnnlab.data.augment import PRESETS, AugmentConfig, augmentation_table
from cnnlab.data.folder import DEFAULT_MAX_PIXELS
from cnnlab.models.layers import ACTIVATIONS, POOLINGS
from cnnlab.runs.checkpoint import CHECKPOINTS
from cnnlab.runs.config import UNFREEZE, TrainConfig, read_yaml
from cnnlab.runs.tta import TTA_MODES
from cnnlab.train.optim import OPTIMIZERS, SCHEDULES, check_choices

AUG_NAMES = [f.name for f in fields(AugmentConfig)]


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    k, v = text.split("=", 1)
    return k.strip(), yaml.safe_load(v)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """Flags default to None so that only the ones given override the YAML config and defaults; their
    help shows the ``TrainConfig`` default (``show_config_defaults``)."""
    a = p.add_argument
    a("--config", help="YAML file of settings, keys as printed by --print-config (flags given on the command line "
                       "win; default: none)")
    a("--print-config", action="store_true", help="print the complete settings (defaults < --config < flags) as YAML "
                                                  "that --config accepts, and exit without training")
    a("--resume", metavar="RUN", help="continue RUN from its last checkpoint (may raise --epochs; default: a new run)")
    g = p.add_argument_group("data")
    g.add_argument("--data", help="folder with <class>/ sub-folders (or train/<class>/) (default: built-in shapes)")
    g.add_argument("--image-size", metavar="S|S1:S2:...",
                   help="images are resized to this square size (default: the model's); several sizes joined by ':' "
                        "(e.g. 96:128:160) train at each in turn (progressive resizing, small images first)")
    g.add_argument("--size-epochs", metavar="E1:...", help="progressive resizing: the epochs after which each later "
                   "size starts, e.g. 4:8 (default: the epochs split evenly)")
    g.add_argument("--val-fraction", type=float, help="fraction of each class held out for validation")
    g.add_argument("--max-pixels", type=int, metavar="N", help="images whose header declares more than N pixels are "
                   "skipped and listed in RUN/skipped.txt, never decoded (decompression bombs)")
    g.add_argument("--cache-dir", help="keep decoded images here, reused while the files are unchanged (default: no cache)")
    g.add_argument("--shapes-per-class", type=int, help="images per class of the built-in shapes dataset")
    g.add_argument("--augment", choices=list(PRESETS), help="augmentation preset (its values: the table at the end of `cnnlab train --help`)")
    g.add_argument("--aug", action="append", type=_key_value, metavar="NAME=STRENGTH",
                   help=f"override one augmentation of the preset (repeatable; 0 turns it off): {', '.join(AUG_NAMES)}; "
                        "units, ranges and the presets' values in the table at the end (default: the preset's)")
    g = p.add_argument_group("model")
    g.add_argument("--model", help="registry name (see `cnnlab models`)")
    g.add_argument("--pooling", choices=list(POOLINGS), help="ahe_cnn downsampling (default: max)")
    g.add_argument("--activation", choices=list(ACTIVATIONS),
                   help="activation of ahe_cnn, plain_cnn, residual_cnn (default: relu)")
    g.add_argument("--dropout", type=float, help="dropout rate before each fully connected layer (default: the model's)")
    g.add_argument("--model-option", action="append", type=_key_value, metavar="KEY=VALUE",
                   help="any keyword of the model builder (repeatable; default: none)")
    g = p.add_argument_group("transfer learning")
    g.add_argument("--pretrained", nargs="?", const=True, metavar="TAG",
                   help="start from the backbone's published ImageNet weights (from the local torch hub cache; "
                        "TAG picks one, e.g. IMAGENET1K_V1); see `cnnlab models` and `cnnlab weights add`")
    g.add_argument("--weights", metavar="PATH", help="start from this state_dict file (.pth/.pt/.safetensors) "
                                                     "(default: random initialisation)")
    g.add_argument("--head-hidden", type=int, metavar="N",
                   help="hidden layer of N units in the new classifier head (default: none, one linear layer)")
    g.add_argument("--freeze", metavar="none|head|N",
                   help="train everything (none), only the new head, or the head and the top N backbone stages")
    g.add_argument("--train-bn", dest="train_bn", action="store_const", const=True,
                   help="BatchNorm layers in frozen stages keep training (default: off, see --freeze-bn)")
    g.add_argument("--freeze-bn", dest="train_bn", action="store_const", const=False,
                   help="frozen stages stay in eval mode: BatchNorm statistics unchanged (default: on)")
    g.add_argument("--lr-ratio", type=float, help="discriminative LRs: each group from the head down gets this "
                   "factor more (e.g. 0.1: head lr, top stage lr/10, ...)")
    g.add_argument("--freeze-epochs", type=int, metavar="E", help="train the head alone for E epochs first, then "
                   "unfreeze (as --unfreeze says) with a fresh schedule; needs --freeze none or N")
    g.add_argument("--unfreeze", choices=list(UNFREEZE), help="after --freeze-epochs: unfreeze at once, or one "
                   "stage per epoch")
    g.add_argument("--feature-cache", action=argparse.BooleanOptionalAction, default=None,
                   help="while the backbone is frozen and augmentation off, train the head on cached features")
    g.add_argument("--aux-weight", type=float, help="weight of inception's auxiliary loss in training")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help="epochs to train (with --resume: the new total)")
    g.add_argument("--batch-size", help="micro-batch size, or 'all' for full-batch gradient descent")
    g.add_argument("--accumulate", type=int, help="micro-batches per optimiser step (exact accumulation)")
    g.add_argument("--optimizer", choices=list(OPTIMIZERS), help="optimiser")
    g.add_argument("--lr", type=float, help="learning rate (the peak for onecycle; the head's with --lr-ratio)")
    g.add_argument("--momentum", type=float, help="SGD momentum (sgd only)")
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None,
                   help="Nesterov momentum (sgd only)")
    g.add_argument("--weight-decay", type=float, help="L2 penalty (decoupled for adamw)")
    g.add_argument("--schedule", choices=list(SCHEDULES), help="learning-rate schedule over the optimiser steps")
    g.add_argument("--step-epochs", type=int, help="step schedule: multiply the LR by --step-gamma every this many epochs")
    g.add_argument("--step-gamma", type=float, help="step schedule: LR factor at every step")
    g.add_argument("--label-smoothing", type=float, help="weight of the uniform distribution mixed into the targets")
    g.add_argument("--ema", type=float, metavar="DECAY", help="also keep an exponential moving average of the weights "
                   "(e.g. 0.999 per optimiser step), validated every epoch; the best checkpoint serves whichever "
                   "of the two scores better (0 = off)")
    g.add_argument("--mixup", type=float, metavar="ALPHA", help="mixup: blend image pairs with Beta(ALPHA, ALPHA) "
                   "weights (e.g. 0.2; 0 = off)")
    g.add_argument("--cutmix", type=float, metavar="ALPHA", help="cutmix: paste a box of the partner image, area "
                   "share from Beta(ALPHA, ALPHA) (e.g. 1.0; 0 = off)")
    g.add_argument("--mix-prob", type=float, metavar="P", help="probability that a micro-batch is mixed (with both "
                   "--mixup and --cutmix each mixed batch picks one at random)")
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, help="seeds the split, initialisation, batch order and augmentation")
    g.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=None,
                   help="deterministic algorithms only (slower; identical results on the same machine)")
    g.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bfloat16 autocast (faster where the processor has it natively)")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels-last memory layout (faster convolutions on CPU and tensor-core GPUs)")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the training step's model, once per image size (20-80 s each on 2 CPU "
                        "cores; needs a C++ compiler on CPU). Whether the steps get faster depends on the "
                        "machine and model: measure with benchmarks/compile.py")
    g.add_argument("--device", help="auto (first GPU, else CPU), cpu, cuda, cuda:1 ...")
    g.add_argument("--monitor", help="history column that picks the best checkpoint")
    g.add_argument("--patience", type=int, help="early stopping after N validations without improvement (0 = off)")
    g.add_argument("--val-every", type=int, metavar="N",
                   help="validate after every N-th epoch and always after the last (0: after the last only); "
                        "skipped epochs have NaN validation columns in the history and cannot be the best "
                        "checkpoint by a val_ column. Saves the validation passes (raw and EMA weights), about 15%% of an epoch "
                        "for the AHE recipes")
    g.add_argument("--time-budget", type=float, metavar="MINUTES",
                   help="wall time for loading the data and training (the final validation comes after): where "
                        "the clock is ahead of the planned steps, the learning-rate schedule (and progressive "
                        "resizing) moves on to the share of the budget spent, skipping steps, and training "
                        "ends with the schedule. A machine fast enough for all --epochs trains exactly as "
                        "without it (0 = off)")
    g.add_argument("--eval-batch-size", type=int, help="images per forward pass when validating")
    g.add_argument("--data-threads", type=int, help="threads preparing and augmenting the next micro-batches while "
                   "the model trains on this one (0: each in turn). Helps when the model leaves a core "
                   "free (a GPU, or fewer intra-op threads than cores); results do not depend on it")
    g.add_argument("--log-grad-norms", type=int, nargs="?", const=50, metavar="N",
                   help="every N optimiser steps (50 if N is left out), each layer's gradient, weight and update "
                        "norm into RUN/grad_norms.csv, drawn in RUN/grad_flow.png (off by default)")
    g.add_argument("--checkpoint-every", type=int, metavar="STEPS",
                   help="also write checkpoints/last.pt every STEPS optimiser steps inside an epoch, with the data "
                        "order and position, so a killed run loses at most STEPS steps (0: only after each epoch)")
    g.add_argument("--skip-nonfinite", type=int, metavar="N",
                   help="skip up to N optimiser steps whose loss is NaN or infinite, instead of stopping at the first")
    g.add_argument("--output", help="run directory to create (default: runs/<time>-<model>-<data>)")
    show_config_defaults(p, TrainConfig().to_dict())


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """defaults < --config YAML < flags."""
    settings: dict[str, Any] = read_yaml(args.config) if args.config else {}
    settings = {k.replace("-", "_"): v for k, v in settings.items()}
    names = {f.name for f in fields(TrainConfig)}
    for k, v in vars(args).items():
        if k in names and v is not None:  # flags that are not settings (--config, --aug, ...) are not fields
            settings[k] = v
    model_options = dict(settings.get("model_options") or {})
    for k in ("pooling", "activation", "dropout"):
        if getattr(args, k, None) is not None:
            model_options[k] = getattr(args, k)
    if getattr(args, "head_hidden", None) is not None:
        model_options["hidden"] = args.head_hidden
    model_options.update(dict(args.model_option or []))
    settings["model_options"] = model_options
    aug = dict(settings.get("augment_options") or {})
    aug.update(dict(args.aug or []))
    settings["augment_options"] = aug
    return check_choices(TrainConfig.from_dict(settings, where=args.config or "flags").validate())


# Settings without a flag of their own name, and the flags that fill them.
_OPTION_KEYS = {
    "model_options": "keyword options of the model builder, e.g. {pooling: avg, dropout: 0.3} "
                     "(flags --pooling, --activation, --dropout, --head-hidden, --model-option)",
    "augment_options": "overrides of the --augment preset, e.g. {rotation: 15, vflip: 0} (flag --aug; names, "
                       "units and ranges: cnnlab train --help)",
}


def config_yaml(cfg: TrainConfig) -> str:
    """``cfg`` as YAML that ``--config`` reads back, each key preceded by a comment: its flag's help."""
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    helps = dict(_OPTION_KEYS)
    for action in parser._actions:
        if action.help:
            helps.setdefault(action.dest, action.help)
    parts = []
    for key, value in cfg.to_dict().items():
        comment = textwrap.wrap(helps.get(key, ""), 110, initial_indent="# ", subsequent_indent="#   ")
        parts.append("\n".join(comment) + "\n" + yaml.safe_dump({key: value}, allow_unicode=True))
    return "".join(parts)


def cmd_train(args: argparse.Namespace) -> int:
    from cnnlab.train.trainer import Trainer

    if args.print_config:
        print(config_yaml(config_from_args(args)), end="")
        return 0
    if args.resume:
        ignored = ("resume", "epochs", "func", "command", "print_config", "log_level")
        given = [k for k, v in vars(args).items() if v is not None and k not in ignored]
        if given:
            raise UserError(f"--resume continues a run with its saved settings; drop --{given[0].replace('_', '-')} "
                            "(only --epochs may change)")
        trainer = Trainer.resume(args.resume, epochs=args.epochs)
    else:
        trainer = Trainer.from_config(config_from_args(args))
    run_dir = trainer.fit()
    if trainer.dist.is_main:
        print(run_dir)
    return 0


def _describe(run: Any, checkpoint: str) -> str:
    weights = ", EMA weights" if run.weights == "ema" else ""
    return f"{run.run_dir} epoch {run.epoch} ({checkpoint} checkpoint{weights})"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cnnlab.device import pick_device
    from cnnlab.runs.evaluate import evaluation_images, per_class_table, results_dir, score, write_evaluation
    from cnnlab.runs.leakage import identical_to_training
    from cnnlab.runs.run import load_run

    device = pick_device(args.device)
    runs = [load_run(r, args.checkpoint, device) for r in args.runs]
    classes = len(runs[0].classes)
    if args.top_k is not None and args.top_k > classes:  # the default 5 counts all of fewer classes
        raise UserError(f"--top-k {args.top_k} is more than the run's {classes} classes: pass a smaller --top-k")
    top_k = args.top_k or 5
    loaded = [evaluation_images(run, args.data, args.name, args.max_pixels) for run in runs]
    data = loaded[0]
    results_dir(runs[0], data, len(runs), args.tta)  # refuse a name taken by another data set before the work
    identical = identical_to_training(runs[0], data.files) if data.files else None
    others = [(r, d.images) for r, d in zip(runs[1:], loaded[1:])]
    result = score(runs[0], data.images, device, (top_k,), args.tta, others)
    out = write_evaluation(runs, data, result, None if identical is None else len(identical), args.tta)
    m, k = result.metrics, top_k
    what = _describe(runs[0], args.checkpoint) if len(runs) == 1 else \
        f"ensemble of {len(runs)} runs (mean probabilities): " + "; ".join(_describe(r, args.checkpoint) for r in runs)
    tta = "" if args.tta == "none" else f", TTA {args.tta} (mean probabilities)"
    print(f"{data.name}: {m['images']} images from {data.source}, {what}{tta}")
    if len(result.present) < len(runs[0].classes):
        print(f"{len(result.present)} of the run's {len(runs[0].classes)} classes present ({', '.join(result.present)}): "
              "macro precision, recall and F1 are over these")
    print(f"loss {m['loss']:.4f}  accuracy {m['accuracy']:.4f}  top{k}_accuracy {m[f'top{k}_accuracy']:.4f}  "
          f"precision_macro {m['precision_macro']:.4f}  recall_macro {m['recall_macro']:.4f}  f1_macro {m['f1_macro']:.4f}")
    print(per_class_table(result.per_class))
    if data.skipped:
        print(f"warning: {len(data.skipped)} file(s) could not be read and are not counted, e.g. "
              f"{data.skipped[0].path}: {data.skipped[0].reason}", file=sys.stderr)
    if identical:
        print(f"warning: {len(identical)} of the {m['images']} evaluated images are byte-identical to files of the "
              f"run's training split (e.g. '{identical[0]}'): these numbers overstate accuracy on new images",
              file=sys.stderr)
    print(f"wrote {out / 'metrics.json'} and {out / 'confusion.png'}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from cnnlab.data.files import expand_image_paths
    from cnnlab.device import pick_device
    from cnnlab.runs.evaluate import predict
    from cnnlab.runs.run import load_run

    device = pick_device(args.device)
    run_dirs, images = _split_runs_and_images(args.paths)
    runs = [load_run(r, args.checkpoint, device) for r in run_dirs]
    failed = 0
    for r in predict(runs, expand_image_paths(images), device, top_k=args.top_k, tta=args.tta,
                     max_pixels=args.max_pixels):
        failed += r.error is not None
        if args.json:
            line = json.dumps(r.to_dict(), ensure_ascii=False)
        elif r.error is not None:
            line = f"{r.image}: error: {r.error}"
        else:
            line = f"{r.image}: " + ", ".join(f"{c} {p:.3f}" for c, p in r.top or [])
        print(line, flush=True)
    if failed:
        print(f"cnnlab predict: {failed} image(s) could not be read (see their lines)", file=sys.stderr)
    return 1 if failed else 0


def _split_runs_and_images(paths: list[str]) -> tuple[list[str], list[str]]:
    """Leading arguments that are run directories (they hold checkpoints/), then the images."""
    from cnnlab.runs.checkpoint import CHECKPOINT_DIR

    count = next((i for i, p in enumerate(paths) if not (Path(p) / CHECKPOINT_DIR).is_dir()), len(paths))
    if count == 0:
        raise UserError(f"'{paths[0]}' is not a run directory (no {CHECKPOINT_DIR}/ inside): pass RUN [RUN ...] IMAGE ...")
    if count == len(paths):
        raise UserError("no images given: pass RUN [RUN ...] IMAGE ...")
    return paths[:count], paths[count:]


def _shared_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", choices=CHECKPOINTS, default="best",
                   help="the best epoch's weights (by the run's --monitor), or the last epoch's")
    p.add_argument("--tta", choices=TTA_MODES, default="none", help="test-time augmentation: average the "
                   "probabilities over the image and its mirror (flip), plus a centre zoom of both (flip+scales)")
    p.add_argument("--device", default="auto", help="auto (first GPU, else CPU), cpu, cuda, cuda:1 ...")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="refuse images with more pixels than this (protects memory against huge or malicious files)")


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "train", "train a model (default: ahe_cnn on the built-in shapes dataset)", [
        "cnnlab train --data photos/ --epochs 20 --augment standard",
        "cnnlab train --print-config > my.yaml   # every setting with its default; edit, then: --config my.yaml",
    ], more="augmentations (--aug NAME=STRENGTH) and the values of the --augment presets:\n" + augmentation_table())
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)

    p = add_command(sub, "evaluate", "metrics, per-class table and confusion matrix of a run on its validation "
                    "split or a folder (written to RUN/evaluation/<name>/)", [
        "cnnlab evaluate runs/my-run",
        "cnnlab evaluate runs/my-run --data photos/test-2024 --top-k 3",
    ])
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directory written by `cnnlab train`; several: an "
                                                         "ensemble averaging their probabilities")
    _shared_run_options(p)
    p.add_argument("--data", help="folder of <class>/ sub-folders (its test/ part if it has one), with some or all "
                                  "of the run's classes (default: the run's validation split)")
    p.add_argument("--name", help="results folder under RUN/evaluation/ (default: the --data folder's name, or val)")
    p.add_argument("--top-k", type=int_at_least(1), help="also report whether the true class is among the k most "
                   "likely (default 5, or all classes if fewer; at most the run's number of classes)")
    p.set_defaults(func=cmd_evaluate)

    p = add_command(sub, "predict", "the most likely classes of image files, one line per image", usage=
                    "cnnlab predict [options] RUN [RUN ...] IMAGE [IMAGE ...]", examples=[
        "cnnlab predict runs/my-run photo.jpg 'more/**/*.png' album/",
        "cnnlab predict runs/my-run album/ --json | head -1",
    ])
    p.add_argument("paths", nargs="+", metavar="RUN_OR_IMAGE", help="run directories (several: an ensemble averaging "
                   "their probabilities), then image files, folders (searched recursively for image files) and glob "
                   "patterns (quoted; ** for any depth)")
    _shared_run_options(p)
    p.add_argument("--top-k", type=int_at_least(1), default=3, help="classes listed per image, most likely first")
    p.add_argument("--json", action="store_true", help="one JSON object per line and image: {image, top: [{class, "
                                                       "probability}]} or {image, error}")
    p.set_defaults(func=cmd_predict)
