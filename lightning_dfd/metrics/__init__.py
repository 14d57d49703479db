"""Detection metrics as torchmetrics ``Metric`` classes (DDP-safe ``"cat"`` states) and functions.

Inputs everywhere: ``preds`` = score of the positive class, 1 = fake / attack (probabilities for thresholded
metrics, any order-preserving score, e.g. logits, for ranking metrics); ``target`` = integer 0/1 labels.
Undefined values (one class, no samples, NaN scores) are NaN with a ``UserWarning``. The evaluation settings
live once in :class:`Scoring` (``lightning_dfd.metrics.scoring``).
"""

from lightning_dfd.metrics.aggregation import (
    Aggregation,
    aggregate_by_video,
    aggregate_log_odds_by_video,
    mean_probability_log_odds,
    video_index,
    video_indices,
)
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
from lightning_dfd.metrics.scoring import Scoring
from lightning_dfd.metrics.summary import DetectionScores, group_index, rate_key
from lightning_dfd.metrics.truncated_auc import TruncatedAUC, truncated_auc

__all__ = [
    "DFDC_ALPHA",
    "Aggregation",
    "AntiSpoofingErrors",
    "AveragePrecision",
    "DetectionScores",
    "EqualErrorRate",
    "LogWeightedPrecision",
    "PartialAUC",
    "RocAUC",
    "ScoreTargetMetric",
    "Scoring",
    "TARAtFAR",
    "TPRAtFPR",
    "ThresholdAccuracy",
    "TruncatedAUC",
    "acer",
    "aggregate_by_video",
    "aggregate_log_odds_by_video",
    "anti_spoofing_errors",
    "apcer",
    "average_precision",
    "bpcer",
    "equal_error_rate",
    "group_index",
    "log_weighted_precision",
    "mean_probability_log_odds",
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
