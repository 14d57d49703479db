"""Frame scores -> video scores, vectorised (no Python loop over videos), and stable integer video ids.

Aggregations (``how``):

- ``"mean"``: mean fake probability of the video's frames (the two-branch paper, seed 004, Sec. 4).
- ``"vote"``: fraction of frames with ``p >= threshold``; the majority vote of DLDFD (seed 002, Sec. 3) is
  ``video score >= 0.5``, and ranking metrics (AUC, ...) still work on the fraction.
- ``"max"``: the most suspicious frame.

A video's label is the max of its frames' labels (fake if any frame is fake); videos whose frames carry
both labels are reported with a ``UserWarning``. A video with a NaN frame score gets a NaN video score (with a
``UserWarning``), whatever the aggregation: NaN in, NaN out.

Ranking scores (``aggregate_log_odds_by_video``): ranking metrics see an order-preserving score, the log-odds
``log(p / (1 - p))`` in float64, never a float32 probability (every logit above ~16.6 is 1.0 in float32, above
~36.7 in float64). The video log-odds of ``"mean"`` is the log-odds of the mean probability, computed from the
frame log-odds without forming probabilities (``mean_probability_log_odds``), so video ranking follows the
papers' mean of probabilities exactly; ``"max"`` takes the max frame log-odds; ``"vote"`` the vote fraction.

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


def _warn_nan_videos(n_nan: int, n_videos: int) -> None:
    warnings.warn(f"aggregate_by_video: {n_nan} of {n_videos} videos have NaN frame scores; their video score is "
                  "NaN.", UserWarning, stacklevel=3)


def _nan_videos(values: Tensor, frame_video: Tensor, n_videos: int) -> Tensor:
    """Boolean mask of the videos with at least one NaN frame value."""
    nan_frames = torch.zeros(n_videos, dtype=torch.int64, device=values.device)
    nan_frames.index_add_(0, frame_video, torch.isnan(values).long())
    return nan_frames > 0


def _votes(preds: Tensor, threshold: float) -> Tensor:
    """Frame decisions of ``"vote"``: 1 where ``preds >= threshold`` (NaN frames are masked by the callers)."""
    return preds >= threshold


def _segment_mean(values: Tensor, segment: Tensor, n_segments: int, dtype: torch.dtype) -> Tensor:
    sums = torch.zeros(n_segments, dtype=dtype, device=values.device)
    sums.index_add_(0, segment, values.to(dtype))
    return sums / torch.bincount(segment, minlength=n_segments).to(dtype)


def mean_probability_log_odds(log_odds: Tensor, dim: int = 0) -> Tensor:
    """Log-odds of the mean probability, ``logit(mean(sigmoid(log_odds)))``, without forming probabilities.

    ``log(sum sigmoid(l)) - log(sum sigmoid(-l))`` with log-sum-exp of log-sigmoids: exact and strictly
    increasing in the mean probability for any logits (flip-TTA averages two views this way).
    """
    log_odds = log_odds.to(torch.float32 if log_odds.device.type == "mps" else torch.float64)
    return (torch.logsumexp(torch.nn.functional.logsigmoid(log_odds), dim=dim)
            - torch.logsumexp(torch.nn.functional.logsigmoid(-log_odds), dim=dim))


MEAN_SIGNIFICANT_BITS = 40


def round_significant(values: Tensor, bits: int = MEAN_SIGNIFICANT_BITS) -> Tensor:
    """Round to ``bits`` significant bits (40: relative 1e-12, far finer than float32's 24 bits).

    Video means are sums whose last bits depend on the frame order; rounding lets videos with the same mean
    probability tie, as they do in exact arithmetic. Infinities and NaN pass through.
    """
    mantissa, exponent = torch.frexp(values)
    rounded = torch.ldexp(torch.round(mantissa * 2.0**bits) / 2.0**bits, exponent)
    return torch.where(torch.isfinite(values), rounded, values)


def _segment_logsumexp(values: Tensor, segment: Tensor, n_segments: int) -> Tensor:
    top = segment_max(values, segment, n_segments)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    sums = torch.zeros(n_segments, dtype=values.dtype, device=values.device)
    sums.index_add_(0, segment, torch.exp(values - top[segment]))
    return torch.log(sums) + top


def aggregate_log_odds_by_video(log_odds: Tensor, preds: Tensor, video_idx: Tensor, how: Aggregation = "mean",
                                threshold: float = 0.5) -> Tensor:
    """Order-preserving video ranking scores, one per video in increasing id order (as ``aggregate_by_video``).

    Args:
        log_odds: frame log-odds of fake (e.g. the model's logits), shape ``(N,)``.
        preds: frame fake probabilities (the votes of ``"vote"``), shape ``(N,)``.
        video_idx: integer video id of each frame, shape ``(N,)``.
        how: ``"mean"``: log-odds of the mean probability; ``"max"``: max log-odds (= max probability);
            ``"vote"``: fraction of frames with ``preds >= threshold``.
        threshold: frame decision threshold of ``"vote"``.

    Returns float64 (float32 on MPS); NaN for a video with a NaN frame score or log-odds.
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregate_log_odds_by_video: how must be one of {AGGREGATIONS}, got {how!r}.")
    dtype = torch.float32 if log_odds.device.type == "mps" else torch.float64
    log_odds, preds = log_odds.flatten().to(dtype), preds.flatten()
    unique_video_idx, frame_video = torch.unique(video_idx.flatten().long(), sorted=True, return_inverse=True)
    n_videos = unique_video_idx.numel()
    if how == "max":
        scores = segment_max(log_odds, frame_video, n_videos)
    elif how == "vote":
        scores = _segment_mean(_votes(preds, threshold), frame_video, n_videos, dtype)
    else:
        scores = (_segment_logsumexp(torch.nn.functional.logsigmoid(log_odds), frame_video, n_videos)
                  - _segment_logsumexp(torch.nn.functional.logsigmoid(-log_odds), frame_video, n_videos))
        scores = round_significant(scores)
    nan_video = _nan_videos(log_odds, frame_video, n_videos) | _nan_videos(preds, frame_video, n_videos)
    return torch.where(nan_video, torch.full_like(scores, float("nan")), scores)


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
    else:  # "vote" counts p >= threshold: a NaN frame would count as a "real" vote without the check below
        accumulate_dtype = torch.float32 if preds.device.type == "mps" else torch.float64
        frame_values = _votes(preds, threshold) if how == "vote" else preds
        video_preds = _segment_mean(frame_values, frame_video, n_videos, accumulate_dtype).to(preds.dtype)
    nan_video = _nan_videos(preds, frame_video, n_videos)
    if bool(nan_video.any()):
        _warn_nan_videos(int(nan_video.sum()), n_videos)
        video_preds = torch.where(nan_video, torch.full_like(video_preds, float("nan")), video_preds)
    video_target = segment_max(target, frame_video, n_videos)
    if n_videos:
        mixed = video_target != segment_min(target, frame_video, n_videos)
        n_mixed = int(mixed.sum())
        if n_mixed:
            warnings.warn(f"aggregate_by_video: {n_mixed} of {n_videos} videos have both real and fake frames; "
                          "they are labelled fake (max of the frame labels). Check that video_idx is unique "
                          "per video.", UserWarning, stacklevel=2)
    return video_preds, video_target, unique_video_idx
