"""CASIA-SURF (CVPR'19 challenge) twin: colour / depth / IR face crops of bona fide faces and print attacks.

Layout::

    Training/real_part/<SUBJECT>/real.rssdk/{color,depth,ir}/<frame>.jpg
    Training/fake_part/<SUBJECT>/<KK>_<regions>_<shape>.rssdk/{color,depth,ir}/<frame>.jpg
    Val/...  Testing/...                            (same structure)
    train_list.txt  val_private_list.txt  test_private_list.txt
        lines "color_path depth_path ir_path label", **label 1 = real (bona fide), 0 = attack**

Attack types follow seed 001 (Parkin & Grinchuk, CVPR-W 2019), Table 1: all are printed photos of the
subject, flat (``f``) or curved (``b``, bent), with eyes (``e``), eyes+nose (``en``) or eyes+nose+mouth
(``enm``) cut out; 1 = 01_e_f, 2 = 02_e_b, 3 = 03_en_f, 4 = 04_en_b, 5 = 05_enm_f, 6 = 06_enm_b. The
challenge trains on attacks 4-6 and validates / tests on 1-3 (Table 1, Split column).

Bona fide: RGB face on a removed (black) background, depth = the face's height field (bright near the
nose), IR = grey shaded face with corneal glints. Attacks: a print of the subject (print-and-recapture
artefacts: desaturation, tint, halftone, slight blur, mixed in with a per-sample print quality, from a near
photographic print to a coarse one); its depth is a constant plane (flat) or a cylinder (curved); its IR shows
paper with faint ink; the cut-outs reveal the live face's colour, depth (farther than the paper) and IR glints.
As in CASIA-SURF's released crops, whose background is removed outside the face for every sample, attacks
included, all three modalities of an attack keep only the printed head's region: the background is no
colour cue, and the attack's RGB differs from a live face only by the print artefacts and the cut-outs, while
its depth (a plane or a cylinder where a face has relief) gives it away (seed 001, Table 5: Depth >> RGB).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lightning_dfd.data.synthetic.clips import ClipRenderer
from lightning_dfd.data.synthetic.faces import Expression, FaceIdentity, Pose, sample_track
from lightning_dfd.data.synthetic.manipulations import feathered_mask
from lightning_dfd.data.synthetic.plan import TwinPlan
from lightning_dfd.data.synthetic.render import fill_circle, render_background
from lightning_dfd.data.synthetic.rng import stream
from lightning_dfd.io import write_bytes_atomic

# attack type -> (cut-out regions, surface): seed 001, Table 1.
ATTACK_TYPES: dict[int, tuple[str, str]] = {1: ("e", "f"), 2: ("e", "b"), 3: ("en", "f"), 4: ("en", "b"),
                                            5: ("enm", "f"), 6: ("enm", "b")}
TRAIN_ATTACKS = (4, 5, 6)
EVAL_ATTACKS = (1, 2, 3)
SPLIT_DIRS = {"train": "Training", "val": "Val", "test": "Testing"}
LIST_FILES = {"train": "train_list.txt", "val": "val_private_list.txt", "test": "test_private_list.txt"}
_ATTACK_FOLDER = re.compile(r"^(\d\d)_(e|en|enm)_(f|b)\.rssdk$")
_MODALITIES = ("color", "depth", "ir")


def attack_folder(attack_type: int) -> str:
    """Folder name of an attack type, e.g. 4 -> ``04_en_b.rssdk``; 0 (bona fide) -> ``real.rssdk``."""
    if attack_type == 0:
        return "real.rssdk"
    regions, shape = ATTACK_TYPES[attack_type]
    return f"{attack_type:02d}_{regions}_{shape}.rssdk"


def attack_type_of(folder: str) -> int:
    """Inverse of ``attack_folder``: 0 for ``real.rssdk``, 1-6 for attacks; checks regions/shape agree."""
    if folder == "real.rssdk":
        return 0
    match = _ATTACK_FOLDER.match(folder)
    if not match:
        raise ValueError(f"{folder!r} is not a CASIA-SURF sample folder "
                         "(real.rssdk or KK_<e|en|enm>_<f|b>.rssdk)")
    attack = int(match.group(1))
    if ATTACK_TYPES.get(attack) != (match.group(2), match.group(3)):
        expected = attack_folder(attack) if attack in ATTACK_TYPES else "an attack type 01-06"
        raise ValueError(f"{folder!r}: attack {attack} should be {expected} (seed 001, Table 1)")
    return attack


@dataclass(frozen=True, eq=False)
class SpoofSample:
    """One captured frame in the three modalities (uint8)."""

    color: np.ndarray   # (H, W, 3) RGB
    depth: np.ndarray   # (H, W)
    ir: np.ndarray      # (H, W)


class CasiaRenderer:
    """Renders bona fide captures and print attacks with the face renderer of a ``ClipRenderer``."""

    def __init__(self, clips: ClipRenderer) -> None:
        self.clips = clips
        self.faces = clips.faces
        self.size = clips.size
        grid = np.arange(self.size, dtype=np.float32)
        self._xx, self._yy = np.meshgrid(grid, grid)

    def live(self, identity: FaceIdentity, pose: Pose, expression: Expression,
             background: np.ndarray) -> tuple[SpoofSample, np.ndarray, np.ndarray]:
        """A bona fide capture (background removed), its head mask and landmarks."""
        rendered = self.faces.render(identity, pose, expression, background)
        head = rendered.head_mask
        color = (rendered.image.astype(np.float32) * head[..., None]).round().astype(np.uint8)
        rasters = self.faces.rasters(identity)
        z = self.faces.warp(rasters.height, pose, cv2.BORDER_CONSTANT)
        depth = head * (70.0 + 150.0 * np.clip(z / 1.15, 0.0, 1.0))
        shading = self.faces.warp(rasters.shading, pose)
        luminance = cv2.cvtColor(rendered.image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        face = rendered.face_mask
        ir = face * (0.7 * (45.0 + 150.0 * shading) + 0.3 * luminance) + (head - face).clip(0) * 55.0
        ir = ir.astype(np.float32)
        if expression.eye_open > 0.3:
            for eye in (slice(36, 42), slice(42, 48)):
                centre = rendered.landmarks[eye].mean(axis=0)
                fill_circle(ir, centre, max(0.8, 0.06 * pose.scale), 35.0)
                fill_circle(ir, centre + np.array([0.35, -0.35]) * 0.05 * pose.scale,
                            max(0.6, 0.025 * pose.scale), 255.0)
        sample = SpoofSample(color, _to_u8(cv2.GaussianBlur(depth, (0, 0), 0.8)), _to_u8(ir))
        return sample, head, rendered.landmarks

    def print_attack(self, identity: FaceIdentity, attack_type: int, pose: Pose, live_pose: Pose,
                     live_expression: Expression, photo_background: np.ndarray,
                     rng: np.random.Generator) -> SpoofSample:
        """A printed photo of ``identity`` held at ``pose`` with the attack's cut-outs, live face behind."""
        regions, shape = ATTACK_TYPES[attack_type]
        size = self.size
        photo = self.faces.render(identity, pose, Expression(1.0, 0.05), photo_background)
        quality = rng.uniform(0.0, 0.85)  # 0: the coarsest print, 1 would be a perfect photograph
        printed = _print_colour(photo.image, self._xx, self._yy, strength=1.0 - quality)
        region = photo.head_mask.astype(np.float32)  # the background is removed outside the face (CASIA-SURF)
        lm, s = photo.landmarks, pose.scale
        holes = np.maximum(feathered_mask((size, size), lm[36:42], s, dilate=0.07, feather=0.0),
                           feathered_mask((size, size), lm[42:48], s, dilate=0.07, feather=0.0))
        if "n" in regions:
            holes = np.maximum(holes, feathered_mask((size, size), lm[[27, 31, 32, 33, 34, 35]], s,
                                                     dilate=0.05, feather=0.0))
        if "m" in regions:
            holes = np.maximum(holes, feathered_mask((size, size), lm[48:60], s, dilate=0.05, feather=0.0))
        paper_gray = cv2.cvtColor(printed, cv2.COLOR_RGB2GRAY).astype(np.float32)
        paper_ir = 150.0 + 0.25 * (paper_gray - 128.0) + 6.0 * _halftone(self._xx, self._yy, 3.0)
        cx, cy = pose.center_x, pose.center_y
        if shape == "f":
            tilt = rng.uniform(-0.008, 0.008, 2)
            paper_depth = 160.0 + tilt[0] * (self._xx - cx) + tilt[1] * (self._yy - cy)
        else:
            bend = rng.uniform(28.0, 40.0)
            u = np.clip((self._xx - cx) / (0.5 * size), -1.5, 1.5)
            paper_depth = 150.0 + bend * (1.0 - u ** 2)
            paper_ir = paper_ir * (0.82 + 0.18 * np.cos(np.clip(u, -1.5, 1.5)))
            # Seen from the front, a sheet bent round a vertical axis compresses towards its sides.
            radius = 0.75 * size
            map_x = (cx + radius * np.arcsin(np.clip((self._xx - cx) / radius, -1.0, 1.0))).astype(np.float32)
            bend_map = (map_x, self._yy)
            printed = cv2.remap(printed, *bend_map, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            paper_ir = cv2.remap(paper_ir.astype(np.float32), *bend_map, cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REFLECT)
            holes = cv2.remap(holes, *bend_map, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            region = cv2.remap(region, *bend_map, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        live, live_head, _ = self.live(identity, live_pose, live_expression, photo_background)
        hole = np.clip(holes, 0.0, 1.0)
        behind_depth = live.depth.astype(np.float32) * 0.8 * live_head
        alpha = hole[..., None]
        color = printed.astype(np.float32) * (1 - alpha) + live.color.astype(np.float32) * alpha
        depth = paper_depth * (1 - hole) + behind_depth * hole
        ir = paper_ir * (1 - hole) + live.ir.astype(np.float32) * hole
        depth = (depth + rng.normal(0.0, 0.6, depth.shape)) * region
        return SpoofSample(_to_u8(color * region[..., None]),
                           _to_u8(cv2.GaussianBlur(depth.astype(np.float32), (0, 0), 0.8)), _to_u8(ir * region))


def _halftone(xx: np.ndarray, yy: np.ndarray, period: float) -> np.ndarray:
    """A 45-degree dot screen in [-1, 1]."""
    return np.cos(2 * np.pi * (xx + yy) / period) * np.cos(2 * np.pi * (xx - yy) / period)


def _print_colour(image: np.ndarray, xx: np.ndarray, yy: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Print-and-recapture: desaturation, gamma and tint shift, halftone screen, slight blur; ``strength`` mixes
    the photograph (0) with its full print-and-recapture rendering (1)."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] *= 0.7
    rgb = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32) / 255.0
    rgb = 0.06 + 0.88 * rgb ** 1.15 + np.array([0.02, -0.01, 0.025], np.float32)
    rgb = rgb * (1.0 + 0.09 * _halftone(xx, yy, 3.2))[..., None]
    printed = cv2.GaussianBlur(rgb * 255.0, (0, 0), 0.6)
    return _to_u8(strength * printed + (1.0 - strength) * image.astype(np.float32))


def _to_u8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _jpeg(image: np.ndarray) -> bytes:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


@dataclass(frozen=True)
class CasiaSampleJob:
    """All frames of one (subject, attack type) sample in its three modalities."""

    split: str
    subject: str
    identity: int
    attack_type: int          # 0 = bona fide
    frame_numbers: tuple[int, ...]

    @property
    def group(self) -> str:
        return f"casia/{self.subject}"

    @property
    def folder(self) -> str:
        part = "real_part" if self.attack_type == 0 else "fake_part"
        return f"{SPLIT_DIRS[self.split]}/{part}/{self.subject}/{attack_folder(self.attack_type)}"

    def paths(self, frame: int) -> tuple[str, str, str]:
        return tuple(f"{self.folder}/{modality}/{frame}.jpg" for modality in _MODALITIES)

    def outputs(self) -> list[str]:
        return [path for frame in self.frame_numbers for path in self.paths(frame)]

    def run(self, root: Path, renderer: ClipRenderer) -> None:
        casia = CasiaRenderer(renderer)
        seed, size = renderer.seed, renderer.size
        key = f"casia/{self.subject}/{self.attack_type}"
        identity = renderer.identity(self.identity)
        track = sample_track(stream(seed, "track", key), len(self.frame_numbers), size, renderer.fps,
                             face_fraction=(0.72, 0.84), center=(0.5, 0.47))
        background = render_background(stream(seed, "background", key), size)
        rng = stream(seed, "casia", key)
        for t, frame in enumerate(self.frame_numbers):
            if self.attack_type == 0:
                sample, _, _ = casia.live(identity, track.pose(t), track.expression(t), background)
            else:
                pose = track.pose(t)
                # the attacker's face behind the sheet: slightly offset and farther (smaller)
                shift = rng.normal(0, 0.01 * size, 2)
                live_pose = Pose(pose.center_x + shift[0], pose.center_y + shift[1],
                                 pose.scale * rng.uniform(0.95, 0.99), pose.roll + rng.normal(0, 0.02))
                sample = casia.print_attack(identity, self.attack_type, pose, live_pose, track.expression(t),
                                            background, rng)
            for path, image in zip(self.paths(frame), (sample.color, sample.depth, sample.ir), strict=True):
                write_bytes_atomic(root / path, _jpeg(image))

    def list_lines(self) -> list[str]:
        label = 1 if self.attack_type == 0 else 0
        return [" ".join(self.paths(frame)) + f" {label}" for frame in self.frame_numbers]


def subject_names(seed: int, count: int) -> list[str]:
    """Unique names like ``CLKJ_AS0137``."""
    rng = stream(seed, "casia_surf", "subjects")
    numbers = rng.choice(10_000, size=count, replace=False)
    return [f"CLKJ_{'ABCD'[int(rng.integers(4))]}S{int(n):04d}" for n in numbers]


def plan_casia_surf(seed: int, identities: int, frames: int, subject_split: list[float]) -> TwinPlan:
    """Plan a CASIA-SURF twin: ``identities`` subjects split train/val/test by ``subject_split`` fractions."""
    if identities < 3:
        raise ValueError("CASIA-SURF twin needs --identities >= 3 (one subject per split at least)")
    if len(subject_split) != 3 or min(subject_split) <= 0:
        raise ValueError("--subject_split must be three positive fractions (train, val, test), "
                         f"got {subject_split}")
    total = sum(subject_split)
    n_val = max(1, round(identities * subject_split[1] / total))
    n_test = max(1, round(identities * subject_split[2] / total))
    n_train = identities - n_val - n_test
    if n_train < 1:
        n_train, n_test = 1, identities - 1 - n_val
    names = subject_names(seed, identities)
    frame_numbers = tuple(1 + 10 * k for k in range(frames))
    plan = TwinPlan()
    lists: dict[str, list[str]] = {split: [] for split in SPLIT_DIRS}
    for index, name in enumerate(names):
        split = "train" if index < n_train else ("val" if index < n_train + n_val else "test")
        attacks = TRAIN_ATTACKS if split == "train" else EVAL_ATTACKS
        for attack in (0, *attacks):
            job = CasiaSampleJob(split, name, index, attack, frame_numbers)
            plan.jobs.append(job)
            lists[split] += job.list_lines()
    for split, lines in lists.items():
        plan.texts[LIST_FILES[split]] = "\n".join(lines) + "\n"
    return plan
