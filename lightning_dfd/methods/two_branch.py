"""Two-branch recurrent network for isolating deepfakes (Masi et al., ECCV 2020; seed 004).

``Phi`` (:class:`~lightning_dfd.models.two_branch.TwoBranchNet`: RGB + Deep LoG DenseNet branches, grouped fusion,
BiLSTM) is trained with the hypersphere loss of Eq. 2 (:mod:`lightning_dfd.losses.hypersphere`) around a fixed
real-face centre ``c``:

* ``c`` is the mean ``Phi`` of the natural training clips through the untrained network in eval mode (Sec. 3.3),
  computed once in :meth:`TwoBranchDetector.on_fit_start` (before the sanity check and the first step), summed and
  counted on every DDP rank over its share of the clips and all-reduced, so every rank holds the same centre. It is
  a buffer: saved in checkpoints, restored with them, and not recomputed on resume (``center_ready``).
* Score: the distance ``d = ||Phi - c||`` (larger = more likely fake, Sec. 3). The base's ``logit`` is
  ``log d - log r`` with ``r`` the decision radius (default: the middle of the margin, ``(r_minus + r_plus) / 2``),
  so the fake probability is ``sigmoid(logit) = d / (d + r)``: monotone in ``d``, 0.5 at ``d = r``, and the
  ranking score the metrics read (the float64 logit) keeps the distances' order for every ``d > 0`` (no
  saturation). Video score: the base's ``mean`` aggregation of the clip scores (Sec. 4).
* Optimisation (Sec. 3.1, 4): Adam, ``mu = 1e-3``, weight decay 1e-6; per dense block ``mu / 2^L``
  (:meth:`~lightning_dfd.models.two_branch.TwoBranchNet.block_groups`; the Deep LoG branch, the fusion and the
  LSTM at ``mu``), passed to the optimizer as ``lr_scale`` of each parameter group; LR / 10 on a validation-loss
  plateau of 50 epochs, three times (:class:`~lightning_dfd.optim.plateau.LimitedReduceLROnPlateau`).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from lightning_dfd import batch as keys
from lightning_dfd.datamodules.samplers import distributed_world
from lightning_dfd.losses.hypersphere import (
    RADII_WITH_LSTM,
    RADII_WITHOUT_LSTM,
    HypersphereLoss,
    check_radii,
    embedding_mean,
    natural_clip_indices,
    rank_share,
)
from lightning_dfd.methods.base import DetectorModule, Scoring
from lightning_dfd.models.two_branch import Branches, TwoBranchNet


class TwoBranchDetector(DetectorModule):
    """Two-branch recurrent network + hypersphere loss (module docstring).

    Args:
        backbone: timm DenseNet (``densenet121``, Sec. 3.1).
        pretrained: ``False`` (offline default), ``True`` (timm's ImageNet weights from the local cache; the
            paper's initialisation) or a local weights file.
        in_chans: input channels (linked from the data by the CLI).
        backbone_args: extra timm arguments (tests: a tiny DenseNet).
        branches: ``two_branch`` or ``rgb_only`` (``Phi_RGB`` alone).
        use_lstm: BiLSTM over the clip (256-d ``Phi``) or the pooled backbone feature (1024-d, Table 1a).
        lstm_hidden: hidden size per LSTM direction (128).
        fusion_groups: groups of the point-wise fusion (2).
        dense_dropout: dropout after each dense layer (0.2).
        log_sigmas, log_down_factors, log_kernel_size: Deep LoG scales
            (:class:`~lightning_dfd.models.deep_log.DeepLoG`).
        r_minus, r_plus: radii of Eq. 2 (default 0.042 / 1.638 with the LSTM, 2.5 / 97.5 without).
        decision_radius: ``r`` of the score map ``d / (d + r)`` (default ``(r_minus + r_plus) / 2``).
        lr_decay: per-block learning-rate base: block ``L`` trains at ``mu / lr_decay^L`` (2; 1 = one rate).
        center_max_clips: natural training clips averaged into ``c`` at most (evenly spaced; ``None``: all).
        optimizer: optimizer factory (Adam, lr 1e-3, weight decay 1e-6 in the configs).
        lr_scheduler: scheduler factory (a ReduceLROnPlateau watches ``val/loss``).
        scheduler_interval: ``epoch`` or ``step``.
        scoring: aggregation and evaluation settings.
    """

    def __init__(
        self,
        backbone: str = "densenet121",
        pretrained: bool | str = False,
        in_chans: int = 3,
        backbone_args: dict[str, Any] | None = None,
        branches: Branches = "two_branch",
        use_lstm: bool = True,
        lstm_hidden: int = 128,
        fusion_groups: int = 2,
        dense_dropout: float = 0.2,
        log_sigmas: tuple[float, ...] = (1.0, 2.0, 4.0),
        log_down_factors: tuple[int, ...] = (2, 4, 8),
        log_kernel_size: int | None = None,
        r_minus: float | None = None,
        r_plus: float | None = None,
        decision_radius: float | None = None,
        lr_decay: float = 2.0,
        center_max_clips: int | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        scoring: Scoring | None = None,
    ) -> None:
        super().__init__(optimizer=optimizer, lr_scheduler=lr_scheduler, scheduler_interval=scheduler_interval,
                         scoring=scoring, pos_weight=None)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        default_radii = RADII_WITH_LSTM if use_lstm else RADII_WITHOUT_LSTM
        r_minus = default_radii[0] if r_minus is None else r_minus
        r_plus = default_radii[1] if r_plus is None else r_plus
        self.loss_fn = HypersphereLoss(*check_radii(r_minus, r_plus))
        self.decision_radius = float(decision_radius or (r_minus + r_plus) / 2)
        if self.decision_radius <= 0:
            raise ValueError(f"model.init_args.decision_radius must be > 0, got {decision_radius}")
        if lr_decay <= 0:
            raise ValueError(f"model.init_args.lr_decay must be > 0, got {lr_decay}")
        if center_max_clips is not None and center_max_clips < 1:
            raise ValueError(f"model.init_args.center_max_clips must be >= 1 or null, got {center_max_clips}")
        self.lr_decay = float(lr_decay)
        self.center_max_clips = center_max_clips
        self.net = TwoBranchNet(backbone, pretrained, in_chans, backbone_args, branches, fusion_groups,
                                dense_dropout, use_lstm, lstm_hidden, log_sigmas, log_down_factors, log_kernel_size)
        self.register_buffer("center", torch.zeros(self.net.embedding_dim))
        self.register_buffer("center_ready", torch.tensor(False))

    # ------------------------------------------------------------------ scores and loss
    def forward(self, inputs: Tensor) -> dict[str, Tensor]:
        embedding = self.net(inputs)
        distance = torch.linalg.vector_norm(embedding - self.center.to(embedding.dtype), dim=1)
        # float64 log-odds: log d - log r, monotone in d (see the module docstring); tiny floor for d = 0
        logit = torch.log(distance.detach().double().clamp_min(1e-300)) - math.log(self.decision_radius)
        return {"embedding": embedding, "distance": distance, "logit": logit}

    def compute_loss(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        labels = torch.as_tensor(batch[keys.LABEL], device=outputs["distance"].device).long()
        loss, natural, manipulated = self.loss_fn(outputs["distance"], labels)
        return {"loss": loss, "natural": natural.detach(), "manipulated": manipulated.detach()}

    # ------------------------------------------------------------------ the real-face centre c
    def on_fit_start(self) -> None:
        super().on_fit_start()
        if not bool(self.center_ready):  # a resumed run keeps the centre of its checkpoint
            self.compute_center(getattr(self.trainer, "datamodule", None))

    @torch.no_grad()
    def compute_center(self, datamodule: Any) -> Tensor:
        """Set ``c`` to the mean ``Phi`` of the natural training clips (untrained net, eval mode), over all ranks."""
        from torch.utils.data import DataLoader, Subset

        from lightning_dfd.datamodules.collate import collate_samples

        if datamodule is None or not hasattr(datamodule, "dataset"):
            raise ValueError("TwoBranchDetector computes its centre c from the DataModule's training clips: fit it "
                             "with a lightning_dfd DataModule (data: in the config)")
        dataset = datamodule.dataset("train")
        chosen = natural_clip_indices(dataset.unit_labels, self.center_max_clips)
        world, rank = distributed_world()
        loader = DataLoader(Subset(dataset, rank_share(chosen, rank, world)),
                            batch_size=int(getattr(datamodule, "batch_size", 8)), shuffle=False,
                            num_workers=int(getattr(datamodule, "num_workers", 0)), collate_fn=collate_samples)
        was_training = self.net.training
        self.net.eval()
        center = embedding_mean(lambda batch: self.net(self.batch_inputs(batch).to(self.device)), loader,
                                self.net.embedding_dim, self.device)
        self.net.train(was_training)
        self.center.copy_(center.to(self.center.dtype))
        self.center_ready.fill_(True)
        rank_zero_info(f"[lightning-dfd] two-branch centre c: mean Phi of {len(chosen)} natural training clips "
                   f"(|c| = {float(center.norm()):.4f})")
        return self.center

    # ------------------------------------------------------------------ per-block learning rates
    def trainable_parameters(self):
        """Parameter groups with ``lr_scale = 1 / lr_decay^L`` (``mu / 2^L``, Sec. 3.1); names in ``name``."""
        groups = []
        for name, params, depth in self.net.block_groups():
            scale = 1.0 if depth is None else self.lr_decay ** (-depth)
            groups.append({"params": params, "lr_scale": scale, "name": name})
        return groups
