"""DataModules on hand-built manifests: splits, protocols, folds, clips, keypoints, balance, seeding, collation."""

from __future__ import annotations

import inspect
import json
import logging
from collections import Counter
from pathlib import Path

import albumentations as A
import numpy as np
import pandas as pd
import pytest
import torch

from lightning_dfd.data.manifest import ManifestError, read_manifest, write_manifest
from lightning_dfd.datamodules import (
    CasiaSurfDataModule,
    CelebDFDataModule,
    DFDCDataModule,
    FaceFolderDataModule,
    FaceForgeryDataModule,
    FFPPDataModule,
    VideoFrameSampler,
    VideoShardSampler,
)
from lightning_dfd.datamodules.augment import TransformConfigError, build_transforms
from lightning_dfd.datamodules.collate import collate_pairs, collate_samples
from lightning_dfd.datamodules.pipeline import IMAGENET_MEAN, IMAGENET_STD
from tests.helpers.face_manifests import build_manifest, ffpp_videos, row, write_crop

FFPP_SPLITS = {"train": ["000", "001", "002"], "val": ["003"], "test": ["004", "005"]}
FOUR = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")


def batch_summary(loader) -> list[dict]:
    return [batch for batch in loader]


def all_rows(dm: FaceForgeryDataModule, stage: str) -> pd.DataFrame:
    return dm.stage_rows()[stage]


@pytest.fixture(scope="module")
def ffpp_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ffpp")
    videos = ffpp_videos(FFPP_SPLITS, methods=FOUR + ("FaceShifter",))
    videos += ffpp_videos({"train": ["000"]}, methods=("Deepfakes",), compression="c40")
    build_manifest(root, videos, frames=4)
    frame = read_manifest(root)
    # one failed video and one failed frame: excluded and counted
    extra = [row(dataset="ffpp", video_id="youtube/c23/006", frame_index=-1, label=0, method="real",
                 compression="c23", split="train", status="corrupt", reason="truncated"),
             row(dataset="ffpp", video_id="youtube/c23/000", frame_index=99, label=0, method="real",
                 compression="c23", split="train", status="no_face", reason="none found")]
    write_manifest(pd.concat([frame, pd.DataFrame(extra)], ignore_index=True), root / "manifest.parquet")
    return root


def ffpp(root: Path, **kwargs) -> FFPPDataModule:
    defaults = {"batch_size": 4, "num_workers": 0, "image_size": 32, "frames_per_video": 2}
    defaults.update(kwargs)
    return FFPPDataModule(str(root), **defaults)


# --------------------------------------------------------------------------------------------- collation
def test_collate_samples_keeps_strings_as_lists_and_stacks_tensors():
    samples = [{"image": torch.full((3, 2, 2), float(i)), "label": i % 2, "video_id": f"v{i}", "method": "m",
                "frame_index": 10 * i} for i in range(3)]
    batch = collate_samples(samples)
    assert batch["video_id"] == ["v0", "v1", "v2"]
    assert batch["method"] == ["m", "m", "m"]
    assert batch["image"].shape == (3, 3, 2, 2) and batch["image"][2].eq(2.0).all()
    assert batch["label"].tolist() == [0, 1, 0] and batch["frame_index"].tolist() == [0, 10, 20]


def test_collate_pairs_puts_reals_first_then_their_fakes_in_order():
    pairs = [({"image": torch.full((1,), float(i)), "label": 0, "video_id": f"v{i}"},
              {"image": torch.full((1,), 100.0 + i), "label": 1, "video_id": f"v{i}"}) for i in range(3)]
    batch = collate_pairs(pairs)
    assert batch["label"].tolist() == [0, 0, 0, 1, 1, 1]
    assert batch["image"].reshape(-1).tolist() == [0.0, 1.0, 2.0, 100.0, 101.0, 102.0]
    assert batch["video_id"] == ["v0", "v1", "v2", "v0", "v1", "v2"]


