"""Verification (1:1) metrics on distances: ROC, AUC, EER, TAR at a FAR, accuracy at a threshold.

Everything here takes the *distances* of genuine pairs (same person) and impostor pairs (different
people); a pair is accepted as "same person" when its distance is at most the threshold. FAR (false
accept rate) is the fraction of impostor pairs accepted, TAR (true accept rate) the fraction of
genuine pairs accepted, FRR = 1 - TAR. The ROC comes from scikit-learn's ``roc_curve`` on the negated
distances, so its thresholds are exact data values and ties are handled once, there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


@dataclass(frozen=True)
class Roc:
    """ROC points from strictest to most lenient: accept ``distance <= thresholds[i]`` gives
    ``far[i]`` and ``tar[i]``. The first point accepts nothing (threshold -inf)."""

    far: np.ndarray
    tar: np.ndarray
    thresholds: np.ndarray
    auc: float


def _labels_scores(genuine: np.ndarray, impostor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    genuine, impostor = np.asarray(genuine, dtype=np.float64), np.asarray(impostor, dtype=np.float64)
    if genuine.size == 0 or impostor.size == 0:
        raise ValueError("verification metrics need at least one genuine and one impostor pair")
    labels = np.concatenate([np.ones(genuine.size), np.zeros(impostor.size)])
    return labels, -np.concatenate([genuine, impostor])  # higher score = more alike


def roc(genuine: np.ndarray, impostor: np.ndarray) -> Roc:
    labels, scores = _labels_scores(genuine, impostor)
    far, tar, thr = roc_curve(labels, scores)
    return Roc(far, tar, -thr, float(roc_auc_score(labels, scores)))


def eer(curve: Roc) -> float:
    """Equal error rate: where FAR = FRR on the ROC polyline, linearly interpolated between the two
    ROC points on either side of the crossing (the convention of the bob and pyeer toolkits)."""
    frr = 1 - curve.tar
    diff = curve.far - frr  # rises from -1 (accept nothing) to +1 (accept everything)
    i = int(np.argmax(diff >= 0))
    if diff[i] == 0 or i == 0:
        return float(curve.far[i])
    t = -diff[i - 1] / (diff[i] - diff[i - 1])
    return float(curve.far[i - 1] + t * (curve.far[i] - curve.far[i - 1]))


def eer_threshold(curve: Roc) -> float:
    """The data threshold closest to the EER point: the one minimising max(FAR, FRR)."""
    return float(curve.thresholds[int(np.argmin(np.maximum(curve.far, 1 - curve.tar)))])


def threshold_at_far(curve: Roc, far: float) -> float:
    """The most lenient threshold whose FAR is at most ``far`` (the strictest accepts nothing)."""
    ok = np.nonzero(curve.far <= far)[0]
    return float(curve.thresholds[ok[np.argmax(curve.tar[ok])]])


def tar_at_far(curve: Roc, far: float) -> float:
    """The highest TAR among thresholds with FAR at most ``far`` (no interpolation)."""
    return float(curve.tar[curve.far <= far].max())


def rates_at(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> tuple[float, float]:
    """(FAR, TAR) when accepting ``distance <= threshold``."""
    return float(np.mean(np.asarray(impostor) <= threshold)), float(np.mean(np.asarray(genuine) <= threshold))


def accuracy_at(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> float:
    """Fraction of all pairs decided correctly: genuine accepted, impostor rejected."""
    correct = np.sum(np.asarray(genuine) <= threshold) + np.sum(np.asarray(impostor) > threshold)
    return float(correct / (np.size(genuine) + np.size(impostor)))
