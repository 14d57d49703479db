"""Writes one CSV row per video from ``predict``: video, fake_probability, frames_used, label_if_known, note."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from lightning_dfd.io import write_text_atomic
from lightning_dfd.metrics import aggregate_by_video

COLUMNS = ["video", "fake_probability", "frames_used", "label_if_known", "note"]


class VideoPredictionWriter(BasePredictionWriter):
    """Aggregate frame probabilities per video (the module's ``scoring.aggregation``) and write a CSV.

    Videos the DataModule could not use (no face found, corrupt file) are listed by its ``failed_videos()``
    (``{video_id: reason}``) and get a row with an empty probability and the reason, never silently dropped.

    Args:
        output: CSV path; relative paths are resolved against the trainer's ``default_root_dir``.
        print_table: also print the rows as a table.
    """

    def __init__(self, output: str = "predictions.csv", print_table: bool = True) -> None:
        super().__init__(write_interval="epoch")
        self.output = output
        self.print_table = print_table
        self.rows: list[dict[str, Any]] = []
        self.path: Path | None = None

    def write_on_epoch_end(self, trainer: Trainer, pl_module: LightningModule, predictions, batch_indices) -> None:
        flat = _flatten(predictions)
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


def _flatten(predictions) -> dict[str, Any]:
    batches = predictions
    if batches and isinstance(batches[0], list):  # several predict dataloaders
        batches = [b for group in batches for b in group]
    out = {"video_id": [], "fake_probability": [], "label": []}
    for batch in batches:
        out["video_id"].extend(batch["video_id"])
        out["fake_probability"].append(batch["fake_probability"].float().cpu())
        out["label"].append(batch["label"].long().cpu())
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
