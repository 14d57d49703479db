"""Face detection + 68-point (iBUG 300-W) landmarks behind one interface, and the square face crop.

Backends, chosen by name with :func:`build_backend`:

- ``sidecar``: ground truth read from ``X.landmarks.npy`` next to ``X.mp4`` (float32 (T, 68, 2), (x, y) per
  decoded frame; the synthetic twin's contract); the box is the landmarks' bounding box.
- ``dlib``: HOG frontal face detector + the 68-point shape predictor file shipped by
  ``face-recognition-models`` (``pip install dlib-bin face-recognition-models``, the ``[landmarks]`` extra).
- ``face_alignment``: the FAN network of the ``face-alignment`` package, with weights that must already be on
  disk (nothing is downloaded); faces found by dlib's detector (or S3FD with local weights).

Coordinates follow the pixel-centre convention: pixel (i, j) has its centre at x = j, y = i.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

NUM_LANDMARKS = 68
# iBUG 68-point index ranges (0-based): jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67.
RIGHT_EYE = slice(36, 42)  # subject's right eye = image left
LEFT_EYE = slice(42, 48)
NOSE_TIP = 30
MOUTH = slice(48, 68)
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
FAN_WEIGHTS_FILE = "2DFAN4-11f355bf06.pth.tar"
S3FD_WEIGHTS_FILE = "s3fd-619a316812.pth"
LANDMARKS_EXTRA = "pip install dlib-bin face-recognition-models  (the lightning-dfd[landmarks] extra)"


class BackendUnavailable(RuntimeError):
    """A landmark backend's package or model file is missing; the message says what to install or where."""


@dataclass
class Face:
    """One face: ``box`` (x0, y0, x1, y1) in frame pixels, ``landmarks`` (68, 2) float32 (x, y), ``score``."""

    box: np.ndarray
    landmarks: np.ndarray
    score: float = 1.0

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0))


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    """Tight (x0, y0, x1, y1) box of a landmark set."""
    landmarks = np.asarray(landmarks, dtype=np.float32)
    return np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)]).astype(np.float32)


def largest_face(faces: list[Face]) -> Face | None:
    """The face with the largest box area (ties: higher score, then first); ``None`` for no faces."""
    if not faces:
        return None
    return max(enumerate(faces), key=lambda item: (item[1].area, item[1].score, -item[0]))[1]


