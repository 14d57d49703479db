"""A tiny in-memory face-forgery DataModule for core tests: no files, deterministic, learnable.

Each "video" is a sequence of frames of one random smooth texture; fakes carry a blended square patch whose
boundary a CNN can learn quickly. Samples follow the batch contract of lightning_dfd.batch.
"""

from __future__ import annotations

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lightning_dfd.batch import LABEL
from lightning_dfd.methods.base import DetectorModule, Scoring

METHODS = ("Deepfakes", "FaceSwap")


class ToyFaceDataset(Dataset):
    def __init__(self, videos: int, frames: int, size: int, seed: int, prefix: str) -> None:
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for v in range(videos):
            label = v % 2
            method = "real" if label == 0 else METHODS[(v // 2) % len(METHODS)]
            base = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=size, mode="bilinear",
                                                   align_corners=False)[0]
            for f in range(frames):
                img = (base + 0.05 * torch.randn(3, size, size, generator=g)).clamp(0, 1)
                if label:
                    s = size // 3
                    y, x = torch.randint(0, size - s, (2,), generator=g).tolist()
                    img[:, y:y + s, x:x + s] = 0.5 * img[:, y:y + s, x:x + s] + 0.5 * torch.tensor(
                        [0.9, 0.2, 0.2]).view(3, 1, 1)
                self.items.append({"image": (img - 0.5) / 0.25, "label": label, "video_id": f"{prefix}/{v:03d}",
                                   "frame_index": f, "method": method})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


class ToyFaceDataModule(LightningDataModule):
    """Args:
        videos: videos per split.
        frames: frames per video.
        size: image side.
        batch_size: batch size.
        seed: data seed.
    """

    def __init__(self, videos: int = 8, frames: int = 4, size: int = 32, batch_size: int = 8, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.videos, self.frames, self.size, self.batch_size, self.seed = videos, frames, size, batch_size, seed

    def setup(self, stage: str | None = None) -> None:
        if not hasattr(self, "train_set"):
            self.train_set = ToyFaceDataset(self.videos, self.frames, self.size, self.seed, "train")
            self.val_set = ToyFaceDataset(self.videos, self.frames, self.size, self.seed + 1, "val")
            self.test_set = ToyFaceDataset(self.videos, self.frames, self.size, self.seed + 2, "test")

    def train_dataloader(self) -> DataLoader:
        # a permutation that depends only on (seed, epoch): Lightning calls set_epoch, so a resumed run
        # sees exactly the batches an uninterrupted run would.
        sampler = DistributedSampler(self.train_set, num_replicas=1, rank=0, shuffle=True, seed=self.seed)
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=self.batch_size)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=self.batch_size)

    def failed_videos(self) -> dict[str, str]:
        return {"test/no_face_clip": "no_face_video: no face found in any sampled frame"}


class LogitIsImageMean(DetectorModule):
    """A 'model' whose logit is the mean of the image (plus a learnable bias): its scores are known in advance."""

    def __init__(self, scoring: Scoring | None = None) -> None:
        super().__init__(scoring=scoring)
        self.save_hyperparameters()
        self.bias = torch.nn.Parameter(torch.zeros(()))

    def forward(self, images):
        return {"logit": images.flatten(1).mean(1) + self.bias}

    def compute_loss(self, outputs, batch):
        return {"loss": torch.nn.functional.binary_cross_entropy_with_logits(outputs["logit"], batch[LABEL].float())}
