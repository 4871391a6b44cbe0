"""Every ``TrainConfig`` field checked for type and range in one place, before anything is created.

A config comes from flags (argparse has already converted types), from a YAML file (anything YAML can
say: ``epochs: ten``, ``val_fraction: "0.5"``) or from a checkpoint. ``validate_config`` checks each
field against the rule in ``RULES`` and raises a ``UserError`` that names the setting, the value and
what is allowed; then the checks that involve more than one field or the file system. The rule table
is also what the property-based test walks: any value of any field either validates or is a
``UserError``, never another exception.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from cnnlab.data.augment import PRESETS, augment_config
from cnnlab.errors import UserError
from cnnlab.metrics import METRIC_NAMES
from cnnlab.runs.config import FREEZE_CHOICES, UNFREEZE, TrainConfig

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
MAX_SEED = 2**32 - 2  # torch seeds are 64-bit; the augmentation generator uses seed + 1
MAX_IMAGE_SIZE = 4096
MONITOR_COLUMNS = tuple(f"{split}_{m}" for split in ("val", "train") for m in METRIC_NAMES)  # history columns


@dataclass(frozen=True)
class Rule:
    """What one field may hold: ``allowed`` is how the error message says it."""

    allowed: str
    accepts: Callable[[Any], bool]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def integer(low: int, high: int | None = None, none_ok: bool = False) -> Rule:
    text = f"an integer from {low} to {high}" if high is not None else f"an integer of at least {low}"
    return Rule(text, lambda v: (none_ok and v is None) or (_is_int(v) and low <= v and (high is None or v <= high)))


def number(low: float, high: float | None = None, low_open: bool = False, high_open: bool = False) -> Rule:
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    text = f"a number in {left}{low:g}, {high:g}{right}" if high is not None else (
        f"a number {'above' if low_open else 'of at least'} {low:g}")

    def accepts(v: Any) -> bool:
        if not _is_number(v):
            return False
        above = v > low if low_open else v >= low
        below = high is None or (v < high if high_open else v <= high)
        return above and below

    return Rule(text, accepts)


def choice(*options: str) -> Rule:
    return Rule(f"one of {', '.join(options)}", lambda v: isinstance(v, str) and v in options)


def flag() -> Rule:
    return Rule("true or false", lambda v: isinstance(v, bool))


def path(none_ok: bool = True) -> Rule:
    return Rule("a path", lambda v: (none_ok and v is None) or (isinstance(v, str) and v != "" and "\0" not in v))


def mapping() -> Rule:
    return Rule("a mapping of name: value", lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v))


RULES: dict[str, Rule] = {
    "data": path(),
    "image_size": Rule(f"an integer from 8 to {MAX_IMAGE_SIZE}, or sizes joined by ':' (e.g. 96:128:160)",
                       lambda v: v is None or (_is_int(v) and 8 <= v <= MAX_IMAGE_SIZE) or (
                           isinstance(v, str) and all(p.strip().isdigit() and 8 <= int(p) <= MAX_IMAGE_SIZE
                                                      for p in v.split(":")))),
    "size_epochs": Rule("epochs joined by ':' (e.g. 4:8)",
                        lambda v: v is None or v == "" or _is_int(v) or (isinstance(v, str) and all(
                            p.strip().isdigit() for p in v.split(":")))),
    "val_fraction": number(0, 1, high_open=True),
    "cache_dir": path(),
    "max_pixels": integer(1),
    "shapes_per_class": integer(1, 100_000),
    "augment": choice(*PRESETS),
    "augment_options": mapping(),
    "model": Rule("a model name (see `cnnlab models`)", lambda v: isinstance(v, str)),
    "model_options": mapping(),
    "pretrained": Rule("true, false or a weights tag such as IMAGENET1K_V1",
                       lambda v: isinstance(v, bool) or (isinstance(v, str) and "\0" not in v)),
    "weights": path(),
    "freeze": Rule("none, head or a number of backbone stages",
                   lambda v: isinstance(v, str) and (v.strip().lower() in FREEZE_CHOICES or v.strip().isdigit())
                   or (_is_int(v) and v >= 0)),
    "train_bn": flag(),
    "lr_ratio": number(0, low_open=True),
    "freeze_epochs": integer(0),
    "unfreeze": choice(*UNFREEZE),
    "feature_cache": flag(),
    "aux_weight": number(0),
    "epochs": integer(1, 100_000),
    "batch_size": Rule("a positive integer or 'all'",
                       lambda v: v == "all" or (_is_int(v) and v >= 1) or (isinstance(v, str) and v.isdigit()
                                                                            and int(v) >= 1)),
    "accumulate": integer(1),
    "optimizer": Rule("an optimiser name", lambda v: isinstance(v, str)),  # which: train.optim.check_choices
    "lr": number(0, low_open=True),
    "momentum": number(0, 1, high_open=True),
    "nesterov": flag(),
    "weight_decay": number(0),
    "schedule": Rule("a schedule name", lambda v: isinstance(v, str)),  # which: train.optim.check_choices
    "step_epochs": integer(1),
    "step_gamma": number(0, 1, low_open=True),
    "label_smoothing": number(0, 1, high_open=True),
    "ema": Rule("a decay in [0, 1) (e.g. 0.999; 0 = off)", number(0, 1, high_open=True).accepts),
    "mixup": Rule("0 (off) or a positive Beta parameter such as 0.2 or 1", number(0).accepts),
    "cutmix": Rule("0 (off) or a positive Beta parameter such as 0.2 or 1", number(0).accepts),
    "mix_prob": Rule("a probability in [0, 1]", number(0, 1).accepts),
    "seed": integer(0, MAX_SEED),
    "deterministic": flag(),
    "bf16": flag(),
    "channels_last": flag(),
    "compile": flag(),
    "device": Rule("auto, cpu, cuda or cuda:N", lambda v: isinstance(v, str) and bool(DEVICE_PATTERN.fullmatch(v))),
    "monitor": Rule(f"a history column: one of {', '.join(MONITOR_COLUMNS)}", lambda v: v in MONITOR_COLUMNS),
    "patience": integer(0),
    "val_every": integer(0),
    "time_budget": Rule("minutes of wall time, a number >= 0 (e.g. 13.5; 0 = off)", number(0).accepts),
    "eval_batch_size": integer(1),
    "data_threads": integer(0, 64),
    "log_grad_norms": integer(0),
    "checkpoint_every": integer(0),
    "skip_nonfinite": integer(0),
    "output": path(),
}


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_fields(cfg: TrainConfig) -> None:
    """Type and range of every field on its own; the first bad one raises."""
    for f in fields(cfg):
        rule = RULES[f.name]
        value = getattr(cfg, f.name)
        if not rule.accepts(value):
            raise UserError(f"{flag_name(f.name)} must be {rule.allowed}, not {_shown(value)}")


def validate_config(cfg: TrainConfig) -> None:
    """All checks, cheapest first: fields, then normalisation of spellings, then combinations and the
    things a field names (model and its options, augmentation names, folders)."""
    check_fields(cfg)
    if isinstance(cfg.batch_size, str) and cfg.batch_size != "all":
        cfg.batch_size = int(cfg.batch_size)
    cfg.freeze = str(cfg.freeze).strip().lower()
    if isinstance(cfg.pretrained, str) and cfg.pretrained.lower() in ("true", "yes", "default"):
        cfg.pretrained = True
    elif isinstance(cfg.pretrained, str) and cfg.pretrained.lower() in ("", "false", "no", "none"):
        cfg.pretrained = False
    cfg.size_starts()  # progressive resizing: --size-epochs fits --image-size
    _check_combinations(cfg)
    _check_model(cfg)
    augment_config(cfg.augment, cfg.augment_options)
    _check_folders(cfg)


def _check_combinations(cfg: TrainConfig) -> None:
    if cfg.pretrained and cfg.weights:
        raise UserError("--pretrained and --weights both name starting weights: pass only one")
    if cfg.freeze_epochs and cfg.freeze == "head":
        raise UserError("--freeze-epochs trains the head first and then unfreezes, but --freeze head keeps the "
                        "backbone frozen: pass --freeze none or --freeze N")
    if cfg.time_budget and cfg.freeze_epochs:
        raise UserError("--time-budget keeps one learning-rate schedule to the clock, but --freeze-epochs starts "
                        "a second one after the head-only epochs: pass only one of them")


def _check_model(cfg: TrainConfig) -> None:
    """The name is registered and its builder takes these options (built on the meta device: no memory)."""
    import torch

    from cnnlab.models import create_model, model_info

    info = model_info(cfg.model)
    smallest = min(cfg.image_sizes() or [info.min_image_size])
    if smallest < info.min_image_size:
        raise UserError(f"--image-size {smallest} is too small for {cfg.model}: use at least {info.min_image_size}")
    try:
        with torch.device("meta"):
            create_model(cfg.model, 2, **cfg.model_options)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the builder says about a value, as one line
        detail = " ".join(str(e).split())[:160]
        raise UserError(f"model {cfg.model} rejects its options {_shown(cfg.model_options)}: {detail}; "
                        "fix --dropout/--pooling/--activation/--model-option") from None


def _check_folders(cfg: TrainConfig) -> None:
    """A cache folder that is a file would fail only after every image was decoded: checked now."""
    if cfg.cache_dir is not None:
        cache = Path(cfg.cache_dir).expanduser()
        if cache.exists() and not cache.is_dir():
            raise UserError(f"--cache-dir '{cfg.cache_dir}' is a file, not a folder: pass a folder (created if absent)")
