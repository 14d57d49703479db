"""CASIA-SURF (CVPR'19 challenge, Zhang et al. 2019): RGB / Depth / IR face crops, lists and the folds of seed 001.

``image`` stacks the chosen ``modalities`` along channels, 3 per modality in the given order (RGB+Depth+IR gives
C = 9); the depth and IR images come from the manifest's ``extra_paths`` and share every geometric augmentation
with the RGB crop. Splits follow the challenge lists (``split`` column). Folds replace train/val inside the
training list (test stays the test list):

* ``fold_protocol='attack'`` (seed 001, Sec. 4.1 and 5.4): the training attack types (4, 5, 6; Table 1) give
  three folds; fold ``k`` trains on the other two types and validates on ``fold_attack_types[k]``. Bona fide
  samples are assigned by subject to one of the three folds at random (seeded): fold ``k`` validates on the
  reals of its subjects and trains on the rest.
* ``fold_protocol='subject'`` (seed 001, Sec. 5.3 baseline): subjects are shuffled (seeded) into ``num_folds``
  groups; fold ``k`` validates on group ``k`` (all its samples, real and attack) and trains on the rest.
* ``fold_protocol='none'``: the train and val lists as given.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from lightning_dfd.datamodules.base import FaceForgeryDataModule, subject_groups

CASIA_MODALITIES = ("rgb", "depth", "ir")
TRAIN_ATTACK_TYPES = (4, 5, 6)


def subject_folds(subjects: pd.Series, num_folds: int, seed: int) -> pd.Series:
    """Fold (0..num_folds-1) of every row: unique subjects shuffled with ``seed``, dealt round-robin."""
    unique = np.array(sorted(subjects.astype(str).unique()), dtype=object)
    order = np.random.default_rng(seed).permutation(unique)
    fold_of = {subject: position % num_folds for position, subject in enumerate(order.tolist())}
    return subjects.astype(str).map(fold_of).astype(int)


class CasiaSurfDataModule(FaceForgeryDataModule):
    """CASIA-SURF multi-modal anti-spoofing crops from a preprocess manifest.

    Args:
        path: manifest file or preprocess output folder.
        modalities: subset of ``rgb``, ``depth``, ``ir`` stacked along channels in this order.
        fold_protocol: ``none``, ``attack`` (3 attack-specific folds) or ``subject`` (subject k-fold).
        fold: which fold is validated on (0-based).
        num_folds: number of subject folds (``fold_protocol='subject'``).
        fold_attack_types: the training attack types, one per attack fold (seed 001 Table 1: 4, 5, 6).
        **kwargs: every other argument of :class:`FaceForgeryDataModule` (``batch_size``, ``image_size``,
            ``pseudo_fake``, ``targets_transform``, ``balance``, ...); the CLI lists and checks them all.
    """

    dataset_names = ("casia_surf",)

    def __init__(
        self,
        path: str,
        modalities: tuple[str, ...] = CASIA_MODALITIES,
        fold_protocol: Literal["none", "attack", "subject"] = "none",
        fold: int = 0,
        num_folds: int = 5,
        fold_attack_types: tuple[int, ...] = TRAIN_ATTACK_TYPES,
        **kwargs: Any,
    ) -> None:
        super().__init__(path=path, **kwargs)
        modalities = tuple(modalities)
        unknown = sorted(set(modalities) - set(CASIA_MODALITIES))
        if not modalities or unknown or len(set(modalities)) != len(modalities):
            raise ValueError(f"modalities must be distinct names from {list(CASIA_MODALITIES)}, got {list(modalities)}")
        if fold_protocol not in ("none", "attack", "subject"):
            raise ValueError(f"fold_protocol must be none, attack or subject, got {fold_protocol!r}")
        folds = len(fold_attack_types) if fold_protocol == "attack" else num_folds
        if fold_protocol != "none" and not 0 <= fold < folds:
            raise ValueError(f"fold must be in [0, {folds}) for fold_protocol={fold_protocol!r}, got {fold}")
        if fold_protocol == "subject" and num_folds < 2:
            raise ValueError(f"num_folds must be >= 2, got {num_folds}")
        self.modalities = modalities
        self.fold_protocol = fold_protocol
        self.fold = fold
        self.num_folds = num_folds
        self.fold_attack_types = tuple(int(t) for t in fold_attack_types)

    def split_rows(self, rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
        split = rows["split"].astype(str)
        test = rows[split == "test"]
        if self.fold_protocol == "none":
            out = {"train": rows[split == "train"], "val": rows[split == "val"], "test": test}
        elif self.fold_protocol == "subject":
            train_list = rows[split == "train"]
            fold_of = subject_folds(subject_groups(train_list), self.num_folds, self.seed)
            out = {"train": train_list[fold_of != self.fold], "val": train_list[fold_of == self.fold], "test": test}
        else:
            out = {**self._attack_fold(rows[split == "train"]), "test": test}
        out["predict"] = out["test"]
        return out

    def _attack_fold(self, train_list: pd.DataFrame) -> dict[str, pd.DataFrame]:
        real = train_list[train_list["label"] == 0]
        attacks = train_list[train_list["label"] == 1]
        present = sorted(set(attacks["attack_type"].astype(int)))
        missing = sorted(set(self.fold_attack_types) - set(present))
        if missing:
            raise ValueError(f"manifest {self.manifest_path}: the training list has attack types {present}, "
                             f"the attack folds need {list(self.fold_attack_types)} (missing {missing}); "
                             f"attack types come from the NN_*.rssdk folders of the list's paths.")
        held_type = self.fold_attack_types[self.fold]
        kind = attacks["attack_type"].astype(int)
        real_fold = subject_folds(subject_groups(real), len(self.fold_attack_types), self.seed)
        train = pd.concat([real[real_fold != self.fold],
                           attacks[kind.isin(self.fold_attack_types) & (kind != held_type)]])
        val = pd.concat([real[real_fold == self.fold], attacks[kind == held_type]])
        return {"train": train, "val": val}
