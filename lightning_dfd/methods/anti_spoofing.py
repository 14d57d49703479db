"""Multi-modal face anti-spoofing (seed 001, Parkin & Grinchuk, CVPR-W 2019) on the shared :class:`DetectorModule`.

The batch carries ``IMAGE`` (B, 3 x modalities, H, W) from :class:`~lightning_dfd.datamodules.CasiaSurfDataModule`
(the modalities stacked along channels, every geometric augmentation, the horizontal flip included, shared by
the modalities) and ``LABEL`` with **1 = attack** (the DataModule converts CASIA-SURF's 1 = real lists). The
model is :class:`~lightning_dfd.models.multimodal.MultiModalResNet`; the loss is the two-class cross-entropy of
Sec. 5.1, and the base's ``logit`` is ``z_attack - z_bona_fide``, i.e. exactly the log-odds of the softmax attack
probability (so the shared scoring, TPR@FPR with ``scoring.tpr_positive: bona_fide``, ACER... apply unchanged).

Training (Sec. 5.1): Adam, cosine schedule, 30 epochs, batch 128. The paper prints an initial learning rate of
0.1 with Adam, which diverges for fine-tuning; the default here is 1e-4 (see the README), 0.1 is
``--model.init_args.optimizer.init_args.lr 0.1``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from lightning_dfd import batch as keys
from lightning_dfd.methods.base import DetectorModule, Scoring
from lightning_dfd.models.multimodal import MultiModalResNet, read_state_dict

log = logging.getLogger(__name__)

#: default learning rate of Adam (the paper's printed 0.1 is reachable by config; README "Paper vs released code").
DEFAULT_LR = 1e-4


def anti_spoofing_adam(params: Iterable[Any]) -> torch.optim.Adam:
    """Adam (Sec. 5.1) at lr 1e-4."""
    return torch.optim.Adam(params, lr=DEFAULT_LR)


class MultiModalAntiSpoofing(DetectorModule):
    """RGB / IR / Depth ResNet branches, SE fusion and MLFA (seed 001, Fig. 2); 1 = attack.

    Args:
        backbone: ``resnet18`` / ``resnet34`` (default, Sec. 4.3) / ``resnet50`` (Table 3).
        in_chans: input channels (linked from ``data.num_channels``: 3 per modality; 3 = one modality fed to every
            branch, Table 5).
        num_branches: modality branches (3).
        se_reduction: reduction ratio of the fusion SE blocks.
        mlfa: multi-level feature aggregation (Sec. 4.3, 5.6).
        agg_reduction: 1x1 reduction of the concatenated res_k features in agg_k (see
            :mod:`lightning_dfd.models.multimodal`).
        init_weights: local state_dict of a single-stream ResNet (ImageNet, or a face recognition / gender
            network, Table 2) transferred into the branches and res4 (Sec. 5.5); ``None``: random (offline default).
        transfer_to_aggregation: also initialise agg1-agg3 from layer2-layer4 (the paper, Sec. 5.6, initialises
            them randomly: False).
        dropout: dropout before the head.
        modality_dropout: probability of zeroing a branch's input in training (not in the paper; 0).
        label_smoothing: of the two-class cross-entropy (0 in the paper).
        optimizer: optimizer factory (Adam, lr 1e-4).
        lr_scheduler: scheduler factory (the configs use ``lightning_dfd.optim.CosineDecayLR``, a cosine to 0 whose
            length the CLI links from ``trainer.max_epochs``: 30 epochs in the paper).
        scheduler_interval: ``epoch`` or ``step``.
        scoring: aggregation and evaluation settings (the configs set ``tpr_positive: bona_fide``).
    """

    def __init__(
        self,
        backbone: Literal["resnet18", "resnet34", "resnet50"] = "resnet34",
        in_chans: int = 9,
        num_branches: int = 3,
        se_reduction: int = 16,
        mlfa: bool = True,
        agg_reduction: bool = True,
        init_weights: str | None = None,
        transfer_to_aggregation: bool = False,
        dropout: float = 0.0,
        modality_dropout: float = 0.0,
        label_smoothing: float = 0.0,
        optimizer: OptimizerCallable = anti_spoofing_adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        scoring: Scoring | None = None,
    ) -> None:
        super().__init__(optimizer=optimizer, lr_scheduler=lr_scheduler, scheduler_interval=scheduler_interval,
                         scoring=scoring, pos_weight=None)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.model = MultiModalResNet(backbone=backbone, num_branches=num_branches, in_chans=in_chans,
                                      se_reduction=se_reduction, mlfa=mlfa, agg_reduction=agg_reduction,
                                      num_classes=2, dropout=dropout, modality_dropout=modality_dropout)
        self.label_smoothing = label_smoothing
        if init_weights:
            report = self.model.load_single_stream(read_state_dict(init_weights), transfer_to_aggregation)
            self.print(f"[lightning-dfd] {init_weights}: {len(report['loaded'])} tensors transferred, "
                       f"{len(report['unmatched'])} left as initialised (SE, reductions, head"
                       f"{'' if transfer_to_aggregation else ', MLFA'}; full list in the log)")

    def forward(self, inputs: Tensor) -> dict[str, Tensor]:
        class_logits = self.model(inputs)
        return {"class_logits": class_logits, "logit": class_logits[:, 1] - class_logits[:, 0]}

    def compute_loss(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        """Two-class cross-entropy (Sec. 5.1) with class 1 = attack."""
        labels = torch.as_tensor(batch[keys.LABEL], device=outputs["class_logits"].device).long().reshape(-1)
        loss = F.cross_entropy(outputs["class_logits"].float(), labels, label_smoothing=self.label_smoothing)
        return {"loss": loss}
