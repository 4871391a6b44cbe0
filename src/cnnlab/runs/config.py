"""Training configuration: one dataclass, filled from defaults < YAML file < command-line flags.

The whole config is saved as ``config.yaml`` in the run directory and inside every checkpoint (as plain
data), so a run can be resumed, evaluated or re-created from it alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from cnnlab.data.folder import DEFAULT_MAX_PIXELS
from cnnlab.errors import UserError

FREEZE_CHOICES = ("none", "head")
UNFREEZE = ("all", "gradual")


@dataclass
class TrainConfig:
    # data
    data: str | None = None  # folder, or None for the built-in shapes dataset
    image_size: int | str | None = None  # None: the model's default; "96:128:160": progressive resizing
    size_epochs: str | None = None  # progressive resizing: epochs at which each later size starts, e.g. "4:8"
    val_fraction: float = 0.2
    cache_dir: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS  # files declaring more pixels are skipped (listed), never decoded
    shapes_per_class: int = 300
    augment: str = "light"
    augment_options: dict[str, float] = field(default_factory=dict)
    # model
    model: str = "ahe_cnn"
    model_options: dict[str, Any] = field(default_factory=dict)
    # transfer learning (see cnnlab.train.freeze and cnnlab.models.weights)
    pretrained: bool | str = False  # True: the model's published weights (default first); or a tag, e.g. IMAGENET1K_V1
    weights: str | None = None  # a state_dict file to start from instead
    freeze: str = "none"  # none | head | N (head + the top N backbone stages train)
    train_bn: bool = False  # frozen stages' BatchNorm layers keep training (default: kept in eval mode)
    lr_ratio: float = 1.0  # parameter group i (0 = head, then stages top-down) gets lr * lr_ratio**i
    freeze_epochs: int = 0  # first train the head alone for this many epochs, then unfreeze
    unfreeze: str = "all"  # after --freeze-epochs: all | gradual (one more stage per epoch)
    feature_cache: bool = True  # backbone entirely frozen and no augmentation: train the head on cached features
    aux_weight: float = 0.4  # weight of auxiliary-classifier losses (inception_v3) in training
    # optimisation
    epochs: int = 10
    batch_size: int | str = 32  # an int, or "all" for full-batch gradient descent
    accumulate: int = 1
    optimizer: str = "adamw"  # a name in train.optim.OPTIMIZERS (checked there, with the schedule's)
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    step_epochs: int = 10  # "step" schedule: multiply the LR by step_gamma every step_epochs epochs
    step_gamma: float = 0.1
    label_smoothing: float = 0.0
    ema: float = 0.0  # decay of an exponential moving average of the weights; 0 = off
    mixup: float = 0.0  # Beta(a, a) parameter of mixup; 0 = off
    cutmix: float = 0.0  # Beta(a, a) parameter of cutmix; 0 = off
    mix_prob: float = 1.0  # probability that a micro-batch is mixed (mixup or cutmix, 50/50 when both are on)
    # run
    seed: int = 0
    deterministic: bool = False
    bf16: bool = False
    channels_last: bool = True  # faster convolutions on CPU (oneDNN) and on GPUs with tensor cores
    compile: bool = False  # torch.compile the training forward and backward (one compilation per image size)
    device: str = "auto"
    monitor: str = "val_accuracy"
    patience: int = 0  # early stopping after this many validations without improvement; 0 = off
    time_budget: float = 0.0  # minutes of wall time for loading and training; the schedule keeps to it (train.budget); 0 = off
    val_every: int = 1  # validate after every N-th epoch and always after the last; 0: after the last only
    eval_batch_size: int = 256
    data_threads: int = 0  # threads preparing the next micro-batches while the model trains; 0: in turn
    log_grad_norms: int = 0  # per-layer gradient norms every N optimiser steps (grad_norms.csv); 0 = off
    checkpoint_every: int = 0  # also write checkpoints/last.pt every N optimiser steps inside an epoch; 0: off
    skip_nonfinite: int = 0  # optimiser steps with a NaN/Inf loss skipped before the run stops; 0: stop at the first
    output: str | None = None

    def validate(self) -> TrainConfig:
        """Every field checked for type and range (see ``cnnlab.runs.validate``); spellings normalised."""
        from cnnlab.runs.validate import validate_config

        validate_config(self)
        return self

    def image_sizes(self) -> list[int] | None:
        """The training image sizes in order: one for a fixed size, several for progressive resizing
        (``--image-size 96:128:160``); None for the model's default."""
        if self.image_size is None:
            return None
        text = str(self.image_size).strip()
        try:
            sizes = [int(part) for part in text.split(":")]
        except ValueError:
            raise UserError(f"--image-size must be a number or sizes joined by ':' (e.g. 96:128:160), not '{text}'") from None
        self.image_size = sizes[0] if len(sizes) == 1 else ":".join(map(str, sizes))
        return sizes

    def size_starts(self) -> list[int]:
        """The epoch (0-based, epochs completed) at which each image size starts: ``--size-epochs``, or
        the epochs split evenly between the sizes. A function of the epoch only, so resume needs no state."""
        sizes = self.image_sizes() or [0]
        if self.size_epochs is None or self.size_epochs == "":
            return [round(i * self.epochs / len(sizes)) for i in range(len(sizes))]
        text = str(self.size_epochs)
        try:
            later = [int(part) for part in text.split(":")]
        except ValueError:
            raise UserError(f"--size-epochs must be epochs joined by ':' (e.g. 4:8), not '{text}'") from None
        if len(later) != len(sizes) - 1 or later != sorted(set(later)) or (later and later[0] < 1):
            raise UserError(f"--size-epochs '{text}' must give {len(sizes) - 1} increasing epoch(s) of at least 1, "
                            f"one for each size after the first of --image-size {self.image_size}")
        return [0, *later]

    def size_at(self, epoch: int, default: int) -> int:
        """The training image size of the epoch after ``epoch`` completed epochs."""
        sizes = self.image_sizes() or [default]
        return sizes[max(i for i, start in enumerate(self.size_starts()) if start <= epoch)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> TrainConfig:
        known = {f.name for f in fields(cls)}
        d = {k.replace("-", "_"): v for k, v in (d or {}).items()}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"unknown setting '{unknown[0]}' in {where}: valid settings are {', '.join(sorted(known))}")
        return cls(**d)


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file '{path}' does not exist: pass --config with a YAML file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise UserError(f"config file '{path}' is not valid YAML{where}: fix the syntax") from None
    if not isinstance(data, dict):
        raise UserError(f"config file '{path}' must be a mapping of setting: value")
    return data


def to_yaml(cfg: TrainConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True)
