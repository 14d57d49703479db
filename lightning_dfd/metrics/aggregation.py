"""Frame scores -> video scores, vectorised (no Python loop over videos), and stable integer video ids.

Aggregations (``how``):

- ``"mean"``: mean fake probability of the video's frames (the two-branch paper, seed 004, Sec. 4).
- ``"vote"``: fraction of frames with ``p >= threshold``; the majority vote of DLDFD (seed 002, Sec. 3) is
  ``video score >= 0.5``, and ranking metrics (AUC, ...) still work on the fraction.
- ``"max"``: the most suspicious frame.

A video's label is the max of its frames' labels (fake if any frame is fake); videos whose frames carry
both labels are reported with a ``UserWarning``.

``video_index`` maps a ``video_id`` string to a non-negative int64 that every process computes alike
(no communication between DDP ranks), so a video whose frames sit on several ranks is reassembled after
the metric states are gathered.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

Aggregation = Literal["mean", "vote", "max"]
AGGREGATIONS: tuple[str, ...] = ("mean", "vote", "max")


def video_index(video_id: str) -> int:
    """Stable id of a video: the first 8 bytes of BLAKE2b(``video_id``) as a non-negative int63."""
    digest = hashlib.blake2b(video_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def video_indices(video_ids: Sequence[str], device: torch.device | str | None = None) -> Tensor:
    """``video_index`` of every id of a batch, as an int64 tensor (e.g. from the collated ``video_id`` list)."""
    return torch.tensor([video_index(video_id) for video_id in video_ids], dtype=torch.int64, device=device)


def segment_max(values: Tensor, segment: Tensor, n_segments: int) -> Tensor:
    """Per-segment maximum of ``values`` (``segment[i]`` in ``[0, n_segments)``; every segment non-empty)."""
    out = torch.full((n_segments,), torch.iinfo(values.dtype).min if not values.is_floating_point()
                     else float("-inf"), dtype=values.dtype, device=values.device)
    return out.scatter_reduce(0, segment, values, reduce="amax", include_self=True)


def segment_min(values: Tensor, segment: Tensor, n_segments: int) -> Tensor:
    """Per-segment minimum of ``values``."""
    return -segment_max(-values, segment, n_segments)


def aggregate_by_video(preds: Tensor, target: Tensor, video_idx: Tensor, how: Aggregation = "mean",
                       threshold: float = 0.5) -> tuple[Tensor, Tensor, Tensor]:
    """Aggregate frame scores per video.

    Args:
        preds: frame fake probabilities, shape ``(N,)``.
        target: frame labels 0/1, shape ``(N,)``.
        video_idx: integer video id of each frame (e.g. ``video_index(video_id)``), shape ``(N,)``.
        how: ``"mean"``, ``"vote"`` (fraction of frames with ``p >= threshold``) or ``"max"``.
        threshold: frame decision threshold used by ``"vote"``.

    Returns:
        ``(video_preds, video_target, unique_video_idx)``, one entry per video in increasing id order
        (independent of the frame order, so every DDP rank obtains the same result).
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregate_by_video: how must be one of {AGGREGATIONS}, got {how!r}.")
    if not (preds.numel() == target.numel() == video_idx.numel()):
        raise ValueError(f"aggregate_by_video: preds ({preds.numel()}), target ({target.numel()}) and video_idx "
                         f"({video_idx.numel()}) need one entry per frame.")
    preds, target, video_idx = preds.flatten(), target.flatten().long(), video_idx.flatten().long()
    unique_video_idx, frame_video = torch.unique(video_idx, sorted=True, return_inverse=True)
    n_videos = unique_video_idx.numel()
    if how == "max":
        video_preds = segment_max(preds, frame_video, n_videos)
    else:
        accumulate_dtype = torch.float32 if preds.device.type == "mps" else torch.float64
        frame_values = (preds >= threshold) if how == "vote" else preds
        sums = torch.zeros(n_videos, dtype=accumulate_dtype, device=preds.device)
        sums.index_add_(0, frame_video, frame_values.to(accumulate_dtype))
        frame_counts = torch.bincount(frame_video, minlength=n_videos)
        video_preds = (sums / frame_counts).to(preds.dtype)
    video_target = segment_max(target, frame_video, n_videos)
    if n_videos:
        mixed = video_target != segment_min(target, frame_video, n_videos)
        n_mixed = int(mixed.sum())
        if n_mixed:
            warnings.warn(f"aggregate_by_video: {n_mixed} of {n_videos} videos have both real and fake frames; "
                          "they are labelled fake (max of the frame labels). Check that video_idx is unique "
                          "per video.", UserWarning, stacklevel=2)
    return video_preds, video_target, unique_video_idx
