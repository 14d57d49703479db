"""Detection metrics as torchmetrics ``Metric`` classes (DDP-safe ``"cat"`` states) and functions.

Inputs everywhere: ``preds`` = probability (or score) of the positive class, 1 = fake / attack; ``target`` =
integer 0/1 labels. Undefined values (one class, no samples) are NaN with a ``UserWarning``.
"""

from lightning_dfd.metrics.aggregation import aggregate_by_video, video_index, video_indices
from lightning_dfd.metrics.anti_spoofing import AntiSpoofingErrors, acer, anti_spoofing_errors, apcer, bpcer
from lightning_dfd.metrics.base import ScoreTargetMetric, roc_counts, roc_rates
from lightning_dfd.metrics.eer import EqualErrorRate, equal_error_rate
from lightning_dfd.metrics.log_weighted_precision import (
    DFDC_ALPHA,
    LogWeightedPrecision,
    log_weighted_precision,
)
from lightning_dfd.metrics.operating_point import (
    TARAtFAR,
    ThresholdAccuracy,
    TPRAtFPR,
    tar_at_far,
    threshold_accuracy,
    tpr_at_fpr,
    true_classification_rate,
)
from lightning_dfd.metrics.partial_auc import PartialAUC, partial_auc
from lightning_dfd.metrics.ranking import AveragePrecision, RocAUC, average_precision, roc_auc
from lightning_dfd.metrics.summary import DetectionScores, group_index, rate_key
from lightning_dfd.metrics.truncated_auc import TruncatedAUC, truncated_auc

__all__ = [
    "DFDC_ALPHA",
    "AntiSpoofingErrors",
    "AveragePrecision",
    "DetectionScores",
    "EqualErrorRate",
    "LogWeightedPrecision",
    "PartialAUC",
    "RocAUC",
    "ScoreTargetMetric",
    "TARAtFAR",
    "TPRAtFPR",
    "ThresholdAccuracy",
    "TruncatedAUC",
    "acer",
    "aggregate_by_video",
    "anti_spoofing_errors",
    "apcer",
    "average_precision",
    "bpcer",
    "equal_error_rate",
    "group_index",
    "log_weighted_precision",
    "partial_auc",
    "rate_key",
    "roc_auc",
    "roc_counts",
    "roc_rates",
    "tar_at_far",
    "threshold_accuracy",
    "tpr_at_fpr",
    "true_classification_rate",
    "truncated_auc",
    "video_index",
    "video_indices",
]
