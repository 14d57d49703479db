"""BI transform: nearest other-identity search, alignment, colour correction, Eq. 1, keypoints, manifest index."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from lightning_dfd.transforms.blended import (
    BlendedImage,
    LandmarkIndex,
    affine_transform,
    colour_transfer,
    similarity_transform,
)
from lightning_dfd.transforms.masks import template_landmarks
from lightning_dfd.transforms.self_blended import PseudoFakePair

SIZE = 64


def face(tone: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (SIZE, SIZE, 3), dtype=np.uint8)
    cv2.fillConvexPoly(image, cv2.convexHull(template_landmarks(SIZE).astype(np.int32)), tone)
    return image


def test_nearest_other_identity_on_hand_built_index():
    base = template_landmarks(SIZE)
    # offsets of every point: total distance = 68 * |offset|
    landmarks = np.stack([base + [0.5, 0.0],   # identity A, 34 away (same identity as the query: skipped)
                          base + [3.0, 4.0],   # identity B, 68 * 5 = 340 away
                          base + [0.0, 2.0],   # identity C, 68 * 2 = 136 away  <- nearest other identity
                          base + [0.0, -2.5]])  # identity C, 68 * 2.5 = 170 away
    index = LandmarkIndex(landmarks, ["A", "B", "C", "C"], [np.zeros((SIZE, SIZE, 3), np.uint8)] * 4)
    np.testing.assert_allclose(index.distances(base), [34.0, 340.0, 136.0, 170.0], rtol=1e-5)
    assert index.nearest(base, "A").tolist() == [2]
    assert index.nearest(base, "A", k=3).tolist() == [2, 3, 1]
    assert index.nearest(base, "C", k=2).tolist() == [0, 1]
    only_a = LandmarkIndex(landmarks[:1], ["A"], [np.zeros((SIZE, SIZE, 3), np.uint8)])
    with pytest.raises(ValueError, match="other than"):
        only_a.nearest(base, "A")

    transform = BlendedImage(index)
    transform.set_random_seed(0)
    transform(image=face((200, 150, 120), 0), keypoints=base, identity="A")
    assert transform.params["foreground_index"] == 2


def test_similarity_and_affine_recover_known_transforms():
    points = template_landmarks(SIZE).astype(np.float64)
    angle, scale = np.deg2rad(12.0), 1.3
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = points @ rotation.T + [5.0, -7.0]
    np.testing.assert_allclose(similarity_transform(points, moved), np.hstack([rotation, [[5.0], [-7.0]]]),
                               atol=1e-9)
    shear = np.array([[1.1, 0.2, 3.0], [-0.1, 0.9, 1.0]])
    np.testing.assert_allclose(affine_transform(points, points @ shear[:, :2].T + shear[:, 2]), shear, atol=1e-9)


def test_colour_transfer_matches_weighted_statistics():
    rng = np.random.default_rng(0)
    foreground = rng.integers(20, 100, (16, 16, 3)).astype(np.uint8)
    background = rng.integers(120, 220, (16, 16, 3)).astype(np.uint8)
    weights = np.zeros((16, 16), np.float32)
    weights[4:12, 4:12] = 1.0
    corrected = colour_transfer(foreground, background, weights, "mean_std")
    region = weights > 0
    np.testing.assert_allclose(corrected[region].mean(axis=0), background[region].mean(axis=0), atol=1e-3)
    np.testing.assert_allclose(corrected[region].std(axis=0), background[region].std(axis=0), rtol=1e-3)
    shifted = colour_transfer(foreground, background, weights, "mean")
    np.testing.assert_allclose(shifted[region].mean(axis=0), background[region].mean(axis=0), atol=1e-3)


def test_bi_output_is_eq1_of_aligned_foreground_and_background():
    landmarks = template_landmarks(SIZE)
    background, foreground = face((200, 150, 120), 0), face((90, 60, 40), 1)
    index = LandmarkIndex(landmarks[None], ["other"], [foreground])
    transform = BlendedImage(index, alignment="similarity", colour_correction="none")
    transform.set_random_seed(4)
    for _ in range(3):
        out = transform(image=background, keypoints=landmarks, identity="me")
        mask = out["mask"][..., None]
        # identical landmarks: the similarity is the identity, I_F = the foreground image itself
        np.testing.assert_allclose(transform.params["foreground_matrix"], [[1, 0, 0], [0, 1, 0]], atol=1e-4)
        expected = np.rint(mask * foreground.astype(np.float32) + (1 - mask) * background.astype(np.float32))
        difference = np.abs(out["image"].astype(int) - expected.astype(int))
        assert difference.max() <= 1 and (difference > 0).mean() < 0.01  # warpAffine fixed-point rounding
        assert out["label"] == 1 and 0 < out["mask"].max() <= 1.0
        np.testing.assert_array_equal(out["keypoints"], landmarks)
        np.testing.assert_array_equal(out["background"], background)
        outside = out["mask"] == 0
        np.testing.assert_array_equal(out["image"][outside], background[outside])


def test_bi_requires_identity_and_pair_passes_it():
    landmarks = template_landmarks(SIZE)
    index = LandmarkIndex(np.stack([landmarks, landmarks + 1.0]), ["v0", "v1"],
                          [face((200, 150, 120), 0), face((90, 60, 40), 1)])
    transform = BlendedImage(index)
    with pytest.raises(ValueError, match="identity"):
        transform(image=face((200, 150, 120), 0), keypoints=landmarks)
    real, fake = PseudoFakePair(transform)({"image": face((200, 150, 120), 0), "landmarks": landmarks,
                                            "video_id": "v0"})
    assert transform.params["foreground_index"] == 1  # v0 excluded even though it is the nearest
    assert (real["label"], fake["label"]) == (0, 1) and fake["mask"].max() > 0


def test_landmark_index_from_manifest(tmp_path):
    landmarks = template_landmarks(SIZE)
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), face((200, 150, 120), 0))
    manifest = pd.DataFrame({
        "path": ["a.png", "b.png", "c.png", "d.png"],
        "label": [0, 0, 1, 0],
        "status": ["ok", "ok", "ok", "no_face"],
        "video_id": ["v1", "v2", "v3", "v4"],
        "subject": ["s1", "", "s3", "s4"],
        "landmarks": [landmarks.ravel().tolist()] * 3 + [[]],
    })
    index = LandmarkIndex.from_manifest(manifest, tmp_path)
    assert len(index) == 2 and index.identities == ["s1", "v2"]
    np.testing.assert_allclose(index.landmarks[0], landmarks)
    image = index.image(1)
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    broken = LandmarkIndex(landmarks[None], ["x"], [tmp_path / "missing.png"])
    with pytest.raises(FileNotFoundError, match="missing.png"):
        broken.image(0)


def test_bi_defaults_are_face_xray_piecewise_affine_and_released_blending():
    import random

    from lightning_dfd.transforms.masks import BI_MASK_SETTINGS, draw_mask_recipe

    landmarks = template_landmarks(SIZE)
    transform = BlendedImage(LandmarkIndex(landmarks[None], ["other"], [face((90, 60, 40), 1)]))
    settings = transform.mask_settings
    assert settings == BI_MASK_SETTINGS and settings.grid_scale == (0.01, 0.15) and settings.grid_size == 4
    assert settings.elastic_alpha == 0 and (settings.erode_kernel, settings.dilate_kernel) == ((1, 21), (1, 5))
    assert (transform.alignment, transform.colour_correction) == ("none", "mean")  # the released BI
    # a partial override keeps BI's other defaults (not SBI's)
    assert BlendedImage(transform.index, mask={"grid_size": 5}).mask_settings.grid_scale == (0.01, 0.15)
    # imgaug PiecewiseAffine(scale=(0.01, 0.15)): grid points move by N(0, (s * side)^2), s ~ U(0.01, 0.15), so
    # E[offset^2] / side^2 = E[s^2] = (0.15^3 - 0.01^3) / (3 * 0.14)
    height, width = 96, 160
    py_random, generator = random.Random(0), np.random.default_rng(0)
    offsets = np.stack([draw_mask_recipe(settings, (height, width), 50.0, py_random, generator).control_offsets
                        for _ in range(300)])
    expected_rms = np.sqrt((0.15 ** 3 - 0.01 ** 3) / (3 * 0.14))
    assert abs(np.sqrt((offsets[:, 0] ** 2).mean()) / width / expected_rms - 1) < 0.15
    assert abs(np.sqrt((offsets[:, 1] ** 2).mean()) / height / expected_rms - 1) < 0.15
