"""Epoch metrics for classifiers: loss, accuracy, macro precision/recall/F1, confusion matrix.

Precision, recall and F1 are *macro* averages (the unweighted mean over classes, so a rare class
counts as much as a common one); accuracy is the plain fraction of correct predictions (micro). The
names carry the averaging (``precision_macro``) so no table or plot leaves it to guesswork. A class
that is never predicted has precision 0 (torchmetrics' and scikit-learn's ``zero_division=0``).
"""

from __future__ import annotations

import torch
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

METRIC_NAMES = ("loss", "accuracy", "precision_macro", "recall_macro", "f1_macro")


class EpochMetrics:
    """Accumulates predictions over an epoch (running, batch by batch) and computes the summary."""

    def __init__(self, num_classes: int, device: torch.device | str = "cpu") -> None:
        self.num_classes = num_classes
        self.scores = MetricCollection({
            "accuracy": MulticlassAccuracy(num_classes, average="micro"),
            "precision_macro": MulticlassPrecision(num_classes, average="macro"),
            "recall_macro": MulticlassRecall(num_classes, average="macro"),
            "f1_macro": MulticlassF1Score(num_classes, average="macro"),
        }).to(device)
        self.confusion = MulticlassConfusionMatrix(num_classes).to(device)
        self.loss = MeanMetric().to(device)

    def update(self, logits: torch.Tensor, targets: torch.Tensor, loss_sum: torch.Tensor) -> None:
        """``loss_sum`` is the summed per-sample loss of this batch."""
        preds = logits.detach().argmax(dim=1)
        self.scores.update(preds, targets)
        self.confusion.update(preds, targets)
        n = targets.numel()
        if n:
            self.loss.update(loss_sum.detach().float() / n, weight=n)

    def compute(self) -> dict[str, float]:
        out = {"loss": float(self.loss.compute())}
        out.update({k: float(v) for k, v in self.scores.compute().items()})
        return {k: out[k] for k in METRIC_NAMES}

    def confusion_matrix(self) -> torch.Tensor:
        """Counts, rows = true class, columns = predicted class."""
        return self.confusion.compute().cpu()


def top_k_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int) -> float:
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return float((top == targets[:, None]).any(dim=1).float().mean())


def per_class_report(confusion: torch.Tensor, classes: list[str]) -> list[dict[str, float | int | str]]:
    """Precision, recall, F1 and support per class from a confusion matrix (rows = true)."""
    cm = confusion.to(torch.float64)
    tp = cm.diag()
    predicted, support = cm.sum(0), cm.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp_min(1), torch.zeros_like(tp))
    recall = torch.where(support > 0, tp / support.clamp_min(1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-12), torch.zeros_like(tp))
    return [
        {"class": c, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for c, p, r, f, s in zip(classes, precision, recall, f1, support)
    ]


def macro_over_present(per_class: list[dict[str, float | int | str]]) -> dict[str, float]:
    """Macro precision, recall and F1 over the classes that have images (support > 0), from
    ``per_class_report`` rows: a test folder with 2 of a run's 10 classes is scored on those 2, not
    diluted by 8 classes it cannot contain (scikit-learn's ``labels=present, average="macro"``)."""
    rows = [r for r in per_class if int(r["support"]) > 0]
    if not rows:
        return {"precision_macro": 0.0, "recall_macro": 0.0, "f1_macro": 0.0}
    return {f"{k}_macro": sum(float(r[k]) for r in rows) / len(rows) for k in ("precision", "recall", "f1")}
