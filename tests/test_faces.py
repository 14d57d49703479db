"""Landmark backends and the face crop: dlib on a real photograph, sidecar ground truth, crop geometry."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from lightning_dfd.data import faces as faces_module
from lightning_dfd.data.faces import (
    BackendUnavailable,
    Face,
    build_backend,
    crop_face,
    find_model_file,
    interocular_distance,
    landmark_box,
    largest_face,
    normalised_mean_error,
    sidecar_path,
    square_box,
)

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()  # 512 x 512 RGB portrait of Eileen Collins


@pytest.fixture(scope="module")
def dlib_backend():
    pytest.importorskip("dlib")
    return build_backend("dlib")


def test_predictor_file_is_found_without_importing_its_package():
    sys.modules.pop("face_recognition_models", None)
    path = find_model_file("shape_predictor_68_face_landmarks.dat")
    assert path.is_file() and path.stat().st_size > 50_000_000  # the 68-point model is ~100 MB
    assert "face_recognition_models" not in sys.modules


def test_missing_predictor_names_the_install_command(monkeypatch):
    monkeypatch.setattr(faces_module, "_package_dir", lambda package: None)
    with pytest.raises(BackendUnavailable, match="pip install dlib-bin face-recognition-models"):
        find_model_file("shape_predictor_68_face_landmarks.dat")
    with pytest.raises(ValueError, match="unknown landmark backend"):
        build_backend("mediapipe")


def test_dlib_finds_the_astronaut_face(astronaut, dlib_backend):
    face = dlib_backend.largest_face(astronaut, 0, "astronaut.png")
    assert face is not None
    x0, y0, x1, y1 = face.box
    # Her face (checked by eye on the image) spans about x 180-265, y 80-180; the box centre lies on it.
    assert 200 < (x0 + x1) / 2 < 245 and 100 < (y0 + y1) / 2 < 145 and 70 < x1 - x0 < 120
    points = face.landmarks
    assert points.shape == (68, 2) and points.dtype == np.float32
    right_eye, left_eye = points[36:42].mean(0), points[42:48].mean(0)
    nose_tip, mouth, chin = points[30], points[48:68].mean(0), points[8]
    assert right_eye[0] < nose_tip[0] < left_eye[0]  # image-left eye, nose, image-right eye
    assert max(right_eye[1], left_eye[1]) < nose_tip[1] < mouth[1] < chin[1]  # eyes above nose above mouth
    grown = np.array([x0 - 0.2 * (x1 - x0), y0 - 0.2 * (y1 - y0), x1 + 0.2 * (x1 - x0), y1 + 0.2 * (y1 - y0)])
    assert np.all(points >= grown[:2]) and np.all(points <= grown[2:])
    assert 0.3 < interocular_distance(points) / (x1 - x0) < 0.6


def test_dlib_landmarks_follow_a_translation(astronaut, dlib_backend):
    """Shifting the photo by (dx, dy) inside a larger canvas shifts every landmark by the same amount."""
    dx, dy = 37, 21
    canvas = np.zeros((600, 600, 3), np.uint8)
    canvas[dy:dy + 512, dx:dx + 512] = astronaut
    before = dlib_backend.largest_face(astronaut, 0, "")
    after = dlib_backend.largest_face(canvas, 0, "")
    shift = after.landmarks - before.landmarks
    assert np.abs(np.median(shift, axis=0) - [dx, dy]).max() <= 1.0
    assert normalised_mean_error(after.landmarks - [dx, dy], before.landmarks) < 0.03


def test_largest_face_and_nme_by_hand():
    small = Face(box=np.array([0, 0, 10, 10], np.float32), landmarks=np.zeros((68, 2), np.float32), score=2.0)
    big = Face(box=np.array([5, 5, 25, 20], np.float32), landmarks=np.zeros((68, 2), np.float32), score=0.1)
    assert largest_face([small, big]) is big and largest_face([]) is None
    assert big.area == 300.0
    truth = np.zeros((68, 2))
    truth[36:42] = [10.0, 0.0]
    truth[42:48] = [50.0, 0.0]  # inter-ocular distance 40
    assert interocular_distance(truth) == 40.0
    assert normalised_mean_error(truth + [3.0, 4.0], truth) == pytest.approx(5.0 / 40.0)


def test_square_box_and_crop_geometry_by_hand():
    frame = np.arange(100 * 100 * 3, dtype=np.uint32).reshape(100, 100, 3).astype(np.float32)
    landmarks = np.array([[40.0, 30.0], [60.0, 70.0]] + [[50.0, 50.0]] * 66, np.float32)
    # box 20 x 40 -> side (1 + 0.5) * 40 = 60 around centre (50, 50): left = top = 20
    assert square_box(landmark_box(landmarks), 0.5) == (20, 20, 60)
    crop = crop_face(frame, landmarks, margin=0.5)
    assert crop.image.shape == (60, 60, 3)
    assert np.array_equal(crop.image, frame[20:80, 20:80])
    assert crop.box.tolist() == [20, 20, 80, 80]
    assert np.allclose(crop.landmarks, landmarks - 20)


def test_crop_resize_maps_landmarks_to_pixel_centres():
    """A bright pixel at a landmark lands at x' = (x - left + 1/2) s - 1/2 in the resized crop."""
    frame = np.zeros((100, 100, 3), np.uint8)
    landmarks = np.array([[40.0, 30.0], [60.0, 70.0]] + [[45.0, 35.0]] * 66, np.float32)
    frame[35, 45] = 255
    crop = crop_face(frame, landmarks, margin=0.5, size=120)  # side 60 -> scale 2
    assert crop.scale == 2.0
    expected = (45 - 20 + 0.5) * 2 - 0.5  # = 50.5, same for y: (35 - 20 + 0.5) * 2 - 0.5 = 30.5
    assert crop.landmarks[2].tolist() == [expected, 30.5]
    weights = crop.image[..., 0].astype(np.float64)
    ys, xs = np.mgrid[:120, :120]
    centroid = [(weights * xs).sum() / weights.sum(), (weights * ys).sum() / weights.sum()]
    assert np.allclose(centroid, crop.landmarks[2], atol=0.05)