# ------------------------------------------------------------------------------------------------- FF++
def test_ffpp_all_protocol_splits_labels_and_summary(ffpp_root, caplog):
    dm = ffpp(ffpp_root)
    with caplog.at_level(logging.INFO):
        logging.getLogger("lightning.pytorch").setLevel(logging.INFO)
        dm.setup("fit")
    assert "excluded 2 rows with status != ok {'corrupt': 1, 'no_face': 1}" in caplog.text
    dm.setup("test")
    dm.setup("fit")  # idempotent
    rows = dm.stage_rows()
    ids = {stage: set(rows[stage]["video_id"]) for stage in ("train", "val", "test")}
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    # 3 train ids x (1 real + 4 fakes); FaceShifter and c40 excluded by default
    assert len(ids["train"]) == 15 and len(ids["val"]) == 5 and len(ids["test"]) == 10
    for stage, target_ids in FFPP_SPLITS.items():
        assert {v.split("/")[-1][:3] for v in ids[stage]} == set(target_ids)
    train = rows["train"]
    assert set(train["method"]) == {"real", *FOUR}
    assert ((train["method"] == "real") == (train["label"] == 0)).all()
    assert set(train["compression"]) == {"c23"}
    assert dm.summary["excluded_rows"] == 2
    assert dm.summary["excluded_by_status"] == {"corrupt": 1, "no_face": 1}
    assert dm.summary["train"] == {"frames": 60, "videos": 15, "real_frames": 12, "fake_frames": 48}
    assert 99 not in set(train["frame_index"])


def test_ffpp_batches_follow_the_sample_contract(ffpp_root):
    dm = ffpp(ffpp_root)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["landmarks"].shape == (4, 68, 2)
    assert isinstance(batch["video_id"], list) and isinstance(batch["method"], list)
    assert batch["label"].dtype == torch.int64
    assert set(batch) == {"image", "landmarks", "label", "video_id", "frame_index", "method", "attack_type"}
    dm.setup("test")
    seen = [(v, int(f)) for b in dm.test_dataloader() for v, f in zip(b["video_id"], b["frame_index"])]
    # val/test: every frame of the manifest exactly once, whatever frames_per_video says
    assert len(seen) == len(set(seen)) == 10 * 4


def test_ffpp_protocol_filters(ffpp_root):
    loo = ffpp(ffpp_root, protocol="leave_one_out", holdout_method="FaceSwap")
    rows = loo.stage_rows()
    assert set(rows["train"]["method"]) == {"real", "Deepfakes", "Face2Face", "NeuralTextures"}
    assert set(rows["val"]["method"]) == {"real", "Deepfakes", "Face2Face", "NeuralTextures"}
    assert set(rows["test"]["method"]) == {"real", "FaceSwap"}

    single = ffpp(ffpp_root, protocol="single", methods=("NeuralTextures",))
    for stage in ("train", "val", "test"):
        assert set(single.stage_rows()[stage]["method"]) == {"real", "NeuralTextures"}

    real_only = ffpp(ffpp_root, protocol="real_only")
    rows = real_only.stage_rows()
    assert set(rows["train"]["label"]) == {0}
    assert set(rows["val"]["method"]) == set(rows["test"]["method"]) == {"real", *FOUR}

    shifter = ffpp(ffpp_root, methods=FOUR + ("FaceShifter",))
    assert "FaceShifter" in set(shifter.stage_rows()["test"]["method"])

    c40 = ffpp(ffpp_root, compression="c40", methods=("Deepfakes",))
    assert set(c40.stage_rows()["train"]["video_id"]) == {"youtube/c40/000", "Deepfakes/c40/000_900"}

    with pytest.raises(ValueError, match="holdout_method"):
        ffpp(ffpp_root, protocol="leave_one_out")
    with pytest.raises(ValueError, match="one manipulation"):
        ffpp(ffpp_root, protocol="single")
    with pytest.raises(ValueError, match="raw rows"):
        ffpp(ffpp_root, compression="raw").stage_rows()


def test_wrong_dataset_manifest_is_rejected_with_the_fix(ffpp_root):
    dm = CelebDFDataModule(str(ffpp_root), num_workers=0)
    with pytest.raises(ManifestError, match="celebdf_v2"):
        dm.stage_rows()
    with pytest.raises(ManifestError, match="preprocess"):
        FFPPDataModule(str(ffpp_root / "nothing_here")).prepare_data()


