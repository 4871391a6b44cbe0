"""The one-photo-per-person experiment: can many people with one photo each train an embedding,
when one photo gives no positive pair?

At equal numbers of training images, three arms train the same network and are tested on the same
unseen people: (a) one image per person, positives made as two augmented views of that photo
(triplet loss, batch-hard); (b) one image per person, an ArcFace margin softmax over the people
(no pairs needed); (c) ten times fewer people with ten images each (triplet loss). An untrained
network is the floor. On the generated ``identities`` set the default is 2,000 people x 1 against
200 x 10; on a folder (ORL: 40 people) as many as its people allow. Each arm is scored with its
checkpoint of lowest dev EER (dev people only), as ``benchmarks/faces.py`` does: a triplet run that
collapses late (every embedding alike, the loss stuck at the margin) is judged by its best epoch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.data.dataset import load_images
from cnnlab.data.identities import IDENTITIES, make_identities
from cnnlab.data.split import IdentitySplit, identity_split, select_identities
from cnnlab.embed.config import EmbedConfig
from cnnlab.embed.data import DATASET_SEED
from cnnlab.embed.protocol import evaluate_protocol
from cnnlab.embed.run import load_embedder
from cnnlab.embed.trainer import EmbedTrainer

IMAGE_SIZE = 32
EVAL_PER_PERSON = 10
TIE = 0.01  # test EERs closer than this are read as a tie


@dataclass(frozen=True)
class Arm:
    key: str
    label: str
    people: int
    per_person: int
    settings: dict[str, Any]


@dataclass
class ExperimentTable:
    data: str
    rows: list[tuple[Arm | None, dict[str, float]]] = field(default_factory=list)  # None: the untrained network

    def render(self) -> str:
        lines = [f"one-per-person on {self.data} (test people never trained on; threshold from dev people)",
                 f"{'arm':<48}{'people x imgs':>14}{'EER':>8}{'TAR@1%':>8}{'rank-1':>8}{'epoch':>7}{'time s':>8}"]
        for arm, s in self.rows:
            label, size = ("untrained network", "-") if arm is None else (arm.label, f"{arm.people} x {arm.per_person}")
            epoch = "-" if arm is None else str(s["epoch"])
            lines.append(f"{label:<48}{size:>14}{s['eer']:>8.3f}{s['tar_at_far_1pct']:>8.3f}{s['rank1']:>8.3f}"
                         f"{epoch:>7}{s.get('seconds', 0):>8.0f}")
        return "\n".join(lines + ["", self.reading()])

    def reading(self) -> str:
        """What the numbers say, in one paragraph."""
        by_key = {arm.key: s for arm, s in self.rows if arm is not None}
        a, b, c = by_key["a"], by_key["b"], by_key["c"]
        best = min(by_key, key=lambda k: by_key[k]["eer"])
        names = {"a": "one photo with augmented views", "b": "one photo with a margin softmax",
                 "c": "ten photos per person"}
        untrained = next(s for arm, s in self.rows if arm is None)
        return (f"Lowest test EER: {names[best]} ({by_key[best]['eer']:.3f}). One photo per person: views "
                f"{a['eer']:.3f}, margin softmax {b['eer']:.3f}, against {c['eer']:.3f} with ten per person and "
                f"{untrained['eer']:.3f} untrained. "
                + self._verdict(min(a["eer"], b["eer"]), c["eer"]))

    @staticmethod
    def _verdict(one_photo: float, many_photos: float) -> str:
        if abs(one_photo - many_photos) < TIE:
            return (f"At equal images, one photo per person and several per person did about equally well (test EERs "
                    f"within {TIE}; one split, one seed).")
        if one_photo < many_photos:
            return "Many people with one photo each trained a better embedding than few people with many photos."
        return "At equal images, several photos per person beat one photo each."


def _arms(many: int, few: int, per: int) -> list[Arm]:
    return [
        Arm("a", "(a) 1/person, 2 augmented views, triplet", many, 1,
            {"loss": "triplet", "ids_per_batch": 32, "images_per_id": 2, "augment": "strong"}),
        Arm("b", "(b) 1/person, ArcFace over people", many, 1,
            {"loss": "arcface", "ids_per_batch": 64, "images_per_id": 1, "augment": "light"}),
        Arm("c", f"(c) {per}/person, triplet", few, per,
            {"loss": "triplet", "ids_per_batch": 16, "images_per_id": 4, "augment": "light"}),
    ]


def _splits(data: str, scale: float, seed: int) -> tuple[list[Arm], dict[str, IdentitySplit]]:
    """The arms and, for each, its identity-disjoint split (dev and test people shared by all arms)."""
    if data == IDENTITIES:
        many, eval_ids = max(10, round(2000 * scale)), max(10, round(50 * scale))
        arms = _arms(many, max(1, many // EVAL_PER_PERSON), EVAL_PER_PERSON)
        dev = make_identities(range(many, many + eval_ids), EVAL_PER_PERSON, IMAGE_SIZE, DATASET_SEED)
        test = make_identities(range(many + eval_ids, many + 2 * eval_ids), EVAL_PER_PERSON, IMAGE_SIZE, DATASET_SEED)
        return arms, {arm.key: IdentitySplit(make_identities(range(arm.people), arm.per_person, IMAGE_SIZE,
                                                             DATASET_SEED), dev, test) for arm in arms}
    images = load_images(data, IMAGE_SIZE).pool
    n = len(images.classes)
    base = identity_split(images, n - 2 * (n // 4), n // 4, n // 4, seed)
    per = min(base.train.class_counts())
    many = len(base.train.classes)
    arms = _arms(many, max(1, many // per), per)
    ids = list(range(many))
    return arms, {arm.key: IdentitySplit(select_identities(base.train, ids[: arm.people], arm.per_person),
                                         base.dev, base.test) for arm in arms}


def one_per_person(data: str | None = None, epochs: int = 8, seed: int = 0, device: str = "auto", scale: float = 1.0,
                   output: str | Path | None = None) -> ExperimentTable:
    data = data or IDENTITIES
    arms, splits = _splits(data, scale, seed)
    out = Path(output) if output else Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-one-per-person"
    table = ExperimentTable(data)
    for arm in arms:
        cfg = EmbedConfig(data=data, image_size=IMAGE_SIZE, epochs=epochs, seed=seed, device=device,
                          output=str(out / arm.key), **arm.settings)
        t0 = time.perf_counter()
        trainer = EmbedTrainer(cfg, split=splits[arm.key])
        if arm.key == "a":
            untrained = evaluate_protocol(trainer.encoder(), trainer.split, seed=seed).summary()
            table.rows.append((None, untrained))
        best = load_embedder(trainer.fit(), "best", trainer.device)
        summary = evaluate_protocol(best.encoder, trainer.split, seed=seed).summary()
        table.rows.append((arm, {**summary, "epoch": trainer.best["epoch"], "seconds": time.perf_counter() - t0}))
    return table
