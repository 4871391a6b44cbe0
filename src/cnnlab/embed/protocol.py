"""The evaluation protocol, the same for the CNN and the baselines.

1. Verification: every pair of images of the dev identities gives a genuine (same person) or an
   impostor distance; the threshold is calibrated there, at the EER point or at a target FAR.
2. The same pairs among the *test* identities (never trained on, never used for the threshold)
   give ROC, AUC, EER, TAR at FAR 1% and 0.1%, and FAR, TAR and accuracy at the dev threshold.
3. Identification on the test identities: ``n_enrolled`` images of each person are enrolled (drawn
   with the seed), the others are probes. Closed set: rank-1, rank-5 and the CMC. Open set: each probe
   is searched once against the gallery (mated) and once against the gallery without its own person
   (non-mated, leave-one-identity-out), which gives DIR at FPIR 1% with every person taking both roles.

Distances are Euclidean between L2-normalised embeddings; "same person" means distance <= threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from cnnlab.data.imageset import ImageSet
from cnnlab.data.split import IdentitySplit
from cnnlab.errors import UserError
from cnnlab.metrics import identification as ident
from cnnlab.metrics import verification as verif

Encoder = Callable[[torch.Tensor], torch.Tensor]  # uint8 N x 3 x H x W -> float N x D, L2-normalised


@dataclass(frozen=True)
class PairDistances:
    genuine: np.ndarray
    impostor: np.ndarray


def pair_distances(embeddings: torch.Tensor, labels: torch.Tensor) -> PairDistances:
    """Distances of all unordered pairs, split into same-identity and different-identity pairs."""
    d = torch.cdist(embeddings.float(), embeddings.float())
    i, j = torch.triu_indices(len(labels), len(labels), offset=1)
    dist, same = d[i, j].numpy(), (labels[i] == labels[j]).numpy()
    return PairDistances(dist[same], dist[~same])


def calibrate(pairs: PairDistances, rule: str | float) -> float:
    """The threshold for ``rule``: ``"eer"`` (the EER point) or a target FAR such as 0.01."""
    curve = verif.roc(pairs.genuine, pairs.impostor)
    return verif.eer_threshold(curve) if rule == "eer" else verif.threshold_at_far(curve, float(rule))


def parse_rule(text: str) -> str | float:
    if text == "eer":
        return text
    try:
        far = float(text)
    except ValueError:
        far = -1.0
    if not 0 < far < 1:
        raise UserError(f"--threshold-at must be 'eer' or a target false accept rate in (0, 1) such as 0.01, not '{text}'")
    return far


@dataclass(frozen=True)
class Identification:
    cmc: np.ndarray  # cmc[k - 1] = fraction of probes whose person is among the k nearest
    mated: np.ndarray  # each probe's distance to its own person
    non_mated: np.ndarray  # each probe's distance to the nearest other person
    dir_at_fpir_1: float
    n_probes: int


def identify_probes(embeddings: torch.Tensor, labels: torch.Tensor, n_enrolled: int, seed: int) -> Identification:
    n_ids = int(labels.max()) + 1
    g = torch.Generator().manual_seed(seed)
    enrolled = torch.zeros(len(labels), dtype=torch.bool)
    for k in range(n_ids):
        idx = torch.nonzero(labels == k).flatten()
        enrolled[idx[torch.randperm(len(idx), generator=g)[:n_enrolled]]] = True
    probes = ~enrolled & (torch.bincount(labels, minlength=n_ids)[labels] > n_enrolled)
    if not probes.any():
        raise UserError(f"no probe images left after enrolling {n_enrolled} per person: enrol fewer (--enrolled)")
    d = torch.cdist(embeddings[probes].float(), embeddings[enrolled].float())
    gallery_labels = labels[enrolled]
    per_id = torch.full((len(d), n_ids), float("inf"))
    per_id.scatter_reduce_(1, gallery_labels.expand(len(d), -1), d, reduce="amin")
    dist, true = per_id.numpy(), labels[probes].numpy()
    rank = ident.ranks(dist, true)
    mated = dist[np.arange(len(dist)), true]
    others = dist.copy()
    others[np.arange(len(dist)), true] = np.inf
    non_mated = others.min(axis=1)
    rate, _ = ident.dir_at_fpir(mated, rank, non_mated, 0.01)
    return Identification(ident.cmc(dist, true, min(n_ids, 20)), mated, non_mated, rate, len(dist))


@dataclass(frozen=True)
class ProtocolResult:
    threshold: float
    rule: str | float
    test: PairDistances
    roc: verif.Roc
    identification: Identification
    n_enrolled: int

    def summary(self) -> dict[str, float | int | str]:
        """The numbers of the result, for metrics.json and tables."""
        g, imp = self.test.genuine, self.test.impostor
        far, tar = verif.rates_at(g, imp, self.threshold)
        cmc = self.identification.cmc
        return {
            "threshold": self.threshold, "threshold_rule": str(self.rule),
            "auc": self.roc.auc, "eer": verif.eer(self.roc),
            "tar_at_far_1pct": verif.tar_at_far(self.roc, 0.01), "tar_at_far_0.1pct": verif.tar_at_far(self.roc, 0.001),
            "far_at_threshold": far, "tar_at_threshold": tar, "accuracy_at_threshold": verif.accuracy_at(g, imp, self.threshold),
            "rank1": float(cmc[0]), "rank5": float(cmc[min(4, len(cmc) - 1)]),
            "dir_at_fpir_1pct": self.identification.dir_at_fpir_1,
            "genuine_pairs": int(g.size), "impostor_pairs": int(imp.size),
            "enrolled_per_person": self.n_enrolled, "probes": self.identification.n_probes,
        }


def evaluate_protocol(encode: Encoder, split: IdentitySplit, rule: str | float = "eer", n_enrolled: int = 5,
                      seed: int = 0) -> ProtocolResult:
    """Calibrate on ``split.dev``, measure on ``split.test`` (see the module docstring)."""
    dev_pairs = _pairs(encode, split.dev)
    threshold = calibrate(dev_pairs, rule)
    test_emb = encode(split.test.images)
    test_pairs = pair_distances(test_emb, split.test.labels)
    curve = verif.roc(test_pairs.genuine, test_pairs.impostor)
    found = identify_probes(test_emb, split.test.labels, n_enrolled, seed)
    return ProtocolResult(threshold, rule, test_pairs, curve, found, n_enrolled)


def _pairs(encode: Encoder, images: ImageSet) -> PairDistances:
    return pair_distances(encode(images.images), images.labels)