# --------------------------------------------------------------------------------------------- Celeb-DF
@pytest.fixture(scope="module")
def celebdf_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("celebdf")
    videos = []
    for subject in range(10):
        videos.append({"dataset": "celebdf_v2", "video_id": f"Celeb-real/id{subject}_0000", "label": 0,
                       "method": "real", "split": "test" if subject == 0 else "train", "subject": f"id{subject}"})
        videos.append({"dataset": "celebdf_v2", "video_id": f"Celeb-synthesis/id{subject}_id{(subject + 1) % 10}_0000",
                           "label": 1, "method": "Celeb-synthesis", "split": "test" if subject == 1 else "train",
                           "subject": f"id{subject}"})
    for k in range(4):
        videos.append({"dataset": "celebdf_v2", "video_id": f"YouTube-real/{k:05d}", "label": 0, "method": "real",
                           "split": "train", "subject": ""})
    build_manifest(root, videos, frames=2, landmarks=False)
    return root


def test_celebdf_val_is_a_seeded_subject_disjoint_part_of_train(celebdf_root):
    dm = CelebDFDataModule(str(celebdf_root), val_fraction=0.3, num_workers=0, image_size=32, seed=3)
    rows = dm.stage_rows()
    assert set(rows["test"]["video_id"]) == {"Celeb-real/id0_0000", "Celeb-synthesis/id1_id2_0000"}
    train_subjects = set(rows["train"]["subject"]) - {""}
    val_subjects = set(rows["val"]["subject"]) - {""}
    assert val_subjects and not (train_subjects & val_subjects)
    assert not (set(rows["train"]["video_id"]) & set(rows["val"]["video_id"]))
    # 10 celeb subjects + 4 YouTube videos (own groups) outside test: 18 train videos grouped in 14 groups
    held_groups = len(val_subjects) + rows["val"]["video_id"].str.startswith("YouTube").sum() // 2
    assert held_groups == int(np.ceil(0.3 * 14))
    again = CelebDFDataModule(str(celebdf_root), val_fraction=0.3, num_workers=0, seed=3).stage_rows()
    assert set(again["val"]["video_id"]) == set(rows["val"]["video_id"])
    other = CelebDFDataModule(str(celebdf_root), val_fraction=0.3, num_workers=0, seed=4).stage_rows()
    assert set(other["val"]["video_id"]) != set(rows["val"]["video_id"])
    with pytest.raises(ManifestError, match="version='v1'"):
        CelebDFDataModule(str(celebdf_root), version="v1").stage_rows()


# ------------------------------------------------------------------------------------------------- DFDC
@pytest.fixture(scope="module")
def dfdc_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dfdc")
    videos = []
    for part in range(3):
        for k in range(3):
            original = f"p{part}o{k}"
            videos.append({"dataset": "dfdc", "video_id": f"dfdc_train_part_{part}/{original}", "label": 0,
                           "method": "real", "split": "train", "subject": original})
            videos.append({"dataset": "dfdc", "video_id": f"dfdc_train_part_{part}/{original}f", "label": 1,
                               "method": "fake", "split": "train", "subject": original})
    for k in range(2):
        videos.append({"dataset": "dfdc", "video_id": f"test/t{k}", "label": k % 2, "method": "fake" if k else "real",
                           "split": "test"})
    build_manifest(root, videos, frames=2, landmarks=False)
    return root


def test_dfdc_val_parts_and_seeded_fraction_keep_originals_together(dfdc_root):
    dm = DFDCDataModule(str(dfdc_root), val_parts=(2,), num_workers=0)
    rows = dm.stage_rows()
    assert {v.split("/")[0] for v in rows["val"]["video_id"]} == {"dfdc_train_part_2"}
    assert {v.split("/")[0] for v in rows["train"]["video_id"]} == {"dfdc_train_part_0", "dfdc_train_part_1"}
    assert set(rows["test"]["video_id"]) == {"test/t0", "test/t1"}
    fraction = DFDCDataModule(str(dfdc_root), val_fraction=0.3, num_workers=0, seed=1).stage_rows()
    val_subjects = set(fraction["val"]["subject"])
    assert len(val_subjects) == 3  # ceil(0.3 * 9 originals)
    assert not (val_subjects & set(fraction["train"]["subject"]))
    assert (fraction["val"]["label"] == 1).any() and (fraction["val"]["label"] == 0).any()
    with pytest.raises(ValueError, match="val_parts"):
        DFDCDataModule(str(dfdc_root), val_parts=(7,)).stage_rows()
    with pytest.raises(ManifestError, match="dfdc_preview"):
        DFDCDataModule(str(dfdc_root), variant="preview").stage_rows()


