"""FaceForgeryDataModule: manifest -> split rows -> datasets -> DataLoaders, shared by every dataset.

A dataset-specific subclass only says which manifest rows form train / val / test / predict
(:meth:`FaceForgeryDataModule.split_rows`); everything else lives here once: status filtering with a logged
summary, frame or clip units, ``frames_per_video`` sampling per epoch, augmentation from config, SBI/BI
pseudo-fake pairing, class balancing, DDP video sharding at evaluation, and worker seeding.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from lightning_dfd.batch import FAKE, REAL
from lightning_dfd.data.manifest import MANIFEST_NAME, ManifestError, read_manifest
from lightning_dfd.datamodules.augment import build_transforms
from lightning_dfd.datamodules.collate import collate_pairs, collate_samples
from lightning_dfd.datamodules.datasets import FaceCropDataset
from lightning_dfd.datamodules.pipeline import IMAGENET_MEAN, IMAGENET_STD, SamplePipeline
from lightning_dfd.datamodules.samplers import (
    ResumableDataLoader,
    VideoFrameSampler,
    VideoShardSampler,
    derived_seed,
    distributed_world,
    group_units_by_video,
)
from lightning_dfd.transforms.dense_targets import TargetsTransform, build_targets_transform
from lightning_dfd.transforms.seeding import reseed_transforms, worker_init_fn

Stage = Literal["train", "val", "test", "predict"]
STAGES: tuple[str, ...] = ("train", "val", "test", "predict")
LIGHTNING_STAGES: dict[str | None, tuple[str, ...]] = {
    "fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",), None: STAGES,
}


def manifest_location(path: str | os.PathLike) -> tuple[Path, Path]:
    """(manifest file, root the crop paths are relative to) for a manifest file or its directory."""
    path = Path(path).expanduser()
    manifest = path / MANIFEST_NAME if path.is_dir() else path
    return manifest, manifest.parent


def seeded_group_split(groups: pd.Series, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of rows whose group lands in the held-out part: groups are shuffled with ``seed`` and taken
    until at least ``fraction`` of the groups is held out (at least one group, never all when >= 2)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"a held-out fraction must lie in (0, 1), got {fraction}")
    unique = np.array(sorted(groups.astype(str).unique()), dtype=object)
    if len(unique) == 0:
        return np.zeros(len(groups), dtype=bool)
    count = int(np.ceil(fraction * len(unique)))
    count = max(1, min(count, len(unique) - 1)) if len(unique) > 1 else 1
    held = set(np.random.default_rng(seed).permutation(unique)[:count].tolist())
    return groups.astype(str).isin(held).to_numpy()


def subject_groups(rows: pd.DataFrame) -> pd.Series:
    """Subject of each row, or its video id where the subject is unknown (so the video is its own group)."""
    subject = rows["subject"].astype(str)
    return subject.where(subject != "", "video:" + rows["video_id"].astype(str))


class FaceForgeryDataModule(LightningDataModule):
    """Face crops listed in a manifest, served as sample dicts (docs/architecture.md §2).

    Args:
        path: manifest file (``manifest.parquet``) or the preprocess output folder holding it.
        batch_size: samples per batch (with ``pseudo_fake``: reals + their pseudo-fakes, so it must be even).
        num_workers: DataLoader worker processes.
        image_size: side of the square crops fed to the model.
        resize_size: side crops are resized to before the transforms (default ``image_size``; e.g. 125 with a
            ``CenterCrop`` to 112 in both transform lists, seed 001 §5.2).
        frames_per_video: training units (frames or clips) drawn per video per epoch; ``None`` takes all.
            Validation/test/predict always use every frame in the manifest.
        mode: ``frame`` (``image`` is C,H,W) or ``clip`` (``clip`` is T,C,H,W for recurrent models).
        clip_length: frames per clip (T) in clip mode.
        clip_stride: manifest rows between consecutive frames of a clip.
        train_transforms: albumentations pipeline for training, a list of ``{class_path, init_args}``
            (short names resolve in ``albumentations``), composed with ``strict=True`` after resizing.
        eval_transforms: the same for validation/test/predict (default: none, i.e. resize + normalise only).
        normalize_mean: per-channel mean (3 values, repeated per modality); ImageNet by default.
        normalize_std: per-channel standard deviation; ImageNet by default.
        pseudo_fake: ``sbi`` (self-blended images) or ``bi`` (blended images, Face X-ray) pairs every real
            training crop with its pseudo-fake (batch = reals then fakes; training uses the real rows only);
            ``none`` keeps the manifest's labels.
        pseudo_fake_args: keyword arguments of the SBI / BI transform.
        targets_transform: dense training targets a method's loss needs, made from the pseudo-fake's blend mask
            and added to both halves of every training pair: a :class:`~lightning_dfd.transforms.dense_targets.
            TargetsTransform` chosen by ``class_path`` / ``init_args``; needs ``pseudo_fake`` sbi or bi.
        balance: ``sampler`` redraws training units with class-balancing weights; ``loss_weights`` exposes
            :attr:`pos_weight` / :attr:`class_weights` for the loss; ``none``.
        video_factors: per-epoch draw factor of the training videos of each ``method`` (``real`` for real videos;
            unlisted: 1): ``{real: 2, Deepfakes: 0.5, ...}`` draws every real video twice and a random half of each
            manipulation's videos every epoch (seed 004 Sec. 4); with ``frames_per_video`` units per draw.
        seed: seed of frame sampling, held-out splits and augmentation streams.
        pin_memory: DataLoader ``pin_memory``.
    """

    #: values of the manifest's ``dataset`` column this module accepts (empty: any).
    dataset_names: tuple[str, ...] = ()
    #: modalities stacked along channels (CASIA-SURF overrides this per instance).
    modalities: tuple[str, ...] = ("rgb",)

    def __init__(
        self,
        path: str,
        batch_size: int = 32,
        num_workers: int = 4,
        image_size: int = 224,
        resize_size: int | None = None,
        frames_per_video: int | None = 8,
        mode: Literal["frame", "clip"] = "frame",
        clip_length: int = 10,
        clip_stride: int = 1,
        train_transforms: list[dict[str, Any]] | None = None,
        eval_transforms: list[dict[str, Any]] | None = None,
        normalize_mean: tuple[float, ...] = IMAGENET_MEAN,
        normalize_std: tuple[float, ...] = IMAGENET_STD,
        pseudo_fake: Literal["none", "sbi", "bi"] = "none",
        pseudo_fake_args: dict[str, Any] | None = None,
        targets_transform: TargetsTransform | None = None,
        balance: Literal["none", "sampler", "loss_weights"] = "none",
        video_factors: dict[str, float] | None = None,
        seed: int = 0,
        pin_memory: bool = True,
    ) -> None:
        super().__init__()
        targets_transform = build_targets_transform(targets_transform)
        self.save_hyperparameters(ignore=["targets_transform"])  # hyper-parameters hold plain values only
        self.hparams["targets_transform"] = None if targets_transform is None else targets_transform.config()
        if batch_size < 1 or (pseudo_fake != "none" and batch_size % 2):
            raise ValueError(f"batch_size must be positive (and even with pseudo_fake={pseudo_fake!r}: half reals, "
                             f"half their pseudo-fakes), got {batch_size}")
        if mode not in ("frame", "clip"):
            raise ValueError(f"mode must be 'frame' or 'clip', got {mode!r}")
        if pseudo_fake not in ("none", "sbi", "bi"):
            raise ValueError(f"pseudo_fake must be none, sbi or bi, got {pseudo_fake!r}")
        if balance not in ("none", "sampler", "loss_weights"):
            raise ValueError(f"balance must be none, sampler or loss_weights, got {balance!r}")
        if targets_transform is not None and pseudo_fake == "none":
            raise ValueError(f"targets_transform {type(targets_transform).__name__} needs pseudo_fake='sbi' or 'bi' "
                             f"(its targets come from the pseudo-fake's blend mask)")
        if pseudo_fake != "none" and mode == "clip":
            raise ValueError("pseudo_fake works on single frames: use mode='frame'")
        self.path = path
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.image_size = image_size
        self.resize_size = resize_size
        self.frames_per_video = frames_per_video
        self.mode = mode
        self.clip_length = clip_length if mode == "clip" else 1
        self.clip_stride = clip_stride
        self.train_transform_specs = list(train_transforms or [])
        self.eval_transform_specs = list(eval_transforms or [])
        self.normalize_mean = tuple(normalize_mean)
        self.normalize_std = tuple(normalize_std)
        self.pseudo_fake = pseudo_fake
        self.pseudo_fake_args = dict(pseudo_fake_args or {})
        self.targets_transform = targets_transform
        self.balance = balance
        if video_factors and balance == "sampler":
            raise ValueError("video_factors and balance='sampler' both redraw the training units: use one of them")
        self.video_factors = dict(video_factors or {})
        self.seed = seed
        self.pin_memory = pin_memory
        self._rows: dict[str, pd.DataFrame] | None = None
        self._train_label_error: str | None = None
        self._datasets: dict[str, FaceCropDataset] = {}
        self.summary: dict[str, Any] = {}
        self._summary_logged = False

    # ------------------------------------------------------------------ what subclasses decide
    def split_rows(self, rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """Rows of each stage, from the manifest's usable rows (``status == "ok"``).

        Default: the ``split`` column; predict = the test split, or every row when there is none.
        """
        out = {stage: rows[rows["split"] == stage] for stage in ("train", "val", "test")}
        out["predict"] = out["test"] if len(out["test"]) else rows
        return out

    # ------------------------------------------------------------------ manifest
    @property
    def manifest_path(self) -> Path:
        return manifest_location(self.path)[0]

    @property
    def root(self) -> Path:
        return manifest_location(self.path)[1]

    def read_rows(self) -> pd.DataFrame:
        """The manifest as a DataFrame (subclasses that build rows another way override this)."""
        return read_manifest(self.manifest_path)

    def prepare_data(self) -> None:
        """Nothing to download; fail early (rank 0) with the fix when the manifest is missing."""
        self.read_rows()

    def _check_dataset(self, rows: pd.DataFrame) -> None:
        if not self.dataset_names:
            return
        found = sorted(set(rows["dataset"].astype(str)) - {""})
        wrong = [name for name in found if name not in self.dataset_names]
        if wrong:
            raise ManifestError(
                f"manifest {self.manifest_path} holds dataset(s) {wrong}, but {type(self).__name__} "
                f"{self._dataset_hint()} expects {list(self.dataset_names)}: point `path` at the right "
                f"preprocess output or pick the matching DataModule."
            )

    def _dataset_hint(self) -> str:
        return ""

    def stage_rows(self) -> dict[str, pd.DataFrame]:
        """Rows per stage (cached; computed on first use, so :attr:`pos_weight` works before ``setup``)."""
        if self._rows is not None:
            return self._rows
        rows = self.read_rows().reset_index(drop=True)  # index = manifest row number (named in errors)
        self._check_dataset(rows)
        ok = rows["status"] == "ok"
        excluded = rows[~ok]
        splits = dict(self.split_rows(rows[ok]))
        for stage in STAGES:
            splits.setdefault(stage, rows.iloc[0:0])
        self._train_label_error = self._training_label_error(splits["train"])  # raised when training data is built
        if self.pseudo_fake != "none":
            train = splits["train"]
            has_landmarks = train["landmarks"].map(lambda v: v is not None and len(v) == 136)
            splits["train"] = train[(train["label"] == REAL) & has_landmarks]
            self.summary["train_fakes_replaced_by_pseudo_fakes"] = int((train["label"] != REAL).sum())
            self.summary["train_reals_without_landmarks"] = int(((train["label"] == REAL) & ~has_landmarks).sum())
        splits = {stage: frame.reset_index(drop=True) for stage, frame in splits.items()}
        self._check_disjoint(splits)
        self.summary.update(self._summarise(splits, excluded))
        self._rows = splits
        return splits

    def _training_label_error(self, train: pd.DataFrame) -> str | None:
        """One line naming the first training row whose label is not 0 / 1 (a missing label is read as -1,
        unknown: evaluation keeps such rows out of the metrics, training refuses them), or None."""
        bad = train[~train["label"].isin([REAL, FAKE])]
        if not len(bad):
            return None
        first = bad.iloc[0]
        return (f"manifest {self.manifest_path} row {bad.index[0]} (video {first['video_id']}, frame "
                f"{first['frame_index']}): label {first['label']} in training, expected 0 real / 1 fake "
                f"({len(bad)} such training rows); fix the label or set the row's status to something other than 'ok'.")

    def _check_disjoint(self, splits: Mapping[str, pd.DataFrame]) -> None:
        names = ("train", "val", "test")
        for i, first in enumerate(names):
            for second in names[i + 1:]:
                shared = set(splits[first]["video_id"]) & set(splits[second]["video_id"])
                if shared:
                    raise ManifestError(f"manifest {self.manifest_path}: video ids in both {first} and {second} "
                                        f"(e.g. {sorted(shared)[:3]}); the split assignment is inconsistent.")

    def _summarise(self, splits: Mapping[str, pd.DataFrame], excluded: pd.DataFrame) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "excluded_rows": len(excluded),
            "excluded_by_status": {str(k): int(v) for k, v in excluded["status"].value_counts().items()},
        }
        for stage in STAGES:
            frame = splits[stage]
            summary[stage] = {
                "frames": len(frame), "videos": int(frame["video_id"].nunique()),
                "real_frames": int((frame["label"] == 0).sum()), "fake_frames": int((frame["label"] == 1).sum()),
            }
        return summary

    def _log_summary(self) -> None:
        parts = [f"{stage} {s['videos']} videos / {s['frames']} frames (real {s['real_frames']}, fake "
                 f"{s['fake_frames']})" for stage in STAGES if (s := self.summary.get(stage))]
        excluded = self.summary.get("excluded_rows", 0)
        text = f"[lightning-dfd] {type(self).__name__} {self.manifest_path}: " + "; ".join(parts)
        text += f"; excluded {excluded} rows with status != ok {self.summary.get('excluded_by_status', {})}"
        if self.balance == "loss_weights" and "train" in self._datasets and len(self._datasets["train"]):
            text += f"; pos_weight {self.pos_weight:.4f}"
        rank_zero_info(text)

    # ------------------------------------------------------------------ datasets
    def build_blend(self, train_rows: pd.DataFrame):
        """The SBI / BI transform making training pseudo-fakes (None with ``pseudo_fake='none'``)."""
        if self.pseudo_fake == "none":
            return None
        args = dict(self.pseudo_fake_args)
        if self.pseudo_fake == "sbi":
            from lightning_dfd.transforms.self_blended import SelfBlendedImage

            blend = SelfBlendedImage(**args)
        else:
            from lightning_dfd.transforms.blended import BlendedImage, LandmarkIndex

            blend = BlendedImage(LandmarkIndex.from_manifest(train_rows, self.root), **args)
        invalid = getattr(blend, "invalid_args", None)
        if invalid:
            raise ValueError(f"pseudo_fake_args {invalid} are not arguments of {type(blend).__name__}")
        return blend

    def build_dataset(self, stage: str) -> FaceCropDataset:
        rows = self.stage_rows()[stage]
        train = stage == "train"
        if train and self._train_label_error:
            raise ManifestError(self._train_label_error)
        specs = self.train_transform_specs if train else self.eval_transform_specs
        pipeline = SamplePipeline(
            self.image_size, build_transforms(specs, f"{'train' if train else 'eval'}_transforms"),
            modalities=self.modalities, clip_length=self.clip_length, mean=self.normalize_mean,
            std=self.normalize_std, blend=self.build_blend(rows) if train else None,
            targets=self.targets_transform if train else None, resize_size=self.resize_size,
        )
        dataset = FaceCropDataset(rows, self.root, pipeline, modalities=self.modalities,
                                  clip_length=self.clip_length, clip_stride=self.clip_stride,
                                  overlapping_clips=train, pseudo_fake_name=self.pseudo_fake)
        reseed_transforms(dataset, derived_seed(self.seed, STAGES.index(stage)))  # the num_workers=0 stream
        return dataset

    def dataset(self, stage: str) -> FaceCropDataset:
        if stage not in self._datasets:
            self._datasets[stage] = self.build_dataset(stage)
        return self._datasets[stage]

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets of a Lightning stage (``fit``, ``validate``, ``test``, ``predict``); idempotent."""
        if stage not in LIGHTNING_STAGES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {list(LIGHTNING_STAGES)}")
        for name in LIGHTNING_STAGES[stage]:
            self.dataset(name)
        if not self._summary_logged:
            self._summary_logged = True
            self._log_summary()
        if stage in ("fit", None) and len(self.dataset("train")) == 0:
            raise ManifestError(f"manifest {self.manifest_path}: no training rows for {type(self).__name__} "
                                f"with these settings ({self.summary.get('train')}).")

    # ------------------------------------------------------------------ class balance
    def epoch_label_counts(self) -> dict[int, int]:
        """Expected training samples per label and epoch (after ``frames_per_video`` and pseudo-fake pairing)."""
        dataset = self.dataset("train")
        counts = {0: 0, 1: 0}
        methods = self.unit_methods(dataset) if self.video_factors else None
        for units in group_units_by_video(dataset.unit_video_ids):
            take = len(units) if self.frames_per_video is None else min(self.frames_per_video, len(units))
            if methods is not None:
                take *= float(self.video_factors.get(str(methods[units[0]]), 1.0))
            label = int(dataset.unit_labels[units[0]])
            counts[label] = counts.get(label, 0) + take
        if self.pseudo_fake != "none":
            counts = {0: counts[0], 1: counts[0]}
        return counts

    @staticmethod
    def unit_methods(dataset: FaceCropDataset) -> np.ndarray:
        """The manifest ``method`` of each training unit (its first row), the groups of ``video_factors``."""
        return np.asarray([dataset.methods[int(np.atleast_1d(unit)[0])] for unit in dataset.units], dtype=str)

    @property
    def pos_weight(self) -> float | None:
        """BCE ``pos_weight`` = real / fake training samples per epoch with ``balance='loss_weights'``, else None
        (link it to the model: ``data.pos_weight -> model.init_args.pos_weight``)."""
        if self.balance != "loss_weights":
            return None
        counts = self.epoch_label_counts()
        if counts[1] == 0 or counts[0] == 0:
            raise ManifestError(f"balance='loss_weights' needs both classes in training; counts {counts}")
        return counts[0] / counts[1]

    @property
    def class_weights(self) -> list[float] | None:
        """Per-class loss weights ``[w_real, w_fake] = [1, pos_weight]`` with ``balance='loss_weights'``, else None."""
        weight = self.pos_weight
        return None if weight is None else [1.0, float(weight)]

    @property
    def num_channels(self) -> int:
        """Channels of ``IMAGE`` (3 per modality); link it to the model's ``in_chans``."""
        return 3 * len(self.modalities)

    @property
    def target_map_size(self) -> int | None:
        """Side of the dense target maps the targets transform adds to training samples (None without one);
        check it against the model's output size."""
        return None if self.targets_transform is None else self.targets_transform.map_side(self.image_size)

    # ------------------------------------------------------------------ loaders
    @property
    def loader_batch_size(self) -> int:
        """Items the DataLoader draws per batch (pairs count once before collation)."""
        return self.batch_size // 2 if self.pseudo_fake != "none" else self.batch_size

    def _loader(self, dataset: FaceCropDataset, sampler, batch_size: int, drop_last: bool, collate,
                loader_class: type[DataLoader] = DataLoader) -> DataLoader:
        rank = distributed_world()[1]
        generator = torch.Generator().manual_seed(derived_seed(self.seed, rank))
        return loader_class(
            dataset, batch_size=batch_size,
            sampler=sampler, shuffle=False, num_workers=self.num_workers, collate_fn=collate,
            pin_memory=self.pin_memory and torch.cuda.is_available(), drop_last=drop_last,
            worker_init_fn=worker_init_fn, generator=generator, persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset("train")
        sampler = VideoFrameSampler(dataset.unit_video_ids, dataset.unit_labels, self.frames_per_video,
                                    balance=self.balance == "sampler", seed=self.seed,
                                    unit_group=self.unit_methods(dataset) if self.video_factors else None,
                                    video_factors=self.video_factors or None)
        collate = collate_pairs if self.pseudo_fake != "none" else collate_samples
        drop_last = len(sampler) >= self.loader_batch_size  # never drop the only (partial) batch of a tiny set
        # per-sample seeds and a mid-epoch position Lightning saves and restores (exact resume, samplers.py)
        return self._loader(dataset, sampler, self.loader_batch_size, drop_last, collate, ResumableDataLoader)

    def _eval_loader(self, stage: str) -> DataLoader:
        dataset = self.dataset(stage)
        world, _ = distributed_world()
        sampler = VideoShardSampler(dataset.unit_video_ids) if world > 1 else None
        return self._loader(dataset, sampler, self.batch_size, False, collate_samples)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("predict")

    def failed_videos(self) -> dict[str, str]:
        """``{video_id: reason}`` of videos with no usable crop (corrupt file, no face found...).

        ``predict`` writes a row for each of them instead of dropping them silently.
        """
        rows = self.read_rows()
        usable = set(rows.loc[rows["status"] == "ok", "video_id"])
        failed = rows[~rows["video_id"].isin(usable)]
        out: dict[str, str] = {}
        for video_id, group in failed.groupby("video_id", sort=True):
            first = group.iloc[0]
            out[str(video_id)] = f"{first['status']}: {first['reason']}".rstrip(": ")
        return out
