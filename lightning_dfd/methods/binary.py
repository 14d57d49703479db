"""BinaryClassifier: any timm backbone + one logit + BCE.

The Xception / EfficientNet baseline row of every paper's table, and the smallest example of a method on
:class:`~lightning_dfd.methods.base.DetectorModule`: it only says how to compute logits and the loss.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from lightning_dfd import batch as keys
from lightning_dfd.methods.base import DetectorModule, Scoring
from lightning_dfd.models.backbones import create_classifier


class BinaryClassifier(DetectorModule):
    """timm classifier with a single fake logit trained by binary cross-entropy.

    Args:
        backbone: any timm model name (``xception41``, ``efficientnet_b4``, ``resnet18``...).
        pretrained: ``False`` (offline default), ``True`` (timm/HF weights; must already be cached when offline) or
            a local weights file path.
        in_chans: input channels (3 for RGB; 9 for stacked RGB+Depth+IR); the CLI links it from
            ``data.num_channels``.
        drop_rate: dropout before the classifier.
        pos_weight: weight of the fake class in the BCE (:class:`DetectorModule`'s ``pos_weight``): a number,
            ``None`` (1) or ``auto`` (the DataModule's class balance; under the CLI it is linked from
            ``data.pos_weight``).
        label_smoothing: targets become ``y * (1 - s) + s / 2``.
        optimizer: optimizer factory.
        lr_scheduler: scheduler factory.
        scheduler_interval: ``epoch`` or ``step``.
        scoring: aggregation and evaluation settings.
    """

    def __init__(
        self,
        backbone: str = "efficientnet_b0",
        pretrained: bool | str = False,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        pos_weight: float | Literal["auto"] | None = "auto",
        label_smoothing: float = 0.0,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        scoring: Scoring | None = None,
    ) -> None:
        super().__init__(optimizer=optimizer, lr_scheduler=lr_scheduler, scheduler_interval=scheduler_interval,
                         scoring=scoring, pos_weight=pos_weight)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.net = create_classifier(backbone, pretrained=pretrained, num_classes=1, in_chans=in_chans,
                                     drop_rate=drop_rate)
        self.label_smoothing = label_smoothing

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        return {"logit": self.net(images).reshape(-1)}

    def compute_loss(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        target = torch.as_tensor(batch[keys.LABEL], device=outputs["logit"].device).float().reshape(-1)
        if self.label_smoothing:
            target = target * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        pos_weight = None if self.pos_weight is None else outputs["logit"].new_tensor(self.pos_weight)
        loss = F.binary_cross_entropy_with_logits(outputs["logit"], target, pos_weight=pos_weight)
        return {"loss": loss}