# ------------------------------------------------------------------------------------------- CASIA-SURF
MODALITY_FILL = {"rgb": (200, 10, 60), "depth": (90, 90, 90), "ir": (30, 140, 250)}


@pytest.fixture(scope="module")
def casia_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("casia")
    videos = []
    for subject in range(9):
        split = "train" if subject < 6 else ("val" if subject < 8 else "test")
        name = f"{subject:04d}"
        videos.append({"dataset": "casia_surf", "video_id": f"Training/real_part/CLKJ_{name}/real.rssdk/color/1",
                           "label": 0, "method": "real", "attack_type": 0, "split": split, "subject": name})
        attacks = (4, 5, 6) if split == "train" else (1, 2, 3)
        for kind in attacks:
            videos.append({"dataset": "casia_surf",
                               "video_id": f"Training/fake_part/CLKJ_{name}/0{kind}_enm_b.rssdk/color/1", "label": 1,
                               "method": f"attack_{kind}", "attack_type": kind, "split": split, "subject": name})
    build_manifest(root, videos, frames=1, landmarks=False, modalities=("depth", "ir"),
                   fill=lambda video, k: MODALITY_FILL[video.get("modality", "rgb")])
    return root


def test_casia_modalities_stack_per_modality(casia_root):
    dm = CasiaSurfDataModule(str(casia_root), modalities=("rgb", "ir", "depth"), num_workers=0, image_size=16,
                             batch_size=2)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["image"].shape == (2, 9, 16, 16) and dm.num_channels == 9
    mean, std = np.tile(IMAGENET_MEAN, 3), np.tile(IMAGENET_STD, 3)
    expected = (np.concatenate([MODALITY_FILL[m] for m in ("rgb", "ir", "depth")]) / 255.0 - mean) / std
    assert torch.allclose(batch["image"][0].mean(dim=(1, 2)), torch.tensor(expected, dtype=torch.float32), atol=1e-4)
    assert "landmarks" not in batch
    single = CasiaSurfDataModule(str(casia_root), modalities=("depth",), num_workers=0, image_size=16, batch_size=2)
    single.setup("test")
    assert next(iter(single.test_dataloader()))["image"].shape == (2, 3, 16, 16)


def test_casia_attack_folds_hold_the_right_attack_types(casia_root):
    real_val_subjects = []
    for fold, held in enumerate((4, 5, 6)):
        rows = CasiaSurfDataModule(str(casia_root), fold_protocol="attack", fold=fold, seed=11,
                                   num_workers=0).stage_rows()
        train_attacks = set(rows["train"].loc[rows["train"]["label"] == 1, "attack_type"])
        val_attacks = set(rows["val"].loc[rows["val"]["label"] == 1, "attack_type"])
        assert train_attacks == {4, 5, 6} - {held} and val_attacks == {held}
        train_real = set(rows["train"].loc[rows["train"]["label"] == 0, "subject"])
        val_real = set(rows["val"].loc[rows["val"]["label"] == 0, "subject"])
        assert not (train_real & val_real) and train_real | val_real == {f"{s:04d}" for s in range(6)}
        assert set(rows["test"]["attack_type"]) == {0, 1, 2, 3}
        real_val_subjects.append(val_real)
    # the three folds' real validation subjects partition the training subjects (6 subjects -> 2 each)
    assert [len(s) for s in real_val_subjects] == [2, 2, 2]
    assert set.union(*real_val_subjects) == {f"{s:04d}" for s in range(6)}


