"""Writes one CSV row per video from ``predict`` (video, fake_probability, frames_used, label_if_known, note) and,
beside it, one PNG per video showing what the verdict rests on: the frame scores over time, as a red (fake) to
green (real) heat strip like the video bar of the two-branch paper's Fig. 1 (seed 004) plus the scores as bars
against the decision threshold, and the face crops of the most suspicious frames with their scores."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from lightning_dfd.batch import CLIP, FRAME_INDEX, IMAGE, LABEL, VIDEO_ID
from lightning_dfd.io import atomic_path, write_text_atomic
from lightning_dfd.metrics import aggregate_by_video

PROBABILITY = "fake_probability"  # key of predict_step's per-sample probability
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

COLUMNS = ["video", "fake_probability", "frames_used", "label_if_known", "note"]


class VideoPredictionWriter(BasePredictionWriter):
    """Aggregate frame probabilities per video (the module's ``scoring.aggregation``) and write a CSV.

    Videos the DataModule could not use (no face found, corrupt file) are listed by its ``failed_videos()``
    (``{video_id: reason}``) and get a row with an empty probability and the reason, never silently dropped.

    With ``figures``, ``<csv stem>_videos/<video id>.png`` shows each video's frame scores over time and its
    ``top_k`` most suspicious face crops (kept in memory while predicting, un-normalised with the DataModule's
    ``normalize_mean`` / ``normalize_std`` and shrunk to at most ``crop_size`` pixels, so memory stays at
    ``top_k`` small thumbnails per video). Under DDP each rank draws the videos it scored (each video is on one
    rank).

    Args:
        output: CSV path; relative paths are resolved against the trainer's ``default_root_dir``.
        print_table: also print the rows as a table.
        figures: write the per-video PNGs.
        top_k: face crops shown per video (the highest fake probabilities).
        crop_size: side, in pixels, the kept crops are shrunk to (at most).
    """

    def __init__(self, output: str = "predictions.csv", print_table: bool = True, figures: bool = True,
                 top_k: int = 4, crop_size: int = 112) -> None:
        super().__init__(write_interval="epoch")
        self.output = output
        self.print_table = print_table
        self.figures = figures
        self.top_k = top_k
        self.crop_size = crop_size
        self.rows: list[dict[str, Any]] = []
        self.path: Path | None = None
        self.figure_paths: list[Path] = []
        self._crops: dict[str, list[tuple[float, int, np.ndarray]]] = {}

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._crops = {}

    def on_predict_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int,
                             dataloader_idx: int = 0) -> None:
        """Keep the ``top_k`` most suspicious crops of each video (uint8 thumbnails)."""
        super().on_predict_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)
        if not self.figures or not isinstance(outputs, dict) or not isinstance(batch, dict):
            return
        images = batch.get(IMAGE)
        if images is None and batch.get(CLIP) is not None:
            images = batch[CLIP][:, batch[CLIP].shape[1] // 2]  # the middle frame of each clip
        if images is None:
            return
        probs = outputs[PROBABILITY].float().cpu().tolist()
        frames = [int(i) for i in outputs.get(FRAME_INDEX, range(len(probs)))]
        mean, std = _normalisation(getattr(trainer, "datamodule", None))
        for k, (video, prob, frame) in enumerate(zip(outputs[VIDEO_ID], probs, frames)):
            kept = self._crops.setdefault(str(video), [])
            if len(kept) >= self.top_k and prob <= kept[-1][0]:
                continue
            kept.append((prob, frame, thumbnail(images[k], mean, std, self.crop_size)))
            kept.sort(key=lambda item: (-item[0], item[1]))
            del kept[self.top_k:]

    def write_on_epoch_end(self, trainer: Trainer, pl_module: LightningModule, predictions, batch_indices) -> None:
        flat = _flatten(predictions)
        if self.figures:
            self.figure_paths = self._write_figures(trainer, pl_module, flat)
        records = [flat]
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            records = [None] * trainer.world_size
            torch.distributed.all_gather_object(records, flat)
        if not trainer.is_global_zero:
            return
        video_ids = [v for r in records for v in r["video_id"]]
        probs = torch.cat([r["fake_probability"] for r in records]) if video_ids else torch.zeros(0)
        labels = torch.cat([r["label"] for r in records]) if video_ids else torch.zeros(0, dtype=torch.long)
        failed = {}
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "failed_videos"):
            failed = dict(datamodule.failed_videos())
        self.rows = video_rows(video_ids, probs, labels, pl_module.scoring.aggregation, pl_module.scoring.threshold,
                               failed)
        path = Path(self.output)
        if not path.is_absolute():
            path = Path(trainer.default_root_dir) / path
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(path, buffer.getvalue())
        self.path = path
        if self.print_table:
            print(format_table(self.rows))
        print(f"[lightning-dfd] {len(self.rows)} video predictions -> {path}")
        if self.figures and self.figure_paths:
            print(f"[lightning-dfd] frame scores and most suspicious crops per video -> {self.figures_dir(trainer)}")

    def figures_dir(self, trainer: Trainer) -> Path:
        path = Path(self.output)
        if not path.is_absolute():
            path = Path(trainer.default_root_dir) / path
        return path.with_name(path.stem + "_videos")

    def _write_figures(self, trainer: Trainer, pl_module: LightningModule, flat: dict[str, Any]) -> list[Path]:
        """One PNG per video this rank scored."""
        scoring = pl_module.scoring
        folder = self.figures_dir(trainer)
        by_video: dict[str, list[tuple[int, float, int]]] = {}
        for video, frame, prob, label in zip(flat["video_id"], flat["frame_index"], flat["fake_probability"].tolist(),
                                             flat["label"].tolist()):
            by_video.setdefault(str(video), []).append((int(frame), float(prob), int(label)))
        paths = []
        for video, items in sorted(by_video.items()):
            items.sort()
            probs = torch.tensor([p for _, p, _ in items])
            score = float(aggregate_by_video(probs, torch.zeros(len(items), dtype=torch.long),
                                             torch.zeros(len(items), dtype=torch.long), how=scoring.aggregation,
                                             threshold=scoring.threshold)[0][0])
            path = folder / (safe_name(video) + ".png")
            plot_video(path, video, [f for f, _, _ in items], probs.tolist(), score, scoring.threshold,
                       scoring.aggregation, items[0][2], self._crops.get(video, []))
            paths.append(path)
        self._crops = {}
        return paths


def _flatten(predictions) -> dict[str, Any]:
    batches = predictions
    if batches and isinstance(batches[0], list):  # several predict dataloaders
        batches = [b for group in batches for b in group]
    out = {"video_id": [], "frame_index": [], "fake_probability": [], "label": []}
    for batch in batches:
        out["video_id"].extend(batch[VIDEO_ID])
        out["frame_index"].extend(int(i) for i in batch.get(FRAME_INDEX, range(len(batch[VIDEO_ID]))))
        out["fake_probability"].append(batch[PROBABILITY].float().cpu())
        out["label"].append(batch[LABEL].long().cpu())
    out["fake_probability"] = torch.cat(out["fake_probability"]) if out["fake_probability"] else torch.zeros(0)
    out["label"] = torch.cat(out["label"]) if out["label"] else torch.zeros(0, dtype=torch.long)
    return out


def video_rows(video_ids: list[str], probs: torch.Tensor, labels: torch.Tensor, aggregation: str, threshold: float,
               failed: dict[str, str]) -> list[dict[str, Any]]:
    """One row per video: aggregated probability, number of frames, label if known (else empty)."""
    names = sorted(set(video_ids))
    index = {name: i for i, name in enumerate(names)}
    rows = []
    if names:
        idx = torch.tensor([index[v] for v in video_ids], dtype=torch.long)
        counts = Counter(video_ids)
        video_probs, video_labels, video_idx = aggregate_by_video(probs, labels, idx, how=aggregation,
                                                                  threshold=threshold)
        for p, lab, i in zip(video_probs.tolist(), video_labels.tolist(), video_idx.tolist()):
            name = names[int(i)]
            rows.append({"video": name, "fake_probability": f"{p:.6f}", "frames_used": counts[name],
                         "label_if_known": int(lab) if int(lab) >= 0 else "", "note": ""})
    for name, reason in sorted(failed.items()):
        if name not in index:
            rows.append({"video": name, "fake_probability": "", "frames_used": 0, "label_if_known": "",
                         "note": reason})
    return sorted(rows, key=lambda r: r["video"])


def format_table(rows: list[dict[str, Any]]) -> str:
    widths = {c: max([len(c)] + [len(str(r[c])) for r in rows]) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS)]
    lines.append("  ".join("-" * widths[c] for c in COLUMNS))
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in COLUMNS) for r in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ figures
def _normalisation(datamodule) -> tuple[np.ndarray, np.ndarray]:
    mean = getattr(datamodule, "normalize_mean", None) or IMAGENET_MEAN
    std = getattr(datamodule, "normalize_std", None) or IMAGENET_STD
    return np.asarray(mean, dtype=np.float32)[:3], np.asarray(std, dtype=np.float32)[:3]


def thumbnail(image: torch.Tensor, mean: np.ndarray, std: np.ndarray, size: int) -> np.ndarray:
    """A normalised (C, H, W) crop back to uint8 RGB (H, W, 3) (first modality), shrunk to at most ``size``."""
    import cv2

    array = image[:3].detach().float().cpu().numpy().transpose(1, 2, 0)
    array = np.clip((array * std + mean) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if max(array.shape[:2]) > size:
        array = cv2.resize(array, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(array)


def safe_name(video_id: str) -> str:
    """A file name for a video id (``Deepfakes/c23/000_003`` -> ``Deepfakes__c23__000_003``)."""
    return "".join(c if c.isalnum() or c in "-_.," else "_" for c in video_id.replace("/", "__")) or "video"


def plot_video(path: Path, video: str, frames: list[int], probs: list[float], score: float, threshold: float,
               aggregation: str, label: int, crops: list[tuple[float, int, np.ndarray]]) -> Path:
    """The PNG of one video: verdict title, heat strip and bars of the frame scores, most suspicious crops."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = max(len(crops), 1)
    figure = Figure(figsize=(max(7.0, 1.9 * columns), 5.4 if crops else 3.2), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(3 if crops else 2, columns, height_ratios=[0.35, 1.4, 1.6][:3 if crops else 2])
    colour = colormaps["RdYlGn_r"]
    verdict = "FAKE" if score >= threshold else "REAL"
    truth = {0: "real", 1: "fake"}.get(label, "unknown")
    figure.suptitle(f"{video}: {verdict}  (fake probability {score:.3f}, {aggregation} of {len(probs)} frames, "
                    f"threshold {threshold:g}; label {truth})", fontsize=10,
                    color="firebrick" if verdict == "FAKE" else "darkgreen")
    strip = figure.add_subplot(grid[0, :])
    strip.imshow(np.asarray(probs)[None, :], aspect="auto", cmap=colour, vmin=0.0, vmax=1.0,
                 extent=(-0.5, len(probs) - 0.5, 0, 1), interpolation="nearest")
    strip.set(yticks=[], xticks=[])
    strip.set_title("frame scores over time: fake (red) ... real (green)", fontsize=8)
    bars = figure.add_subplot(grid[1, :])
    positions = np.arange(len(probs))
    bars.bar(positions, probs, color=[colour(p) for p in probs], width=0.85, edgecolor="none")
    bars.axhline(threshold, color="black", lw=0.8, ls="--", label=f"threshold {threshold:g}")
    bars.axhline(score, color="tab:blue", lw=1.0, label=f"video score {score:.3f}")
    step = max(1, len(frames) // 12)
    bars.set_xticks(positions[::step], [str(f) for f in frames[::step]], fontsize=7)
    bars.set(xlim=(-0.6, len(probs) - 0.4), ylim=(0, 1.02), xlabel="frame index in the video",
             ylabel="fake probability")
    bars.legend(loc="upper right", fontsize=7, framealpha=0.8)
    for column, (prob, frame, image) in enumerate(crops):
        axis = figure.add_subplot(grid[2, column])
        axis.imshow(image)
        axis.set_title(f"frame {frame}\nfake probability {prob:.3f}", fontsize=8)
        for side in ("bottom", "top", "left", "right"):  # the score's colour as a frame around the crop
            axis.spines[side].set(visible=True, color=colour(prob), linewidth=3)
        axis.set_xticks([])
        axis.set_yticks([])
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return path
