"""Procedural faces: identity geometry, per-frame pose and expression, and the 68 iBUG landmarks.

Geometry lives in a *canonical* face frame: origin between the eyes and the nose, x to the subject's left
(image right), y down, one unit = half the face width. ``FaceIdentity`` fixes the shape of one person;
``Expression`` (eye and mouth opening) and ``Pose`` (centre, scale, roll) vary per frame. The 68 landmarks
follow the iBUG 300-W order: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67 (outer 48-59,
inner 60-67), numbered from the image-left side as a frontal face is seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

JAW = np.arange(0, 17)
BROWS = np.arange(17, 27)
NOSE = np.arange(27, 36)
LEFT_EYE = np.arange(36, 42)   # image-left eye
RIGHT_EYE = np.arange(42, 48)
EYES = np.arange(36, 48)
MOUTH_OUTER = np.arange(48, 60)
MOUTH_INNER = np.arange(60, 68)
MOUTH = np.arange(48, 68)

# Colour palettes (RGB, 0-255) the identities are drawn from.
SKIN_TONES = np.array([[244, 208, 184], [226, 180, 150], [200, 150, 112], [160, 112, 80], [112, 76, 54]],
                      dtype=np.float64)
HAIR_COLOURS = np.array([[28, 22, 18], [70, 45, 28], [120, 80, 45], [190, 160, 105], [140, 60, 30],
                         [150, 148, 145]], dtype=np.float64)
IRIS_COLOURS = np.array([[92, 56, 30], [60, 40, 26], [70, 110, 150], [80, 115, 72], [120, 95, 55]],
                        dtype=np.float64)

# Smallest eye / mouth opening: lids and lips never coincide exactly, so no landmark triangle degenerates.
MIN_EYE_OPEN = 0.08
MIN_MOUTH_GAP = 0.012


@dataclass(frozen=True, eq=False)
class FaceIdentity:
    """Everything that stays fixed for one synthetic person (canonical units, RGB colours)."""

    face_half_width: float
    chin_depth: float          # jaw semi-axis below the ear line
    jaw_squareness: float      # superellipse exponent of the jaw (2 = elliptic)
    forehead_height: float     # head semi-axis above the ear line
    ear_line: float
    eye_line: float
    eye_spacing: float         # half the distance between the eye centres
    eye_half_width: float
    eye_height: float
    brow_gap: float
    brow_arch: float
    brow_thickness: float
    nose_tip: float
    nose_half_width: float
    nose_height: float         # protrusion, for shading and depth
    mouth_line: float
    mouth_half_width: float
    upper_lip: float
    lower_lip: float
    mouth_corner_lift: float
    jaw_drop: float            # how far the chin moves down with a fully open mouth
    asymmetry: np.ndarray      # (68, 2) small fixed landmark offsets
    skin_rgb: np.ndarray
    lip_rgb: np.ndarray
    iris_rgb: np.ndarray
    hair_rgb: np.ndarray
    brow_rgb: np.ndarray
    clothing_rgb: np.ndarray
    hair_style: int            # 0 short, 1 fringe, 2 long
    hairline: float
    light_direction: np.ndarray  # unit 3-vector, towards the light (x right, y down, z to camera)
    texture_seed: int


def sample_identity(rng: np.random.Generator) -> FaceIdentity:
    """Draw one identity. Ranges keep every face frontal, face-like and non-degenerate."""
    u = rng.uniform
    tone = u(0, len(SKIN_TONES) - 1)
    lo = int(np.floor(tone))
    hi = min(lo + 1, len(SKIN_TONES) - 1)
    skin = SKIN_TONES[lo] * (1 - (tone - lo)) + SKIN_TONES[hi] * (tone - lo)
    skin = np.clip(skin * u(0.94, 1.06, 3), 0, 255)
    lip = np.clip(skin * np.array([0.82, 0.52, 0.55]) + np.array([25.0, 0.0, 5.0]) * u(0.5, 1.5), 0, 255)
    hair = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * u(0.85, 1.15)
    hair = np.clip(hair, 0, 255)
    brow = np.clip(hair * 0.75 + skin * 0.05, 0, 255)
    iris = np.clip(IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))] * u(0.85, 1.15), 0, 255)
    clothing = rng.uniform(30, 220, 3)
    light = np.array([u(-0.6, 0.6), u(-0.7, -0.2), 1.0])
    return FaceIdentity(
        face_half_width=u(0.93, 1.05),
        chin_depth=u(1.08, 1.28),
        jaw_squareness=u(2.0, 3.0),
        forehead_height=u(1.18, 1.36),
        ear_line=u(-0.2, -0.08),
        eye_line=u(-0.33, -0.24),
        eye_spacing=u(0.37, 0.45),
        eye_half_width=u(0.16, 0.2),
        eye_height=u(0.12, 0.16),
        brow_gap=u(0.17, 0.24),
        brow_arch=u(0.03, 0.08),
        brow_thickness=u(0.045, 0.075),
        nose_tip=u(0.24, 0.36),
        nose_half_width=u(0.13, 0.18),
        nose_height=u(0.2, 0.3),
        mouth_line=u(0.64, 0.76),
        mouth_half_width=u(0.27, 0.36),
        upper_lip=u(0.045, 0.075),
        lower_lip=u(0.06, 0.095),
        mouth_corner_lift=u(-0.015, 0.035),
        jaw_drop=u(0.06, 0.12),
        asymmetry=rng.normal(0.0, 0.007, (68, 2)),
        skin_rgb=skin,
        lip_rgb=lip,
        iris_rgb=iris,
        hair_rgb=hair,
        brow_rgb=brow,
        clothing_rgb=clothing,
        hair_style=int(rng.integers(3)),
        hairline=u(-1.02, -0.84),
        light_direction=light / np.linalg.norm(light),
        texture_seed=int(rng.integers(2**31)),
    )


@dataclass(frozen=True)
class Expression:
    """Per-frame expression: 1 = eyes fully open / mouth fully open, 0 = closed."""

    eye_open: float = 1.0
    mouth_open: float = 0.0


@dataclass(frozen=True)
class Pose:
    """Per-frame similarity transform canonical -> frame pixels: ``p = scale * R(roll) c + centre``."""

    center_x: float
    center_y: float
    scale: float    # pixels per canonical unit
    roll: float     # radians, positive = clockwise on screen

    def matrix(self) -> np.ndarray:
        """The 2x3 affine matrix canonical -> pixel."""
        cos, sin = np.cos(self.roll) * self.scale, np.sin(self.roll) * self.scale
        return np.array([[cos, -sin, self.center_x], [sin, cos, self.center_y]])

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map canonical points (..., 2) to frame pixels."""
        m = self.matrix()
        return points @ m[:, :2].T + m[:, 2]


