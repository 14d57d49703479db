"""Render whole clips: a real person's video, or a manipulation of one, deterministic from the seed.

A clip is named by a *key* (e.g. ``"ffpp/017"``): the key seeds its head-motion/expression track, its
background and its sensor noise. A fake of target ``T`` with source ``S`` re-renders ``T``'s real clip
(bit-identical frames) and manipulates it, so outside the blend mask a fake equals its real video.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lightning_dfd.data.synthetic.faces import Expression, FaceIdentity, Track, sample_identity, sample_track
from lightning_dfd.data.synthetic.manipulations import SWAP_STYLES, neural_texture, reenact_face, swap_face
from lightning_dfd.data.synthetic.render import FaceRenderer, render_background
from lightning_dfd.data.synthetic.rng import stream

Manipulation = Literal["real", "swap", "expression", "neural_texture"]
SENSOR_NOISE_STD = 1.6


@dataclass(frozen=True)
class VideoSpec:
    """What one video shows.

    Args:
        key: names the (target) clip: its track, background and noise streams.
        identity: index of the person in the clip (the target for fakes).
        manipulation: ``real``, ``swap``, ``expression`` (Face2Face-like), ``neural_texture``.
        source_key: clip whose motion (swap) or expression (reenactment) the source contributes.
        source_identity: the donor identity for swaps (unused by reenactments).
        style: ``SwapStyle`` name for swaps (``Deepfakes``, ``FaceSwap``, ...).
    """

    key: str
    identity: int
    manipulation: Manipulation = "real"
    source_key: str | None = None
    source_identity: int | None = None
    style: str | None = None

    def __post_init__(self) -> None:
        if self.manipulation != "real" and self.source_key is None:
            raise ValueError(f"{self}: a {self.manipulation} fake needs a source_key")
        if self.manipulation == "swap":
            if self.source_identity is None or self.source_identity == self.identity:
                raise ValueError(f"{self}: a swap needs a source identity different from the target's")
            if self.style not in SWAP_STYLES:
                raise ValueError(f"{self}: unknown swap style {self.style!r}; "
                                 f"choose from {sorted(SWAP_STYLES)}")


@dataclass(frozen=True, eq=False)
class Clip:
    """Rendered frames, their landmarks and the manipulation mask (zeros for reals)."""

    frames: np.ndarray      # (T, H, W, 3) uint8 RGB
    landmarks: np.ndarray   # (T, 68, 2) float32 pixels
    masks: np.ndarray       # (T, H, W) float32 in [0, 1]


class ClipRenderer:
    """Renders ``VideoSpec``s at one size / length; caches identities and recent real clips."""

    def __init__(self, seed: int, size: int, frames: int, fps: int = 25, cache_clips: int = 16) -> None:
        self.seed, self.size, self.frames, self.fps = int(seed), int(size), int(frames), int(fps)
        self.faces = FaceRenderer(self.size)
        self._identities: dict[int, FaceIdentity] = {}
        self._reals: OrderedDict[tuple[str, int], Clip] = OrderedDict()
        self._cache_clips = cache_clips

    def identity(self, index: int) -> FaceIdentity:
        if index not in self._identities:
            self._identities[index] = sample_identity(stream(self.seed, "identity", int(index)))
        return self._identities[index]

    def track(self, key: str) -> Track:
        return sample_track(stream(self.seed, "track", key), self.frames, self.size, self.fps)

    def background(self, key: str) -> np.ndarray:
        return render_background(stream(self.seed, "background", key), self.size)

    def noise(self, key: str) -> np.ndarray:
        rng = stream(self.seed, "noise", key)
        return rng.normal(0.0, SENSOR_NOISE_STD, (self.frames, self.size, self.size, 3)).astype(np.float32)

    def _render_person(self, key: str, identity: FaceIdentity, track: Track,
                       expressions: list[Expression] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Frames (with sensor noise, uint8) and landmarks of ``identity`` along ``track``."""
        background = self.background(key)
        noise = self.noise(key)
        frames = np.empty((self.frames, self.size, self.size, 3), np.uint8)
        landmarks = np.empty((self.frames, 68, 2), np.float32)
        for t in range(self.frames):
            expression = expressions[t] if expressions is not None else track.expression(t)
            rendered = self.faces.render(identity, track.pose(t), expression, background)
            frames[t] = np.clip(np.rint(rendered.image.astype(np.float32) + noise[t]), 0, 255)
            landmarks[t] = rendered.landmarks
        return frames, landmarks

    def real(self, key: str, identity_index: int) -> Clip:
        """The real clip ``key`` of identity ``identity_index`` (cached)."""
        cache_key = (key, int(identity_index))
        if cache_key in self._reals:
            self._reals.move_to_end(cache_key)
            return self._reals[cache_key]
        frames, landmarks = self._render_person(key, self.identity(identity_index), self.track(key))
        clip = Clip(frames, landmarks, np.zeros(frames.shape[:3], np.float32))
        self._reals[cache_key] = clip
        while len(self._reals) > self._cache_clips:
            self._reals.popitem(last=False)
        return clip

    def render(self, spec: VideoSpec) -> Clip:
        """Render ``spec`` (a real clip or a fake of one)."""
        target = self.real(spec.key, spec.identity)
        if spec.manipulation == "real":
            return target
        target_track = self.track(spec.key)
        source_track = self.track(spec.source_key)
        frames = target.frames.copy()
        landmarks = target.landmarks.copy()
        masks = np.zeros(frames.shape[:3], np.float32)
        if spec.manipulation == "swap":
            # The donor, as a swap generator renders it: its own head motion, the target's expression.
            expressions = [target_track.expression(t) for t in range(self.frames)]
            source_frames, source_landmarks = self._render_person(
                spec.source_key, self.identity(spec.source_identity), source_track, expressions)
            style = SWAP_STYLES[spec.style]
            for t in range(self.frames):
                frames[t], masks[t] = swap_face(target.frames[t], target.landmarks[t], source_frames[t],
                                                source_landmarks[t], style, target_track.scale[t])
            return Clip(frames, landmarks, masks)

        # Reenactments: the target person, same pose and background, with the source's expression.
        expressions = [source_track.expression(t) for t in range(self.frames)]
        reenacted, reenacted_landmarks = self._render_person(
            spec.key, self.identity(spec.identity), target_track, expressions)
        for t in range(self.frames):
            # the same stream every frame: illumination error and texture tint are fixed per video
            rng = stream(self.seed, "manipulation", spec.key, spec.manipulation, spec.source_key)
            if spec.manipulation == "expression":
                frames[t], masks[t] = reenact_face(target.frames[t], target.landmarks[t], reenacted[t],
                                                   reenacted_landmarks[t], target_track.scale[t], rng)
                landmarks[t] = reenacted_landmarks[t]
            elif spec.manipulation == "neural_texture":
                frames[t], masks[t] = neural_texture(target.frames[t], target.landmarks[t], reenacted[t],
                                                     reenacted_landmarks[t], target_track.scale[t], rng)
                landmarks[t, 48:68] = reenacted_landmarks[t, 48:68]
            else:
                raise ValueError(f"unknown manipulation {spec.manipulation!r}")
        return Clip(frames, landmarks, masks)