def test_casia_subject_folds_are_disjoint_and_cover(casia_root):
    seen = []
    for fold in range(3):
        rows = CasiaSurfDataModule(str(casia_root), fold_protocol="subject", fold=fold, num_folds=3, seed=5,
                                   num_workers=0).stage_rows()
        train_subjects, val_subjects = set(rows["train"]["subject"]), set(rows["val"]["subject"])
        assert not (train_subjects & val_subjects) and len(val_subjects) == 2
        seen.append(val_subjects)
    assert set.union(*seen) == {f"{s:04d}" for s in range(6)} and sum(len(s) for s in seen) == 6
    with pytest.raises(ValueError, match="fold must be"):
        CasiaSurfDataModule(str(casia_root), fold_protocol="attack", fold=3)


# ------------------------------------------------------------------------------------------------- clips
def test_clip_mode_shapes_and_strided_frame_indices(tmp_path):
    videos = [{"dataset": "ffpp", "video_id": "youtube/c23/000", "label": 0, "method": "real", "compression": "c23",
                   "split": "train", "frames": 9},
              {"dataset": "ffpp", "video_id": "Deepfakes/c23/000_001", "label": 1, "method": "Deepfakes",
                   "compression": "c23", "split": "train", "frames": 2},
              {"dataset": "ffpp", "video_id": "youtube/c23/001", "label": 0, "method": "real", "compression": "c23",
                   "split": "test", "frames": 9}]
    build_manifest(tmp_path, videos, frame_step=5)
    dm = FFPPDataModule(str(tmp_path), methods=("Deepfakes",), mode="clip", clip_length=3, clip_stride=2,
                        frames_per_video=None, batch_size=16, num_workers=0, image_size=24)
    dm.setup("fit")
    dm.setup("test")
    train = dm.dataset("train")
    # 9 rows, span (3-1)*2+1 = 5 -> starts 0..4 (5 windows); the 2-row video -> 1 padded window
    assert len(train) == 6
    batch = next(iter(dm.train_dataloader()))
    assert batch["clip"].shape == (6, 3, 3, 24, 24) and "image" not in batch
    for video, indices in zip(batch["video_id"], batch["frame_indices"].tolist()):
        if video == "youtube/c23/000":
            assert np.diff(indices).tolist() == [10, 10]  # every 2nd row, rows 5 frames apart
        else:
            assert indices == [0, 5, 5]  # padded by repeating the last row
    assert batch["frame_index"].tolist() == batch["frame_indices"][:, 0].tolist()
    test = next(iter(dm.test_dataloader()))
    # evaluation uses each row once: rows 0,2,4 | 1,3,5 | 6,8,(8) | 7,(7,7); rows are 5 frames apart
    assert test["frame_indices"].tolist() == [[0, 10, 20], [5, 15, 25], [30, 40, 40], [35, 35, 35]]


# ------------------------------------------------------------------------------------------- keypoints
def test_keypoints_follow_a_horizontal_flip(ffpp_root):
    plain = ffpp(ffpp_root, image_size=32, frames_per_video=None)
    flipped = ffpp(ffpp_root, image_size=32, frames_per_video=None,
                   train_transforms=[{"class_path": "HorizontalFlip", "init_args": {"p": 1.0}}])
    a, b = plain.dataset("train")[0], flipped.dataset("train")[0]
    raw = plain.dataset("train").landmarks[0]  # crop coordinates of a 48 x 40 (W x H) crop
    scaled = raw * np.array([32 / 48, 32 / 40], dtype=np.float32)  # Resize to 32 x 32
    assert np.allclose(a["landmarks"].numpy(), scaled, atol=1e-4)
    expected = scaled.copy()
    expected[:, 0] = (32 - 1) - scaled[:, 0]  # albumentations' pixel-centre flip convention
    assert np.allclose(b["landmarks"].numpy(), expected, atol=1e-4)
    assert torch.equal(b["image"], torch.flip(a["image"], dims=[-1]))