def test_crop_pads_outside_the_frame():
    frame = np.full((50, 50, 3), 200, np.uint8)
    landmarks = np.array([[0.0, 0.0], [20.0, 20.0]] * 34, np.float32)  # face in the top-left corner
    crop = crop_face(frame, landmarks, margin=1.0)  # side 40 centred at (10, 10): left = top = -10
    assert crop.box.tolist() == [-10, -10, 30, 30]
    assert (crop.image[:10] == 0).all() and (crop.image[:, :10] == 0).all()
    assert (crop.image[10:, 10:] == 200).all()
    assert np.allclose(crop.landmarks[0], [10, 10])


def test_sidecar_backend(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    rng = np.random.default_rng(0)
    truth = (rng.uniform(20, 40, (3, 68, 2))).astype(np.float32)
    truth[1] = np.nan  # no face in frame 1
    np.save(sidecar_path(video), truth)
    assert sidecar_path(video).name == "clip.landmarks.npy"
    backend = build_backend("sidecar")
    found = backend.detect(np.zeros((64, 64, 3), np.uint8), 2, video)
    assert len(found) == 1 and np.array_equal(found[0].landmarks, truth[2])
    assert found[0].box.tolist() == [*truth[2].min(0).tolist(), *truth[2].max(0).tolist()]
    assert backend.detect(np.zeros((64, 64, 3), np.uint8), 1, video) == []
    with pytest.raises(IndexError, match="disagree"):
        backend.detect(np.zeros((64, 64, 3), np.uint8), 3, video)
    with pytest.raises(FileNotFoundError, match="synth"):
        backend.detect(np.zeros((64, 64, 3), np.uint8), 0, tmp_path / "other.mp4")


def test_face_alignment_without_weights_says_where_to_put_them(tmp_path, monkeypatch):
    pytest.importorskip("face_alignment")
    missing = tmp_path / "nowhere" / "2DFAN4.pth.tar"
    with pytest.raises(BackendUnavailable, match="Nothing is downloaded") as info:
        build_backend("face_alignment", weights=missing)
    assert str(missing) in str(info.value)
    monkeypatch.setattr(faces_module, "torch_hub_checkpoints", lambda: tmp_path / "hub" / "checkpoints")
    with pytest.raises(BackendUnavailable) as info:
        build_backend("face_alignment")  # default location: the torch hub cache
    assert str(tmp_path / "hub" / "checkpoints" / faces_module.FAN_WEIGHTS_FILE) in str(info.value)
    assert not (tmp_path / "hub").exists()  # nothing was created or fetched


@pytest.mark.slow
def test_face_alignment_runs_offline_with_local_weights(tmp_path, astronaut, monkeypatch):
    """Plumbing: the backend builds FAN from a local weights file (here a tiny stand-in network with the same
    heatmap interface, to keep the test fast), never downloads, and maps heatmap peaks back into the frame."""
    face_alignment = pytest.importorskip("face_alignment")
    import torch

    class TinyFAN(torch.nn.Module):
        def __init__(self, network_size: int = 4) -> None:
            super().__init__()
            self.head = torch.nn.Conv2d(3, 68, 1)

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return [self.head(torch.nn.functional.avg_pool2d(x, 4))]  # 68 heatmaps at 1/4 resolution

    monkeypatch.setattr(face_alignment.api, "FAN", TinyFAN)
    weights = tmp_path / "fan.pth"
    torch.manual_seed(0)
    torch.save(TinyFAN().state_dict(), weights)
    backend = build_backend("face_alignment", weights=weights)
    face = largest_face(backend.detect(astronaut, 0, ""))
    assert face.landmarks.shape == (68, 2) and np.isfinite(face.landmarks).all()
    assert 200 < face.box[[0, 2]].mean() < 245  # boxes come from dlib's detector
    x0, y0, x1, y1 = face.box
    side = x1 - x0
    assert np.all(face.landmarks >= [x0 - side, y0 - side]) and np.all(face.landmarks <= [x1 + side, y1 + side])


def test_dlib_on_synthetic_twin_frames_against_the_sidecar(tmp_path, dlib_backend):
    """dlib finds the twin's drawn faces; its landmarks sit within ~0.1 inter-ocular distance of the
    rendered ground truth (measured 0.094 on 576 frames at 128 px; jaw points dominate the error)."""
    cli = pytest.importorskip("lightning_dfd.data.synthetic.cli")
    from lightning_dfd.data.layouts import index_dataset
    from lightning_dfd.data.video import read_frames

    root = cli.synth("ffpp", tmp_path / "twin", seed=0, identities=4, videos=6, frames=4, size=128,
                     compressions=["c23"], methods=["Deepfakes"])
    sidecar = build_backend("sidecar")
    errors, frames_seen = [], 0
    for record in index_dataset("ffpp", root):
        frames, indices = read_frames(root / record.source, indices=[0, 3])
        for frame, index in zip(frames, indices):
            frames_seen += 1
            face = dlib_backend.largest_face(frame, int(index), root / record.source)
            if face is not None:
                truth = sidecar.detect(frame, int(index), root / record.source)[0].landmarks
                errors.append(normalised_mean_error(face.landmarks, truth))
    assert frames_seen == 24
    assert len(errors) / frames_seen >= 0.9
    assert np.mean(errors) < 0.15 and np.median(errors) < 0.12
