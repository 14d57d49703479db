"""End to end on the synthetic twins: synth -> preprocess -> DataModule -> batches -> Trainer(fast_dev_run).

Labels are checked against the raw layout's own files (folders, test lists, metadata), each in its own
convention, so the whole chain (indexer conversion, manifest, DataModule) is verified, not the manifest alone.
"""

from __future__ import annotations

import csv
import json

import pytest
import torch
from lightning.pytorch import Trainer

from lightning_dfd.datamodules import (
    CasiaSurfDataModule,
    CelebDFDataModule,
    DFDCDataModule,
    FaceFolderDataModule,
    FFPPDataModule,
)
from lightning_dfd.methods.binary import BinaryClassifier
from lightning_dfd.transforms.laanet_targets import LAANetTargets

LOADER = {"batch_size": 4, "num_workers": 0, "image_size": 32, "frames_per_video": 2}


def labels_by_video(dm, stage: str) -> dict[str, int]:
    dm.setup({"train": "fit", "val": "fit", "test": "test"}[stage])
    loader = dm.train_dataloader() if stage == "train" else getattr(dm, f"{stage}_dataloader")()
    out: dict[str, int] = {}
    for batch in loader:
        for video, label in zip(batch["video_id"], batch["label"].tolist()):
            assert out.setdefault(video, label) == label
    return out


def fit_one_batch(dm, in_chans: int = 3) -> Trainer:
    model = BinaryClassifier(backbone="resnet10t", in_chans=in_chans, pos_weight=dm.pos_weight)
    trainer = Trainer(fast_dev_run=True, accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=str(dm.root))
    trainer.fit(model, datamodule=dm)  # one training and one validation batch
    assert trainer.state.finished and torch.isfinite(trainer.callback_metrics["train/loss"])
    return trainer


def test_ffpp_twin_labels_follow_the_folders_and_train(twins):
    raw, cache = twins["ffpp"]
    dm = FFPPDataModule(str(cache), balance="loss_weights", **LOADER)
    for stage in ("train", "val", "test"):
        for video, label in labels_by_video(dm, stage).items():
            folder, compression, name = video.split("/")
            if label == 0:
                assert (raw / "original_sequences" / folder / compression / "videos" / f"{name}.mp4").is_file()
            else:
                assert (raw / "manipulated_sequences" / folder / compression / "videos" / f"{name}.mp4").is_file()
    splits = {s: {json.dumps(p) for p in json.loads((raw / "splits" / f"{s}.json").read_text())}
              for s in ("train", "val", "test")}
    assert sum(len(v) for v in splits.values()) == 3  # the twin's 6 ids in 3 pairs
    rows = dm.stage_rows()
    for stage in ("train", "val", "test"):
        pairs = [json.loads(p) for p in splits[stage]]
        ids = {i for pair in pairs for i in pair}
        assert {v.split("/")[-1][:3] for v in rows[stage]["video_id"]} == ids
    # 2 real vs 8 fake train videos (four methods), 2 frames each: pos_weight = 4 / 16
    assert dm.pos_weight == pytest.approx(0.25)
    fit_one_batch(dm)


def test_ffpp_twin_sbi_pairs_reals_with_their_pseudo_fakes(twins):
    _, cache = twins["ffpp"]
    dm = FFPPDataModule(str(cache), protocol="real_only", pseudo_fake="sbi", targets_transform=LAANetTargets(stride=4),
                        train_transforms=[{"class_path": "HorizontalFlip", "init_args": {"p": 0.5}}], **LOADER)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    half = 2
    assert batch["label"].tolist() == [0] * half + [1] * half
    assert batch["method"] == ["real"] * half + ["pseudo_sbi"] * half
    assert batch["video_id"][:half] == batch["video_id"][half:]
    assert batch["frame_index"][:half].tolist() == batch["frame_index"][half:].tolist()
    reals, fakes, masks = batch["image"][:half], batch["image"][half:], batch["mask"][half:]
    assert batch["mask"][:half].eq(0).all() and (masks.flatten(1).amax(1) > 0).all()
    # a pseudo-fake equals its real (same shared augmentation) wherever the blend mask is zero
    outside = (masks == 0).expand_as(reals)
    assert torch.equal(reals[outside], fakes[outside])
    assert (reals - fakes).abs().sum() > 0
    assert batch["heatmap"].shape == batch["consistency"].shape == (4, 1, 8, 8)  # 32 px / stride 4
    assert dm.target_map_size == 8
    assert batch["heatmap"][:half].eq(0).all() and batch["consistency"][:half].eq(1).all()
    assert set(dm.stage_rows()["train"]["label"]) == {0}
    assert (dm.stage_rows()["val"]["label"] == 1).any()
    fit_one_batch(dm)


