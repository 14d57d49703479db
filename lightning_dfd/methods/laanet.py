"""LAA-Net (seed 003) on the shared :class:`DetectorModule`: multi-task loss (Eq. 8) and SAM training.

The batch carries ``IMAGE`` (B,3,H,W), ``LABEL`` (B,), and for training ``HEATMAP`` and ``CONSISTENCY``
(B,1,H/s,W/s, s = ``heatmap_stride``) made by the targets transform from the blend mask (Eq. 2-4, 7); the keys
are :mod:`lightning_dfd.batch`'s, the ones the loss needs are declared in ``loss_targets``.

With the default optimiser (:class:`~lightning_dfd.optim.SAM` around Adam) the module switches to manual
optimisation: every training step runs two forward/backward passes (at w and at w + e(w)), BatchNorm running
statistics being updated by the first pass only, then one optimiser step; the LR scheduler is stepped here too
(Lightning does not step schedulers under manual optimisation). Any other optimiser trains with Lightning's
automatic optimisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from lightning_dfd import batch as keys
from lightning_dfd.losses.heatmap_focal import HeatmapLossVariant, LAANetLoss
from lightning_dfd.methods.base import DetectorModule, Scoring
from lightning_dfd.models.efpn import FPNType
from lightning_dfd.models.laanet import LAANet, consistency_logits
from lightning_dfd.optim.sam import SAM, batchnorm_stats_frozen, laanet_sam


class LAANetDetector(DetectorModule):
    """Localized Artifact Attention Network: classification + heatmap + self-consistency, E-FPN, SAM.

    Args:
        backbone: timm backbone name (``efficientnet_b4`` in the paper).
        pretrained: false, true (local cache only) or a local weights path.
        levels: pyramid levels, top first (``[6, 5, 4, 3]`` in the paper; Table 4 varies them).
        fpn_type: ``efpn`` (Eq. 9), ``fpn`` (plain) or ``none``.
        gamma_w: exponent of the E-FPN gate.
        heatmap_stride: stride of the heatmap and consistency maps (targets are image_size / stride).
        head_channels: hidden width of the heads.
        consistency_dim: embedding size of the self-consistency head.
        use_heatmap: heatmap branch H (Table 3).
        use_consistency: self-consistency branch C (Table 3).
        dropout: dropout on the backbone feature maps (0.4 in the released model).
        drop_path_rate: stochastic depth of the backbone blocks (0.2 in the released model).
        in_chans: input channels (linked from ``data.num_channels`` by the CLI).
        lambda1: weight of the heatmap loss L_H (Eq. 8; 10 in the paper and the released BI config, 100 in the
            released SBI config).
        lambda2: weight of the self-consistency loss L_C (Eq. 8; 100 in the paper).
        heatmap_loss: ``released`` (the released code's focal loss, default), ``paper`` (Eq. 5-6 literally) or
            ``cornernet`` (see :mod:`lightning_dfd.losses.heatmap_focal`).
        focal_gamma: gamma of Eq. 5 (``paper``).
        cornernet_alpha: alpha of the ``released`` / ``cornernet`` losses.
        cornernet_beta: beta of the ``released`` / ``cornernet`` losses (the (1 - h)^beta weight of negatives).
        positive_epsilon: epsilon of the released loss's positive weight (1 - eps) + eps * noise.
        positive_noise: noise share of the released loss's positive weight.
        real_consistency_target: self-consistency target of real images: 0 (released code) or 1 (paper, Eq. 7
            with B = 0).
        label_smoothing: epsilon of the classification targets (0 in the released code).
        optimizer: optimizer factory; SAM around Adam (lr 2e-4, weight decay 1e-4, rho 0.05) by default.
        lr_scheduler: scheduler factory (``lightning_dfd.optim.RampLinearDecayLR`` for the paper's schedule; the
            CLI links its ``total_steps`` from ``trainer.max_epochs``).
        scheduler_interval: ``epoch`` or ``step``.
        scoring: aggregation and evaluation settings.
    """

    def __init__(
        self,
        backbone: str = "efficientnet_b4",
        pretrained: bool | str = False,
        levels: Sequence[int] = (6, 5, 4, 3),
        fpn_type: FPNType = "efpn",
        gamma_w: float = 1.0,
        heatmap_stride: int = 4,
        head_channels: int = 64,
        consistency_dim: int = 256,
        use_heatmap: bool = True,
        use_consistency: bool = True,
        dropout: float = 0.4,
        drop_path_rate: float = 0.2,
        in_chans: int = 3,
        lambda1: float = 10.0,
        lambda2: float = 100.0,
        heatmap_loss: HeatmapLossVariant = "released",
        focal_gamma: float = 2.0,
        cornernet_alpha: float = 2.0,
        cornernet_beta: float = 4.0,
        positive_epsilon: float = 0.35,
        positive_noise: float = 0.2,
        real_consistency_target: float = 0.0,
        label_smoothing: float = 0.0,
        optimizer: OptimizerCallable = laanet_sam,
        lr_scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        scoring: Scoring | None = None,
    ) -> None:
        super().__init__(optimizer=optimizer, lr_scheduler=lr_scheduler, scheduler_interval=scheduler_interval,
                         scoring=scoring)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.model = LAANet(backbone=backbone, pretrained=pretrained, levels=levels, fpn_type=fpn_type,
                            gamma_w=gamma_w, heatmap_stride=heatmap_stride, head_channels=head_channels,
                            consistency_dim=consistency_dim, use_heatmap=use_heatmap,
                            use_consistency=use_consistency, dropout=dropout, drop_path_rate=drop_path_rate,
                            in_chans=in_chans)
        # the loss needs the dense targets of the enabled branches (Table 3: H and / or C)
        self.loss_targets = ((keys.HEATMAP,) if use_heatmap else ()) + ((keys.CONSISTENCY,) if use_consistency else ())
        # SAM takes two passes per update, which Lightning's automatic loop cannot express: decide the mode
        # now (Lightning validates trainer settings against it before configure_optimizers runs)
        self.automatic_optimization = not builds_sam(optimizer)
        self.criterion = LAANetLoss(lambda1=lambda1, lambda2=lambda2, heatmap_loss=heatmap_loss,
                                    focal_gamma=focal_gamma, cornernet_alpha=cornernet_alpha,
                                    cornernet_beta=cornernet_beta, positive_epsilon=positive_epsilon,
                                    positive_noise=positive_noise, real_consistency_target=real_consistency_target,
                                    label_smoothing=label_smoothing)

    def target_map_size(self, image_size: int) -> int | None:
        """Heatmap / consistency maps are image_size / heatmap_stride (None with neither branch)."""
        return image_size // self.model.heatmap_stride if self.loss_targets else None

    # ------------------------------------------------------------------ model and loss
    def forward(self, images: Tensor, consistency_anchor: Tensor | None = None) -> dict[str, Tensor]:
        return self.model(images, consistency_anchor=consistency_anchor)

    @staticmethod
    def vulnerable_point(consistency_target: Tensor) -> Tensor:
        """Flat index of p^s per sample: a maximum of C (C = 1 exactly on the vulnerable points, Eq. 7;
        all ones for a real image, where any anchor is consistent)."""
        return consistency_target.flatten(1).argmax(dim=1)

    def compute_loss(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        """Eq. 8. The consistency map is re-anchored at the ground-truth vulnerable point when its target exists."""
        consistency = batch[keys.CONSISTENCY] if self.model.use_consistency else None
        if consistency is not None:
            outputs = dict(outputs)
            # re-anchored at the ground-truth vulnerable point p^s (the released f_cstency does the same)
            outputs["consistency"] = consistency_logits(outputs["consistency_embedding"],
                                                        self.vulnerable_point(consistency))
        heatmap = batch[keys.HEATMAP] if self.model.use_heatmap else None
        labels = torch.as_tensor(batch[keys.LABEL], device=outputs["logit"].device)
        return self.criterion(outputs, labels, heatmap=heatmap, consistency=consistency)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        config = super().configure_optimizers()
        optimizer = config["optimizer"] if isinstance(config, dict) else config
        if isinstance(optimizer, SAM) == self.automatic_optimization:
            raise RuntimeError(f"the optimizer factory built a {type(optimizer).__name__} but a probe at __init__ "
                               f"said otherwise: it must always build the same optimizer type")
        return config

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor | None:
        if self.automatic_optimization:
            return super().training_step(batch, batch_idx)

        self.require_loss_targets(batch)
        inputs = self.batch_inputs(batch)
        optimizer = self.optimizers()
        sam: SAM = optimizer.optimizer
        losses = self.compute_loss(self(inputs), batch)
        optimizer.zero_grad()
        self.manual_backward(losses["loss"])
        sam.first_step(zero_grad=True)
        with batchnorm_stats_frozen(self.model):
            perturbed = self.compute_loss(self(inputs), batch)
        self.manual_backward(perturbed["loss"])
        optimizer.step()  # SAM.step: back to w, base update with the gradients at w + e(w)
        optimizer.zero_grad()
        if sam.is_perturbed:  # a 16-bit GradScaler skipped the step after an overflow
            sam.restore()
        if self.scheduler_interval == "step":
            self._step_schedulers()
        self.broadcast_buffers()
        self.log_losses({name: value.detach() for name, value in losses.items()}, "train",
                        batch_size=self.batch_size_of(batch))
        return None

    def broadcast_buffers(self) -> None:
        """Under DDP, give every rank rank 0's buffers (BatchNorm running statistics) after a SAM step.

        The SAM step's two forward passes run inside one DDP-wrapped ``training_step``, and Lightning's manual
        optimisation keeps DDP from broadcasting buffers before its forward as it does in automatic optimisation:
        each rank's BatchNorm statistics would drift on its own data shard and ranks would validate different
        models. This restores DDP's rule (rank 0's buffers; ``--trainer.sync_batchnorm true`` on GPUs makes them
        statistics of the global batch). Parameters need nothing: both passes' gradients are all-reduced.
        """
        import torch.distributed as dist

        if self._trainer is None or self.trainer.world_size < 2 or not (dist.is_available() and dist.is_initialized()):
            return
        buffers = [buffer for buffer in self.buffers() if buffer.numel()]
        for dtype in sorted({buffer.dtype for buffer in buffers}, key=str):
            same = [buffer for buffer in buffers if buffer.dtype == dtype]
            flat = torch.cat([buffer.detach().reshape(-1) for buffer in same])
            dist.broadcast(flat, src=0)
            offset = 0
            for buffer in same:
                buffer.copy_(flat[offset:offset + buffer.numel()].view_as(buffer))
                offset += buffer.numel()

    def on_train_epoch_end(self) -> None:
        if not self.automatic_optimization and self.scheduler_interval == "epoch":
            self._step_schedulers()

    def _step_schedulers(self) -> None:
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            scheduler.step()


def builds_sam(optimizer: OptimizerCallable) -> bool:
    """Whether the optimizer factory makes a :class:`SAM` (probed on a throw-away parameter)."""
    return isinstance(optimizer([torch.nn.Parameter(torch.zeros(1))]), SAM)
