"""Injected targets transforms: the DataModule adds what the config's transform makes and knows nothing of LAA-Net."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lightning_dfd.batch import CONSISTENCY, HEATMAP, LABEL, MASK
from lightning_dfd.datamodules import FaceForgeryDataModule, FFPPDataModule
from lightning_dfd.transforms.dense_targets import TargetsTransform, build_targets_transform
from lightning_dfd.transforms.laanet_targets import LAANetTargets
from lightning_dfd.transforms.seeding import reseed_transforms
from tests.helpers.face_manifests import build_manifest, ffpp_videos

LOADER = {"batch_size": 4, "num_workers": 0, "image_size": 32, "frames_per_video": 1}
LAANET = "lightning_dfd.transforms.laanet_targets.LAANetTargets"


class MaskArea(TargetsTransform):
    """A non-LAA-Net targets transform: a (1, s, s) map filled with the blend mask's mean (test double).

    Args:
        side: side of the map.
    """

    keys = ("mask_area",)

    def __init__(self, side: int = 3) -> None:
        self.side = side

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        return {**sample, "mask_area": np.full((1, self.side, self.side), float(np.mean(sample[MASK])), np.float32)}

    def map_side(self, image_size: int) -> int:
        return self.side

    def config(self) -> dict[str, Any]:
        return {"class_path": f"{__name__}.MaskArea", "init_args": {"side": self.side}}


@pytest.fixture(scope="module")
def ffpp_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ffpp_targets")
    build_manifest(root, ffpp_videos({"train": ["000", "001"], "val": ["002"], "test": ["003"]}), frames=2,
                   size=(40, 40))
    return root


def test_laanet_targets_on_a_mask_worked_by_hand():
    # M = 1 on a 2x2 block, 0.5 on the one pixel (5, 3), 0 elsewhere: B = 4 M (1 - M) (Eq. 2) is 1 at (x=5, y=3)
    # and 0 everywhere else, so that pixel is the only vulnerable point (Eq. 3), H peaks there at exactly 1 (Eq. 4),
    # and C = 1 - |1 - B| (Eq. 7, b_uv = 1) equals B: 1 at the point, 0 elsewhere.
    mask = np.zeros((1, 8, 8), np.float32)
    mask[0, 1:3, 1:3] = 1.0
    mask[0, 3, 5] = 0.5
    transform = LAANetTargets(map_size=8, seed=0)
    fake = transform({MASK: mask, LABEL: 1, "other": "kept"})
    expected_c = np.zeros((1, 8, 8), np.float32)
    expected_c[0, 3, 5] = 1.0
    np.testing.assert_allclose(fake[CONSISTENCY], expected_c, atol=1e-6)
    assert fake[HEATMAP].shape == (1, 8, 8) and fake[HEATMAP][0, 3, 5] == pytest.approx(1.0)
    assert np.unravel_index(np.argmax(fake[HEATMAP][0]), (8, 8)) == (3, 5) and fake["other"] == "kept"
    real = transform({MASK: np.zeros((1, 8, 8), np.float32), LABEL: 0})
    assert np.array_equal(real[HEATMAP], np.zeros((1, 8, 8))) and np.array_equal(real[CONSISTENCY], np.ones((1, 8, 8)))


def test_laanet_targets_side_follows_the_stride_or_map_size():
    mask = np.zeros((1, 32, 32), np.float32)
    assert LAANetTargets(stride=4)({MASK: mask, LABEL: 0})[HEATMAP].shape == (1, 8, 8)
    assert LAANetTargets(stride=8)({MASK: mask, LABEL: 0})[CONSISTENCY].shape == (1, 4, 4)
    assert LAANetTargets(stride=4, map_size=5)({MASK: mask, LABEL: 0})[HEATMAP].shape == (1, 5, 5)
    assert LAANetTargets(stride=4).map_side(384) == 96 and LAANetTargets(map_size=7).map_side(384) == 7
    with pytest.raises(KeyError, match="mask"):
        LAANetTargets()({LABEL: 1})
    rebuilt = build_targets_transform(LAANetTargets(stride=8, quantization_levels=None).config())
    assert isinstance(rebuilt, LAANetTargets) and (rebuilt.stride, rebuilt.quantization_levels) == (8, None)


def test_datamodule_exposes_channels_and_target_map_size(ffpp_root):
    plain = FFPPDataModule(str(ffpp_root), **LOADER)
    assert plain.num_channels == 3 and plain.target_map_size is None
    dm = FFPPDataModule(str(ffpp_root), protocol="real_only", pseudo_fake="sbi",
                        targets_transform=LAANetTargets(stride=8), **LOADER)
    assert dm.target_map_size == 4
    from_config = FFPPDataModule(str(ffpp_root), protocol="real_only", pseudo_fake="sbi",
                                 targets_transform={"class_path": LAANET, "init_args": {"map_size": 6}}, **LOADER)
    assert isinstance(from_config.targets_transform, LAANetTargets) and from_config.target_map_size == 6
    assert from_config.hparams["targets_transform"] == LAANetTargets(map_size=6).config()
    with pytest.raises(ValueError, match="pseudo_fake"):
        FFPPDataModule(str(ffpp_root), targets_transform=LAANetTargets(), **LOADER)


def test_any_targets_transform_reaches_the_training_batch_only(ffpp_root):
    dm = FaceForgeryDataModule(str(ffpp_root), pseudo_fake="sbi", targets_transform=MaskArea(side=3), **LOADER)
    assert dm.target_map_size == 3
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    area = batch["mask_area"]
    assert area.shape == (4, 1, 3, 3) and area.dtype == torch.float32
    assert torch.allclose(area[:, 0, 0, 0], batch[MASK].mean(dim=(1, 2, 3)), atol=1e-6)  # after augmentation
    assert area[:2].eq(0).all() and (area[2:] > 0).all()  # reals first (zero mask), then pseudo-fakes
    assert HEATMAP not in batch and CONSISTENCY not in batch
    assert "mask_area" not in next(iter(dm.val_dataloader()))


def test_laanet_targets_are_reseeded_per_stream(ffpp_root):
    dm = FFPPDataModule(str(ffpp_root), protocol="real_only", pseudo_fake="sbi", targets_transform=LAANetTargets(),
                        **LOADER)
    dataset = dm.dataset("train")
    transform = dataset.pipeline.pair.targets
    assert isinstance(transform, LAANetTargets) and transform.seed is not None  # reseeded from the module's seed
    reseed_transforms(dataset, 1)
    first = transform.seed
    reseed_transforms(dataset, 2)
    assert transform.seed != first
    reseed_transforms(dataset, 1)
    assert transform.seed == first
