"""Face-region crops from the 68 iBUG landmarks (DefakeHop, seed 000, Sec. 3.1: 32x32 patches of the left eye,
right eye and mouth of a 128x128 aligned face).

:func:`crop_regions` works on a batch (``IMAGE`` + ``LANDMARKS``, :mod:`lightning_dfd.batch`) on any device: each
region's box is centred on the mean of its landmarks and spans ``size * image_side / face_size`` pixels (so a
224-px crop gives the same part of the face as the paper's 128-px one), resampled bilinearly to ``size x size``.
A sample without landmarks (NaN) falls back to the region's usual place in an aligned face
(:data:`DEFAULT_CENTRES`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

#: iBUG-68 indices of each region (0-based).
REGION_LANDMARKS: dict[str, tuple[int, ...]] = {
    "left_eye": tuple(range(36, 42)),
    "right_eye": tuple(range(42, 48)),
    "mouth": tuple(range(48, 68)),
}
#: centre (x, y) as fractions of the crop side, used where a sample has no landmarks.
DEFAULT_CENTRES: dict[str, tuple[float, float]] = {"left_eye": (0.35, 0.40), "right_eye": (0.65, 0.40),
                                                   "mouth": (0.50, 0.78)}


def check_regions(regions: Sequence[str]) -> list[str]:
    unknown = [r for r in regions if r not in REGION_LANDMARKS]
    if unknown or not regions:
        raise ValueError(f"regions {list(regions)}: each must be one of {sorted(REGION_LANDMARKS)}")
    return list(regions)


def region_centres(landmarks: Tensor, regions: Sequence[str], height: int, width: int) -> Tensor:
    """``(B, R, 2)`` centres (x, y) in pixels: the mean of each region's landmarks, or its default place."""
    out = []
    for name in check_regions(regions):
        centre = landmarks[:, list(REGION_LANDMARKS[name])].float().mean(dim=1)  # NaN if any point is unknown
        fx, fy = DEFAULT_CENTRES[name]
        default = centre.new_tensor([fx * width, fy * height]).expand_as(centre)
        out.append(torch.where(torch.isfinite(centre).all(dim=1, keepdim=True), centre, default))
    return torch.stack(out, dim=1)


def crop_regions(images: Tensor, landmarks: Tensor | None, regions: Sequence[str], size: int = 32,
                 face_size: int = 128) -> Tensor:
    """Crops ``(B, R, C, size, size)`` of ``images (B, C, H, W)`` around each region of ``landmarks (B, 68, 2)``
    (pixels of ``images``; ``None`` = default places). Boxes leaving the image repeat its border."""
    b, c, h, w = images.shape
    if landmarks is None:
        landmarks = torch.full((b, 68, 2), float("nan"), device=images.device)
    centres = region_centres(landmarks.to(images.device), regions, h, w)  # (B, R, 2)
    scale = w / face_size  # image pixels per output pixel (the paper's 32 px of a 128-px face)
    steps = (torch.arange(size, device=images.device, dtype=torch.float32) + 0.5 - size / 2) * scale
    xs = centres[..., 0:1] + steps  # (B, R, size)
    ys = centres[..., 1:2] + steps
    grid = torch.stack([xs[:, :, None, :].expand(-1, -1, size, -1), ys[:, :, :, None].expand(-1, -1, -1, size)], -1)
    grid = grid / grid.new_tensor([w / 2, h / 2]) - 1  # pixels -> [-1, 1] (align_corners=False)
    r = centres.shape[1]
    flat = images.float().repeat_interleave(r, dim=0)
    out = F.grid_sample(flat, grid.reshape(b * r, size, size, 2), mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out.reshape(b, r, c, size, size)