def test_transform_config_is_strict_and_nests():
    built = build_transforms([{"class_path": "albumentations.OneOf", "init_args": {
        "p": 1.0, "transforms": [{"class_path": "GaussianBlur", "init_args": {"blur_limit": [3, 5]}}]}}])
    assert isinstance(built[0], A.OneOf) and isinstance(built[0].transforms[0], A.GaussianBlur)
    with pytest.raises(TransformConfigError, match="quality_lower"):
        build_transforms([{"class_path": "ImageCompression", "init_args": {"quality_lower": 50}}])
    with pytest.raises(TransformConfigError, match="unknown albumentations transform"):
        build_transforms([{"class_path": "NoSuchFlip"}])
    with pytest.raises(TransformConfigError, match="init_args"):
        build_transforms([{"class_path": "HorizontalFlip", "p": 0.5}])


# --------------------------------------------------------------------------------------------- balance
def test_pos_weight_is_real_over_fake_samples_per_epoch(ffpp_root):
    dm = ffpp(ffpp_root, balance="loss_weights", frames_per_video=3)
    # before setup (the CLI links it at instantiation): 3 real videos x 3 frames vs 12 fake videos x 3 frames
    assert dm.pos_weight == pytest.approx(9 / 36)
    assert dm.class_weights == [1.0, pytest.approx(0.25)]
    assert ffpp(ffpp_root).pos_weight is None and ffpp(ffpp_root).class_weights is None


def test_balanced_sampler_draws_both_classes_equally_often():
    video_ids = [f"r{i}" for i in range(2) for _ in range(5)] + [f"f{i}" for i in range(8) for _ in range(5)]
    labels = [0] * 10 + [1] * 40
    plain, balanced = [], []
    for epoch in range(40):
        for store, balance in ((plain, False), (balanced, True)):
            sampler = VideoFrameSampler(video_ids, labels, frames_per_video=2, balance=balance, seed=0,
                                        num_replicas=1, rank=0)
            sampler.set_epoch(epoch)
            store.extend(labels[i] for i in sampler)
    assert np.mean(plain) == pytest.approx(0.8)  # 8 fake videos of 10, 2 frames each
    # 800 draws with p(fake) = 1/2: 5 standard deviations is 0.088
    assert abs(np.mean(balanced) - 0.5) < 0.088


def test_frames_per_video_sampler_draws_k_distinct_frames_per_video_each_epoch():
    video_ids = np.repeat([f"v{i}" for i in range(6)], [5, 5, 3, 1, 8, 5])
    sampler = VideoFrameSampler(video_ids, np.zeros(len(video_ids)), frames_per_video=3, seed=7,
                                num_replicas=1, rank=0)
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        drawn = list(sampler)
        per_video = Counter(video_ids[i] for i in drawn)
        assert per_video == Counter({"v0": 3, "v1": 3, "v2": 3, "v3": 1, "v4": 3, "v5": 3})
        assert len(drawn) == len(set(drawn)) == len(sampler) == 16
        epochs.append(drawn)
    assert epochs[0] != epochs[1]
    sampler.set_epoch(0)
    assert list(sampler) == epochs[0]  # reproducible from (seed, epoch)
    # two ranks: disjoint halves of the same epoch (padding only to equalise lengths)
    ranks = [VideoFrameSampler(video_ids, np.zeros(len(video_ids)), frames_per_video=3, seed=7, num_replicas=2,
                               rank=r) for r in range(2)]
    assert sorted(list(ranks[0]) + list(ranks[1])) == sorted(epochs[0])


def test_video_shard_sampler_keeps_videos_whole_on_one_rank():
    video_ids = np.repeat([f"v{i}" for i in range(7)], [4, 1, 3, 3, 2, 6, 1])
    shards = [list(VideoShardSampler(video_ids, num_replicas=3, rank=r)) for r in range(3)]
    flat = [i for shard in shards for i in shard]
    assert sorted(flat) == list(range(len(video_ids)))  # all units, no duplicates, no padding
    owners = [{video_ids[i] for i in shard} for shard in shards]
    assert all(not (owners[a] & owners[b]) for a in range(3) for b in range(a + 1, 3))
    assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 2  # greedy: 20 units -> 7/7/6


