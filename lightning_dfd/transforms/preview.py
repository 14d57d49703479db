"""PNG preview of pseudo-fakes and their LAA-Net targets (``python -m lightning_dfd preview-transforms``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from lightning_dfd.io import atomic_path
from lightning_dfd.transforms.masks import check_landmarks

__all__ = ["preview_from_config", "preview_grid", "preview_transforms"]


def _plane(array: np.ndarray) -> np.ndarray:
    a = np.asarray(array, np.float32)
    return a.reshape(a.shape[-2:]) if a.ndim == 3 and a.shape[0] == 1 else a.squeeze()


def preview_grid(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], heatmaps: Sequence[np.ndarray],
                 consistencies: Sequence[np.ndarray], path: str | os.PathLike,
                 backgrounds: Sequence[np.ndarray] | None = None, dpi: int = 80) -> Path:
    """Write a PNG grid, one row per sample: [real,] pseudo-fake, mask M, heatmap H, self-consistency C.

    Images are HWC uint8 RGB; masks (H, W); heatmaps and consistencies (1, h, w) or (h, w). Returns the path.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(images)
    if n == 0 or not (len(masks) == len(heatmaps) == len(consistencies) == n):
        raise ValueError(f"preview_grid needs equally many (>0) images, masks, heatmaps and consistencies; got "
                         f"{len(images)}, {len(masks)}, {len(heatmaps)}, {len(consistencies)}")
    columns: list[tuple[str, Sequence[np.ndarray], dict]] = []
    if backgrounds is not None:
        columns.append(("real", backgrounds, {}))
    columns += [("pseudo-fake", images, {}), ("mask M", masks, {"cmap": "gray", "vmin": 0, "vmax": 1}),
                ("heatmap H", heatmaps, {"cmap": "magma", "vmin": 0, "vmax": 1}),
                ("consistency C", consistencies, {"cmap": "viridis", "vmin": 0, "vmax": 1})]
    figure, axes = plt.subplots(n, len(columns), figsize=(2.2 * len(columns), 2.2 * n), squeeze=False)
    for row in range(n):
        for col, (title, items, style) in enumerate(columns):
            item = items[row]
            axes[row, col].imshow(item if title in ("real", "pseudo-fake") else _plane(item), **style)
            axes[row, col].set_axis_off()
            if row == 0:
                axes[row, col].set_title(title, fontsize=9)
    figure.tight_layout()
    target = Path(path)
    with atomic_path(target, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)
    plt.close(figure)
    return target


def preview_transforms(samples: Sequence[tuple[np.ndarray, np.ndarray]], path: str | os.PathLike,
                       blend: Literal["sbi", "bi"] = "sbi", heatmap_size: int = 64, seed: int = 0,
                       identities: Sequence[str] | None = None) -> Path:
    """Apply SBI (or BI, using the samples themselves as the landmark index) and the LAA-Net targets to
    ``(image, landmarks)`` samples and write the preview grid PNG to ``path``.

    Args:
        samples: (HWC uint8 RGB crop, (68, 2) landmarks) pairs.
        path: output PNG.
        blend: ``sbi`` (self-blended) or ``bi`` (blended with the nearest other identity among ``samples``).
        heatmap_size: side of the heatmap/consistency targets.
        seed: seed of the transforms (the preview is reproducible).
        identities: one identity per sample for BI (default: each sample its own identity).
    """
    from lightning_dfd.transforms.blended import BlendedImage, LandmarkIndex
    from lightning_dfd.transforms.self_blended import SelfBlendedImage
    from lightning_dfd.transforms.targets import LaaNetTargets

    if not samples:
        raise ValueError("preview_transforms needs at least one (image, landmarks) sample")
    landmarks = [check_landmarks(lm, f"landmarks of sample {i}") for i, (_, lm) in enumerate(samples)]
    names = [str(i) for i in (identities or range(len(samples)))]
    if blend == "sbi":
        transform = SelfBlendedImage()
    elif blend == "bi":
        transform = BlendedImage(LandmarkIndex(np.stack(landmarks), names, [img for img, _ in samples]))
    else:
        raise ValueError(f"blend must be 'sbi' or 'bi', got {blend!r}")
    transform.set_random_seed(seed)
    targets = LaaNetTargets(out_size=heatmap_size, seed=seed)
    reals, fakes, masks, heatmaps, consistencies = [], [], [], [], []
    for (image, _), lm, name in zip(samples, landmarks, names):
        out = transform(image=np.ascontiguousarray(image), keypoints=lm, identity=name)
        made = targets({"mask": out["mask"], "label": out["label"]})
        reals.append(out["background"])
        fakes.append(out["image"])
        masks.append(out["mask"])
        heatmaps.append(made["heatmap"])
        consistencies.append(made["consistency"])
    return preview_grid(fakes, masks, heatmaps, consistencies, path, backgrounds=reals)


