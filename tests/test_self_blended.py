"""SBI transform (Eq. 1 blending, mask generator, keypoints), the real/fake pairing and per-worker reseeding."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from lightning_dfd.transforms.masks import (
    MaskRecipe,
    forehead_points,
    hull_polygons,
    paste,
    render_blend_mask,
    template_landmarks,
)
from lightning_dfd.transforms.seeding import reseed_transforms, worker_init_fn
from lightning_dfd.transforms.self_blended import (
    PseudoFakePair,
    SelfBlendedImage,
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
                "translate_fraction": (0.0, 0.0), "elastic_strength": (0.0, 0.0)}
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


def test_roi_computation_equals_full_frame_computation():
    image, landmarks = synthetic_face(96)
    recipe = MaskRecipe("face", np.random.default_rng(0).normal(0, 2, (2, 4, 4)).astype(np.float32), "erode",
                        (5, 7), (9, 11), (4.0, 5.0), 0.75)
    polygons = hull_polygons(landmarks, "face")
    patch, roi = render_blend_mask(image.shape, polygons, recipe)
    full = paste(patch, roi, image.shape)
    # the same steps on the whole frame
    binary = np.zeros(image.shape[:2], np.uint8)
    cv2.fillConvexPoly(binary, np.round(polygons[0] * 16).astype(np.int32), 255, cv2.LINE_8, 4)
    box = (int(np.floor(polygons[0][:, 0].min())), int(np.floor(polygons[0][:, 1].min())),
           int(np.ceil(polygons[0][:, 0].max())) + 1, int(np.ceil(polygons[0][:, 1].max())) + 1)
    fields = [cv2.resize(c, (box[2] - box[0], box[3] - box[1]), interpolation=cv2.INTER_CUBIC)
              for c in recipe.control_offsets]
    pads = (max(box[1], 0), max(96 - box[3], 0), max(box[0], 0), max(96 - box[2], 0))
    fields = [cv2.copyMakeBorder(f, *pads, cv2.BORDER_REPLICATE) for f in fields]
    gx, gy = np.meshgrid(np.arange(96, dtype=np.float32), np.arange(96, dtype=np.float32))
    warped = cv2.remap(binary, gx + fields[0], gy + fields[1], cv2.INTER_LINEAR, borderValue=0)
    warped = np.where(warped > 127, 255, 0).astype(np.uint8)
    warped = cv2.erode(warped, np.ones((7, 5), np.uint8))
    blurred = cv2.GaussianBlur(warped.astype(np.float32), (9, 11), 4.0, sigmaY=5.0)
    reference = blurred / blurred.max() * 0.75
    np.testing.assert_allclose(full, reference, atol=2e-5)


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
        SelfBlendedImage(blend_ratios=(0.5, 1.5))
    with pytest.raises(ValueError):
        SelfBlendedImage(hull_types=("face", "nose"))
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