def jaw_curve(identity: FaceIdentity, mouth_open: float, count: int = 17) -> np.ndarray:
    """Points along the jaw from the image-left ear line, round the chin, to the image-right ear line."""
    # Points spread like iBUG's: slowly down the cheeks (0-3, 13-16), faster round the chin.
    t = np.linspace(-1.0, 1.0, count)
    phi = np.pi / 2 * (1.0 + np.sign(t) * (1.0 - (1.0 - np.abs(t)) ** 1.5))
    power = 2.0 / identity.jaw_squareness
    cos, sin = np.cos(phi), np.sin(phi)
    x = -identity.face_half_width * np.sign(cos) * np.abs(cos) ** power
    sin_shape = np.abs(sin) ** power
    y = identity.ear_line + identity.chin_depth * sin_shape + identity.jaw_drop * mouth_open * sin ** 2
    return np.stack([x, y], axis=1)


def forehead_curve(identity: FaceIdentity, count: int = 15) -> np.ndarray:
    """Head outline above the ear line, image-right to image-left (closes the jaw curve into an oval)."""
    theta = np.linspace(0.0, np.pi, count + 2)[1:-1]
    x = identity.face_half_width * np.cos(theta)
    y = identity.ear_line - identity.forehead_height * np.sin(theta)
    return np.stack([x, y], axis=1)


def face_outline(identity: FaceIdentity, mouth_open: float) -> np.ndarray:
    """Closed polygon of the skin region of the face (jaw + forehead), canonical units."""
    return np.concatenate([jaw_curve(identity, mouth_open, 33), forehead_curve(identity, 25)])


