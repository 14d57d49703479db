"""SBI transform (Eq. 1 blending, mask generator, keypoints), the real/fake pairing and per-worker reseeding."""

from __future__ import annotations

import dataclasses

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from lightning_dfd.transforms.masks import (
    BI_MASK_SETTINGS,
    MaskRecipe,
    MaskSettings,
    draw_mask_recipe,
    forehead_points,
    hull_polygons,
    mask_settings,
    paste,
    render_blend_mask,
    template_landmarks,
)
from lightning_dfd.transforms.seeding import reseed_transforms, worker_init_fn
from lightning_dfd.transforms.self_blended import (
    PseudoFakePair,
    SelfBlendedImage,
    augment_copy,
    blend,
    collate_pairs,
    source_affine,
    source_region,
    warp_patch,
)
from lightning_dfd.transforms.targets import LaaNetTargets

SIZE = 64


def synthetic_face(size: int = SIZE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Textured background, skin-coloured landmark hull, dark eyes and red mouth; 68 landmarks."""
    rng = np.random.default_rng(seed)
    landmarks = template_landmarks(size)
    image = rng.integers(0, 70, (size, size, 3), dtype=np.uint8)
    cv2.fillConvexPoly(image, cv2.convexHull(landmarks.astype(np.int32)), (200, 160, 130))
    for eye in (slice(36, 42), slice(42, 48)):
        cv2.fillConvexPoly(image, landmarks[eye].astype(np.int32), (40, 30, 30))
    cv2.fillConvexPoly(image, cv2.convexHull(landmarks[48:60].astype(np.int32)), (150, 60, 60))
    noise = rng.integers(-8, 9, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8), landmarks


def plain_sbi(**overrides) -> SelfBlendedImage:
    """SBI with no colour/frequency/geometry randomness unless overridden."""
    settings = {"source_probability": 1.0, "rgb_shift_probability": 0.0, "brightness_limit": 0.0,
                "contrast_limit": 0.0, "frequency_probability": 0.0, "scale_range": (1.0, 1.0),
                "translate_fraction": (0.0, 0.0), "mask": {"elastic_alpha": 0.0}}
    settings.update(overrides)
    return SelfBlendedImage(**settings)


def test_blend_equation_exact_on_hand_made_case():
    foreground = np.array([[[200, 0, 10], [200, 0, 10]], [[200, 0, 10], [200, 0, 10]]], np.uint8)
    background = np.array([[[100, 40, 250], [100, 40, 250]], [[100, 40, 250], [100, 40, 250]]], np.uint8)
    mask = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)
    expected = np.array([[[100, 40, 250], [125, 30, 190]], [[150, 20, 130], [200, 0, 10]]], np.float32)
    np.testing.assert_array_equal(blend(foreground, background, mask), expected)


def test_sbi_output_is_eq1_of_shifted_source_and_target():
    image, landmarks = synthetic_face()
    sbi = plain_sbi(rgb_shift_probability=1.0, rgb_shift_limit=40)  # source = clip(I + s), s drawn per channel
    sbi.set_random_seed(3)
    out = sbi(image=image, keypoints=landmarks)
    shift = np.asarray(sbi.params["source_target"].rgb_shift, np.float32)
    assert sbi.params["source_target"].augment_source and shift.any()
    foreground = np.clip(image.astype(np.float32) + shift, 0, 255)
    mask = out["mask"][..., None]
    expected = np.rint(mask * foreground + (1 - mask) * image.astype(np.float32))
    np.testing.assert_array_equal(out["image"], expected.astype(np.uint8))
    assert out["label"] == 1
    np.testing.assert_array_equal(out["background"], image)  # the target copy was not augmented


def test_mask_range_ratio_and_support_near_landmark_hull():
    image, landmarks = synthetic_face()
    sbi = SelfBlendedImage()
    sbi.set_random_seed(0)
    hull = cv2.convexHull(np.concatenate([landmarks, forehead_points(landmarks)]).astype(np.float32))
    ratios = set()
    for _ in range(12):
        out = sbi(image=image, keypoints=landmarks)
        mask = out["mask"]
        assert mask.dtype == np.float32 and mask.shape == image.shape[:2]
        assert mask.min() >= 0.0 and mask.max() <= 1.0
        recipe = sbi.params["recipe"]
        assert mask.max() == pytest.approx(recipe.blend_ratio)  # normalised blur peak x ratio
        ratios.add(recipe.blend_ratio)
        # support: within the (forehead-extended) hull grown by the source shift, deformation and blur reach
        reach = 0.15 * SIZE + recipe.blur_kernel[0] // 2 + 2
        ys, xs = np.nonzero(mask > 0)
        distances = [cv2.pointPolygonTest(hull, (float(x), float(y)), True) for x, y in zip(xs, ys)]
        assert min(distances) >= -reach
        # the nose tip (landmark 30) is deep inside: M there is a large part of the ratio
        nose = landmarks[30].round().astype(int)
        assert mask[nose[1], nose[0]] > 0.5 * recipe.blend_ratio
    assert ratios <= {0.25, 0.5, 0.75, 1.0} and len(ratios) >= 2


def test_outside_mask_fake_equals_background_and_pair_differs_only_inside():
    image, landmarks = synthetic_face()
    sbi = SelfBlendedImage()
    sbi.set_random_seed(5)
    for _ in range(6):
        out = sbi(image=image, keypoints=landmarks)
        outside = out["mask"] == 0
        np.testing.assert_array_equal(out["image"][outside], out["background"][outside])
        assert (out["image"] != out["background"]).any()


def _bilinear_grid_field(offsets: np.ndarray, height: int, width: int) -> np.ndarray:
    """Grid values (points from the first to the last pixel) interpolated to every pixel with np.interp."""
    g_y, g_x = offsets.shape
    xs, ys = np.linspace(0, width - 1, g_x), np.linspace(0, height - 1, g_y)
    rows = np.stack([np.interp(np.arange(width), xs, row) for row in offsets])  # (g_y, width)
    return np.stack([np.interp(np.arange(height), ys, rows[:, x]) for x in range(width)], axis=1)


def test_roi_computation_equals_full_frame_computation():
    image, landmarks = synthetic_face(96)
    recipe = MaskRecipe("face", np.random.default_rng(0).normal(0, 2, (2, 4, 4)).astype(np.float32), "erode",
                        (5, 7), (9, 11), (4.0, 5.0), 0.75)
    polygons = hull_polygons(landmarks, "face")
    patch, roi = render_blend_mask(image.shape, polygons, recipe)
    full = paste(patch, roi, image.shape)
    # the same steps on the whole frame: the grid spans the image, interpolated linearly (piecewise affine)
    binary = np.zeros(image.shape[:2], np.uint8)
    cv2.fillConvexPoly(binary, np.round(polygons[0] * 16).astype(np.int32), 255, cv2.LINE_8, 4)
    fields = [_bilinear_grid_field(c.astype(np.float64), 96, 96) for c in recipe.control_offsets]
    gx, gy = np.meshgrid(np.arange(96, dtype=np.float64), np.arange(96, dtype=np.float64))
    warped = cv2.remap(binary, (gx + fields[0]).astype(np.float32), (gy + fields[1]).astype(np.float32),
                       cv2.INTER_LINEAR, borderValue=0)
    warped = np.where(warped > 127, 255, 0).astype(np.uint8)
    warped = cv2.erode(warped, np.ones((7, 5), np.uint8))
    blurred = cv2.GaussianBlur(warped.astype(np.float32), (9, 11), 4.0, sigmaY=5.0)
    reference = blurred / blurred.max() * 0.75
    np.testing.assert_allclose(full, reference, atol=2e-5)


EDGE = 256  # = MaskSettings.reference_size: alpha and sigma are SBI's in pixels
LEFT, RIGHT, TOP, BOTTOM = 64, 192, 16, 240


def _edge_displacements(mask: np.ndarray) -> np.ndarray:
    """(2, rows) displacement of the left and right edges of a warped [LEFT, RIGHT) x [TOP, BOTTOM) rectangle,
    on rows far from its corners."""
    rows = mask[TOP + 24:BOTTOM - 24] > 0.5
    left = rows[:, :EDGE // 2].argmax(axis=1)
    right = EDGE // 2 + (EDGE // 2 - rows[:, EDGE // 2:][:, ::-1].argmax(axis=1))
    return np.stack([left - LEFT, right - RIGHT]).astype(np.float64)


def _jitter_statistics(displacements: list[np.ndarray]) -> tuple[float, float, float]:
    """Pooled std of the edge displacement and its autocorrelation along the edge at lags 7 and 14 px."""
    d = np.concatenate(displacements)  # (2 * draws, rows)
    d = d - d.mean()
    variance = (d ** 2).mean()
    return (float(np.sqrt(variance)), float((d[:, :-7] * d[:, 7:]).mean() / variance),
            float((d[:, :-14] * d[:, 14:]).mean() / variance))


def test_sbi_elastic_jitter_matches_albumentations_elastic_transform_statistics():
    rectangle = np.array([[LEFT, TOP], [RIGHT - 1, TOP], [RIGHT - 1, BOTTOM - 1], [LEFT, BOTTOM - 1]], np.float32)
    settings = MaskSettings()
    assert (settings.elastic_alpha, settings.elastic_sigma) == (50.0, 7.0)  # SBI's ElasticTransform
    ours = []
    sbi = SelfBlendedImage()
    sbi.set_random_seed(0)
    for _ in range(12):
        drawn = draw_mask_recipe(sbi.mask_settings, (EDGE, EDGE), 100.0, sbi.py_random, sbi.random_generator)
        recipe = MaskRecipe("face", drawn.control_offsets, "none", (1, 1), (1, 1), (1.0, 1.0), 1.0,
                            drawn.elastic_alpha, drawn.elastic_sigma, drawn.elastic_seed)  # deformation only
        patch, roi = render_blend_mask((EDGE, EDGE), [rectangle], recipe)
        ours.append(_edge_displacements(paste(patch, roi, (EDGE, EDGE))))
    # the reference: albumentations' own ElasticTransform with SBI's released arguments (uniform noise as
    # albumentations 1.x, nearest-neighbour masks), applied to the same rectangle
    reference = []
    elastic = A.ElasticTransform(alpha=50, sigma=7, noise_distribution="uniform", approximate=False,
                                 mask_interpolation=cv2.INTER_NEAREST, p=1.0)
    elastic.set_random_seed(1)
    binary = np.zeros((EDGE, EDGE), np.uint8)
    binary[TOP:BOTTOM, LEFT:RIGHT] = 1
    for _ in range(12):
        reference.append(_edge_displacements(elastic(image=np.zeros((EDGE, EDGE, 3), np.uint8), mask=binary)["mask"]))
    std, lag7, lag14 = _jitter_statistics(ours)
    ref_std, ref_lag7, ref_lag14 = _jitter_statistics(reference)
    theory = 50 / (2 * np.sqrt(3 * np.pi) * 7)  # alpha * std(U(-1, 1)) * sqrt(sum of squared 2-D Gaussian weights)
    assert abs(std / ref_std - 1) < 0.2 and abs(std / theory - 1) < 0.2  # about 1.2 px: a fine jitter
    # correlation along the boundary: a Gaussian-smoothed white noise decorrelates as exp(-lag^2 / (4 sigma^2))
    assert abs(lag7 - ref_lag7) < 0.15 and abs(lag14 - ref_lag14) < 0.15
    assert abs(lag14 - np.exp(-1.0)) < 0.15  # a 4 x 4 control grid over the face would stay above 0.9


def test_sbi_mask_follows_the_source_affine():
    image, landmarks = synthetic_face(96)
    sbi = plain_sbi(translate_fraction=(0.2, 0.2), scale_range=(0.9, 1.1),
                    mask={"elastic_alpha": 0.0, "erode_kernel": (1, 1), "blur_kernel": (1, 1), "blend_ratios": (1.0,)})
    sbi.set_random_seed(2)
    shifts = []
    for _ in range(4):
        out = sbi(image=image, keypoints=landmarks)
        affine = sbi.params["affine"]
        hull = hull_polygons(landmarks, sbi.params["recipe"].hull_type)[0]
        expected = np.zeros((96, 96), np.uint8)  # the hull drawn after moving its vertices by the affine
        moved = hull @ affine[:, :2].T + affine[:, 2]
        cv2.fillConvexPoly(expected, np.round(moved * 16).astype(np.int32), 1, cv2.LINE_8, 4)
        binary = (out["mask"] > 0.5).astype(np.uint8)
        assert (binary != expected).mean() < 0.01
        shifts.append(np.abs(affine[:, 2] - (np.eye(2) - affine[:, :2]) @ np.array([47.5, 47.5])).max())
    assert max(shifts) > 3.0  # the source really moved


def test_sbi_draws_downscale_and_sharpen_and_downscale_blocks():
    sbi = SelfBlendedImage()
    sbi.set_random_seed(0)
    drawn = [sbi.draw_source_target() for _ in range(200)]
    kinds = [d.frequency for d in drawn]
    assert 70 <= kinds.count("downscale") <= 130 and kinds.count("sharpen") == 200 - kinds.count("downscale")
    assert {d.downscale_factor for d in drawn if d.frequency == "downscale"} == {2, 4}
    # a one-pixel checkerboard down-sampled by 2 with nearest neighbours is flat: nothing of it survives
    checkerboard = (np.indices((16, 16)).sum(axis=0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, axis=2)
    params = dataclasses.replace(drawn[0], rgb_shift=(0, 0, 0), contrast=1.0, brightness=0.0, hsv_shift=(0, 0, 0),
                                 frequency="downscale", downscale_factor=2)
    out = augment_copy(checkerboard, params)
    assert out.min() == out.max() and out.max() in (0, 255)
    assert np.array_equal(augment_copy(checkerboard, dataclasses.replace(params, frequency="none")), checkerboard)


def test_mask_settings_shared_validated_and_overridable():
    sbi = SelfBlendedImage(mask={"blur_sigma": [3, 9]})
    assert sbi.mask_settings == dataclasses.replace(MaskSettings(), blur_sigma=(3.0, 9.0))
    with pytest.raises(ValueError, match="unknown"):
        SelfBlendedImage(mask={"elastic_strength": (0, 1)})
    with pytest.raises(ValueError, match="elastic_alpha"):
        MaskSettings(elastic_alpha=-1.0)
    # from YAML through jsonargparse (as LightningCLI parses a transform's arguments): a partial mask group
    # overrides only its keys, on the transform's own defaults (BI keeps Face X-ray's)
    from jsonargparse import ArgumentParser

    from lightning_dfd.transforms.blended import BlendedImage

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(SelfBlendedImage, "sbi")
    parser.add_class_arguments(BlendedImage, "bi", skip={"index"})
    config = parser.parse_string("sbi:\n  mask:\n    blur_sigma: [3, 9]\nbi:\n  mask:\n    grid_size: 5\n")
    assert SelfBlendedImage(mask=config.sbi.mask).mask_settings.blur_sigma == (3.0, 9.0)
    bi_settings = mask_settings(config.bi.mask, BI_MASK_SETTINGS)
    assert bi_settings == dataclasses.replace(BI_MASK_SETTINGS, grid_size=5)


def test_warp_patch_equals_full_frame_warp():
    image, _ = synthetic_face(80)
    matrix = source_affine((1.04, 0.96), (2.3, -1.2), image.shape)
    full = cv2.warpAffine(image, matrix, (80, 80), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    roi = (10, 12, 60, 70)
    x0, y0, x1, y1 = source_region(matrix, roi, image.shape, margin=3)
    patch = warp_patch(image[y0:y1, x0:x1], (x0, y0), matrix, roi)
    difference = np.abs(patch.astype(int) - full[12:70, 10:60].astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01  # warpAffine's 1/32 px fixed-point rounding


def test_keypoints_unchanged_and_travel_with_mask_through_compose():
    image, landmarks = synthetic_face()
    sbi = SelfBlendedImage()
    sbi.set_random_seed(1)
    alone = sbi(image=image, keypoints=landmarks)
    np.testing.assert_array_equal(alone["keypoints"], landmarks)

    pipeline = A.Compose([SelfBlendedImage(), A.HorizontalFlip(p=1.0)],
                         keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
                         additional_targets={"background": "image"}, seed=7)
    out = pipeline(image=image, keypoints=landmarks)
    keypoints = np.asarray(out["keypoints"], np.float32)
    np.testing.assert_allclose(keypoints[:, 0], SIZE - 1 - landmarks[:, 0], atol=1e-4)
    np.testing.assert_allclose(keypoints[:, 1], landmarks[:, 1], atol=1e-4)
    # the flipped mask's mass centre lies inside the flipped landmarks' hull; the unflipped mirror does too
    mask = out["mask"]
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    centre = (float((mask * xs).sum() / mask.sum()), float((mask * ys).sum() / mask.sum()))
    assert cv2.pointPolygonTest(cv2.convexHull(keypoints), centre, False) > 0
    np.testing.assert_array_equal(out["background"], image[:, ::-1])
    assert out["label"] == 1


def test_same_seed_reproduces_and_different_seeds_differ():
    image, landmarks = synthetic_face()
    runs = []
    for seed in (11, 11, 12):
        sbi = SelfBlendedImage()
        sbi.set_random_seed(seed)
        runs.append([sbi(image=image, keypoints=landmarks) for _ in range(3)])
    for a, b in zip(runs[0], runs[1]):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["mask"], b["mask"])
    assert any(not np.array_equal(a["image"], c["image"]) for a, c in zip(runs[0], runs[2]))


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError):
        SelfBlendedImage(mask={"blend_ratios": (0.5, 1.5)})
    with pytest.raises(ValueError):
        SelfBlendedImage(mask={"hull_types": ("face", "nose")})
    with pytest.raises(ValueError):
        SelfBlendedImage(scale_range=(1.1, 0.9))
    with pytest.raises(ValueError, match="68"):
        SelfBlendedImage()(image=np.zeros((8, 8, 3), np.uint8), keypoints=np.zeros((5, 2), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        SelfBlendedImage()(image=np.zeros((8, 8, 3), np.float32), keypoints=np.zeros((68, 2), np.float32))


def test_pair_shares_augmentations_and_collates_reals_first():
    image, landmarks = synthetic_face()
    shared = A.Compose([A.HorizontalFlip(p=1.0), A.RandomBrightnessContrast(p=1.0)],
                       keypoint_params=A.KeypointParams(format="xy", remove_invisible=False))
    pair = PseudoFakePair(SelfBlendedImage(), shared=shared, targets=LaaNetTargets(out_size=16, seed=0))
    reseed_transforms(pair, 0)
    real, fake = pair({"image": image, "landmarks": landmarks, "video_id": "v0", "frame_index": 3})
    assert (real["label"], fake["label"]) == (0, 1)
    assert real["mask"].max() == 0 and fake["mask"].max() > 0
    assert real["mask"].shape == fake["mask"].shape == (1, SIZE, SIZE)
    outside = fake["mask"][0] == 0  # the same random brightness/contrast hit both: identical outside M
    np.testing.assert_array_equal(real["image"][outside], fake["image"][outside])
    np.testing.assert_allclose(fake["landmarks"][:, 0], SIZE - 1 - landmarks[:, 0], atol=1e-4)
    np.testing.assert_array_equal(real["heatmap"], np.zeros((1, 16, 16), np.float32))
    np.testing.assert_array_equal(real["consistency"], np.ones((1, 16, 16), np.float32))
    assert fake["heatmap"].max() == 1.0
    batch = collate_pairs([(real, fake), (real, fake)])
    assert batch["label"].tolist() == [0, 0, 1, 1]
    assert batch["image"].shape == (4, SIZE, SIZE, 3) and batch["heatmap"].shape == (4, 1, 16, 16)
    assert batch["mask"].shape == (4, 1, SIZE, SIZE)
    assert batch["frame_index"].tolist() == [3, 3, 3, 3]


class _SameImageDataset(Dataset):
    """Every index returns SBI of the same crop: only the transform's randomness varies."""

    def __init__(self) -> None:
        self.image, self.landmarks = synthetic_face()
        self.transform = A.Compose([SelfBlendedImage(), A.RandomBrightnessContrast(p=0.5)])

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.transform(image=self.image, keypoints=self.landmarks)["image"])


