"""`python -m lightning_dfd predict`: raw videos in, one CSV row per video out (no-face videos included)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import Trainer, seed_everything

from lightning_dfd.cli import main
from lightning_dfd.data.video import write_video
from lightning_dfd.methods.binary import BinaryClassifier
from tests.helpers.toy_data import ToyFaceDataModule

CONFIG = Path(__file__).resolve().parents[1] / "conf" / "predict" / "face_folder.yaml"


def test_predict_on_a_folder_of_raw_videos(tmp_path, twins, capsys):
    raw, _ = twins["ffpp"]
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(raw / "original_sequences/youtube/c23/videos/000.mp4", folder / "real_000.mp4")
    shutil.copy(raw / "original_sequences/youtube/c23/videos/001.mp4", folder / "real_001.mp4")
    noise = np.random.default_rng(0).integers(0, 40, (4, 64, 64, 3), dtype=np.uint8)  # dark noise: no face
    write_video(folder / "empty_room.mp4", noise)

    seed_everything(0)
    model = BinaryClassifier(backbone="resnet10t")
    trainer = Trainer(accelerator="cpu", max_steps=1, logger=False, enable_progress_bar=False,
                      enable_checkpointing=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=ToyFaceDataModule(videos=2, frames=2, size=32))
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)

    main(["predict", "--config", str(CONFIG), "--model", "lightning_dfd.methods.binary.BinaryClassifier",
          "--ckpt_path", str(ckpt), "--data.path", str(folder), "--data.init_args.cache_dir", str(tmp_path / "cache"),
          "--data.init_args.frames", "3", "--data.init_args.image_size", "64", "--data.init_args.num_workers", "0",
          "--trainer.accelerator", "cpu", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
          "--trainer.default_root_dir", str(tmp_path / "run")])
    rows = {Path(r["video"]).name.split(".")[0]: r for r in csv.DictReader((tmp_path / "run/predictions.csv").open())}
    assert set(rows) == {"real_000", "real_001", "empty_room"}, rows.keys()
    for name in ("real_000", "real_001"):
        assert 0.0 <= float(rows[name]["fake_probability"]) <= 1.0
        assert int(rows[name]["frames_used"]) == 3
    assert rows["empty_room"]["fake_probability"] == "" and rows["empty_room"]["frames_used"] == "0"
    assert "no_face" in rows["empty_room"]["note"]
    printed = capsys.readouterr().out
    assert "fake_probability" in printed and "empty_room" in printed
    # the weights used are the checkpoint's
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    assert any(k.startswith("net.") for k in state)