def interocular_distance(landmarks: np.ndarray) -> float:
    """Distance between the two eye centres (mean of points 36-41 and 42-47)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    return float(np.linalg.norm(landmarks[RIGHT_EYE].mean(axis=0) - landmarks[LEFT_EYE].mean(axis=0)))


def normalised_mean_error(predicted: np.ndarray, truth: np.ndarray) -> float:
    """NME = mean_k ||p_k - g_k|| / d_io(g): mean point-to-point error over the 68 points over the
    inter-ocular (eye-centre) distance of the ground truth."""
    predicted, truth = np.asarray(predicted, np.float64), np.asarray(truth, np.float64)
    return float(np.linalg.norm(predicted - truth, axis=-1).mean() / interocular_distance(truth))


class LandmarkBackend:
    """Finds faces with 68 landmarks in one RGB frame. ``video_path`` / ``frame_index`` name the frame
    (the sidecar backend reads ground truth by them; detectors ignore them)."""

    name = "base"

    def detect(self, frame_rgb: np.ndarray, frame_index: int, video_path: str | os.PathLike) -> list[Face]:
        raise NotImplementedError

    def largest_face(self, frame_rgb: np.ndarray, frame_index: int, video_path: str | os.PathLike) -> Face | None:
        return largest_face(self.detect(frame_rgb, frame_index, video_path))


def sidecar_path(video_path: str | os.PathLike) -> Path:
    """``dir/X.mp4`` -> ``dir/X.landmarks.npy``."""
    video_path = Path(video_path)
    return video_path.with_name(video_path.stem + ".landmarks.npy")


class SidecarBackend(LandmarkBackend):
    """Ground-truth landmarks from ``X.landmarks.npy`` (float32 (T, 68, 2); NaN rows = no face in that frame).

    For an image ``X.png`` the sidecar may be (68, 2) or (1, 68, 2). The box is the landmarks' bounding box.
    """

    name = "sidecar"

    def __init__(self) -> None:
        self._cache: dict[str, np.ndarray] = {}

    def load(self, video_path: str | os.PathLike) -> np.ndarray:
        key = str(video_path)
        if key not in self._cache:
            path = sidecar_path(video_path)
            if not path.exists():
                raise FileNotFoundError(
                    f"no landmark sidecar {path} for {video_path}: the 'sidecar' backend reads ground truth "
                    f"(float32 (T, 68, 2)) written next to each video by `python -m lightning_dfd synth`; "
                    f"for real data use backend 'dlib' or 'face_alignment'.")
            array = np.load(path).astype(np.float32)
            if array.ndim == 2:
                array = array[None]
            if array.ndim != 3 or array.shape[1:] != (NUM_LANDMARKS, 2):
                raise ValueError(f"landmark sidecar {path} has shape {array.shape}, expected (T, 68, 2)")
            self._cache = {key: array}  # one video at a time: keep memory flat
        return self._cache[key]

    def detect(self, frame_rgb: np.ndarray, frame_index: int, video_path: str | os.PathLike) -> list[Face]:
        landmarks = self.load(video_path)
        if not 0 <= frame_index < len(landmarks):
            raise IndexError(f"frame {frame_index} outside the {len(landmarks)} frames of landmark sidecar "
                             f"{sidecar_path(video_path)}: video and sidecar disagree")
        points = landmarks[frame_index]
        if not np.isfinite(points).all():
            return []
        return [Face(box=landmark_box(points), landmarks=points.copy(), score=1.0)]


def _package_dir(package: str) -> Path | None:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    try:
        files = importlib.metadata.files(package.replace("_", "-")) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files:
        if entry.parts and entry.parts[0] == package:
            return Path(entry.locate()).parents[len(entry.parts) - 2]
    return None


def find_model_file(filename: str, package: str = "face_recognition_models") -> Path:
    """Path of a model file shipped by ``face-recognition-models`` (its ``models/`` folder), located without
    importing the package (its ``__init__`` needs ``pkg_resources``)."""
    root = _package_dir(package)
    if root is not None:
        for candidate in (root / "models" / filename, root / filename):
            if candidate.is_file():
                return candidate
    raise BackendUnavailable(
        f"dlib model file {filename} not found (package {package!r} "
        f"{'at ' + str(root) if root else 'not installed'}). Install it with: {LANDMARKS_EXTRA}")


class DlibBackend(LandmarkBackend):
    """dlib's HOG frontal face detector + 68-point shape predictor (Kazemi & Sullivan 2014 regression trees).

    Args:
        predictor_path: the ``shape_predictor_68_face_landmarks.dat`` file; default: the copy shipped by
            ``face-recognition-models``.
        upsample: image upsamplings before HOG detection (each finds faces half as large: ~80 px at 0,
            ~40 px at 1).
        min_score: detections with a lower detector score are dropped.
        detect_max_side: frames whose longer side exceeds this are downscaled for detection only (speed);
            landmarks are always fitted at full resolution.
    """

    name = "dlib"

    def __init__(self, predictor_path: str | os.PathLike | None = None, upsample: int = 1, min_score: float = 0.0,
                 detect_max_side: int | None = 640) -> None:
        try:
            import dlib
        except ImportError as err:
            raise BackendUnavailable(f"the dlib backend needs the dlib package ({err}). {LANDMARKS_EXTRA}") from err
        path = Path(predictor_path) if predictor_path else find_model_file(PREDICTOR_FILE)
        if not path.is_file():
            raise BackendUnavailable(f"dlib shape predictor {path} does not exist. {LANDMARKS_EXTRA}")
        self.predictor_path = path
        self.upsample = upsample
        self.min_score = min_score
        self.detect_max_side = detect_max_side
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))

    def boxes(self, frame_rgb: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Detector boxes (x0, y0, x1, y1) in frame pixels with scores."""
        import cv2

        frame_rgb = np.ascontiguousarray(frame_rgb, dtype=np.uint8)
        scale = 1.0
        longer = max(frame_rgb.shape[:2])
        if self.detect_max_side and longer > self.detect_max_side:
            scale = self.detect_max_side / longer
            small = cv2.resize(frame_rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        else:
            small = frame_rgb
        rects, scores, _ = self._detector.run(small, self.upsample, self.min_score)
        out = []
        for rect, score in zip(rects, scores):
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float32)
            out.append(((box + 0.5) / scale - 0.5 if scale != 1.0 else box, float(score)))
        return out

    def landmarks_in(self, frame_rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        """68 (x, y) points fitted inside ``box``."""
        rect = self._dlib.rectangle(*(round(float(v)) for v in box))
        shape = self._predictor(np.ascontiguousarray(frame_rgb, dtype=np.uint8), rect)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)

    def detect(self, frame_rgb: np.ndarray, frame_index: int = 0, video_path: str | os.PathLike = "") -> list[Face]:
        return [Face(box=box, landmarks=self.landmarks_in(frame_rgb, box), score=score)
                for box, score in self.boxes(frame_rgb)]


