"""Metrics against scikit-learn, an independent implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from cnnlab.metrics import EpochMetrics, per_class_report, top_k_accuracy


@pytest.fixture
def predictions():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(200, 5, generator=g)
    targets = torch.randint(0, 5, (200,), generator=g)
    logits[:, 4] -= 100  # class 4 is never predicted: precision must be 0 for it, not NaN
    logits[targets == 1, 1] += 2  # class 1 mostly right
    return logits, targets


def test_epoch_metrics_match_sklearn_when_fed_in_batches(predictions):
    logits, targets = predictions
    m = EpochMetrics(5)
    for i in range(0, 200, 64):  # uneven batches, as in training
        loss = torch.nn.functional.cross_entropy(logits[i : i + 64], targets[i : i + 64], reduction="sum")
        m.update(logits[i : i + 64], targets[i : i + 64], loss)
    got = m.compute()
    y, p = targets.numpy(), logits.argmax(1).numpy()
    assert got["accuracy"] == pytest.approx(accuracy_score(y, p))
    prec, rec, f1, _ = precision_recall_fscore_support(y, p, average="macro", zero_division=0)
    assert got["precision_macro"] == pytest.approx(prec, abs=1e-6)
    assert got["recall_macro"] == pytest.approx(rec, abs=1e-6)
    assert got["f1_macro"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0), abs=1e-6)
    assert got["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, targets)), rel=1e-5)
    np.testing.assert_array_equal(m.confusion_matrix().numpy(), confusion_matrix(y, p, labels=range(5)))


def test_per_class_report_matches_sklearn(predictions):
    logits, targets = predictions
    y, p = targets.numpy(), logits.argmax(1).numpy()
    rows = per_class_report(torch.tensor(confusion_matrix(y, p, labels=range(5))), list("abcde"))
    prec, rec, f1, support = precision_recall_fscore_support(y, p, labels=range(5), zero_division=0)
    for r, pr, rc, f, s in zip(rows, prec, rec, f1, support):
        assert (r["precision"], r["recall"], r["f1"], r["support"]) == pytest.approx((pr, rc, f, s))
    assert rows[4]["precision"] == 0.0


def test_top_k_accuracy_by_hand():
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0], [2.0, 3.0, 1.0]])
    targets = torch.tensor([1, 0, 0])
    assert top_k_accuracy(logits, targets, 1) == 0.0
    assert top_k_accuracy(logits, targets, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(logits, targets, 3) == 1.0
