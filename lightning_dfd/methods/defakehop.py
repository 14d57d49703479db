"""DefakeHop (seed 000): PixelHop++ features of face regions, distilled and classified by XGBoost, fitted in Lightning.

DefakeHop learns nothing by gradient descent. :class:`DefakeHopModule` is still an ordinary method of the framework:
``fit`` runs one epoch over the training data whose ``training_step`` only accumulates the region crops
(:func:`~lightning_dfd.transforms.regions.crop_regions` of ``IMAGE`` around ``LANDMARKS``); on the epoch's last
batch the whole model (:class:`~lightning_dfd.models.pixelhop.DefakeHopModel`: PixelHop++ kernels, spatial PCA,
channel-wise and final XGBoosts) is fitted stage by stage with a progress bar, and the fit counts as the run's one
optimisation step (``global_step`` = 1, so checkpoints are written). The fitted state is made of buffers (XGBoost
models as their own UBJSON bytes), so checkpoints hold it and load with ``weights_only=True``.

Evaluation goes through the shared base (frame and video metrics, per-manipulation groups, ROC / histogram PNGs,
metrics JSON, the prediction CSV), with one difference: the multi-frame ensemble (Sec. 3.4) needs each frame's
neighbours, so validation / test / predict collect the per-frame channel probabilities of the whole epoch and score
every frame with its window at the epoch's end (``predict`` fills each batch's probabilities when its dataloader's
last batch is done, before the prediction writer reads them). The video score is the mean of its frames
(``scoring.aggregation: mean``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_dfd import batch as keys
from lightning_dfd.batch import EvalStepOutput
from lightning_dfd.errors import UserError
from lightning_dfd.methods.base import DetectorModule, Scoring
from lightning_dfd.models.pixelhop import DefakeHopModel
from lightning_dfd.transforms.regions import check_regions, crop_regions


class DefakeHopModule(DetectorModule):
    """DefakeHop fitted inside Lightning (seed 000, Fig. 2, Sec. 3).

    Args:
        regions: face regions cropped from the landmarks (Sec. 3.1, Table 1): ``left_eye``, ``right_eye``,
            ``mouth``; one region for Table 1's single-region columns.
        crop_size: side of a region crop (32).
        face_size: side of the aligned face the crop size refers to (128, Sec. 3.1); crops of a face of another
            size cover the same part of it.
        num_hops: PixelHop++ hops (3).
        split_threshold: energy at or above which a channel is passed on to the next hop (0.01, released code).
        keep_threshold: energy below which a channel is discarded (0.001, released code).
        max_channels: channels per hop at most (10, Sec. 4.2).
        max_fit_windows: 3x3 windows drawn (seeded) per c/w Saab transform for its covariance.
        spatial_components: spatial PCA per hop, a fraction of energy (0.95 released; "about 90 %" Sec. 3.3) or a
            number of components (``[45, 25, 5]``, Table 4); one value applies to every hop.
        channel_depth: max depth of the channel-wise XGBoosts (1).
        channel_trees: their trees (100).
        final_depth: max depth of the final XGBoost (6).
        final_trees: its trees (100).
        learning_rate: XGBoost's eta (0.3).
        frame_offsets: the multi-frame ensemble, frames relative to the current one: ``[-3, ..., 3]`` (Sec. 3.4,
            default), ``[0, 1, 2, 3, 4, 5]`` (released code), ``[0]`` (frame alone).
        oof_folds: folds (grouped by video) of the out-of-fold channel probabilities the final XGBoost is trained
            on; below 2 it sees in-sample ones as in the released code.
        max_fit_frames: subsample rule for large training sets: keep whole videos, in a seeded random order, while
            the kept frames stay within this number (``None``: all frames).
        n_jobs: XGBoost threads (``None``: the CPUs this process may use).
        seed: seeds the window draw, folds, subsampling and XGBoost.
        scoring: aggregation and evaluation settings (video score = mean of its frames).
    """

    def __init__(
        self,
        regions: list[str] | None = None,
        crop_size: int = 32,
        face_size: int = 128,
        num_hops: int = 3,
        split_threshold: float = 0.01,
        keep_threshold: float = 0.001,
        max_channels: int = 10,
        max_fit_windows: int | None = 200_000,
        spatial_components: list[float] | None = None,
        channel_depth: int = 1,
        channel_trees: int = 100,
        final_depth: int = 6,
        final_trees: int = 100,
        learning_rate: float = 0.3,
        frame_offsets: list[int] | None = None,
        oof_folds: int = 5,
        max_fit_frames: int | None = None,
        n_jobs: int | None = None,
        seed: int = 0,
        scoring: Scoring | None = None,
    ) -> None:
        super().__init__(scoring=scoring, pos_weight=None)
        if self.scoring.flip_tta:
            raise ValueError("model.init_args.scoring.flip_tta: DefakeHop scores its region crops as they are (a "
                             "flipped face swaps the eyes); set flip_tta: false")
        regions = check_regions(regions or ["left_eye", "right_eye", "mouth"])
        spatial_components = spatial_components or [0.95]
        frame_offsets = frame_offsets if frame_offsets is not None else [-3, -2, -1, 0, 1, 2, 3]
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.regions, self.crop_size, self.face_size = regions, crop_size, face_size
        self.max_fit_frames, self.seed = max_fit_frames, seed
        self.model = DefakeHopModel(len(regions), num_hops, split_threshold, keep_threshold, max_channels,
                                    max_fit_windows, spatial_components, channel_depth, channel_trees, final_depth,
                                    final_trees, learning_rate, frame_offsets, oof_folds, n_jobs, seed)
        self._train_parts: list[dict[str, Any]] = []
        self._pending: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
        self._placeholders: dict[int, list[tuple[Tensor, int]]] = defaultdict(list)

    # ------------------------------------------------------------------ inputs and forward
    def batch_inputs(self, batch: dict[str, Any]) -> Tensor:
        """Region crops ``(B, R, C, crop, crop)`` of the batch's ``IMAGE`` around its ``LANDMARKS``."""
        images = keys.model_input(batch)
        if images.dim() != 4:
            raise UserError("DefakeHop scores single frames: set data.init_args.mode: frame (clips carry no "
                            "landmarks)")
        return crop_regions(images, batch.get(keys.LANDMARKS), self.regions, self.crop_size, self.face_size)

    def _require_fitted(self) -> None:
        if not self.model.fitted:
            raise UserError("DefakeHopModule is not fitted: run `fit` first, or pass --ckpt_path of a fitted "
                            "DefakeHop checkpoint to validate / test / predict")

    def forward(self, crops: Tensor) -> dict[str, Tensor]:
        """Logit of each frame ``crops (B, R, C, s, s)`` scored on its own (every window offset is the frame itself);
        evaluation scores frames with their neighbours instead (module docstring)."""
        self._require_fitted()
        features = self.model.frame_features(crops)
        logit = self.model.final_logit(self.model.window(features, np.arange(len(features)), np.zeros(len(features))))
        return {"logit": torch.from_numpy(logit).to(crops.device), "features": torch.from_numpy(features)}

    def compute_loss(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        """Binary cross-entropy of the fake probability (the final XGBoost's objective); evaluation only."""
        target = torch.as_tensor(batch[keys.LABEL], device=outputs["logit"].device).to(outputs["logit"].dtype)
        return {"loss": F.binary_cross_entropy_with_logits(outputs["logit"].reshape(-1), target.reshape(-1))}

    def configure_optimizers(self):
        return None  # nothing is learnt by gradients

    # ------------------------------------------------------------------ fitting
    def setup(self, stage: str) -> None:
        if self._trainer is not None and self.trainer.world_size > 1:
            raise UserError(f"DefakeHop fits in one process, but the trainer runs {self.trainer.world_size}: set "
                            f"trainer.devices: 1 (and trainer.num_nodes: 1); the fit is not distributed")

    def on_train_epoch_start(self) -> None:
        if self.model.fitted:
            raise UserError("DefakeHop is fitted in one pass over the training data: set trainer.max_epochs: 1 "
                            "(a resumed fitted run has nothing left to do)")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        crops = self.batch_inputs(batch)
        self._train_parts.append({
            "crops": crops.detach().to("cpu", torch.float16),
            keys.LABEL: torch.as_tensor(batch[keys.LABEL]).cpu().long().reshape(-1),
            keys.VIDEO_ID: [str(v) for v in batch[keys.VIDEO_ID]],
            keys.FRAME_INDEX: torch.as_tensor(batch.get(keys.FRAME_INDEX, torch.zeros(len(crops)))).cpu().long(),
        })
        last = self.trainer.num_training_batches
        if batch_idx + 1 >= last:
            self.fit_accumulated()

    def subsample(self, video: np.ndarray) -> np.ndarray:
        """Rows kept by ``max_fit_frames``: whole videos in a seeded random order while the frames fit the budget
        (at least one video)."""
        if self.max_fit_frames is None or len(video) <= self.max_fit_frames:
            return np.arange(len(video))
        names, codes, counts = np.unique(video, return_inverse=True, return_counts=True)
        order = np.random.default_rng(self.seed).permutation(len(names))
        within = np.cumsum(counts[order]) <= self.max_fit_frames
        within[0] = True
        return np.flatnonzero(np.isin(codes, order[within]))

    def fit_accumulated(self) -> None:
        """Fit the model on the crops accumulated this epoch, log its training loss and Table 4, count one step."""
        from tqdm.auto import tqdm

        parts, self._train_parts = self._train_parts, []
        labels = torch.cat([p[keys.LABEL] for p in parts]).numpy()
        known = labels >= 0
        video = np.array([v for p in parts for v in p[keys.VIDEO_ID]])
        frame = torch.cat([p[keys.FRAME_INDEX] for p in parts]).numpy()
        rows = np.flatnonzero(known)[self.subsample(video[known])]
        crops = torch.cat([p["crops"] for p in parts])[torch.from_numpy(rows)].float()
        video_codes = np.unique(video[rows], return_inverse=True)[1]
        stages = 3 * self.model.num_regions + 1
        show = self.trainer.progress_bar_callback is not None and self.trainer.is_global_zero
        with tqdm(total=stages, desc=f"DefakeHop fit ({len(rows)} frames)", disable=not show, leave=True) as bar:
            def tick(stage: str) -> None:
                bar.set_postfix_str(stage)
                bar.update(1)

            result = self.model.fit(crops.to(self.device), labels[rows], video_codes, frame[rows], progress=tick)
        self.log("train/loss", result["log_loss"], prog_bar=True, batch_size=len(rows))
        self.log("train/oof_folds", result["folds"], batch_size=len(rows))
        self.report_parameters(log=True)
        optimizer = self.optimizers()
        optimizer.step()  # the fit is the run's one update: global_step = 1, so checkpoints are written

    def report_parameters(self, log: bool = False) -> dict[str, int]:
        """Table 4's breakdown of the fitted model (all regions), printed and optionally logged."""
        table = self.model.parameter_breakdown()
        width = max(len(k) for k in table)
        lines = [f"  {k:<{width}} {v:>10,}" for k, v in table.items()]
        self.print(f"[lightning-dfd] DefakeHop parameters ({len(self.regions)} region(s), Table 4 form):\n"
                   + "\n".join(lines))
        if log:
            self.log_dict({f"params/{k}": float(v) for k, v in table.items()}, batch_size=1)
        return table

    # ------------------------------------------------------------------ evaluation: frames scored with neighbours
    def _collect(self, batch: dict[str, Any], key: tuple[str, int]) -> np.ndarray:
        self._require_fitted()
        features = self.model.frame_features(self.batch_inputs(batch))
        n = len(features)
        labels = batch.get(keys.LABEL)
        part = {
            "features": features,
            keys.LABEL: (torch.as_tensor(labels).cpu().long().reshape(-1) if labels is not None
                         else torch.full((n,), keys.UNKNOWN_LABEL, dtype=torch.long)),
            keys.VIDEO_ID: [str(v) for v in batch[keys.VIDEO_ID]],
            keys.FRAME_INDEX: torch.as_tensor(batch.get(keys.FRAME_INDEX, torch.zeros(n))).cpu().long().reshape(-1),
        }
        for group_key in (keys.METHOD, keys.ATTACK_TYPE):
            if group_key in batch:
                part[group_key] = (list(batch[group_key]) if group_key == keys.METHOD
                                   else torch.as_tensor(batch[group_key]).cpu().reshape(-1))
        self._pending[key].append(part)
        return features

    def _scored(self, key: tuple[str, int]) -> tuple[dict[str, Any], Tensor] | None:
        """The collected frames of ``key`` as one batch and their logits (each frame with its window)."""
        parts = self._pending.pop(key, [])
        if not parts:
            return None
        merged: dict[str, Any] = {
            keys.LABEL: torch.cat([p[keys.LABEL] for p in parts]).to(self.device),
            keys.VIDEO_ID: [v for p in parts for v in p[keys.VIDEO_ID]],
            keys.FRAME_INDEX: torch.cat([p[keys.FRAME_INDEX] for p in parts]),
        }
        if all(keys.METHOD in p for p in parts):
            merged[keys.METHOD] = [m for p in parts for m in p[keys.METHOD]]
        elif all(keys.ATTACK_TYPE in p for p in parts):
            merged[keys.ATTACK_TYPE] = torch.cat([p[keys.ATTACK_TYPE] for p in parts])
        features = np.concatenate([p["features"] for p in parts])
        video = np.unique(np.asarray(merged[keys.VIDEO_ID]), return_inverse=True)[1]
        logit = self.model.final_logit(self.model.window(features, video, merged[keys.FRAME_INDEX].numpy()))
        return merged, torch.from_numpy(logit).to(self.device)

    def _eval(self, batch: dict[str, Any], stage: str, dataloader_idx: int) -> EvalStepOutput:
        features = self._collect(batch, (stage, dataloader_idx))
        nan = torch.full((len(features),), float("nan"), device=self.device)
        return EvalStepOutput(outputs={"features": torch.from_numpy(features)}, fake_probability=nan, losses=None)

    def _flush(self, stage: str, dataloader_idx: int) -> None:
        scored = self._scored((stage, dataloader_idx))
        if scored is None:
            return
        merged, logit = scored
        self._update_scores(self._collector(stage, dataloader_idx), torch.sigmoid(logit).float(), logit.double(),
                            merged)
        labels = merged[keys.LABEL]
        if stage == "val" and bool((labels >= 0).all()):
            self.log_losses(self.compute_loss({"logit": logit}, merged), stage, batch_size=len(labels))

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> EvalStepOutput:
        if not self.model.fitted and self.trainer.sanity_checking:
            return EvalStepOutput(outputs={}, fake_probability=torch.empty(0), losses=None)
        return self._eval(batch, "val", dataloader_idx)

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> EvalStepOutput:
        return self._eval(batch, "test", dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        if not self.model.fitted:  # the sanity check before fitting: nothing to score
            self._pending.pop(("val", 0), None)
            return
        self._flush("val", 0)
        super().on_validation_epoch_end()

    def on_validation_start(self) -> None:
        if self.trainer.state.fn == "validate":
            self._require_fitted()
            self.report_parameters()

    def on_test_epoch_end(self) -> None:
        for idx in range(len(self.test_scores)):
            self._flush("test", idx)
        super().on_test_epoch_end()

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        features = self._collect(batch, ("predict", dataloader_idx))
        probs = torch.full((len(features),), float("nan"))
        self._placeholders[dataloader_idx].append((probs, len(features)))
        pending = self._pending[("predict", dataloader_idx)][-1]
        return {keys.VIDEO_ID: list(pending[keys.VIDEO_ID]),
                keys.FRAME_INDEX: [int(i) for i in pending[keys.FRAME_INDEX]],
                "fake_probability": probs, keys.LABEL: pending[keys.LABEL]}

    def on_predict_batch_end(self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        total = self.trainer.num_predict_batches[dataloader_idx]
        if batch_idx + 1 < total:
            return
        scored = self._scored(("predict", dataloader_idx))
        placeholders = self._placeholders.pop(dataloader_idx, [])
        if scored is None:
            return
        probs = torch.sigmoid(scored[1]).float().cpu()
        start = 0
        for tensor, n in placeholders:  # the outputs the prediction writer will read, filled in place
            tensor.copy_(probs[start: start + n])
            start += n
