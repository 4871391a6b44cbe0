"""Settings of an embedding run: data and identity split, model, loss and optimisation.

Saved as ``config.yaml`` in the run directory and inside every checkpoint, as a classification
run's ``TrainConfig`` is, so a run can be resumed or evaluated from its directory alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from cnnlab.data.identities import IDENTITIES
from cnnlab.errors import UserError

LOSSES = ("triplet", "contrastive", "arcface", "whiten")  # whiten: a head fitted in closed form (embed/whiten.py)


@dataclass
class EmbedConfig:
    # data: a folder with one sub-folder per person, or the generated `identities` set
    data: str = IDENTITIES
    identities: int = 200  # generated identities (the `identities` set only)
    per_identity: int = 10  # generated images per identity
    image_size: int | None = None  # None: the model's default
    train_ids: int | None = None  # identities per part; None: half / a quarter / a quarter
    dev_ids: int | None = None
    test_ids: int | None = None
    train_per_identity: int | None = None  # keep only each training identity's first N images
    augment: str = "light"
    # model
    model: str = "ahe_cnn"
    model_options: dict[str, Any] = field(default_factory=lambda: {"dropout": 0.0})  # dropout hurt on ORL
    pretrained: bool | str = False
    dim: int = 128
    freeze_backbone: bool = False  # train only the projection head on a frozen pretrained transfer backbone
    # training
    loss: str = "arcface"
    margin: float | None = None  # None: the loss's default (triplet 0.2, contrastive 0.5, arcface 28.6 degrees)
    ids_per_batch: int = 16  # P of a P x K batch
    images_per_id: int = 4  # K of a P x K batch (with one image per identity: K augmented views)
    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"
    eval_batch_size: int = 256
    output: str | None = None

    def validate(self) -> EmbedConfig:
        if self.loss not in LOSSES:
            raise UserError(f"unknown loss '{self.loss}': choose one of {', '.join(LOSSES)}")
        for name in ("identities", "per_identity", "dim", "ids_per_batch", "epochs", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if self.loss == "whiten" and not (self.freeze_backbone and self.augment == "none"):
            raise UserError("--loss whiten fits the head on the features of a frozen backbone's un-augmented images: "
                            "add --pretrained --freeze-backbone --augment none")
        if self.images_per_id < 2 and self.loss not in ("arcface", "whiten"):
            raise UserError(f"--images-per-id must be at least 2 for the {self.loss} loss (it needs positive pairs)")
        if self.lr <= 0:
            raise UserError(f"--lr must be positive, not {self.lr}")
        if self.freeze_backbone and not self.pretrained:
            raise UserError("--freeze-backbone keeps the backbone as it starts: add --pretrained (a random frozen "
                            "backbone learns nothing)")
        if self.image_size is not None and self.image_size < 8:
            raise UserError(f"--image-size must be at least 8, not {self.image_size}")
        return self

    def split_sizes(self, n_identities: int) -> tuple[int, int, int]:
        """(train, dev, test) identity counts: as given, else half, a quarter and the rest."""
        dev = self.dev_ids or max(1, n_identities // 4)
        test = self.test_ids or max(1, n_identities // 4)
        train = self.train_ids or n_identities - dev - test
        return train, dev, test

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> EmbedConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"unknown setting '{unknown[0]}' in {where}: valid settings are {', '.join(sorted(known))}")
        return cls(**d)
