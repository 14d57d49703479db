"""The shared base of every detector: scoring, frame/video aggregation, metric logging, PNGs, predict.

A method subclasses :class:`DetectorModule`, calls ``save_hyperparameters()`` and implements

* ``forward(images) -> dict`` with at least ``"logit"`` of shape ``(B,)`` (fake = positive class), and
* ``compute_loss(outputs, batch) -> dict`` with at least ``"loss"`` (other entries are logged as ``train/<name>``).

Everything else lives here once: validation/test scoring (``fake_probability``: sigmoid of the logit unless a
method overrides it), optional horizontal-flip averaging, aggregation of frames per ``video_id`` (mean by default;
majority vote or max), frame- and video-level metrics per stage (and per manipulation / attack type) through
torchmetrics so DDP ranks agree, a ROC curve and a score histogram PNG per test run, and ``predict_step``.
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

from lightning_dfd.batch import ATTACK_TYPE, LABEL, METHOD, VIDEO_ID
from lightning_dfd.metrics import DetectionScores, mean_probability_log_odds, video_indices
from lightning_dfd.metrics.aggregation import Aggregation
from lightning_dfd.metrics.scoring import Scoring

__all__ = ["Aggregation", "DetectorModule", "Scoring", "group_names"]  # Scoring re-exported for configs / helpers


class DetectorModule(LightningModule):
    """Base LightningModule of all face-forgery / anti-spoofing detectors.

    Args:
        optimizer: optimizer factory (``class_path``/``init_args`` in YAML); AdamW by default.
        lr_scheduler: optional scheduler factory; stepped per epoch unless ``scheduler_interval`` says ``step``.
        scheduler_interval: ``epoch`` or ``step``.
        scoring: how scores are aggregated and evaluated (:class:`Scoring`).
    """

    def __init__(
        self,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        scoring: Scoring | None = None,
    ) -> None:
        super().__init__()
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.scheduler_interval = scheduler_interval
        self.scoring = scoring = scoring or Scoring()
        self.val_scores = DetectionScores(scoring)
        # one collector per test dataloader (cross-dataset evaluation passes several); grown on demand.
        self.test_scores = nn.ModuleList([DetectionScores(scoring)])
        self._scored: tuple[Tensor, Tensor] | None = None  # (probabilities, log-odds) of the last score() call

    # ------------------------------------------------------------------ to implement in a method
    def forward(self, images: Tensor) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(images) -> {{'logit': ...}}")

    def compute_loss(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement compute_loss(outputs, batch)")

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
        return batch["clip"] if "clip" in batch else batch["image"]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        outputs = self(self.batch_inputs(batch))
        losses = self.compute_loss(outputs, batch)
        self.log_losses(losses, "train", batch_size=len(batch["label"]))
        return losses["loss"]

    def log_losses(self, losses: dict[str, Tensor], stage: str, batch_size: int) -> None:
        on_step = stage == "train"
        self.log(f"{stage}/loss", losses["loss"], prog_bar=True, on_step=on_step, on_epoch=True,
                 batch_size=batch_size, sync_dist=not on_step)
        for name, value in losses.items():
            if name != "loss":
                self.log(f"{stage}/{name}", value, on_step=False, on_epoch=True, batch_size=batch_size,
                         sync_dist=True)

    def score(self, batch: dict[str, Any]) -> tuple[dict[str, Tensor], Tensor]:
        """Model outputs and per-sample fake probabilities (B,), with optional flip averaging.

        Flip-TTA averages the two views' probabilities (their log-odds are combined into the log-odds of that
        mean, ``mean_probability_log_odds``). The log-odds of the returned probabilities are kept for
        ``_update_scores``, which feeds them to the ranking metrics.
        """
        inputs = self.batch_inputs(batch)
        outputs = self(inputs)
        probs = self.fake_probability(outputs)
        log_odds = self.fake_log_odds(outputs)
        if self.scoring.flip_tta:
            flipped = self(torch.flip(inputs, dims=[-1]))
            probs = 0.5 * (probs + self.fake_probability(flipped))
            log_odds = mean_probability_log_odds(torch.stack([log_odds, self.fake_log_odds(flipped)]), dim=0)
        self._scored = (probs, log_odds)
        return outputs, probs

    def _log_odds_of(self, probs: Tensor) -> Tensor:
        """The log-odds ``score`` kept for these probabilities (same storage, e.g. after ``detach``); if the
        probabilities did not come from ``score``, their own float64 log-odds (tied where they tie)."""
        scored = self._scored
        if (scored is not None and scored[0].data_ptr() == probs.data_ptr() and scored[0].shape == probs.shape
                and scored[0].device == probs.device):
            return scored[1]
        return torch.logit(probs.detach().to(torch.float32 if probs.device.type == "mps" else torch.float64))

    def _collector(self, stage: str, dataloader_idx: int) -> DetectionScores:
        if stage == "val":
            return self.val_scores
        while len(self.test_scores) <= dataloader_idx:  # a further test dataloader: same settings, own states
            self.test_scores.append(DetectionScores(self.scoring).to(self.device))
        return self.test_scores[dataloader_idx]

    def _update_scores(self, collector: DetectionScores, probs: Tensor, batch: dict[str, Any]) -> None:
        log_odds = self._log_odds_of(probs)
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

    def _eval_step(self, batch: dict[str, Any], stage: str, dataloader_idx: int = 0) -> dict[str, Tensor]:
        outputs, probs = self.score(batch)
        self._update_scores(self._collector(stage, dataloader_idx), probs, batch)
        if stage == "val" and (torch.as_tensor(batch["label"]) >= 0).all():
            try:
                losses = self.compute_loss(outputs, batch)
            except KeyError:  # e.g. auxiliary targets only exist on the train split
                losses = None
            if losses is not None:
                self.log_losses(losses, stage, batch_size=len(batch["label"]))
        return {"outputs": outputs, "probs": probs}

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0):
        return self._eval_step(batch, "val", dataloader_idx)

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0):
        return self._eval_step(batch, "test", dataloader_idx)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        _, probs = self.score(batch)
        labels = batch.get("label")
        return {
            "video_id": list(batch["video_id"]),
            "frame_index": [int(i) for i in torch.as_tensor(batch.get("frame_index", [0] * len(probs)))],
            "fake_probability": probs.detach().float().cpu(),
            "label": (torch.as_tensor(labels).cpu().long() if labels is not None
                      else torch.full((len(probs),), -1, dtype=torch.long)),
        }

    # ------------------------------------------------------------------ epoch ends: metrics + PNGs
    def on_validation_epoch_end(self) -> None:
        self._log_scores(self.val_scores, "val")

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
        trainer = self.trainer
        base = trainer.log_dir if trainer.log_dir else trainer.default_root_dir
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

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the class path, so ``--ckpt_path`` works in the CLI for checkpoints saved outside it too."""
        hparams = checkpoint.setdefault("hyper_parameters", {})
        hparams.setdefault("_class_path", f"{type(self).__module__}.{type(self).__qualname__}")

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.trainable_parameters())
        if self.lr_scheduler_factory is None:
            return optimizer
        scheduler = self.lr_scheduler_factory(optimizer)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}

    def trainable_parameters(self):
        """Parameters handed to the optimizer (methods may return parameter groups)."""
        return self.parameters()


def group_names(batch: dict[str, Any], labels: Tensor) -> list[str] | None:
    """Manipulation / attack-type name of each sample (``real`` for bona fide), or None if the batch has neither."""
    if METHOD in batch:
        return [str(m) if int(lab) != 0 else "real" for m, lab in zip(batch[METHOD], labels.tolist())]
    if ATTACK_TYPE in batch:
        kinds = torch.as_tensor(batch[ATTACK_TYPE]).reshape(-1).tolist()
        return ["real" if int(lab) == 0 else f"attack_{int(k)}" for k, lab in zip(kinds, labels.tolist())]
    return None
