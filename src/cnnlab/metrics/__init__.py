"""Classification metrics (torchmetrics underneath), named with their averaging."""

from cnnlab.metrics.classification import (
    METRIC_NAMES,
    EpochMetrics,
    macro_over_present,
    per_class_report,
    top_k_accuracy,
)

__all__ = ["METRIC_NAMES", "EpochMetrics", "macro_over_present", "per_class_report", "top_k_accuracy"]