def torch_hub_checkpoints() -> Path:
    """Where ``face-alignment`` looks for its weights: ``$TORCH_HOME/hub/checkpoints`` (torch.hub's cache)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


class FaceAlignmentBackend(LandmarkBackend):
    """The ``face-alignment`` package's 2D FAN (Bulat & Tzimiropoulos 2017) on boxes from dlib's detector
    (default) or S3FD. Weights must exist locally; nothing is downloaded.

    Args:
        weights: the FAN checkpoint; default ``<torch hub dir>/checkpoints/2DFAN4-11f355bf06.pth.tar``.
        detector: ``"dlib"`` (HOG, no weights) or ``"sfd"`` (S3FD, needs ``detector_weights``).
        detector_weights: S3FD checkpoint; default ``<torch hub dir>/checkpoints/s3fd-619a316812.pth``.
        device: torch device for FAN.
        upsample: dlib detector upsampling (detector ``"dlib"``).
    """

    name = "face_alignment"

    def __init__(self, weights: str | os.PathLike | None = None, detector: Literal["dlib", "sfd"] = "dlib",
                 detector_weights: str | os.PathLike | None = None, device: str = "cpu", upsample: int = 1) -> None:
        try:
            import face_alignment
            import torch
        except ImportError as err:
            raise BackendUnavailable(f"the face_alignment backend needs the face-alignment package ({err}): "
                                     f"pip install face-alignment") from err
        weights = Path(weights) if weights else torch_hub_checkpoints() / FAN_WEIGHTS_FILE
        if not weights.is_file():
            raise BackendUnavailable(
                f"face-alignment weights not found at {weights}. Nothing is downloaded at run time: copy the 2D FAN "
                f"checkpoint ({FAN_WEIGHTS_FILE}, from the face-alignment project) to "
                f"{torch_hub_checkpoints() / FAN_WEIGHTS_FILE} or pass its path as `weights`.")
        if detector == "sfd":
            detector_weights = (Path(detector_weights) if detector_weights
                                else torch_hub_checkpoints() / S3FD_WEIGHTS_FILE)
            if not detector_weights.is_file():
                raise BackendUnavailable(
                    f"S3FD detector weights not found at {detector_weights}: copy {S3FD_WEIGHTS_FILE} there, pass "
                    f"`detector_weights`, or use detector='dlib' (needs no weights).")
            self._boxes = None
        elif detector == "dlib":
            self._boxes = DlibBackend(upsample=upsample).boxes
        else:
            raise ValueError(f"face_alignment detector must be 'dlib' or 'sfd', got {detector!r}")
        self.weights = weights

        class _LocalWeights(face_alignment.FaceAlignment):
            def _load_native(self, network_name, network_size, device_, dtype):
                net = face_alignment.api.FAN(network_size)
                net.load_state_dict(torch.load(weights, map_location=device_, weights_only=True))
                return net.to(device_, dtype=dtype).eval()

        kwargs = {"path_to_detector": str(detector_weights)} if detector == "sfd" else {}
        if detector == "dlib" and "cuda" in device:
            kwargs = {"path_to_detector": str(find_model_file("mmod_human_face_detector.dat"))}
        with warnings.catch_warnings():  # face-alignment flags its dlib detector as deprecated; we only use it
            warnings.simplefilter("ignore", UserWarning)  # for its box format, the boxes come from DlibBackend
            self._model = _LocalWeights(face_alignment.LandmarksType.TWO_D, device=device, face_detector=detector,
                                        face_detector_kwargs=kwargs, compile=False, flip_input=False)

    def detect(self, frame_rgb: np.ndarray, frame_index: int = 0, video_path: str | os.PathLike = "") -> list[Face]:
        frame_rgb = np.ascontiguousarray(frame_rgb, dtype=np.uint8)
        if self._boxes is not None:
            found = self._boxes(frame_rgb)
            boxes = [np.append(box, score) for box, score in found]
        else:
            boxes = [np.asarray(b, dtype=np.float32) for b in self._model.face_detector.detect_from_image(frame_rgb)]
        if not boxes:
            return []
        points = self._model.get_landmarks_from_image(frame_rgb, detected_faces=[b[:4] for b in boxes])
        if points is None:
            return []
        return [Face(box=np.asarray(b[:4], np.float32), landmarks=np.asarray(p[:, :2], np.float32),
                     score=float(b[4]) if len(b) > 4 else 1.0) for b, p in zip(boxes, points)]


BACKENDS: dict[str, type[LandmarkBackend]] = {
    "sidecar": SidecarBackend,
    "dlib": DlibBackend,
    "face_alignment": FaceAlignmentBackend,
}


def build_backend(name: str, **options) -> LandmarkBackend:
    """Instantiate a landmark backend by name (``sidecar``, ``dlib``, ``face_alignment``) with its options."""
    if name not in BACKENDS:
        raise ValueError(f"unknown landmark backend {name!r}; choose one of {sorted(BACKENDS)}")
    return BACKENDS[name](**options)


@dataclass
class FaceCrop:
    """A square face crop: ``image`` (S, S, 3), ``landmarks`` in crop pixels (or None), ``box`` (x0, y0, x1, y1)
    of the square in source-frame pixels (may extend past the frame: that part is zero-padded)."""

    image: np.ndarray
    landmarks: np.ndarray | None
    box: np.ndarray
    scale: float = 1.0
    meta: dict = field(default_factory=dict)


def square_box(box: np.ndarray, margin: float) -> tuple[int, int, int]:
    """Square around ``box`` (x0, y0, x1, y1): same centre, side ``(1 + margin) * max(w, h)`` (FF++'s 1.3x
    enlargement at ``margin=0.3``). Returns integer (left, top, side)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(round((1.0 + margin) * max(x1 - x0, y1 - y0)), 1)
    left = round((x0 + x1) / 2.0 - side / 2.0)
    top = round((y0 + y1) / 2.0 - side / 2.0)
    return left, top, side