# --------------------------------------------------------------------------------------------- seeding
def _noise_batches(root: Path, seed: int, workers: int) -> list[torch.Tensor]:
    dm = FaceForgeryDataModule(str(root), batch_size=1, num_workers=workers, image_size=16, frames_per_video=None,
                               seed=seed, train_transforms=[{"class_path": "GaussNoise",
                                                             "init_args": {"std_range": [0.2, 0.2], "p": 1.0}}])
    dm.setup("fit")
    loader = dm.train_dataloader()
    return [batch["image"][0] for batch in loader]


def test_workers_draw_different_augmentations_and_runs_reproduce(tmp_path):
    videos = [{"dataset": "x", "video_id": f"v{i}", "label": i % 2, "method": "m", "split": "train", "frames": 2}
              for i in range(4)]
    build_manifest(tmp_path, videos, fill=lambda video, k: (128, 128, 128))  # identical pixels everywhere
    first = _noise_batches(tmp_path, seed=1, workers=2)
    second = _noise_batches(tmp_path, seed=1, workers=2)
    other = _noise_batches(tmp_path, seed=2, workers=2)
    assert len(first) == 8
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    # with batch_size 1 and 2 workers, batches alternate worker 0 / worker 1: their first draws must differ
    assert not torch.equal(first[0], first[1])
    assert len({tuple(t.flatten()[:16].tolist()) for t in first}) == 8


# --------------------------------------------------------------------------------------------- folders
def test_face_folder_of_images_for_predict(tmp_path):
    rng = np.random.default_rng(0)
    for rel in ("clipA/real/0.png", "clipA/real/1.png", "clipB/fake/0.png", "loose/3.png", "loose/4.png"):
        write_crop(tmp_path, rel, (20, 20), rng)
    dm = FaceFolderDataModule(str(tmp_path), num_workers=0, batch_size=8, image_size=16)
    dm.setup("predict")
    batch = next(iter(dm.predict_dataloader()))
    labels = dict(zip(batch["video_id"], batch["label"].tolist()))
    assert labels == {"clipA/real": 0, "clipB/fake": 1, "loose": -1}
    assert Counter(batch["video_id"])["loose"] == 2 and batch["image"].shape == (5, 3, 16, 16)
    single = FaceFolderDataModule(str(tmp_path / "loose/3.png"), num_workers=0, image_size=16)
    single.setup("predict")
    assert len(single.dataset("predict")) == 1
    manifest = FaceFolderDataModule(str(tmp_path), num_workers=0).read_rows()
    assert (manifest["split"] == "test").all()
    with pytest.raises(ManifestError, match="no training rows"):
        dm.setup("fit")


# ------------------------------------------------------------------------------------------ signatures
SUBCLASSES = [FFPPDataModule, CelebDFDataModule, DFDCDataModule, CasiaSurfDataModule, FaceFolderDataModule]
BASE_ARGUMENTS = [name for name, parameter in inspect.signature(FaceForgeryDataModule.__init__).parameters.items()
                  if name != "self" and parameter.kind == parameter.POSITIONAL_OR_KEYWORD]


def class_path(cls: type) -> str:
    return f"lightning_dfd.datamodules.{cls.__name__}"


@pytest.mark.parametrize("cls", SUBCLASSES, ids=lambda c: c.__name__)
def test_cli_help_lists_the_base_arguments_under_each_subclass(cls, capsys):
    from lightning_dfd.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["fit", "--data.help", class_path(cls)])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    own = [name for name, parameter in inspect.signature(cls.__init__).parameters.items()
           if name != "self" and parameter.kind == parameter.POSITIONAL_OR_KEYWORD]
    for name in BASE_ARGUMENTS + own:
        assert f"--data.{name} " in text, f"{cls.__name__} --data.help lacks {name}"
    # the base's docstring reaches the help of a forwarded argument
    assert "samples per batch" in text and "dense training targets" in text


