"""HeatmapImageLogger: predicted heatmaps logged during validation and written as PNG on test."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader

from lightning_dfd.callbacks.heatmap_images import HeatmapImageLogger
from lightning_dfd.methods.base import DetectorModule


class TinyHeatmapModel(DetectorModule):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, images):
        heat = torch.nn.functional.avg_pool2d(self.conv(images), 4)
        return {"logit": heat.flatten(1).mean(1), "heatmap": heat}

    def compute_loss(self, outputs, batch):
        return {"loss": torch.nn.functional.binary_cross_entropy_with_logits(outputs["logit"], batch["label"].float())}


def test_heatmaps_logged_on_validation_and_written_on_test(tmp_path):
    batch = {"image": torch.randn(4, 3, 16, 16), "label": torch.tensor([0, 1, 0, 1]),
             "video_id": ["a", "b", "c", "d"]}
    loader = DataLoader([batch], batch_size=None)
    logged = []

    from lightning.pytorch.loggers import CSVLogger

    class ImageCSVLogger(CSVLogger):
        def log_image(self, key, images, step=None):
            logged.append((key, images, step))

    trainer = Trainer(accelerator="cpu", max_epochs=1, logger=ImageCSVLogger(tmp_path), enable_progress_bar=False,
                      enable_checkpointing=False, num_sanity_val_steps=0, default_root_dir=tmp_path,
                      callbacks=[HeatmapImageLogger(num_images=3)])
    model = TinyHeatmapModel()
    trainer.fit(model, train_dataloaders=loader, val_dataloaders=loader)
    assert logged and logged[0][0] == "val/heatmaps"
    val_png = logged[0][1][0]
    assert Path(val_png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    trainer.test(model, dataloaders=loader, verbose=False)
    test_png = model.report_dir() / "test_heatmaps.png"
    assert test_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