def _eye_points(identity: FaceIdentity, eye_open: float, sign: float) -> np.ndarray:
    """Six eyelid points of one eye (iBUG order for the image-left eye; mirrored by ``sign``)."""
    cx, cy = sign * identity.eye_spacing, identity.eye_line
    hw, h = identity.eye_half_width, identity.eye_height
    lower = cy + 0.35 * h                               # the lower lid stays, the upper lid closes on it
    upper = lower - h * max(eye_open, MIN_EYE_OPEN)
    corner_y = lower - 0.3 * h * max(eye_open, MIN_EYE_OPEN)
    # outer corner, upper outer, upper inner, inner corner, lower inner, lower outer  (image-left eye)
    xs = np.array([-hw, -0.35 * hw, 0.35 * hw, hw, 0.35 * hw, -0.35 * hw])
    ys = np.array([corner_y + 0.04 * h * eye_open, upper, upper + 0.05 * h * eye_open, corner_y,
                   lower, lower])
    return np.stack([cx + xs, ys], axis=1)


def canonical_landmarks(identity: FaceIdentity, expression: Expression) -> np.ndarray:
    """The 68 iBUG landmarks of ``identity`` with ``expression``, canonical units, shape (68, 2)."""
    pts = np.zeros((68, 2))
    mouth_open = float(np.clip(expression.mouth_open, 0.0, 1.0))
    eye_open = float(np.clip(expression.eye_open, 0.0, 1.0))
    pts[JAW] = jaw_curve(identity, mouth_open)

    # Brows 17-21 (image-left, outer -> inner), 22-26 mirrored (inner -> outer).
    t = np.linspace(0.0, 1.0, 5)
    outer = -(identity.eye_spacing + 1.2 * identity.eye_half_width)
    inner = -max(0.09, identity.eye_spacing - 1.05 * identity.eye_half_width)
    arch_u = 0.25 + 0.75 * t
    brow_y = (identity.eye_line - identity.brow_gap - identity.brow_arch * 4 * arch_u * (1 - arch_u)
              + 0.04 * (1 - t) - 0.04 * (1 - eye_open) * 0.3)
    pts[17:22] = np.stack([outer + (inner - outer) * t, brow_y], axis=1)
    pts[22:27] = pts[21:16:-1] * np.array([-1.0, 1.0])

    # Nose: bridge 27-30 down the midline, base 31-35 left to right.
    pts[27:31] = np.stack([np.zeros(4), np.linspace(identity.eye_line, identity.nose_tip, 4)], axis=1)
    nw, tip = identity.nose_half_width, identity.nose_tip
    pts[31:36] = np.array([[-nw, tip + 0.03], [-0.5 * nw, tip + 0.065], [0.0, tip + 0.08],
                           [0.5 * nw, tip + 0.065], [nw, tip + 0.03]])

    # Eyes: image-left eye 36-41; image-right eye 42-47 mirrored (42 inner corner ... 45 outer corner).
    left = _eye_points(identity, eye_open, -1.0)
    pts[36:42] = left
    mirror = np.array([-1.0, 1.0])
    right = (left - np.array([-identity.eye_spacing, 0.0])) * mirror + np.array([identity.eye_spacing, 0.0])
    pts[42:48] = right[[3, 2, 1, 0, 5, 4]]

    # Mouth: lower lip and corners move down as the mouth opens.
    mw = identity.mouth_half_width * (1.0 - 0.1 * mouth_open)
    my = identity.mouth_line
    gap = max(0.22 * mouth_open, MIN_MOUTH_GAP)
    ul, ll = identity.upper_lip, identity.lower_lip
    upper_inner = my - 0.05 * gap
    lower_inner = my + 0.95 * gap
    corner = my + 0.35 * gap - identity.mouth_corner_lift
    pts[48] = [-mw, corner]
    pts[49] = [-0.6 * mw, upper_inner - 0.75 * ul]
    pts[50] = [-0.22 * mw, upper_inner - 1.1 * ul]
    pts[51] = [0.0, upper_inner - 0.92 * ul]
    pts[52] = [0.22 * mw, upper_inner - 1.1 * ul]
    pts[53] = [0.6 * mw, upper_inner - 0.75 * ul]
    pts[54] = [mw, corner]
    pts[55] = [0.6 * mw, lower_inner - 0.12 * gap + 0.75 * ll]
    pts[56] = [0.25 * mw, lower_inner + 0.97 * ll]
    pts[57] = [0.0, lower_inner + ll]
    pts[58] = [-0.25 * mw, lower_inner + 0.97 * ll]
    pts[59] = [-0.6 * mw, lower_inner - 0.12 * gap + 0.75 * ll]
    pts[60] = [-0.86 * mw, corner]
    pts[61] = [-0.3 * mw, upper_inner]
    pts[62] = [0.0, upper_inner + 0.01 * ul]
    pts[63] = [0.3 * mw, upper_inner]
    pts[64] = [0.86 * mw, corner]
    pts[65] = [0.3 * mw, lower_inner - 0.12 * gap]
    pts[66] = [0.0, lower_inner]
    pts[67] = [-0.3 * mw, lower_inner - 0.12 * gap]
    return pts + identity.asymmetry