def test_ffpp_twin_bi_pseudo_fakes(twins):
    _, cache = twins["ffpp"]
    dm = FFPPDataModule(str(cache), protocol="real_only", pseudo_fake="bi", **LOADER)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["label"].tolist() == [0, 0, 1, 1] and batch["method"][2:] == ["pseudo_bi"] * 2
    assert (batch["mask"][2:].flatten(1).amax(1) > 0).all() and "heatmap" not in batch
    assert dm.target_map_size is None


def test_celebdf_twin_test_list_convention(twins):
    raw, cache = twins["celebdf"]
    listed = {}
    for line in (raw / "List_of_testing_videos.txt").read_text().splitlines():
        flag, rel = line.split()
        listed[rel.rsplit(".", 1)[0]] = 0 if flag == "1" else 1  # the list says 1 = real
    dm = CelebDFDataModule(str(cache), val_fraction=0.25, **LOADER)
    assert labels_by_video(dm, "test") == listed
    train_like = {**labels_by_video(dm, "train"), **labels_by_video(dm, "val")}
    assert not set(train_like) & set(listed)
    for video, label in train_like.items():
        assert label == int(video.startswith("Celeb-synthesis/"))
    rows = dm.stage_rows()
    assert not (set(rows["train"]["subject"]) - {""}) & (set(rows["val"]["subject"]) - {""})
    fit_one_batch(dm)


def test_dfdc_twin_metadata_and_test_labels(twins):
    raw, cache = twins["dfdc"]
    expected = {}
    for meta in raw.glob("dfdc_train_part_*/metadata.json"):
        for name, entry in json.loads(meta.read_text()).items():
            expected[f"{meta.parent.name}/{name.rsplit('.', 1)[0]}"] = int(entry["label"] == "FAKE")
    with open(raw / "test" / "labels.csv", newline="") as handle:
        for record in csv.DictReader(handle):
            expected[f"test/{record['filename'].rsplit('.', 1)[0]}"] = int(record["label"])
    dm = DFDCDataModule(str(cache), val_parts=(1,), **LOADER)
    seen = {}
    for stage in ("train", "val", "test"):
        got = labels_by_video(dm, stage)
        assert all(expected[video] == label for video, label in got.items())
        seen.update(got)
    assert set(seen) == set(expected)
    assert all(v.startswith("dfdc_train_part_1/") for v in dm.stage_rows()["val"]["video_id"])
    fit_one_batch(dm)


def test_dfdc_preview_twin(twins):
    raw, cache = twins["dfdc_preview"]
    meta = json.loads((raw / "dataset.json").read_text())
    expected = {rel.rsplit(".", 1)[0]: int(entry["label"] == "fake") for rel, entry in meta.items()}
    dm = DFDCDataModule(str(cache), variant="preview", val_fraction=0.3, **LOADER)
    for stage in ("train", "val", "test"):
        assert all(expected[v] == label for v, label in labels_by_video(dm, stage).items())
    test_ids = {rel.rsplit(".", 1)[0] for rel, entry in meta.items() if entry["set"] == "test"}
    assert set(dm.stage_rows()["test"]["video_id"]) == test_ids
    fit_one_batch(dm)


def test_casia_surf_twin_lists_folds_and_nine_channels(twins):
    raw, cache = twins["casia_surf"]
    expected = {}
    for name in ("train_list.txt", "val_private_list.txt", "test_private_list.txt"):
        for line in (raw / name).read_text().splitlines():
            color, _, _, flag = line.split()
            expected[color.rsplit(".", 1)[0]] = 0 if flag == "1" else 1  # the lists say 1 = real
    dm = CasiaSurfDataModule(str(cache), modalities=("rgb", "depth", "ir"), **LOADER)
    for stage in ("train", "val", "test"):
        assert all(expected[v] == label for v, label in labels_by_video(dm, stage).items())
    batch = next(iter(dm.test_dataloader()))
    assert batch["image"].shape == (4, 9, 32, 32)
    for fold, held in enumerate((4, 5, 6)):
        rows = CasiaSurfDataModule(str(cache), fold_protocol="attack", fold=fold, **LOADER).stage_rows()
        assert set(rows["val"].loc[rows["val"]["label"] == 1, "attack_type"]) == {held}
        assert set(rows["train"].loc[rows["train"]["label"] == 1, "attack_type"]) == {4, 5, 6} - {held}
    fit_one_batch(dm, in_chans=9)


def test_face_folder_of_raw_videos_is_preprocessed_into_a_cache(twins, tmp_path):
    raw, _ = twins["celebdf"]
    video = raw / "Celeb-real" / "id0_0000.mp4"
    dm = FaceFolderDataModule(str(video), cache_dir=str(tmp_path / "cache"), frames=3, landmark_backend="sidecar",
                              batch_size=8, num_workers=0, image_size=32)
    dm.prepare_data()
    dm.setup("predict")
    batch = next(iter(dm.predict_dataloader()))
    assert batch["image"].shape == (3, 3, 32, 32) and set(batch["label"].tolist()) == {-1}
    assert (tmp_path / "cache" / "manifest.parquet").is_file()