def preview_from_config(train_config: Path, out: Path = Path("outputs/preview_transforms.png"), samples: int = 8,
                        data_path: str | None = None, blend: Literal["config", "sbi", "bi"] = "config",
                        seed: int = 0) -> Path:
    """``python -m lightning_dfd preview-transforms --config X``: what the network is taught, as a PNG grid.

    Reads the ``data`` section of a training config (a DataModule with a preprocessed manifest), takes ``samples``
    real training crops with their landmarks, makes their pseudo-fakes (the config's ``pseudo_fake``, SBI when it
    has none) and LAA-Net targets at the DataModule's ``target_map_size``, and writes one row per sample: real,
    pseudo-fake, mask M, heatmap H, self-consistency C.

    Args:
        train_config: a training config (e.g. conf/laanet/ffpp_sbi.yaml) or a data config (conf/data/...);
            ``--config`` on the command line.
        out: PNG to write.
        samples: number of rows.
        data_path: overrides ``data.init_args.path`` (the preprocess output folder).
        blend: ``config`` (use the config's pseudo_fake), ``sbi`` or ``bi``.
        seed: seed of the transforms.
    """
    import cv2
    import yaml
    from jsonargparse import ArgumentParser
    from lightning.pytorch import LightningDataModule

    config = Path(train_config)
    if not config.is_file():
        raise FileNotFoundError(f"config {config} not found")
    document = yaml.safe_load(config.read_text()) or {}
    data = document.get("data", document if "class_path" in document else None)
    if data is None:
        raise ValueError(f"{config} has no `data:` section; pass a training config or a conf/data/*.yaml file")
    if isinstance(data, str):  # `data: ../data/ffpp.yaml`
        data = yaml.safe_load((config.parent / data).read_text())
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningDataModule, "data")
    args = ["--data", yaml.safe_dump(data)]
    if data_path is not None:
        args += ["--data.init_args.path", str(data_path)]
    datamodule = parser.instantiate_classes(parser.parse_args(args)).data
    rows = datamodule.stage_rows()["train"]
    rows = rows[(rows["label"] == 0) & rows["landmarks"].map(lambda v: v is not None and len(v) == 136)]
    if rows.empty:
        raise ValueError(f"no real training crop with landmarks in {datamodule.manifest_path}; preprocess with a "
                         "landmark backend (sidecar, dlib or face_alignment)")
    rows = rows.sample(n=min(samples, len(rows)), random_state=seed)
    pairs, identities = [], []
    for _, row in rows.iterrows():
        image = cv2.imread(str(datamodule.root / row["path"]), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"crop {datamodule.root / row['path']} listed in the manifest cannot be read; "
                                    "re-run preprocess")
        pairs.append((cv2.cvtColor(image, cv2.COLOR_BGR2RGB), np.asarray(row["landmarks"], np.float32).reshape(68, 2)))
        identities.append(str(row["subject"] or row["video_id"]))
    kind = getattr(datamodule, "pseudo_fake", "none") if blend == "config" else blend
    kind = "sbi" if kind == "none" else kind
    heatmap_size = getattr(datamodule, "target_map_size", None) or 64
    path = preview_transforms(pairs, out, blend=kind, heatmap_size=heatmap_size, seed=seed, identities=identities)
    print(f"[lightning-dfd] {len(pairs)} {kind.upper()} samples with their targets -> {path}")
    return path
