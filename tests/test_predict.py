"""`python -m lightning_dfd predict`: raw videos in, one CSV row per video out (no-face videos included)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer, seed_everything

from lightning_dfd.cli import main
from lightning_dfd.data.preprocess import part_path
from lightning_dfd.data.video import write_video
from lightning_dfd.methods.binary import BinaryClassifier
from tests.helpers.toy_data import ToyFaceDataModule

CONFIG = Path(__file__).resolve().parents[1] / "conf" / "predict" / "face_folder.yaml"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A tiny BinaryClassifier checkpoint (one training step on toy data)."""
    root = tmp_path_factory.mktemp("model")
    seed_everything(0)
    model = BinaryClassifier(backbone="resnet10t")
    trainer = Trainer(accelerator="cpu", max_steps=1, logger=False, enable_progress_bar=False,
                      enable_checkpointing=False, default_root_dir=root)
    trainer.fit(model, datamodule=ToyFaceDataModule(videos=2, frames=2, size=32))
    path = root / "model.ckpt"
    trainer.save_checkpoint(path)
    return path


def predict(ckpt: Path, folder: Path, cache: Path, run: Path, *extra: str) -> dict[str, dict[str, str]]:
    """``python -m lightning_dfd predict`` on ``folder``; the CSV rows by video name (no suffix)."""
    main(["predict", "--config", str(CONFIG), "--model", "lightning_dfd.methods.binary.BinaryClassifier",
          "--ckpt_path", str(ckpt), "--data.path", str(folder), "--data.init_args.cache_dir", str(cache),
          "--data.init_args.frames", "3", "--data.init_args.image_size", "64", "--data.init_args.num_workers", "0",
          "--trainer.accelerator", "cpu", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
          "--trainer.default_root_dir", str(run), *extra])
    return {Path(r["video"]).name.split(".")[0]: r for r in csv.DictReader((run / "predictions.csv").open())}


def test_predict_on_a_folder_of_raw_videos(tmp_path, twins, ckpt, capsys):
    raw, _ = twins["ffpp"]
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(raw / "original_sequences/youtube/c23/videos/000.mp4", folder / "real_000.mp4")
    shutil.copy(raw / "original_sequences/youtube/c23/videos/001.mp4", folder / "real_001.mp4")
    noise = np.random.default_rng(0).integers(0, 40, (4, 64, 64, 3), dtype=np.uint8)  # dark noise: no face
    write_video(folder / "empty_room.mp4", noise)

    rows = predict(ckpt, folder, tmp_path / "cache", tmp_path / "run")
    assert set(rows) == {"real_000", "real_001", "empty_room"}, rows.keys()
    for name in ("real_000", "real_001"):
        assert 0.0 <= float(rows[name]["fake_probability"]) <= 1.0
        assert int(rows[name]["frames_used"]) == 3
    assert rows["empty_room"]["fake_probability"] == "" and rows["empty_room"]["frames_used"] == "0"
    assert "no_face" in rows["empty_room"]["note"]
    printed = capsys.readouterr().out
    assert "fake_probability" in printed and "empty_room" in printed
    # beside the CSV, one PNG per scored video: frame scores over time and the most suspicious crops
    figures = sorted((tmp_path / "run" / "predictions_videos").glob("*.png"))
    assert [p.stem for p in figures] == ["real_000", "real_001"], figures
    for figure in figures:
        image = cv2.imread(str(figure))
        assert image is not None and 250 <= image.shape[0] <= 1200 and 600 <= image.shape[1] <= 2400, image.shape
        assert image.std() > 20  # not blank: bars, strip and face crops drawn
    # the weights used are the checkpoint's
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    assert any(k.startswith("net.") for k in state)


def test_a_video_replaced_under_the_same_name_gets_a_new_score(tmp_path, twins, ckpt):
    """The predict cache is keyed on each video's content: a new file under an old name is cropped and scored
    anew (the score of a fresh run on it), an untouched one is not cropped again."""
    raw, _ = twins["ffpp"]
    videos = raw / "original_sequences/youtube/c23/videos"
    folder, other = tmp_path / "videos", tmp_path / "other"

    def put(name: str, target: Path, as_name: str = "clip") -> None:  # a twin video and its landmarks (sidecar)
        target.mkdir(exist_ok=True)
        shutil.copy(videos / f"{name}.mp4", target / f"{as_name}.mp4")
        shutil.copy(videos / f"{name}.landmarks.npy", target / f"{as_name}.landmarks.npy")

    sidecar = ("--data.init_args.landmark_backend", "sidecar")
    put("000", folder)
    put("001", folder, "kept")
    put("002", other)
    cache = tmp_path / "cache"
    before = predict(ckpt, folder, cache, tmp_path / "run0", *sidecar)
    kept_part = part_path(cache, "kept")
    kept_mtime = kept_part.stat().st_mtime_ns
    put("002", folder)  # same name, other content
    after = predict(ckpt, folder, cache, tmp_path / "run1", *sidecar)
    summary = json.loads((cache / "summary.json").read_text())
    assert (summary["processed_this_run"], summary["redone_source_changed"], summary["skipped_already_done"]) == (
        1, 1, 1)
    assert kept_part.stat().st_mtime_ns == kept_mtime  # the untouched video was not cropped again
    assert after["kept"]["fake_probability"] == before["kept"]["fake_probability"]
    fresh = predict(ckpt, other, tmp_path / "fresh_cache", tmp_path / "run2", *sidecar)["clip"]["fake_probability"]
    assert after["clip"]["fake_probability"] == fresh != before["clip"]["fake_probability"]


def test_default_predict_cache_is_per_user_and_keyed_on_path_and_crop_settings(tmp_path, monkeypatch):
    from lightning_dfd.datamodules import FaceFolderDataModule

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    monkeypatch.setenv("LIGHTNING_DFD_CACHE", str(tmp_path / "cache_root"))
    first = FaceFolderDataModule(str(video), frames=8).cache_path
    assert first.parent == tmp_path / "cache_root" / "predict" and first.name.startswith("clip-")
    assert FaceFolderDataModule(str(video), frames=8).cache_path == first
    assert FaceFolderDataModule(str(video), frames=16).cache_path != first
    assert FaceFolderDataModule(str(video), landmark_backend="sidecar").cache_path != first
    assert FaceFolderDataModule(str(video), cache_dir=str(tmp_path / "mine")).cache_path == tmp_path / "mine"
    monkeypatch.delenv("LIGHTNING_DFD_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert FaceFolderDataModule(str(video)).cache_path.parent == tmp_path / "xdg" / "lightning_dfd" / "predict"