@dataclass(frozen=True, eq=False)
class Track:
    """Per-frame pose and expression of one video, arrays of length T."""

    center_x: np.ndarray
    center_y: np.ndarray
    scale: np.ndarray
    roll: np.ndarray
    eye_open: np.ndarray
    mouth_open: np.ndarray

    def __len__(self) -> int:
        return len(self.scale)

    def pose(self, t: int) -> Pose:
        return Pose(float(self.center_x[t]), float(self.center_y[t]), float(self.scale[t]),
                    float(self.roll[t]))

    def expression(self, t: int) -> Expression:
        return Expression(float(self.eye_open[t]), float(self.mouth_open[t]))


def _smooth_wave(rng: np.random.Generator, seconds: np.ndarray, amplitude: float,
                 frequency_range: tuple[float, float], waves: int = 3) -> np.ndarray:
    """A sum of ``waves`` sinusoids with random frequency and phase; peak amplitude <= ``amplitude``."""
    out = np.zeros_like(seconds)
    weights = rng.dirichlet(np.ones(waves))
    for weight in weights:
        freq = rng.uniform(*frequency_range)
        out += weight * np.sin(2 * np.pi * freq * seconds + rng.uniform(0, 2 * np.pi))
    return amplitude * out


def sample_track(rng: np.random.Generator, frames: int, size: int, fps: float = 25.0,
                 face_fraction: tuple[float, float] = (0.48, 0.58),
                 center: tuple[float, float] = (0.5, 0.5)) -> Track:
    """Small head motion (translation, roll, scale), blinks and talking for ``frames`` frames.

    Args:
        face_fraction: range of the face height (forehead top to chin) as a fraction of ``size``.
        center: where the face centre sits, as fractions of the frame width and height.
    """
    seconds = np.arange(frames) / fps
    face_height_units = 2.55
    base_scale = rng.uniform(*face_fraction) * size / face_height_units
    cx = size * (center[0] + rng.normal(0, 0.015)) + size * _smooth_wave(rng, seconds, 0.03, (0.1, 0.8))
    cy = (size * (center[1] + rng.normal(0, 0.01)) + 0.08 * base_scale
          + size * _smooth_wave(rng, seconds, 0.025, (0.1, 0.8)))
    scale = base_scale * (1.0 + _smooth_wave(rng, seconds, 0.035, (0.05, 0.5)))
    roll = np.deg2rad(rng.normal(0, 2.0) + _smooth_wave(rng, seconds, 4.0, (0.1, 0.7)))

    eye_open = np.full(frames, rng.uniform(0.85, 1.0))
    blink_profile = np.array([0.5, 0.1, 0.45])
    blink_starts = np.flatnonzero(rng.random(frames) < 0.07)
    for start in blink_starts:
        stop = min(frames, start + len(blink_profile))
        eye_open[start:stop] = np.minimum(eye_open[start:stop], blink_profile[: stop - start])
    eye_open = np.maximum(eye_open, MIN_EYE_OPEN)

    talk = rng.uniform(0.15, 0.45)
    mouth = rng.uniform(0.05, 0.3) + _smooth_wave(rng, seconds, talk, (1.5, 4.5), waves=2)
    mouth_open = np.clip(mouth, 0.0, 1.0)
    return Track(cx, cy, scale, roll, eye_open, mouth_open)
