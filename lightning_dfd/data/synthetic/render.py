"""Draw a procedural face (``faces.py``) into an RGB frame with OpenCV, vectorised in numpy.

Each identity owns canonical rasters, made once: a height field (ellipsoid head + nose ridge, eye sockets,
brow ridge, lips, chin, cheeks), Lambertian + specular shading of it under the identity's light, a skin
albedo with smooth multi-scale noise (the fixed skin texture) and a streaked hair texture. Per frame they are
warped by the pose's similarity transform; the face oval, ears, neck, hair, brows, eyes (sclera, iris, pupil,
glint, lids), nostrils and lips (with mouth interior and teeth) are filled as anti-aliased polygons at
sub-pixel precision from the same 68 landmarks that are returned, so the sidecar matches the drawing.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lightning_dfd.data.synthetic.faces import (
    Expression,
    FaceIdentity,
    Pose,
    canonical_landmarks,
    face_outline,
)

# Canonical extent covered by the identity rasters (units of half a face width).
CANON_X0, CANON_X1 = -1.8, 1.8
CANON_Y0, CANON_Y1 = -2.0, 1.8
_SHIFT = 4                      # OpenCV drawing: coordinates carry 4 fractional bits
_ONE = float(1 << _SHIFT)


@dataclass(frozen=True, eq=False)
class IdentityRasters:
    """Canonical rasters of one identity; pixel (u, v) is canonical ``(X0 + u / ppu, Y0 + v / ppu)``."""

    ppu: float
    skin: np.ndarray       # (H, W, 3) float32 shaded skin colour, RGB 0-255
    hair: np.ndarray       # (H, W, 3) float32 hair colour with strands
    height: np.ndarray     # (H, W) float32 height field z (canonical units, towards the camera)
    shading: np.ndarray    # (H, W) float32 Lambertian shading factor (about 1 where lit frontally)


@dataclass(frozen=True, eq=False)
class RenderedFrame:
    """One rendered frame: RGB image, its 68 landmarks (pixels) and the drawn skin / head regions."""

    image: np.ndarray       # (H, W, 3) uint8 RGB
    landmarks: np.ndarray   # (68, 2) float64, (x, y) pixels
    face_mask: np.ndarray   # (H, W) float32 in [0, 1], skin oval of the face
    head_mask: np.ndarray   # (H, W) float32 in [0, 1], face + ears + hair + neck


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Unit-variance noise that varies over about ``cells`` (rows, cols) cells: bicubic upsampled normals."""
    coarse = rng.standard_normal((cells[0] + 3, cells[1] + 3)).astype(np.float32)
    big = cv2.resize(coarse, (shape[1] + 2 * shape[1] // cells[1], shape[0] + 2 * shape[0] // cells[0]),
                     interpolation=cv2.INTER_CUBIC)
    oy, ox = shape[0] // cells[0], shape[1] // cells[1]
    out = big[oy:oy + shape[0], ox:ox + shape[1]]
    return (out - out.mean()) / (out.std() + 1e-6)


def height_field(identity: FaceIdentity, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Face height z(x, y) in canonical units: ellipsoid head plus facial relief."""
    a = identity.face_half_width * 1.12
    above = y < identity.ear_line
    semi_y = np.where(above, identity.forehead_height * 1.08, identity.chin_depth * 1.15)
    r2 = (x / a) ** 2 + ((y - identity.ear_line) / semi_y) ** 2
    z = 0.85 * np.sqrt(np.clip(1.0 - r2, 0.0, None))

    def bump(cx: float | np.ndarray, cy: float, sx: float, sy: float) -> np.ndarray:
        return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))

    ax = np.abs(x)
    tip, nw = identity.nose_tip, identity.nose_half_width
    t = (y - identity.eye_line) / (tip - identity.eye_line)
    below_tip = np.exp(-0.5 * ((y - tip) / 0.06) ** 2)
    ridge = np.where(t <= 1.0, 0.25 + 0.75 * np.clip(t, 0.0, 1.0) ** 1.5, below_tip)
    ridge = np.where(t < 0.0, 0.25 * np.exp(-0.5 * ((y - identity.eye_line) / 0.08) ** 2), ridge)
    width = 0.045 + 0.55 * nw * np.clip(t, 0.0, 1.0)
    z = z + identity.nose_height * ridge * np.exp(-0.5 * (x / width) ** 2)
    z = z + 0.05 * np.exp(-0.5 * (((ax - 0.8 * nw) / 0.05) ** 2 + ((y - tip - 0.03) / 0.05) ** 2))
    es = identity.eye_spacing
    z = z - 0.08 * np.exp(-0.5 * (((ax - es) / 0.15) ** 2 + ((y - identity.eye_line) / 0.1) ** 2))
    brow_y = identity.eye_line - identity.brow_gap
    z = z + 0.04 * np.exp(-0.5 * (((y - brow_y) / 0.06) ** 2 + (x / 0.6) ** 2))
    z = z + 0.045 * bump(0.0, identity.mouth_line, identity.mouth_half_width * 0.8, 0.07)
    chin_y = identity.ear_line + identity.chin_depth - 0.14
    z = z + 0.05 * bump(0.0, chin_y, 0.22, 0.1)
    z = z + 0.04 * np.exp(-0.5 * (((ax - 0.52) / 0.17) ** 2 + ((y - 0.12) / 0.15) ** 2))
    return z.astype(np.float32)


def make_identity_rasters(identity: FaceIdentity, ppu: float) -> IdentityRasters:
    """Shaded skin, hair, height and shading rasters of ``identity`` at ``ppu`` pixels per canonical unit."""
    width = int(np.ceil((CANON_X1 - CANON_X0) * ppu))
    height = int(np.ceil((CANON_Y1 - CANON_Y0) * ppu))
    xs = CANON_X0 + np.arange(width, dtype=np.float32) / ppu
    ys = CANON_Y0 + np.arange(height, dtype=np.float32) / ppu
    grid_x, grid_y = np.meshgrid(xs, ys)
    z = height_field(identity, grid_x, grid_y)
    dz_dy, dz_dx = np.gradient(z, 1.0 / ppu)
    normal = np.stack([-dz_dx, -dz_dy, np.ones_like(z)], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    light = identity.light_direction.astype(np.float32)
    diffuse = np.clip(normal @ light, 0.0, 1.0)
    shading = (0.42 + 0.68 * diffuse).astype(np.float32)
    half = light + np.array([0.0, 0.0, 1.0], np.float32)
    half /= np.linalg.norm(half)
    specular = np.clip(normal @ half, 0.0, 1.0) ** 40

    rng = np.random.default_rng(identity.texture_seed)
    low = smooth_noise(rng, z.shape, (5, 5))
    mid = smooth_noise(rng, z.shape, (18, 18))
    pores = cv2.GaussianBlur(rng.standard_normal(z.shape).astype(np.float32), (0, 0), 0.5 + 0.01 * ppu)
    pores /= pores.std() + 1e-6
    albedo = identity.skin_rgb.astype(np.float32) * (1.0 + 0.06 * low + 0.03 * mid)[..., None]
    albedo += 5.0 * pores[..., None]
    blush = np.exp(-0.5 * (((np.abs(grid_x) - 0.5) / 0.2) ** 2 + ((grid_y - 0.25) / 0.18) ** 2))
    albedo += (blush * rng.uniform(4, 14))[..., None] * np.array([1.0, -0.4, -0.3], np.float32)
    skin = albedo * shading[..., None] + (70.0 * specular)[..., None]

    streaks = smooth_noise(rng, z.shape, (3, max(8, int(width / 3))))
    fine = smooth_noise(rng, z.shape, (max(8, int(height / 4)), max(8, int(width / 2))))
    hair = identity.hair_rgb.astype(np.float32) * (1.0 + 0.12 * streaks + 0.06 * fine)[..., None]
    hair = hair * (0.75 + 0.35 * shading[..., None])
    return IdentityRasters(ppu, np.clip(skin, 0, 255).astype(np.float32),
                           np.clip(hair, 0, 255).astype(np.float32), z, shading)


def _fixed(points: np.ndarray) -> np.ndarray:
    """Sub-pixel fixed-point coordinates for OpenCV drawing with ``shift=_SHIFT``."""
    return np.round(np.asarray(points, dtype=np.float64) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def fill_polygons(image: np.ndarray, polygons: list[np.ndarray], colour) -> None:
    """Anti-aliased fill of pixel-coordinate polygons, one at a time so overlaps form a union (in place)."""
    for polygon in polygons:
        cv2.fillPoly(image, [_fixed(polygon)], _colour(colour), cv2.LINE_AA, _SHIFT)


def draw_polyline(image: np.ndarray, points: np.ndarray, colour, thickness: int = 1, closed: bool = False):
    """Anti-aliased polyline through pixel-coordinate points (in place)."""
    cv2.polylines(image, [_fixed(points)], closed, _colour(colour), max(1, int(thickness)), cv2.LINE_AA,
                  _SHIFT)


def fill_circle(image: np.ndarray, center: np.ndarray, radius: float, colour) -> None:
    c = np.round(np.asarray(center) * _ONE).astype(int)
    cv2.circle(image, (int(c[0]), int(c[1])), max(1, round(radius * _ONE)), _colour(colour), -1,
               cv2.LINE_AA, _SHIFT)


def polygon_mask(shape: tuple[int, int], polygons: list[np.ndarray]) -> np.ndarray:
    """Anti-aliased float32 mask in [0, 1] of the union of the polygons."""
    mask = np.zeros(shape, np.uint8)
    fill_polygons(mask, polygons, 255)
    return mask.astype(np.float32) / 255.0


def blend(under: np.ndarray, over: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``under * (1 - alpha) + over * alpha`` as uint8 (alpha (H, W) in [0, 1])."""
    a = alpha[..., None] if alpha.ndim == under.ndim - 1 else alpha
    out = under.astype(np.float32) * (1.0 - a) + over.astype(np.float32) * a
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _colour(colour) -> tuple[float, ...]:
    if np.isscalar(colour):
        return (float(colour),)
    return tuple(float(c) for c in np.clip(np.asarray(colour, dtype=np.float64), 0, 255))


def ellipse_points(center: tuple[float, float], axes: tuple[float, float], count: int = 40,
                   start: float = 0.0, stop: float = 2 * np.pi) -> np.ndarray:
    """Points on a canonical ellipse (angles in radians)."""
    theta = np.linspace(start, stop, count, endpoint=stop - start < 2 * np.pi - 1e-9)
    return np.stack([center[0] + axes[0] * np.cos(theta), center[1] + axes[1] * np.sin(theta)], axis=1)


def render_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A static indoor-ish background: colour gradient, smooth colour blotches, a few rectangles."""
    top, bottom = rng.uniform(40, 215, 3), rng.uniform(30, 200, 3)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    image = top * (1 - ramp) + bottom * ramp
    blotches = np.stack([smooth_noise(rng, (size, size), (3, 3)) for _ in range(3)], axis=-1)
    image = np.broadcast_to(image, (size, size, 3)) + 14.0 * blotches
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        x0, y0 = rng.uniform(-0.1, 0.9, 2) * size
        w, h = rng.uniform(0.1, 0.45, 2) * size
        box = np.array([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]])
        fill_polygons(image, [box], rng.uniform(30, 230, 3))
    return cv2.GaussianBlur(image, (0, 0), 0.6)


class FaceRenderer:
    """Renders identities at one frame size; caches each identity's canonical rasters."""

    def __init__(self, size: int, ppu: float | None = None) -> None:
        """Args:
            size: frame side in pixels (frames are square).
            ppu: raster resolution in pixels per canonical unit (default: enough for faces up to 0.65*size).
        """
        self.size = int(size)
        self.ppu = float(ppu) if ppu is not None else max(24.0, 0.3 * size)
        self._cache: dict[int, IdentityRasters] = {}

    def rasters(self, identity: FaceIdentity) -> IdentityRasters:
        key = identity.texture_seed
        if key not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = make_identity_rasters(identity, self.ppu)
        return self._cache[key]

    def raster_to_frame(self, pose: Pose) -> np.ndarray:
        """2x3 affine from raster pixels to frame pixels under ``pose``."""
        m = pose.matrix()
        lin = m[:, :2] / self.ppu
        offset = m[:, :2] @ np.array([CANON_X0, CANON_Y0]) + m[:, 2]
        return np.concatenate([lin, offset[:, None]], axis=1)

    def warp(self, raster: np.ndarray, pose: Pose, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
        """Warp a canonical raster (any channels, float32) into the frame."""
        return cv2.warpAffine(raster, self.raster_to_frame(pose), (self.size, self.size),
                              flags=cv2.INTER_LINEAR, borderMode=border)

    def render(self, identity: FaceIdentity, pose: Pose, expression: Expression,
               background: np.ndarray) -> RenderedFrame:
        """Draw ``identity`` with ``pose`` and ``expression`` over ``background`` (uint8 RGB, size x size)."""
        if background.shape[:2] != (self.size, self.size):
            raise ValueError(f"background is {background.shape[:2]}, renderer size is {self.size}")
        rasters = self.rasters(identity)
        shape = (self.size, self.size)
        to_frame = pose.apply
        s = pose.scale
        a = identity.face_half_width
        lm_canon = canonical_landmarks(identity, expression)
        lm = to_frame(lm_canon)
        chin_y = float(lm_canon[8, 1])
        skin = identity.skin_rgb
        frame = background.copy()
        hair_frame = self.warp(rasters.hair, pose)

        # Shoulders and neck.
        fill_polygons(frame, [to_frame(ellipse_points((0.0, chin_y + 1.35), (2.4, 0.8)))],
                      identity.clothing_rgb)
        neck = np.array([[-0.5 * a, identity.ear_line + 0.5], [0.5 * a, identity.ear_line + 0.5],
                         [0.56 * a, chin_y + 0.95], [-0.56 * a, chin_y + 0.95]])
        neck_mask = polygon_mask(shape, [to_frame(neck)])
        frame = blend(frame, np.broadcast_to((skin * 0.7).astype(np.float32), frame.shape), neck_mask)

        # Ears and the hair behind the head.
        ears = [to_frame(ellipse_points((sign * a * 0.98, identity.ear_line + 0.12), (0.13, 0.26), 24))
                for sign in (-1.0, 1.0)]
        back_hair = [to_frame(ellipse_points((0.0, identity.ear_line - 0.35),
                                             (a * 1.1, identity.forehead_height * 0.98)))]
        if identity.hair_style == 2:
            dome = ellipse_points((0.0, identity.ear_line - 0.3), (a * 1.2, identity.forehead_height * 1.04),
                                  31, start=0.0, stop=-np.pi)
            sides = np.array([[-a * 1.3, chin_y + 0.55], [a * 1.3, chin_y + 0.55]])
            back_hair.append(to_frame(np.concatenate([dome, sides])))
        ear_mask = polygon_mask(shape, ears)
        back_hair_mask = polygon_mask(shape, back_hair)
        if identity.hair_style == 2:
            frame = blend(frame, np.broadcast_to((skin * 0.8).astype(np.float32), frame.shape), ear_mask)
            frame = blend(frame, hair_frame, back_hair_mask)
        else:
            frame = blend(frame, hair_frame, back_hair_mask)
            frame = blend(frame, np.broadcast_to((skin * 0.8).astype(np.float32), frame.shape), ear_mask)

        # Face skin: warped shaded texture inside the face oval.
        face_mask = polygon_mask(shape, [to_frame(face_outline(identity, expression.mouth_open))])
        frame = blend(frame, self.warp(rasters.skin, pose), face_mask)

        self._draw_brows(frame, identity, lm_canon, to_frame)
        self._draw_eyes(frame, identity, lm, lm_canon, to_frame, s)
        self._draw_nose(frame, identity, lm, to_frame, s, pose.roll)
        self._draw_mouth(frame, identity, lm, lm_canon, expression, to_frame)

        # Hair over the forehead, above a hairline that stays clear of the brows.
        brow_top = float(lm_canon[17:27, 1].min()) - identity.brow_thickness - 0.06
        hx = np.linspace(-1.04 * a, 1.04 * a, 21)
        if identity.hair_style == 1:
            line = identity.hairline + 0.24 - 0.12 * (hx / a) ** 2 + 0.03 * np.sin(hx * 9.0)
        else:
            line = identity.hairline + 0.32 * np.abs(hx / a) ** 2.5
        line = np.minimum(line, brow_top)
        top_y = identity.ear_line - identity.forehead_height * 1.04
        cap_centre = (0.0, identity.ear_line - 0.02)
        cap_arc = ellipse_points(cap_centre, (1.04 * a, cap_centre[1] - top_y), 25, start=-0.02,
                                 stop=-np.pi + 0.02)
        cap_arc = cap_arc[cap_arc[:, 1] <= line.max() + 0.05]
        cap = np.concatenate([np.stack([hx, line], axis=1), cap_arc])
        cap_mask = polygon_mask(shape, [to_frame(cap)])
        frame = blend(frame, hair_frame, cap_mask)

        head_mask = np.maximum.reduce([face_mask, ear_mask, back_hair_mask, cap_mask, neck_mask])
        return RenderedFrame(frame, lm, face_mask * (1.0 - cap_mask), head_mask)

    # -- features ---------------------------------------------------------------------------------------
    @staticmethod
    def _draw_brows(frame, identity, lm_canon, to_frame) -> None:
        profile = identity.brow_thickness * np.array([0.55, 0.9, 1.0, 1.0, 0.85])
        polygons = []
        for idx in (np.arange(17, 22), np.arange(26, 21, -1)):    # outer -> inner on both sides
            pts = lm_canon[idx]
            upper = pts - np.stack([np.zeros(5), 0.6 * profile], axis=1)
            lower = pts + np.stack([np.zeros(5), 0.4 * profile], axis=1)
            polygons.append(to_frame(np.concatenate([upper, lower[::-1]])))
        fill_polygons(frame, polygons, identity.brow_rgb)

    @staticmethod
    def _draw_eyes(frame, identity, lm, lm_canon, to_frame, s) -> None:
        shape = frame.shape[:2]
        layer = frame.copy()
        eyes = [lm[36:42], lm[42:48]]
        fill_polygons(layer, eyes, (236, 230, 224))
        iris_r = 0.52 * identity.eye_height * s
        for sign in (-1.0, 1.0):
            centre = to_frame(np.array([[sign * identity.eye_spacing,
                                         identity.eye_line - 0.08 * identity.eye_height]]))[0]
            fill_circle(layer, centre, iris_r, identity.iris_rgb * 0.7)
            fill_circle(layer, centre, iris_r * 0.82, identity.iris_rgb)
            fill_circle(layer, centre, iris_r * 0.42, (14, 10, 10))
            fill_circle(layer, centre + np.array([0.35, -0.35]) * iris_r, max(0.6, iris_r * 0.22),
                        (250, 250, 250))
        eye_mask = polygon_mask(shape, eyes)
        frame[:] = blend(frame, layer, eye_mask)
        lid = max(1, round(0.035 * s))
        lash = (26, 18, 16)
        lower_lid = identity.skin_rgb * 0.5
        lids = (([36, 37, 38, 39], [39, 40, 41, 36]), ([42, 43, 44, 45], [45, 46, 47, 42]))
        for idx_upper, idx_lower in lids:
            draw_polyline(frame, lm[idx_lower], lower_lid, 1)
            draw_polyline(frame, lm[idx_upper], lash, lid)

    @staticmethod
    def _draw_nose(frame, identity, lm, to_frame, s, roll) -> None:
        skin = identity.skin_rgb
        tip, nw = identity.nose_tip, identity.nose_half_width
        for sign in (-1.0, 1.0):
            centre = to_frame(np.array([[sign * 0.48 * nw, tip + 0.048]]))[0]
            c = np.round(centre * _ONE).astype(int)
            axes = (max(1, round(0.06 * s * _ONE)), max(1, round(0.026 * s * _ONE)))
            cv2.ellipse(frame, (int(c[0]), int(c[1])), axes, float(np.rad2deg(roll)) + sign * 12.0, 0, 360,
                        _colour(skin * 0.32), -1, cv2.LINE_AA, _SHIFT)
            wing = to_frame(np.array([[sign * nw * 1.05, tip + 0.03], [sign * nw * 1.1, tip - 0.03],
                                      [sign * nw * 0.85, tip - 0.09]]))
            draw_polyline(frame, wing, skin * 0.7, 1)
        draw_polyline(frame, lm[31:36], skin * 0.72, 1)

    @staticmethod
    def _draw_mouth(frame, identity, lm, lm_canon, expression, to_frame) -> None:
        lip = identity.lip_rgb
        fill_polygons(frame, [lm[48:60]], lip)
        fill_polygons(frame, [np.concatenate([lm[48:55], lm[64:59:-1]])], lip * 0.82)
        fill_polygons(frame, [lm[60:68]], (58, 20, 24))
        gap = lm_canon[66, 1] - lm_canon[62, 1]
        if gap > 0.05:
            drop = np.array([0.0, min(0.4 * gap, 0.05)])
            teeth = np.concatenate([lm_canon[[61, 62, 63]], (lm_canon[[63, 62, 61]] + drop)])
            teeth[[0, 5], 0] *= 0.9
            teeth[[2, 3], 0] *= 0.9
            fill_polygons(frame, [to_frame(teeth)], (232, 226, 212))
        mw = identity.mouth_half_width
        shine = to_frame(ellipse_points((0.0, (lm_canon[66, 1] + lm_canon[57, 1]) / 2),
                                        (0.35 * mw, 0.28 * identity.lower_lip), 16))
        fill_polygons(frame, [shine], np.clip(lip * 1.15 + 8, 0, 255))
        draw_polyline(frame, lm[[48, 60, 61, 62, 63, 64, 54]], lip * 0.45, 1)
