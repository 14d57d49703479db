"""LAA-Net targets (Eq. 2-4, 7): hand-worked cases, a per-point loop reference, reals, determinism, preview."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lightning_dfd.transforms.masks import template_landmarks
from lightning_dfd.transforms.preview import preview_grid, preview_transforms
from lightning_dfd.transforms.self_blended import SelfBlendedImage
from lightning_dfd.transforms.targets import (
    LaaNetTargets,
    blend_boundary,
    gaussian_heatmap,
    gaussian_radius,
    laanet_targets,
    run_lengths,
    vulnerable_points,
)


def test_blend_boundary_values():
    mask = np.array([[0.0, 0.5, 1.0, 0.25]], np.float32)
    np.testing.assert_allclose(blend_boundary(mask), [[0.0, 1.0, 0.0, 0.75]], atol=0)


def test_gaussian_radius_against_hand_computation():
    # box h = 10, w = 20, t = 0.7; each case (b + sqrt(b^2 - 4ac)) / 2:
    # 1: a=1,   b=30,  c=200*0.3/1.7=35.294  -> (30 + sqrt(900 - 141.18)) / 2 = (30 + 27.547) / 2 = 28.77
    # 2: a=4,   b=60,  c=0.3*200=60          -> (60 + sqrt(3600 - 960)) / 2 = (60 + 51.381) / 2 = 55.69
    # 3: a=2.8, b=-42, c=-0.3*200=-60        -> (-42 + sqrt(1764 + 672)) / 2 = (-42 + 49.356) / 2 = 3.678
    assert gaussian_radius(10, 20, 0.7) == pytest.approx(3.678, abs=1e-3)
    # square 10 x 10: case 3 a=2.8, b=-28, c=-30 -> (-28 + sqrt(784 + 336)) / 2 = (-28 + 33.4664) / 2 = 2.7332
    assert gaussian_radius(10, 10, 0.7) == pytest.approx(2.7332, abs=1e-4)


def test_run_lengths_hand_case():
    binary = np.array([[1, 1, 0, 1, 1, 1],
                       [0, 1, 0, 0, 1, 0]], bool)
    np.testing.assert_array_equal(run_lengths(binary, axis=1), [[2, 2, 0, 3, 3, 3], [0, 1, 0, 0, 1, 0]])
    np.testing.assert_array_equal(run_lengths(binary, axis=0), [[1, 2, 0, 1, 2, 1], [0, 2, 0, 0, 2, 0]])


def _single_point_mask() -> np.ndarray:
    """M = 0.3 on rows 10-19, cols 5-24 (B = 0.84 > 0.5) and M = 0.5 at (x=12, y=14): one vulnerable point whose
    virtual box is the 10 x 20 rectangle."""
    mask = np.zeros((32, 32), np.float32)
    mask[10:20, 5:25] = 0.3
    mask[14, 12] = 0.5
    return mask


def test_heatmap_peak_and_gaussian_falloff_with_cornernet_sigma():
    out = laanet_targets(_single_point_mask(), 32, np.random.default_rng(0), normalize_mask=False)
    np.testing.assert_array_equal(out["points"], [[12, 14]])
    heatmap = out["heatmap"][0]
    assert heatmap.shape == (32, 32) and heatmap[14, 12] == 1.0 and heatmap.max() == 1.0
    sigma = 3.678 / 3  # r of the 10 x 20 box (hand computation above) / 3
    for d in (1, 2, 3, 5):
        expected = math.exp(-d * d / (2 * sigma * sigma))
        for y, x in ((14, 12 + d), (14, 12 - d), (14 + d, 12), (14 - d, 12)):
            assert heatmap[y, x] == pytest.approx(expected, rel=1e-3, abs=1e-7)
    assert heatmap[14 + 3, 12 + 4] == pytest.approx(math.exp(-25 / (2 * sigma * sigma)), rel=1e-3, abs=1e-7)


def test_consistency_is_one_at_selected_point_and_eq7_elsewhere():
    mask = _single_point_mask()
    out = laanet_targets(mask, 32, np.random.default_rng(0), normalize_mask=False)
    u, v = out["selected_point"]
    consistency = out["consistency"][0]
    boundary = 4 * mask * (1 - mask)
    assert consistency[v, u] == 1.0
    np.testing.assert_allclose(consistency, 1 - np.abs(boundary[v, u] - boundary), atol=1e-6)
    assert consistency[0, 0] == pytest.approx(0.0, abs=1e-6)  # B = 0 far from the point, b_uv = 1


def test_reals_get_zero_heatmap_and_unit_consistency():
    out = laanet_targets(np.zeros((40, 40), np.float32), 20)
    np.testing.assert_array_equal(out["heatmap"], np.zeros((1, 20, 20), np.float32))
    np.testing.assert_array_equal(out["consistency"], np.ones((1, 20, 20), np.float32))
    assert out["points"].shape == (0, 2)
    wrapped = LaaNetTargets(out_size=8)({"mask": np.full((16, 16), 0.5, np.float32), "label": 0, "video_id": "x"})
    assert wrapped["heatmap"].max() == 0.0 and wrapped["consistency"].min() == 1.0 and wrapped["video_id"] == "x"


def _loop_reference(mask: np.ndarray, out_size: int, selected_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-point Python loops (walks for the box, one Gaussian per point) as the released code does it."""
    import cv2

    m = cv2.resize(mask, (out_size, out_size), interpolation=cv2.INTER_AREA)
    m = m / m.max()
    boundary = 4 * m * (1 - m)
    quantised = np.rint(boundary * np.float32(255))
    points = [(x, y) for y in range(out_size) for x in range(out_size) if quantised[y, x] == quantised.max()]
    heatmap = np.zeros((out_size, out_size), np.float32)
    ys, xs = np.mgrid[0:out_size, 0:out_size].astype(np.float32)
    for x, y in points:
        width = 1
        for step in (-1, 1):
            i = x + step
            while 0 <= i < out_size and boundary[y, i] > 0.5:
                width, i = width + 1, i + step
        height = 1
        for step in (-1, 1):
            j = y + step
            while 0 <= j < out_size and boundary[j, x] > 0.5:
                height, j = height + 1, j + step
        if boundary[y, x] <= 0.5:
            width = height = 1
        h, w, o = float(height), float(width), 0.7
        r1 = ((h + w) + math.sqrt((h + w) ** 2 - 4 * w * h * (1 - o) / (1 + o))) / 2
        r2 = (2 * (h + w) + math.sqrt(4 * (h + w) ** 2 - 16 * (1 - o) * w * h)) / 2
        r3 = (-2 * o * (h + w) + math.sqrt(4 * o * o * (h + w) ** 2 - 16 * o * (o - 1) * w * h)) / 2
        sigma = min(r1, r2, r3) / 3
        gaussian = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma * sigma))
        heatmap = np.maximum(heatmap, gaussian)
    u, v = points[selected_index]
    return heatmap, 1 - np.abs(boundary[v, u] - boundary)


