"""Sub-commands ``train``, ``evaluate`` and ``predict``."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from cnnlab.data.augment import PRESETS
from cnnlab.errors import UserError
from cnnlab.models.layers import ACTIVATIONS, POOLINGS
from cnnlab.runs.checkpoint import CHECKPOINTS
from cnnlab.runs.config import UNFREEZE, TrainConfig, read_yaml
from cnnlab.runs.tta import TTA_MODES
from cnnlab.train.optim import OPTIMIZERS, SCHEDULES, check_choices


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    k, v = text.split("=", 1)
    return k.strip(), yaml.safe_load(v)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """Flags default to None so that only the ones given override the YAML config and defaults."""
    a = p.add_argument
    a("--config", help="YAML file of settings (flags given on the command line win)")
    a("--resume", metavar="RUN", help="continue RUN from its last checkpoint (may raise --epochs)")
    g = p.add_argument_group("data")
    g.add_argument("--data", help="folder with <class>/ sub-folders (or train/<class>/); default: built-in shapes")
    g.add_argument("--image-size", metavar="S|S1:S2:...",
                   help="images are resized to this square size (default: the model's); several sizes joined by ':' "
                        "(e.g. 96:128:160) train at each in turn (progressive resizing, small images first)")
    g.add_argument("--size-epochs", metavar="E1:...", help="progressive resizing: the epochs after which each later "
                   "size starts, e.g. 4:8 (default: the epochs split evenly)")
    g.add_argument("--val-fraction", type=float, help="fraction of each class held out for validation (0.2)")
    g.add_argument("--cache-dir", help="keep decoded images here, reused while the files are unchanged")
    g.add_argument("--shapes-per-class", type=int, help="images per class of the built-in shapes dataset (300)")
    g.add_argument("--augment", choices=list(PRESETS), help="augmentation preset (light)")
    g.add_argument("--aug", action="append", type=_key_value, metavar="NAME=STRENGTH",
                   help="override one augmentation, e.g. --aug rotation=15 --aug vflip=0")
    g = p.add_argument_group("model")
    g.add_argument("--model", help="registry name (see `cnnlab models`; default ahe_cnn)")
    g.add_argument("--pooling", choices=list(POOLINGS), help="ahe_cnn downsampling")
    g.add_argument("--activation", choices=list(ACTIVATIONS), help="activation of ahe_cnn, plain_cnn, residual_cnn")
    g.add_argument("--dropout", type=float, help="dropout rate before each fully connected layer")
    g.add_argument("--model-option", action="append", type=_key_value, metavar="KEY=VALUE", help="any model builder option")
    g = p.add_argument_group("transfer learning")
    g.add_argument("--pretrained", nargs="?", const=True, metavar="TAG",
                   help="start from the backbone's published ImageNet weights (from the local torch hub cache; "
                        "TAG picks one, e.g. IMAGENET1K_V1); see `cnnlab models` and `cnnlab weights add`")
    g.add_argument("--weights", metavar="PATH", help="start from this state_dict file (.pth/.pt/.safetensors)")
    g.add_argument("--head-hidden", type=int, metavar="N", help="hidden layer of N units in the new classifier head")
    g.add_argument("--freeze", metavar="none|head|N",
                   help="train everything (none), only the new head, or the head and the top N backbone stages")
    g.add_argument("--train-bn", dest="train_bn", action="store_const", const=True,
                   help="BatchNorm layers in frozen stages keep training")
    g.add_argument("--freeze-bn", dest="train_bn", action="store_const", const=False,
                   help="frozen stages stay in eval mode: BatchNorm statistics unchanged (default)")
    g.add_argument("--lr-ratio", type=float, help="discriminative LRs: each group from the head down gets this "
                   "factor more (e.g. 0.1: head lr, top stage lr/10, ...); default 1")
    g.add_argument("--freeze-epochs", type=int, metavar="E", help="train the head alone for E epochs first, then "
                   "unfreeze with a fresh schedule")
    g.add_argument("--unfreeze", choices=UNFREEZE, help="after --freeze-epochs: unfreeze at once, or one "
                   "stage per epoch (all)")
    g.add_argument("--feature-cache", action=argparse.BooleanOptionalAction, default=None,
                   help="while the backbone is frozen and augmentation off, train the head on cached features (on)")
    g.add_argument("--aux-weight", type=float, help="weight of inception's auxiliary loss in training (0.4)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", help="micro-batch size, or 'all' for full-batch gradient descent (32)")
    g.add_argument("--accumulate", type=int, help="micro-batches per optimiser step (exact accumulation)")
    g.add_argument("--optimizer", choices=list(OPTIMIZERS))
    g.add_argument("--lr", type=float)
    g.add_argument("--momentum", type=float)
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--schedule", choices=list(SCHEDULES))
    g.add_argument("--step-epochs", type=int)
    g.add_argument("--step-gamma", type=float)
    g.add_argument("--label-smoothing", type=float)
    g.add_argument("--ema", type=float, metavar="DECAY", help="also keep an exponential moving average of the weights "
                   "(e.g. 0.999 per optimiser step), validated every epoch; the best checkpoint serves whichever "
                   "of the two scores better (0 = off, the default)")
    g.add_argument("--mixup", type=float, metavar="ALPHA", help="mixup: blend image pairs with Beta(ALPHA, ALPHA) "
                   "weights (e.g. 0.2; 0 = off)")
    g.add_argument("--cutmix", type=float, metavar="ALPHA", help="cutmix: paste a box of the partner image, area "
                   "share from Beta(ALPHA, ALPHA) (e.g. 1.0; 0 = off)")
    g.add_argument("--mix-prob", type=float, metavar="P", help="probability that a micro-batch is mixed (1; with both "
                   "--mixup and --cutmix each mixed batch picks one at random)")
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int)
    g.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None, help="bfloat16 autocast")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--device", help="auto, cpu, cuda, cuda:1 ...")
    g.add_argument("--monitor", help="history column that picks the best checkpoint (val_accuracy)")
    g.add_argument("--patience", type=int, help="early stopping after N epochs without improvement (0 = off)")
    g.add_argument("--eval-batch-size", type=int)
    g.add_argument("--data-threads", type=int, help="threads preparing and augmenting the next micro-batches while "
                   "the model trains on this one (0: each in turn, the default). Helps when the model leaves a core "
                   "free (a GPU, or fewer intra-op threads than cores); results do not depend on it")
    g.add_argument("--log-grad-norms", type=int, nargs="?", const=50, metavar="N",
                   help="every N optimiser steps (50 if N is left out), each layer's gradient, weight and update "
                        "norm into RUN/grad_norms.csv, drawn in RUN/grad_flow.png (off by default)")
    g.add_argument("--output", help="run directory to create (default: runs/<time>-<model>-<data>)")


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


def cmd_train(args: argparse.Namespace) -> int:
    from cnnlab.train.trainer import Trainer

    if args.resume:
        given = [k for k, v in vars(args).items() if v is not None and k not in ("resume", "epochs", "func", "command")]
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
    from cnnlab.runs.evaluate import evaluate, evaluation_images, per_class_table
    from cnnlab.runs.run import load_run
    from cnnlab.device import pick_device

    device = pick_device(args.device)
    runs = [load_run(r, args.checkpoint, device) for r in args.runs]
    loaded = [evaluation_images(run, args.data) for run in runs]
    split = loaded[0][1]
    others = [(r, images) for r, (images, _) in zip(runs[1:], loaded[1:])]
    result = evaluate(runs[0], loaded[0][0], split, device, top_k=args.top_k, tta=args.tta, others=others)
    m = result.metrics
    what = _describe(runs[0], args.checkpoint) if len(runs) == 1 else \
        f"ensemble of {len(runs)} runs (mean probabilities): " + "; ".join(_describe(r, args.checkpoint) for r in runs)
    tta = "" if args.tta == "none" else f", TTA {args.tta} (mean probabilities)"
    print(f"{split}: {m['images']} images, {what}{tta}")
    print(f"loss {m['loss']:.4f}  accuracy {m['accuracy']:.4f}  top{args.top_k}_accuracy {m[f'top{args.top_k}_accuracy']:.4f}  "
          f"precision_macro {m['precision_macro']:.4f}  recall_macro {m['recall_macro']:.4f}  f1_macro {m['f1_macro']:.4f}")
    print(per_class_table(result.per_class))
    print(f"wrote {result.out_dir / 'metrics.json'} and {result.out_dir / 'confusion.png'}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from cnnlab.runs.evaluate import predict
    from cnnlab.runs.run import load_run
    from cnnlab.device import pick_device

    device = pick_device(args.device)
    run_dirs, images = _split_runs_and_images(args.paths)
    runs = [load_run(r, args.checkpoint, device) for r in run_dirs]
    results = predict(runs, images, device, top_k=args.top_k, tta=args.tta)
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        for r in results:
            print(r["image"] + ": " + ", ".join(f"{t['class']} {t['probability']:.3f}" for t in r["top"]))
    return 0


def _split_runs_and_images(paths: list[str]) -> tuple[list[str], list[str]]:
    """Leading arguments that are run directories (they hold checkpoints/), then the images."""
    from cnnlab.runs.checkpoint import CHECKPOINT_DIR

    count = next((i for i, p in enumerate(paths) if not (Path(p) / CHECKPOINT_DIR).is_dir()), len(paths))
    if count == 0:
        raise UserError(f"'{paths[0]}' is not a run directory (no {CHECKPOINT_DIR}/ inside): pass RUN [RUN ...] IMAGE ...")
    if count == len(paths):
        raise UserError("no images given: pass RUN [RUN ...] IMAGE ...")
    return paths[:count], paths[count:]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (default: ahe_cnn on the built-in shapes dataset)")
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)

    for name, func, help_ in (("evaluate", cmd_evaluate, "metrics, per-class table and confusion matrix of a run"),
                              ("predict", cmd_predict, "top-k classes of images with a trained run")):
        usage = "cnnlab predict [options] RUN [RUN ...] IMAGE [IMAGE ...]" if name == "predict" else None
        p = sub.add_parser(name, help=help_, usage=usage)
        if name == "evaluate":
            p.add_argument("runs", nargs="+", metavar="RUN", help="run directory written by `cnnlab train`; "
                           "several: an ensemble averaging their probabilities")
            p.add_argument("--data", help="folder to evaluate on (default: the run's validation split)")
            p.add_argument("--top-k", type=int, default=5)
        else:
            p.add_argument("paths", nargs="+", metavar="RUN_OR_IMAGE",
                           help="run directories (several: an ensemble averaging their probabilities), then images")
            p.add_argument("--top-k", type=int, default=3)
            p.add_argument("--json", action="store_true", help="print JSON instead of text")
        p.add_argument("--checkpoint", choices=CHECKPOINTS, default="best")
        p.add_argument("--tta", choices=TTA_MODES, default="none", help="test-time augmentation: average the "
                       "probabilities over the image and its mirror (flip), plus a centre zoom of both (flip+scales)")
        p.add_argument("--device", default="auto")
        p.set_defaults(func=func)
