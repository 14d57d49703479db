"""DLDFD (Singh & Ramachandra, VISAPP 2022; seed 002): augmented layers + ResNet-50, weighted BCE, majority vote.

Training (Sec. 3.3): weighted binary cross-entropy, Adam (lr 1e-3, beta1 0.9), 25 epochs, random horizontal flip
and ImageNet normalisation only (Sec. 3.1), every extracted frame (the configs). Evaluation (Sec. 3.3, Sec. 4): a
frame is called fake when its probability is >= the threshold (0.5), a video by the majority vote of its frames,
and the True Classification Rate (TCR) is the video accuracy, ``test/video/acc`` (per manipulation
``test/video/acc/{manipulation}``). The video AUC is reported from the mean frame probability, as for every other
method (``Scoring(aggregation="vote", ranking_aggregation="mean")``).

Vote tie rule: a video is fake when at least half of its frames vote fake (vote fraction >= 0.5), so a video with
as many fake as real votes is called fake; a frame whose probability equals the threshold votes fake.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from lightning_dfd import batch as keys
from lightning_dfd.methods.base import DetectorModule, Scoring
from lightning_dfd.models.dldfd import DLDFDNet, Fusion


def dldfd_scoring() -> Scoring:
    """DLDFD's evaluation: majority-vote video decisions (TCR), mean-probability video ranking (AUC)."""
    return Scoring(aggregation="vote", ranking_aggregation="mean")


def weighted_bce(logits: Tensor, target: Tensor, pos_weight: float | None) -> Tensor:
    """Weighted binary cross-entropy (Sec. 3.3), mean over the batch:
    ``-(1/N) sum_i [w_fake y_i log sigmoid(z_i) + w_real (1 - y_i) log(1 - sigmoid(z_i))]`` with ``w_real = 1``
    and ``w_fake = pos_weight`` (``None``: 1). Inverse class frequencies ``[1/n_real, 1/n_fake]`` scaled so that
    ``w_real = 1`` give ``pos_weight = n_real / n_fake``, the DataModule's ``pos_weight`` with ``balance:
    loss_weights``."""
    weight = None if pos_weight is None else logits.new_tensor(float(pos_weight))
    return F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight)


class DLDFDDetector(DetectorModule):
    """DLDFD on the shared base (:class:`DetectorModule`).

    Args:
        fusion: ``to_rgb`` (reading (a), default) or ``wide_stem`` (reading (b)); see
            :mod:`lightning_dfd.models.dldfd`.
        backbone: timm model after the augmented layers (``resnet50``).
        pretrained: ``False`` (offline default), ``True`` (timm's ImageNet weights, the paper's initialisation,
            Sec. 3.3) or a local weights file.
        in_chans: input channels; the CLI links it from ``data.num_channels``.
        branch_channels: outputs of each 3x3 branch (64).
        branches: parallel 3x3 branches (3).
        activation: ReLU after the 3x3 branches.
        drop_rate: dropout before the linear head.
        pos_weight: weight of the fake class in the weighted BCE: ``auto`` (the training set's inverse class
            frequencies, reals / fakes, from the DataModule with ``balance: loss_weights``; linked by the CLI,
            printed and logged as the hyper-parameter ``pos_weight_used``), a number, or ``None`` (plain BCE).
        optimizer: optimizer factory (the configs: Adam, lr 1e-3, betas (0.9, 0.999)).
        lr_scheduler: scheduler factory (none in the paper).
        scheduler_interval: ``epoch`` or ``step``.
        scoring: evaluation settings; default majority vote + mean-probability video AUC (:func:`dldfd_scoring`).
    """

    def __init__(
        self,
        fusion: Fusion = "to_rgb",
        backbone: str = "resnet50",
        pretrained: bool | str = False,
        in_chans: int = 3,
        branch_channels: int = 64,
        branches: int = 3,
        activation: bool = True,
        drop_rate: float = 0.0,
        pos_weight: float | Literal["auto"] | None = "auto",
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        scoring: Scoring | None = None,
    ) -> None:
        super().__init__(optimizer=optimizer, lr_scheduler=lr_scheduler, scheduler_interval=scheduler_interval,
                         scoring=scoring or dldfd_scoring(), pos_weight=pos_weight)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.net = DLDFDNet(fusion=fusion, backbone=backbone, pretrained=pretrained, in_chans=in_chans,
                            branch_channels=branch_channels, branches=branches, activation=activation,
                            drop_rate=drop_rate)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        return {"logit": self.net(images)}

    def compute_loss(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        logits = outputs["logit"].float()
        target = torch.as_tensor(batch[keys.LABEL], device=logits.device).float().reshape(-1)
        return {"loss": weighted_bce(logits, target, self.pos_weight)}

    def on_fit_start(self) -> None:
        super().on_fit_start()  # resolves pos_weight "auto" from the DataModule
        for logger in self.loggers:
            logger.log_hyperparams({"pos_weight_used": 1.0 if self.pos_weight is None else float(self.pos_weight)})
