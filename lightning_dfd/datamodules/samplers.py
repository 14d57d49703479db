"""Samplers over dataset *units* (a frame, or a clip of frames) that know which video each unit comes from.

Both subclass :class:`~torch.utils.data.DistributedSampler` so Lightning keeps them as they are under DDP instead of
wrapping them in its own (which would pad evaluation sets with duplicated samples).

* :class:`VideoFrameSampler` (train): each epoch draws ``frames_per_video`` units of every video (without
  replacement), optionally re-drawn with class-balancing weights (``WeightedRandomSampler`` semantics: weight of a
  unit = 1 / number of units of its class), shuffles and shards the result across ranks. Seeded by ``(seed, epoch)``
  so all ranks agree on the permutation.
* :class:`VideoShardSampler` (val/test/predict): every video goes to exactly one rank, whole, in order; no padding,
  so video-level scores are complete and no frame is counted twice.

Exact resume (training). :class:`VideoFrameSampler` yields :class:`SeededIndex` es: the unit index plus the seed of
that sample's random draws, ``derived_seed(seed, epoch, position in the epoch's draw)``; the
:class:`ResumableDataLoader` serves them through :class:`~lightning_dfd.transforms.seeding.SampleSeededDataset`,
which reseeds the transforms per sample, so augmentations depend on neither the worker nor its history. The
loader is *stateful* in Lightning's sense (``state_dict`` / ``load_state_dict``): a checkpoint written mid-epoch
(``ModelCheckpoint(every_n_train_steps=...)``, or ``save_on_exception=True`` and a SIGTERM, which Lightning turns
into a stop after the current batch) stores the epoch and the batches served, and a run resumed from it
(``--ckpt_path last``) continues with the next batch of the same epoch draw, each sample with the same seed, as
the uninterrupted run did. The loader also creates its worker iterator lazily, at the first batch request, so the
sampler sees the epoch Lightning sets with ``set_epoch`` even when the iterator was requested earlier (on resume
Lightning requests it before setting the epoch).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Self

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from lightning_dfd.transforms.seeding import SampleSeededDataset


def distributed_world() -> tuple[int, int]:
    """(world size, rank) of the initialised process group, or (1, 0)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def derived_seed(base: int, *keys: int) -> int:
    """A 63-bit seed mixing ``base`` with further integers (rank, stage) through numpy's SeedSequence."""
    sequence = np.random.SeedSequence([int(base) % (2**63), *(int(k) for k in keys)])
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def group_units_by_video(unit_video: Sequence[str] | np.ndarray) -> list[np.ndarray]:
    """Unit positions of each video, videos in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for position, video in enumerate(unit_video):
        groups.setdefault(str(video), []).append(position)
    return [np.asarray(units, dtype=np.int64) for units in groups.values()]


class SeededIndex(int):
    """A unit index that carries the seed of its sample's random draws (augmentation, pseudo-fake blending).

    Compares, hashes and indexes as the plain int; pickles with its seed (DataLoader workers receive it).
    """

    seed: int

    def __new__(cls, index: int, seed: int) -> Self:
        obj = super().__new__(cls, index)
        obj.seed = int(seed)
        return obj

    def __reduce__(self) -> tuple[Any, tuple[int, int]]:
        return SeededIndex, (int(self), self.seed)

    def __repr__(self) -> str:
        return f"SeededIndex({int(self)}, seed={self.seed})"


class _UnitSampler(DistributedSampler):
    """DistributedSampler plumbing without touching ``torch.distributed`` when it is not initialised."""

    def __init__(self, num_units: int, num_replicas: int | None, rank: int | None, seed: int) -> None:
        world, own_rank = distributed_world()
        self.num_replicas = world if num_replicas is None else int(num_replicas)
        self.rank = own_rank if rank is None else int(rank)
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"rank {self.rank} outside [0, {self.num_replicas})")
        self.num_units = int(num_units)
        self.seed = int(seed)
        self.epoch = 0
        self.shuffle = False
        self.drop_last = False
        # attributes DistributedSampler code paths read
        self.dataset = range(self.num_units)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)


class VideoFrameSampler(_UnitSampler):
    """Training sampler: ``frames_per_video`` random units per video per epoch, optionally class-balanced.

    Args:
        unit_video: video id of each unit.
        unit_label: label of each unit (used when ``balance``).
        frames_per_video: units drawn per video and epoch (None: all units of every video).
        balance: redraw the epoch's units with replacement, weight 1 / (units of that class), so both classes are
            drawn equally often in expectation.
        seed: base seed; epoch ``e`` uses ``(seed, e)``.
        num_replicas, rank: DDP world (defaults: from ``torch.distributed``, else 1 and 0).
        unit_group: group of each unit (e.g. its manipulation, ``real`` for real videos), for ``video_factors``.
        video_factors: videos drawn per epoch, as a multiple of a group's videos (missing groups: 1). ``2``: every
            video of the group twice (two independent draws); ``0.5``: a random half of its videos, re-drawn every
            epoch (seed 004 Sec. 4: reals x 2, each manipulation / 2). The epoch size stays fixed.
    """

    def __init__(self, unit_video: Sequence[str] | np.ndarray, unit_label: Sequence[int] | np.ndarray,
                 frames_per_video: int | None = None, balance: bool = False, seed: int = 0,
                 num_replicas: int | None = None, rank: int | None = None,
                 unit_group: Sequence[str] | np.ndarray | None = None,
                 video_factors: Mapping[str, float] | None = None) -> None:
        super().__init__(len(unit_video), num_replicas, rank, seed)
        if frames_per_video is not None and frames_per_video < 1:
            raise ValueError(f"frames_per_video must be >= 1 or None, got {frames_per_video}")
        self.videos = group_units_by_video(unit_video)
        self.unit_label = np.asarray(unit_label, dtype=np.int64)
        self.frames_per_video = frames_per_video
        self.balance = balance
        self.shuffle = True
        self.video_draws = self._video_draws(unit_group, video_factors)
        self.epoch_size = sum(self._draw_count(len(units)) for units in self.videos)
        if self.video_draws is not None:
            self.epoch_size = sum(round(round(factor * len(members))
                                        * np.mean([self._draw_count(len(self.videos[v])) for v in members]))
                                  for members, factor in self.video_draws)
        self.num_samples = math.ceil(self.epoch_size / self.num_replicas) if self.epoch_size else 0
        self.total_size = self.num_samples * self.num_replicas

    def _draw_count(self, available: int) -> int:
        return available if self.frames_per_video is None else min(self.frames_per_video, available)

    def _video_draws(self, unit_group, video_factors) -> list[tuple[np.ndarray, float]] | None:
        """``[(video positions of a group, its factor)]`` for ``video_factors``, or None."""
        if not video_factors:
            return None
        if unit_group is None or len(unit_group) != self.num_units:
            raise ValueError("video_factors needs the group (e.g. manipulation) of every unit")
        bad = {name: f for name, f in video_factors.items() if not float(f) > 0}
        if bad:
            raise ValueError(f"video_factors must be > 0, got {bad}")
        group_of_video = [str(unit_group[int(units[0])]) for units in self.videos]
        unknown = sorted(set(video_factors) - set(group_of_video))
        if unknown:
            raise ValueError(f"video_factors names {unknown}, which no training video has (groups: "
                             f"{sorted(set(group_of_video))})")
        out = []
        for group in sorted(set(group_of_video)):
            members = np.array([v for v, g in enumerate(group_of_video) if g == group], dtype=np.int64)
            out.append((members, float(video_factors.get(group, 1.0))))
        return out

    def _drawn_videos(self, rng: np.random.Generator) -> list[int]:
        """Video positions drawn this epoch: each video once, or per ``video_factors``."""
        if self.video_draws is None:
            return list(range(len(self.videos)))
        drawn: list[int] = []
        for members, factor in self.video_draws:
            total = round(factor * len(members))
            repeats, extra = divmod(total, len(members))
            drawn += [int(v) for v in np.tile(members, repeats)]
            drawn += [int(v) for v in rng.choice(members, size=extra, replace=False)]
        return drawn

    def epoch_indices(self) -> np.ndarray:
        """All ranks' units of the current epoch (before sharding)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        chosen = [rng.choice(self.videos[v], size=self._draw_count(len(self.videos[v])), replace=False)
                  for v in self._drawn_videos(rng)]
        picked = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
        if self.video_draws is not None and len(picked) != self.epoch_size:  # videos of unequal length: fix size
            picked = rng.permutation(picked)
            picked = np.resize(picked, self.epoch_size)
        if self.balance and len(picked):
            labels = self.unit_label[picked]
            classes, counts = np.unique(labels, return_counts=True)
            weight_of = dict(zip(classes.tolist(), (1.0 / counts).tolist()))
            weights = np.array([weight_of[label] for label in labels.tolist()])
            return rng.choice(picked, size=len(picked), replace=True, p=weights / weights.sum())
        return rng.permutation(picked)

    def sample_seed(self, position: int) -> int:
        """Seed of the sample at ``position`` of the current epoch's draw (all ranks, before sharding)."""
        return derived_seed(self.seed, self.epoch, position)

    def __iter__(self) -> Iterator[int]:
        indices = self.epoch_indices()
        if len(indices) and self.total_size > len(indices):  # pad so every rank makes the same number of steps
            indices = np.concatenate([indices, indices[: self.total_size - len(indices)]])
        positions = range(self.rank, self.total_size, self.num_replicas)
        skip, self._resume = (self._resume[1], None) if self._resume and self._resume[0] == self.epoch else (0, None)
        # one SeedSequence per sample: a few microseconds, next to milliseconds of decoding and augmenting
        return iter([SeededIndex(int(indices[p]), self.sample_seed(p)) for p in positions[skip:]])

    def __len__(self) -> int:
        return self.num_samples

    _resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, served: int) -> None:
        """Make the next iteration over ``epoch`` start after its first ``served`` samples of this rank (a mid-epoch
        checkpoint's position); other epochs are not affected."""
        self.set_epoch(epoch)
        self._resume = (int(epoch), int(served))

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.set_epoch(state["epoch"])