def test_vectorised_targets_equal_loop_reference_on_sbi_masks():
    size = 96
    landmarks = template_landmarks(size)
    image = np.full((size, size, 3), 128, np.uint8)
    sbi = SelfBlendedImage()
    sbi.set_random_seed(0)
    for seed in range(4):
        mask = sbi(image=image, keypoints=landmarks)["mask"]
        out = laanet_targets(mask, 32, np.random.default_rng(seed))
        index = int(np.random.default_rng(seed).integers(len(out["points"])))
        heatmap, consistency = _loop_reference(mask, 32, index)
        assert len(out["points"]) >= 1
        np.testing.assert_allclose(out["heatmap"][0], heatmap, atol=1e-5)
        np.testing.assert_allclose(out["consistency"][0], consistency, atol=1e-5)


def test_gaussian_heatmap_windowed_and_dense_paths_equal_eq4():
    ys, xs = np.mgrid[0:40, 0:40]
    points = np.array([[3, 5], [30, 22], [39, 0]])
    for sigmas in ([0.8, 1.5, 0.4], [9.0, 4.0, 12.0]):  # small: windowed scatter; large: dense chunks
        expected = np.max([np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * s * s))
                           for (x, y), s in zip(points, sigmas)], axis=0)
        np.testing.assert_allclose(gaussian_heatmap(points, np.array(sigmas), (40, 40)), expected, atol=2e-7)


def test_vulnerable_points_quantised_ties():
    boundary = np.array([[0.999, 1.0, 0.5], [0.9981, 0.2, 0.0]], np.float32)
    np.testing.assert_array_equal(vulnerable_points(boundary, 255), [[0, 0], [1, 0], [0, 1]])
    np.testing.assert_array_equal(vulnerable_points(boundary, None), [[1, 0]])


def test_targets_deterministic_with_seed_and_shapes():
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 16:48] = 1.0
    import cv2

    mask = cv2.GaussianBlur(mask, (15, 15), 4) * 0.5  # blending ratio 0.5: normalised back to peak 1
    a = laanet_targets(mask, 24, np.random.default_rng(7))
    b = laanet_targets(mask, 24, np.random.default_rng(7))
    assert a["heatmap"].shape == a["consistency"].shape == (1, 24, 24)
    np.testing.assert_array_equal(a["selected_point"], b["selected_point"])
    np.testing.assert_array_equal(a["consistency"], b["consistency"])
    assert len(a["points"]) > 4  # a ring of tied maxima along the boundary
    assert a["heatmap"].max() == 1.0 and all(a["heatmap"][0, y, x] == 1.0 for x, y in a["points"])
    with pytest.raises(ValueError, match="0, 1"):
        laanet_targets(mask * 255, 24)


def test_preview_grid_and_preview_transforms_write_png(tmp_path):
    landmarks = template_landmarks(48)
    image = np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    path = preview_grid([image], [np.zeros((48, 48))], [np.zeros((1, 12, 12))], [np.ones((1, 12, 12))],
                        tmp_path / "grid.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = preview_transforms([(image, landmarks), (image[:, ::-1].copy(), landmarks)], tmp_path / "sbi.png",
                             heatmap_size=12)
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
    out = preview_transforms([(image, landmarks), (image[:, ::-1].copy(), landmarks)], tmp_path / "bi.png",
                             blend="bi", heatmap_size=12)
    assert out.exists()
