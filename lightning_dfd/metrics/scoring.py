"""``Scoring``: the evaluation settings of every method, declared once (the metrics and the base read them here).

Configs set it under the model: ``model.init_args.scoring: {aggregation: vote, tpr_positive: bona_fide, ...}``;
:class:`~lightning_dfd.metrics.DetectionScores` takes the object itself, so names, types and defaults exist
only in this dataclass. It lives in the metrics package so that metrics never import methods;
``lightning_dfd.methods.base`` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from lightning_dfd.metrics.aggregation import AGGREGATIONS, Aggregation
from lightning_dfd.metrics.truncated_auc import TAUC_READINGS, TAUCReading

TPRPositive = Literal["fake", "bona_fide"]
TPR_POSITIVES: tuple[str, ...] = ("fake", "bona_fide")


@dataclass
class Scoring:
    """Evaluation settings shared by every method.

    Args:
        aggregation: how frame scores become a video score: ``mean`` (mean fake probability, seed 004 Sec. 4),
            ``vote`` (fraction of frames with ``p >= threshold``; majority vote = video score >= 0.5, seed 002)
            or ``max``. It sets the video *decision* (video accuracy = TCR, APCER...) and, unless
            ``ranking_aggregation`` says otherwise, the video ranking score too.
        ranking_aggregation: how frame scores become the video *ranking* score that AUC, AP, EER, TPR@FPR, pAUC
            and tAUC read; ``None`` (default) = ``aggregation``. DLDFD (seed 002) decides by majority vote
            (``aggregation: vote``) and reports the mean-score video AUC of the other methods with
            ``ranking_aggregation: mean`` (a vote fraction ranks coarsely: it has frames + 1 values).
        threshold: decision threshold on the fake probability (accuracy/TCR, APCER/BPCER/ACER, votes).
        flip_tta: average the probability of each frame with that of its horizontal flip at val/test/predict.
        fpr_points: false positive rates at which TPR is reported (keys ``tpr@fpr=1e-4`` or
            ``tpr_bona_fide@fpr=1e-4``, see ``tpr_positive``). A rate below ``1 / n_negatives`` is reported as
            NaN with a warning (it is not a measurement on that many negatives).
        tpr_positive: the positive class of TPR@FPR. ``fake``: fakes / attacks caught while at most ``fpr`` of
            the reals are flagged (TAR@FAR of seed 004, the deepfake convention). ``bona_fide``: bona fide faces
            accepted while at most ``fpr`` of the attacks are accepted (CASIA-SURF challenge, seed 001 Sec. 4,
            "TPR@FPR=10e-4"); the anti-spoofing configs use it.
        max_fpr: cut-off of the McClish-standardised partial AUC.
        tauc_fars: cut-offs ``FAR_tau`` of the truncated AUC (seed 004: 1 % and 10 %).
        tauc_reading: how ``tAUC_tau = sum_{i in F_tau} TAR_i / |F_tau|`` (seed 004 Sec. 4) reads ``F_tau``:
            ``roc_points`` (default): the ROC's operating points (one per distinct score) with FAR <= FAR_tau,
            the reading the paper's Tables 1-3 fit; ``far_grid``: a continuous FAR grid, i.e. the area under
            the TAR@FAR step curve up to FAR_tau over FAR_tau. See :mod:`lightning_dfd.metrics.truncated_auc`.
        log_wp_recalls: recalls at which the DFDC-preview log weighted precision (alpha = 100) is reported,
            e.g. ``[0.1, 0.5, 0.9]`` (seed 004, Table 4b); none by default.
    """

    aggregation: Aggregation = "mean"
    ranking_aggregation: Aggregation | None = None
    threshold: float = 0.5
    flip_tta: bool = False
    fpr_points: tuple[float, ...] = (1e-2, 1e-3, 1e-4)
    tpr_positive: TPRPositive = "fake"
    max_fpr: float = 0.1
    tauc_fars: tuple[float, ...] = (0.01, 0.1)
    tauc_reading: TAUCReading = "roc_points"
    log_wp_recalls: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name, value, allowed in (("aggregation", self.aggregation, AGGREGATIONS),
                                     ("tpr_positive", self.tpr_positive, TPR_POSITIVES),
                                     ("tauc_reading", self.tauc_reading, TAUC_READINGS)):
            if value not in allowed:
                raise ValueError(f"Scoring.{name} must be one of {allowed}, got {value!r} "
                                 f"(model.init_args.scoring.{name} in the config).")
        if self.ranking_aggregation is not None and self.ranking_aggregation not in AGGREGATIONS:
            raise ValueError(f"Scoring.ranking_aggregation must be null or one of {AGGREGATIONS}, got "
                             f"{self.ranking_aggregation!r} (model.init_args.scoring.ranking_aggregation).")
        self.threshold = float(self.threshold)
        self.fpr_points = tuple(float(f) for f in self.fpr_points)
        self.max_fpr = float(self.max_fpr)
        self.tauc_fars = tuple(float(f) for f in self.tauc_fars)
        self.log_wp_recalls = tuple(float(r) for r in self.log_wp_recalls)

    @property
    def video_ranking_aggregation(self) -> Aggregation:
        """The aggregation of the video ranking score: ``ranking_aggregation``, else ``aggregation``."""
        return self.ranking_aggregation or self.aggregation

    @property
    def tpr_positive_label(self) -> int:
        """Label of the positive class of TPR@FPR: 1 (fake / attack) or 0 (bona fide)."""
        return 1 if self.tpr_positive == "fake" else 0

    @property
    def tpr_key(self) -> str:
        """Key stem of TPR@FPR: ``tpr`` (fake positive) or ``tpr_bona_fide`` (bona fide positive)."""
        return "tpr" if self.tpr_positive == "fake" else "tpr_bona_fide"


# Checkpoints are loaded with weights_only=True: allow Scoring in hyper-parameters, under its module and under
# the module it lived in before (lightning_dfd.methods.base), so checkpoints saved then still load.
torch.serialization.add_safe_globals([Scoring, (Scoring, "lightning_dfd.methods.base.Scoring")])