def _first_two(worker_init, seed: int) -> list[torch.Tensor]:
    loader = DataLoader(_SameImageDataset(), batch_size=1, num_workers=2, worker_init_fn=worker_init,
                        multiprocessing_context="fork", generator=torch.Generator().manual_seed(seed))
    return [batch[0] for _, batch in zip(range(2), loader)]  # index 0 from worker 0, index 1 from worker 1


def test_workers_draw_different_augmentations_and_seed_reproduces():
    forked = _first_two(None, 0)  # the pitfall: forked workers share the parent's transform state
    assert torch.equal(forked[0], forked[1])
    first = _first_two(worker_init_fn, 0)
    assert not torch.equal(first[0], first[1])
    again = _first_two(worker_init_fn, 0)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    other = _first_two(worker_init_fn, 1)
    assert not torch.equal(first[0], other[0])


def test_reseed_gives_compose_children_distinct_seeds():
    pipeline = A.Compose([A.RandomBrightnessContrast(p=0.5), A.RandomBrightnessContrast(p=0.5)], seed=3)
    first, second = pipeline.transforms
    assert first.py_random.random() == second.py_random.random()  # Compose(seed=k): correlated children
    count = reseed_transforms({"train": pipeline, "targets": LaaNetTargets()}, 123)
    assert count == 4  # the compose, its two children, the targets
    draws_first = [first.py_random.random() for _ in range(4)]
    draws_second = [second.py_random.random() for _ in range(4)]
    assert draws_first != draws_second
    reseed_transforms({"train": pipeline, "targets": LaaNetTargets()}, 123)
    assert [first.py_random.random() for _ in range(4)] == draws_first