class VideoShardSampler(_UnitSampler):
    """Evaluation sampler: whole videos per rank, each video on exactly one rank, no padding duplicates.

    Videos are assigned greedily (largest first, to the rank with the fewest units so far; ties by rank) so ranks
    get nearly equal work; within a rank units keep dataset order.
    """

    def __init__(self, unit_video: Sequence[str] | np.ndarray, num_replicas: int | None = None,
                 rank: int | None = None) -> None:
        super().__init__(len(unit_video), num_replicas, rank, seed=0)
        videos = group_units_by_video(unit_video)
        loads = [0] * self.num_replicas
        owner = [0] * len(videos)
        for video in sorted(range(len(videos)), key=lambda v: (-len(videos[v]), v)):
            target = min(range(self.num_replicas), key=lambda r: (loads[r], r))
            owner[video] = target
            loads[target] += len(videos[video])
        mine = [videos[v] for v in range(len(videos)) if owner[v] == self.rank]
        self.indices = np.sort(np.concatenate(mine)).tolist() if mine else []
        self.num_samples = len(self.indices)
        self.total_size = self.num_units

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return self.num_samples


class ResumableDataLoader(DataLoader):
    """The training ``DataLoader``: per-sample seeding and a position Lightning saves and restores mid-epoch.

    ``dataset`` is wrapped in :class:`~lightning_dfd.transforms.seeding.SampleSeededDataset` (so the
    :class:`SeededIndex` es of a :class:`VideoFrameSampler` seed each sample's transforms). ``state_dict`` holds
    the epoch and the number of batches served in it; ``load_state_dict`` (Lightning calls it when it resumes
    from a mid-epoch checkpoint, before iterating) makes the next iteration start with the following batch.
    Takes the arguments of ``DataLoader``; the sampler must be a :class:`VideoFrameSampler` for resuming.
    """

    def __init__(self, dataset, *args: Any, **kwargs: Any) -> None:
        if not isinstance(dataset, SampleSeededDataset):
            dataset = SampleSeededDataset(dataset)
        super().__init__(dataset, *args, **kwargs)
        self._served = 0
        self._resume_served: tuple[int, int] | None = None

    def _frame_sampler(self) -> VideoFrameSampler | None:
        sampler = self.sampler if self.batch_sampler is None else getattr(self.batch_sampler, "sampler", None)
        return sampler if isinstance(sampler, VideoFrameSampler) else None

    def __iter__(self):
        """Batches of the epoch; the worker iterator starts at the first ``next`` (after ``set_epoch``)."""
        sampler = self._frame_sampler()
        epoch = sampler.epoch if sampler is not None else 0
        self._served = 0
        if self._resume_served is not None and self._resume_served[0] == epoch:
            self._served = self._resume_served[1]
        self._resume_served = None
        for batch in super().__iter__():
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        sampler = self._frame_sampler()
        return {"epoch": sampler.epoch if sampler is not None else 0, "batches_served": self._served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler = self._frame_sampler()
        if sampler is None:
            return
        epoch, served = int(state["epoch"]), int(state["batches_served"])
        sampler.resume_at(epoch, served * self.batch_size)
        self._resume_served = (epoch, served)