@pytest.mark.parametrize("cls", SUBCLASSES, ids=lambda c: c.__name__)
def test_print_config_shows_every_key_and_unknown_keys_are_refused(cls, capsys, tmp_path):
    import yaml

    from lightning_dfd.cli import main

    model = ["--model", "lightning_dfd.methods.binary.BinaryClassifier"]
    with pytest.raises(SystemExit):
        main(["fit", *model, "--data", class_path(cls), "--data.init_args.path", "x",
              "--data.init_args.batch_size", "6", "--print_config"])
    data = yaml.safe_load(capsys.readouterr().out)["data"]
    assert data["class_path"] == class_path(cls)
    assert set(BASE_ARGUMENTS) <= set(data["init_args"]) and data["init_args"]["batch_size"] == 6
    config = tmp_path / "typo.yaml"
    config.write_text(yaml.safe_dump({"data": {"class_path": class_path(cls),
                                               "init_args": {"path": "x", "batch_sise": 4}}}))
    with pytest.raises(SystemExit) as caught:
        main(["fit", *model, "--config", str(config)])
    assert caught.value.code != 0 and "batch_sise" in capsys.readouterr().err
    with pytest.raises(TypeError, match="batch_sise"):  # Python callers get the same check
        cls("unused", batch_sise=4)


@pytest.mark.parametrize("cls", SUBCLASSES, ids=lambda c: c.__name__)
def test_forwarded_arguments_reach_the_base_and_hyperparameters_stay_plain(cls, tmp_path):
    dm = cls("unused", batch_size=6, seed=9, image_size=48, num_workers=0)
    assert (dm.batch_size, dm.seed, dm.image_size, dm.num_workers) == (6, 9, 48, 0)
    hparams = dict(dm.hparams)
    assert hparams["batch_size"] == 6 and set(BASE_ARGUMENTS) <= set(hparams)
    # save_hyperparameters keeps plain types only (checkpoints load with weights_only=True)
    assert json.dumps(hparams, default=list)
    torch.save({"datamodule_hyper_parameters": hparams}, tmp_path / "hp.pt")
    assert torch.load(tmp_path / "hp.pt", weights_only=True)["datamodule_hyper_parameters"]["seed"] == 9


# ----------------------------------------------------------------------------------------------- configs
CONFIGS = sorted(Path(__file__).resolve().parents[1].joinpath("conf", "data").glob("*.yaml"))


def test_every_dataset_config_is_present():
    names = {path.stem for path in CONFIGS}
    assert names >= {"ffpp", "ffpp_real_only_sbi", "celebdf_v1", "celebdf_v2", "dfdc", "dfdc_preview", "casia_surf"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_dataset_configs_parse_and_their_pipelines_run(config):
    from jsonargparse import ArgumentParser
    from lightning.pytorch import LightningDataModule

    from lightning_dfd.datamodules.pipeline import SamplePipeline

    parser = ArgumentParser()
    parser.add_subclass_arguments(LightningDataModule, "data")
    dm = parser.instantiate(parser.parse_args(["--data", str(config)])).data
    assert isinstance(dm, FaceForgeryDataModule)
    if config.stem == "ffpp_real_only_sbi":  # LAA-Net's 384 px crops, heads at stride 4 (seed 003 §4.1)
        assert dm.target_map_size == 96 and dm.pseudo_fake == "sbi"
    else:
        assert dm.target_map_size is None
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    landmarks = rng.uniform(60, 200, (68, 2)).astype(np.float32)
    for specs in (dm.train_transform_specs, dm.eval_transform_specs):
        pipeline = SamplePipeline(dm.image_size, build_transforms(specs), modalities=dm.modalities,
                                  resize_size=dm.resize_size)
        out = pipeline([{m: image for m in dm.modalities}], landmarks)
        assert out["image"].shape == (3 * len(dm.modalities), dm.image_size, dm.image_size)


def test_resize_then_crop_and_size_mismatch_error(ffpp_root):
    crop = [{"class_path": "CenterCrop", "init_args": {"height": 24, "width": 24}}]
    dm = ffpp(ffpp_root, resize_size=30, image_size=24, train_transforms=crop, eval_transforms=crop)
    dm.setup("fit")
    assert next(iter(dm.train_dataloader()))["image"].shape == (4, 3, 24, 24)
    bad = ffpp(ffpp_root, resize_size=30, image_size=24, train_transforms=crop)  # eval keeps 30
    bad.setup("fit")
    with pytest.raises(ValueError, match="expected image_size 24"):
        next(iter(bad.val_dataloader()))
