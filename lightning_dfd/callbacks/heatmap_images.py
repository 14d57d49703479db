"""Predicted LAA-Net heatmaps as images: a few per validation epoch to the loggers, a PNG grid per test run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from lightning_dfd import batch as keys
from lightning_dfd.batch import EvalStepOutput
from lightning_dfd.io import atomic_path


def heatmap_grid(images: torch.Tensor, heatmaps: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor,
                 path: str | Path, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)) -> Path:
    """PNG: one column per sample, the face (de-normalised) above its predicted heatmap sigmoid(H^) overlaid."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.6), squeeze=False)
    m = torch.tensor(mean, dtype=images.dtype).view(-1, 1, 1)
    s = torch.tensor(std, dtype=images.dtype).view(-1, 1, 1)
    for i in range(n):
        face = (images[i, :3].cpu() * s + m).clamp(0, 1).permute(1, 2, 0).numpy()
        heat = torch.sigmoid(heatmaps[i, 0].float().cpu()).numpy()
        axes[0, i].imshow(face)
        axes[0, i].set_title(f"y={int(labels[i])} p={float(probs[i]):.2f}", fontsize=8)
        axes[1, i].imshow(face)
        height, width = face.shape[:2]  # stretch the h x w heatmap over the face
        axes[1, i].imshow(heat, cmap="magma", alpha=0.6, vmin=0, vmax=1, interpolation="nearest",
                          extent=(-0.5, width - 0.5, height - 0.5, -0.5))
        for ax in axes[:, i]:
            ax.axis("off")
    axes[1, 0].set_title("predicted heatmap", fontsize=8, loc="left")
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


class HeatmapImageLogger(Callback):
    """Log the predicted heatmaps of the first validation batch each epoch; write a PNG of the first test batch.

    Reads the :class:`~lightning_dfd.batch.EvalStepOutput` that ``validation_step`` / ``test_step`` return; works
    with any method whose ``outputs`` hold a ``heatmap`` (LAA-Net) and ignores the others. Faces are
    de-normalised with the DataModule's ``normalize_mean`` / ``normalize_std`` when it has them.

    Args:
        num_images: samples shown per grid (fakes first, they are the interesting ones).
    """

    def __init__(self, num_images: int = 6) -> None:
        self.num_images = num_images

    def _grid(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: dict, name: str) -> Path | None:
        if not isinstance(outputs, EvalStepOutput) or "heatmap" not in outputs.outputs or keys.IMAGE not in batch:
            return None
        labels = torch.as_tensor(batch[keys.LABEL]).cpu()
        order = torch.argsort(-labels, stable=True)[: self.num_images]
        report_dir = pl_module.report_dir() if hasattr(pl_module, "report_dir") else Path(trainer.default_root_dir)
        datamodule = getattr(trainer, "datamodule", None)
        normalisation = {name: tuple(getattr(datamodule, f"normalize_{name}"))[:3] for name in ("mean", "std")
                         if getattr(datamodule, f"normalize_{name}", None) is not None}
        return heatmap_grid(batch[keys.IMAGE][order].detach().float().cpu(), outputs.outputs["heatmap"][order].detach(),
                            outputs.fake_probability[order].detach(), labels[order], report_dir / f"{name}.png",
                            **normalisation)

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx != 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        path = self._grid(trainer, pl_module, outputs, batch, f"val_heatmaps_epoch{trainer.current_epoch:03d}")
        if path is None:
            return
        for logger in trainer.loggers:
            log_image = getattr(logger, "log_image", None)
            if log_image is not None:
                log_image(key="val/heatmaps", images=[str(path)], step=trainer.global_step)

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx == 0 and trainer.is_global_zero:
            suffix = "" if dataloader_idx == 0 else f"_{dataloader_idx}"
            path = self._grid(trainer, pl_module, outputs, batch, f"test_heatmaps{suffix}")
            if path is not None:
                pl_module.print(f"[lightning-dfd] predicted heatmaps -> {path}")