def crop_face(frame: np.ndarray, landmarks: np.ndarray | None = None, margin: float = 0.3, size: int | None = None,
              box: np.ndarray | None = None) -> FaceCrop:
    """Square crop around a face, enlarged by ``margin``, zero-padded where it leaves the frame, optionally
    resized to ``size`` x ``size``.

    The square encloses the union of ``box`` and the landmarks' bounding box (whichever are given). Landmarks
    map to crop pixels as ``x' = (x - left + 1/2) * s - 1/2`` with ``s = size / side`` (pixel centres).
    """
    import cv2

    if landmarks is None and box is None:
        raise ValueError("crop_face needs landmarks or a box")
    extent = landmark_box(landmarks) if landmarks is not None else np.asarray(box, np.float32)
    if landmarks is not None and box is not None:
        box = np.asarray(box, np.float32)
        extent = np.concatenate([np.minimum(extent[:2], box[:2]), np.maximum(extent[2:], box[2:])])
    left, top, side = square_box(extent, margin)
    height, width = frame.shape[:2]
    src_x0, src_y0 = max(left, 0), max(top, 0)
    src_x1, src_y1 = min(left + side, width), min(top + side, height)
    image = np.zeros((side, side) + frame.shape[2:], dtype=frame.dtype)
    if src_x1 > src_x0 and src_y1 > src_y0:
        image[src_y0 - top:src_y1 - top, src_x0 - left:src_x1 - left] = frame[src_y0:src_y1, src_x0:src_x1]
    scale = 1.0
    if size is not None and size != side:
        scale = size / side
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    crop_landmarks = None
    if landmarks is not None:
        offset = np.array([left, top], dtype=np.float64)
        crop_landmarks = ((np.asarray(landmarks, np.float64) - offset + 0.5) * scale - 0.5).astype(np.float32)
    return FaceCrop(image=image, landmarks=crop_landmarks,
                    box=np.array([left, top, left + side, top + side], dtype=np.float32), scale=scale)
