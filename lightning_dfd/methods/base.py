"""The shared base of every detector: scoring, frame/video aggregation, metric logging, PNGs, predict.

The method contract (what a method writes, what this base gives it) is :class:`DetectorModule`'s docstring; the
batch keys are :mod:`lightning_dfd.batch`; docs/architecture.md puts both in context.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from lightning_dfd import batch as keys
from lightning_dfd.batch import ATTACK_TYPE, LABEL, METHOD, VIDEO_ID, EvalStepOutput
from lightning_dfd.metrics import DetectionScores, mean_probability_log_odds, video_indices
from lightning_dfd.metrics.aggregation import Aggregation
from lightning_dfd.metrics.scoring import Scoring

__all__ = ["Aggregation", "DetectorModule", "Scoring", "group_names"]  # Scoring re-exported for configs / helpers

#: where :meth:`DetectorModule.on_save_checkpoint` writes the inference settings.
CHECKPOINT_SETTINGS_KEY = "lightning_dfd"
#: DataModule attributes (and ``__init__`` arguments) that inference must reuse from training.
INFERENCE_DATA_SETTINGS: tuple[str, ...] = ("image_size", "resize_size", "normalize_mean", "normalize_std",
                                            "modalities", "frames_per_video", "mode", "clip_length", "clip_stride")


def check_loss_targets(method: str, targets: tuple[str, ...]) -> tuple[str, ...]:
    """``targets`` when every one is a key of :mod:`lightning_dfd.batch`, else a TypeError naming the stray ones."""
    unknown = sorted(set(targets) - set(keys.ALL_KEYS))
    if unknown:
        raise TypeError(f"{method}.loss_targets names {unknown}, which are not batch keys of lightning_dfd.batch "
                        f"({sorted(keys.ALL_KEYS)})")
    return tuple(targets)


def plain(value: Any) -> Any:
    """``value`` as builtin types a ``weights_only=True`` checkpoint load accepts (tuples -> lists, dataclasses ->
    dicts, other objects -> their ``repr``)."""
    from dataclasses import asdict, is_dataclass

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if is_dataclass(value) and not isinstance(value, type):
        return plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return repr(value)


class DetectorModule(LightningModule):
    """Base LightningModule of all face-forgery / anti-spoofing detectors, and the method contract.

    **A method implements** (and nothing else is required):

    * ``__init__`` with typed arguments, forwarding the base's arguments below and calling
      ``self.save_hyperparameters()`` (its arguments become the YAML ``model.init_args`` and travel in checkpoints;
      an argument named ``in_chans`` is filled from the data's channel count by the CLI, ``pos_weight`` from the
      data's class balance);
    * ``forward(inputs) -> dict`` with at least ``"logit"`` of shape ``(B,)`` (fake / attack = positive class);
      ``inputs`` is the batch's model input, :meth:`batch_inputs` (``IMAGE`` (B,C,H,W), or ``CLIP`` (B,T,C,H,W)
      in clip mode);
    * ``compute_loss(outputs, batch) -> dict`` with at least ``"loss"`` (other entries are logged as
      ``<stage>/<name>``);
    * optionally ``loss_targets``: the :mod:`lightning_dfd.batch` keys besides ``LABEL`` that ``compute_loss``
      reads (LAA-Net: ``(HEATMAP, CONSISTENCY)``). A training batch without them stops with an error naming the
      missing keys; a validation batch without them is scored but its loss is not computed (the targets are
      often made for training samples only);
    * optionally ``target_map_size(image_size) -> int | None``: the side of the dense targets the method's heads
      predict (checked against the DataModule's ``target_map_size`` at fit start);
    * optionally ``fake_probability(outputs)`` (default: sigmoid of the logit), ``trainable_parameters()``,
      or its own ``training_step`` (SAM) that still takes its inputs through :meth:`batch_inputs`.

    **The base provides**: ``training_step`` (forward on :meth:`batch_inputs`, ``compute_loss``, logging),
    ``validation_step`` / ``test_step`` returning :class:`~lightning_dfd.batch.EvalStepOutput` (what callbacks
    read), scoring with optional flip averaging (:class:`Scoring`), frame- and video-level metrics per stage and
    per manipulation / attack type, ROC / histogram PNGs and a metrics JSON per test run, ``predict_step``,
    ``configure_optimizers`` from the injected factories, :attr:`pos_weight` (the class-balance weight of the
    fake class, for any loss that wants it), checks of the data against the method at fit start (channels,
    target map size), and the inference settings written into every checkpoint (``checkpoint["lightning_dfd"]``:
    image size, normalisation, modalities... which ``test`` / ``predict`` reuse).

    Args:
        optimizer: optimizer factory (``class_path``/``init_args`` in YAML); AdamW by default.
        lr_scheduler: optional scheduler factory; stepped per epoch unless ``scheduler_interval`` says ``step``;
            a ``ReduceLROnPlateau`` watches :attr:`scheduler_monitor` (``val/loss``).
        scheduler_interval: ``epoch`` or ``step``.
        scoring: how scores are aggregated and evaluated (:class:`Scoring`).
        pos_weight: weight of the fake class for losses that use one (:attr:`pos_weight`): a number, ``None``
            (1) or ``auto`` (the DataModule's ``pos_weight``, reals / fakes per epoch with ``balance:
            loss_weights``, resolved at fit start; the CLI links ``data.pos_weight`` here).
    """

    #: batch keys besides LABEL that compute_loss needs (see the class docstring).
    loss_targets: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_loss_targets(cls.__name__, cls.loss_targets)

    def __init__(
        self,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        scoring: Scoring | None = None,
        pos_weight: float | Literal["auto"] | None = "auto",
    ) -> None:
        super().__init__()
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.scheduler_interval = scheduler_interval
        self.scoring = scoring = scoring or Scoring()
        self.pos_weight_setting = pos_weight
        #: weight of the fake class for the loss (None = 1); "auto" is resolved from the DataModule at fit start.
        self.pos_weight: float | None = None if pos_weight == "auto" else pos_weight
        self.val_scores = DetectionScores(scoring)
        # one collector per test dataloader (cross-dataset evaluation passes several); grown on demand.
        self.test_scores = nn.ModuleList([DetectionScores(scoring)])

    # ------------------------------------------------------------------ to implement in a method
    def forward(self, inputs: Tensor) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(inputs) -> {{'logit': ...}}")

    def compute_loss(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement compute_loss(outputs, batch)")

    def target_map_size(self, image_size: int) -> int | None:
        """Side of the dense target maps this method's heads predict at ``image_size`` (None: no dense targets)."""
        return None

    def fake_probability(self, outputs: dict[str, Tensor]) -> Tensor:
        """Probability that each input is fake / an attack, shape (B,) float32 (thresholds, votes, CSVs)."""
        return torch.sigmoid(outputs["logit"].float().reshape(-1))

    def fake_log_odds(self, outputs: dict[str, Tensor]) -> Tensor:
        """Ranking score of each input: the log-odds of fake, shape (B,) float64 (float32 on MPS).

        The logit itself by default: a float32 probability is exactly 1.0 for every logit above ~16.6, so
        ranking metrics (AUC, TPR@FPR...) on probabilities would tie confident scores. A method that overrides
        ``fake_probability`` but not this gets the log-odds of its probabilities (exact where they do not tie).
        """
        if type(self).fake_probability is not DetectorModule.fake_probability:
            probs = self.fake_probability(outputs).detach()
            return torch.logit(probs.to(torch.float32 if probs.device.type == "mps" else torch.float64))
        logit = outputs["logit"].detach().reshape(-1)
        return logit.to(torch.float32 if logit.device.type == "mps" else torch.float64)

    # ------------------------------------------------------------------ shared steps
    @staticmethod
    def batch_inputs(batch: dict[str, Any]) -> Tensor:
        """The model input: ``CLIP`` in clip mode, else ``IMAGE`` (:func:`lightning_dfd.batch.model_input`)."""
        return keys.model_input(batch)

    def missing_loss_targets(self, batch: dict[str, Any]) -> list[str]:
        """The :attr:`loss_targets` (and ``LABEL``) this batch lacks."""
        return [key for key in (keys.LABEL, *check_loss_targets(type(self).__name__, self.loss_targets))
                if key not in batch]

    def require_loss_targets(self, batch: dict[str, Any]) -> None:
        """Stop with the missing keys and the likely fix when a training batch lacks what the loss needs."""
        missing = self.missing_loss_targets(batch)
        if missing:
            raise ValueError(f"{type(self).__name__} needs batch keys {missing} for its loss (loss_targets = "
                             f"{list(self.loss_targets)}), but the training batch holds {sorted(batch)}: configure "
                             f"the DataModule to produce them (e.g. data.init_args.targets_transform for LAA-Net)")

    @staticmethod
    def batch_size_of(batch: dict[str, Any]) -> int:
        return len(keys.model_input(batch))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        self.require_loss_targets(batch)
        outputs = self(self.batch_inputs(batch))
        losses = self.compute_loss(outputs, batch)
        self.log_losses(losses, "train", batch_size=self.batch_size_of(batch))
        return losses["loss"]

    def log_losses(self, losses: dict[str, Tensor], stage: str, batch_size: int) -> None:
        on_step = stage == "train"
        self.log(f"{stage}/loss", losses["loss"], prog_bar=True, on_step=on_step, on_epoch=True,
                 batch_size=batch_size, sync_dist=not on_step)
        for name, value in losses.items():
            if name != "loss":
                self.log(f"{stage}/{name}", value, on_step=False, on_epoch=True, batch_size=batch_size,
                         sync_dist=True)

    def score(self, batch: dict[str, Any]) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """Model outputs, per-sample fake probabilities (B,) and their ranking scores (B,), with optional flips.

        The ranking score is the log-odds of fake (:meth:`fake_log_odds`, float64): ranking metrics read it, so
        confident scores that tie as float32 probabilities keep their order. Flip-TTA averages the two views'
        probabilities and carries the log-odds of that mean (``mean_probability_log_odds``).
        """
        inputs = self.batch_inputs(batch)
        outputs = self(inputs)
        probs = self.fake_probability(outputs)
        log_odds = self.fake_log_odds(outputs)
        if self.scoring.flip_tta:
            flipped = self(torch.flip(inputs, dims=[-1]))
            probs = 0.5 * (probs + self.fake_probability(flipped))
            log_odds = mean_probability_log_odds(torch.stack([log_odds, self.fake_log_odds(flipped)]), dim=0)
        return outputs, probs, log_odds

    def _collector(self, stage: str, dataloader_idx: int) -> DetectionScores:
        if stage == "val":
            return self.val_scores
        while len(self.test_scores) <= dataloader_idx:  # a further test dataloader: same settings, own states
            self.test_scores.append(DetectionScores(self.scoring).to(self.device))
        return self.test_scores[dataloader_idx]

    def _update_scores(self, collector: DetectionScores, probs: Tensor, log_odds: Tensor,
                       batch: dict[str, Any]) -> None:
        labels = torch.as_tensor(batch[LABEL], device=probs.device).long().reshape(-1)
        videos = video_indices(batch[VIDEO_ID], device=probs.device)
        groups = group_names(batch, labels)
        group_idx = None
        if groups is not None:
            ids = {name: collector.register_group(name) for name in set(groups)}  # hash each name once
            group_idx = torch.tensor([ids[g] for g in groups], device=probs.device, dtype=torch.long)
        known = labels >= 0  # unlabeled samples (predict folders) never enter metrics
        collector.update(probs.detach()[known], labels[known], videos[known],
                         None if group_idx is None else group_idx[known], log_odds=log_odds[known])

    def _eval_step(self, batch: dict[str, Any], stage: str, dataloader_idx: int = 0) -> EvalStepOutput:
        outputs, probs, log_odds = self.score(batch)
        self._update_scores(self._collector(stage, dataloader_idx), probs, log_odds, batch)
        losses = None
        # the validation loss needs labels for every sample and the method's declared targets
        if (stage == "val" and not self.missing_loss_targets(batch)
                and bool((torch.as_tensor(batch[keys.LABEL]) != keys.UNKNOWN_LABEL).all())):
            losses = self.compute_loss(outputs, batch)
            self.log_losses(losses, stage, batch_size=self.batch_size_of(batch))
        return EvalStepOutput(outputs=outputs, fake_probability=probs, losses=losses)

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> EvalStepOutput:
        return self._eval_step(batch, "val", dataloader_idx)

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> EvalStepOutput:
        return self._eval_step(batch, "test", dataloader_idx)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        _, probs, _ = self.score(batch)
        labels = batch.get(keys.LABEL)
        frame_index = batch.get(keys.FRAME_INDEX, [0] * len(probs))
        return {
            keys.VIDEO_ID: list(batch[keys.VIDEO_ID]),
            keys.FRAME_INDEX: [int(i) for i in torch.as_tensor(frame_index)],
            "fake_probability": probs.detach().float().cpu(),
            keys.LABEL: (torch.as_tensor(labels).cpu().long() if labels is not None
                         else torch.full((len(probs),), keys.UNKNOWN_LABEL, dtype=torch.long)),
        }

    # ------------------------------------------------------------------ epoch ends: metrics + PNGs
    def on_validation_epoch_end(self) -> None:
        self._log_scores(self.val_scores, "val")

    def on_test_start(self) -> None:
        # one collector per test dataloader of *this* run (an earlier run on more dataloaders left more behind)
        n_loaders = max(1, len(self.trainer.num_test_batches))
        while len(self.test_scores) > n_loaders:
            del self.test_scores[-1]

    def on_test_epoch_end(self) -> None:
        # compute() on every rank, even one that saw no batch: it runs collectives the other ranks wait for.
        for idx, collector in enumerate(self.test_scores):
            prefix = "test" if len(self.test_scores) == 1 else f"test_{idx}"
            metrics = self._log_scores(collector, prefix)
            if self.trainer.is_global_zero and not self.trainer.sanity_checking:
                self.write_test_report(collector, metrics, prefix)

    def _log_scores(self, collector: DetectionScores, prefix: str) -> dict[str, float]:
        values = collector.compute()
        collector.reset()
        metrics = {f"{prefix}/{k}": float(v) for k, v in values.items()}
        # values are already synchronised across ranks by the metric (so the mean over ranks that sync_dist takes
        # is the value itself; it only tells Lightning they agree); NaN (one class present) is logged as is.
        self.log_dict(metrics, sync_dist=True, add_dataloader_idx=False)
        self._last_reports = getattr(self, "_last_reports", {})
        self._last_reports[prefix] = (collector.last_scores, metrics)
        return metrics

    def report_dir(self) -> Path:
        """Where reports go: ``Trainer.log_dir``, computed on this rank alone (``Trainer.log_dir`` broadcasts from
        rank 0, a collective that deadlocks DDP when only rank 0 asks, as the report writers do)."""
        from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

        trainer = self.trainer
        base = trainer.default_root_dir
        if trainer.loggers:
            first = trainer.loggers[0]
            base = (first.log_dir if isinstance(first, (CSVLogger, TensorBoardLogger)) else first.save_dir) or base
        return Path(base or ".")

    def write_test_report(self, collector: DetectionScores, metrics: dict[str, float], prefix: str) -> None:
        """ROC curves (frame and video) and score histogram as PNGs, metrics as JSON, in the log dir."""
        from lightning_dfd.callbacks.plots import plot_roc, plot_score_histogram
        from lightning_dfd.io import write_text_atomic

        out = self.report_dir()
        scores = collector.last_scores
        roc_png = plot_roc(scores, out / f"{prefix}_roc.png", title=f"{type(self).__name__} {prefix}")
        hist_png = plot_score_histogram(scores, out / f"{prefix}_score_histogram.png",
                                        threshold=self.scoring.threshold)
        clean = {k: (None if math.isnan(v) else v) for k, v in metrics.items()}
        write_text_atomic(out / f"{prefix}_metrics.json", json.dumps(clean, indent=2, sort_keys=True))
        self.print(f"[lightning-dfd] {prefix}: ROC -> {roc_png}, histogram -> {hist_png}, "
                   f"metrics -> {out / f'{prefix}_metrics.json'}")
        for logger in self.loggers:
            log_image = getattr(logger, "log_image", None)
            if log_image is not None:
                try:
                    log_image(key=f"{prefix}/roc", images=[str(roc_png)])
                    log_image(key=f"{prefix}/score_histogram", images=[str(hist_png)])
                except Exception as err:  # noqa: BLE001 - an image that cannot be logged must not lose the test run
                    self.print(f"[lightning-dfd] could not log images to {type(logger).__name__}: {err}")

    # ------------------------------------------------------------------ fit start: the data meets the method
    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        self.check_data(datamodule)
        if self.pos_weight_setting == "auto":
            self.pos_weight = getattr(datamodule, "pos_weight", None)
            if self.pos_weight is not None:
                source = type(datamodule).__name__
                self.print(f"[lightning-dfd] loss pos_weight = {self.pos_weight:.4f} (from {source})")

    def check_data(self, datamodule: Any) -> None:
        """Refuse, before the first step, data the method cannot use: wrong channel count, wrong target maps.

        Each error names both config keys and the fix. A DataModule without the attribute is not checked.
        """
        if datamodule is None:
            return
        channels = getattr(datamodule, "num_channels", None)
        in_chans = self.hparams.get("in_chans")
        if channels is not None and in_chans is not None and int(in_chans) != int(channels):
            raise ValueError(f"model.init_args.in_chans = {in_chans} but the data has {channels} channels "
                             f"(data.num_channels: 3 per modality): drop in_chans from the config (the CLI links "
                             f"it from the data) or change data.init_args.modalities")
        image_size = getattr(datamodule, "image_size", None)
        expected = self.target_map_size(int(image_size)) if image_size is not None else None
        produced = getattr(datamodule, "target_map_size", None)
        if expected is not None and produced is not None and int(produced) != int(expected):
            raise ValueError(
                f"the data makes {produced}x{produced} target maps (data.init_args.targets_transform) but "
                f"{type(self).__name__} predicts {expected}x{expected} at data.init_args.image_size = {image_size} "
                f"(model.init_args.heatmap_stride = {self.hparams.get('heatmap_stride')}): set the targets "
                f"transform's size to {expected} (or leave it unset to follow the model) or change the stride")

    # ------------------------------------------------------------------ checkpoints: what inference needs
    def inference_settings(self) -> dict[str, Any]:
        """What ``test`` / ``predict`` need to preprocess exactly as training did (plain types only).

        ``data`` holds the DataModule's preprocessing (image / resize size, normalisation, modalities, frames per
        video, frame or clip mode); ``model_class`` / ``model_init_args`` the method and its arguments.
        """
        settings: dict[str, Any] = {
            "model_class": f"{type(self).__module__}.{type(self).__qualname__}",
            "model_init_args": plain(dict(self.hparams)),
        }
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None:
            settings["data_class"] = f"{type(datamodule).__module__}.{type(datamodule).__qualname__}"
            settings["data"] = {name: plain(getattr(datamodule, name)) for name in INFERENCE_DATA_SETTINGS
                                if hasattr(datamodule, name)}
        return settings

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the class path (so ``--ckpt_path`` works in the CLI for checkpoints saved outside it too) and
        :meth:`inference_settings` under ``checkpoint["lightning_dfd"]``."""
        hparams = checkpoint.setdefault("hyper_parameters", {})
        hparams.setdefault("_class_path", f"{type(self).__module__}.{type(self).__qualname__}")
        checkpoint[CHECKPOINT_SETTINGS_KEY] = self.inference_settings()

    # ------------------------------------------------------------------ optimisation
    #: the logged value a ReduceLROnPlateau scheduler watches (the validation loss :meth:`log_losses` logs).
    scheduler_monitor: str = "val/loss"

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.trainable_parameters())
        for group in optimizer.param_groups:  # per-group rates: a group may carry a factor of the optimizer's lr
            group["lr"] = group["lr"] * group.get("lr_scale", 1.0)
        if self.lr_scheduler_factory is None:
            return optimizer
        scheduler = self.lr_scheduler_factory(optimizer)
        self.check_schedule_length(scheduler)
        config = {"scheduler": scheduler, "interval": self.scheduler_interval}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = self.scheduler_monitor
        return {"optimizer": optimizer, "lr_scheduler": config}

    def check_schedule_length(self, scheduler: Any) -> None:
        """A run-length schedule (one with ``total_steps``, which the CLI links from ``trainer.max_epochs``) counts
        epochs: stepped per batch it would end after ``max_epochs`` batches. Refuse that with the fix."""
        total = getattr(scheduler, "total_steps", None)
        trainer = self._trainer
        if total is None or self.scheduler_interval != "step" or trainer is None:
            return
        steps = trainer.estimated_stepping_batches
        if math.isfinite(steps) and int(total) < int(steps):
            raise ValueError(f"model.init_args.lr_scheduler.init_args.total_steps = {total} (linked from "
                             f"trainer.max_epochs) but scheduler_interval: step steps it every batch ({int(steps)} "
                             f"steps in this run): use model.init_args.scheduler_interval: epoch")

    def trainable_parameters(self):
        """Parameters handed to the optimizer (methods may return parameter groups; a group's ``lr_scale``
        multiplies the optimizer's learning rate for that group)."""
        return self.parameters()


def group_names(batch: dict[str, Any], labels: Tensor) -> list[str] | None:
    """Manipulation / attack-type name of each sample (``real`` for bona fide), or None if the batch has neither."""
    if METHOD in batch:
        return [str(m) if int(lab) != 0 else "real" for m, lab in zip(batch[METHOD], labels.tolist())]
    if ATTACK_TYPE in batch:
        kinds = torch.as_tensor(batch[ATTACK_TYPE]).reshape(-1).tolist()
        return ["real" if int(lab) == 0 else f"attack_{int(k)}" for k, lab in zip(kinds, labels.tolist())]
    return None
