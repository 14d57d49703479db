"""Region crops of DefakeHop (seed 000, Sec. 3.1): 32x32 boxes around the eye / mouth landmarks."""

from __future__ import annotations

import torch

from lightning_dfd.transforms.regions import REGION_LANDMARKS, crop_regions


def test_crop_is_the_box_around_the_landmark_mean():
    images = torch.arange(2 * 3 * 128 * 128, dtype=torch.float32).reshape(2, 3, 128, 128)
    landmarks = torch.full((2, 68, 2), float("nan"))
    centres = {"left_eye": (40, 50), "right_eye": (88, 50), "mouth": (64, 100)}
    for name, (x, y) in centres.items():
        idx = list(REGION_LANDMARKS[name])
        spread = torch.linspace(-3, 3, len(idx))  # symmetric points: their mean is the centre
        landmarks[:, idx, 0] = x + spread
        landmarks[:, idx, 1] = y - spread
    crops = crop_regions(images, landmarks, ["left_eye", "right_eye", "mouth"], size=32, face_size=128)
    assert crops.shape == (2, 3, 3, 32, 32)
    for r, (x, y) in enumerate(centres.values()):
        torch.testing.assert_close(crops[:, r], images[:, :, y - 16: y + 16, x - 16: x + 16])


def test_missing_landmarks_use_the_default_place_and_scale_follows_the_image():
    """A linear ramp is sampled exactly by bilinear interpolation: pixel k holds value k at position k + 0.5."""
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    images = (xs + 100 * ys).expand(1, 3, 64, 64)
    crops = crop_regions(images, None, ["mouth"], size=32, face_size=128)  # a 16-px box of a 64-px face
    cx, cy = 0.5 * 64, 0.78 * 64  # the mouth's default centre
    steps = (torch.arange(32.0) + 0.5 - 16) * 0.5
    expected = (cx + steps - 0.5)[None, :] + 100 * (cy + steps - 0.5)[:, None]
    torch.testing.assert_close(crops[0, 0, 1], expected, rtol=0, atol=1e-3)
