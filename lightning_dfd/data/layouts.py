"""Indexers of the official raw dataset layouts (docs/architecture.md §3): root folder -> list of :class:`VideoRecord`.

Every indexer converts labels to OUR convention, 0 = real / bona fide, 1 = fake / attack (-1 unknown), and
raises ``FileNotFoundError`` naming the expected split / metadata / list file when it is missing.
"""

from __future__ import annotations

import csv
import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lightning_dfd.data.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES

FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter", "DeepFakeDetection")
FFPP_COMPRESSIONS = ("raw", "c23", "c40")
FFPP_SPLITS = ("train", "val", "test")
CASIA_LISTS = {"train": "train_list.txt", "val": "val_private_list.txt", "test": "test_private_list.txt"}


@dataclass(frozen=True)
class VideoRecord:
    """One raw video (or one image sample) of a dataset, before preprocessing.

    Attributes:
        dataset: dataset name as written in the manifest (``ffpp``, ``celebdf_v2``, ...).
        video_id: unique, stable id (``Deepfakes/c23/000_003``); crops are stored under it.
        source: file path relative to the dataset root (POSIX separators).
        label: 0 real / bona fide, 1 fake / attack, -1 unknown.
        method: manipulation name or ``real`` (CASIA-SURF: ``attack_<k>`` / ``real``).
        attack_type: CASIA-SURF attack type 1..6 (seed 001, Table 1), 0 otherwise.
        compression: ``raw`` / ``c23`` / ``c40`` for FF++, "" elsewhere.
        split: ``train`` / ``val`` / ``test``, or "" when the dataset does not assign one.
        subject: identity for subject-disjoint folds ("" when unknown).
        extra_paths: further files of the sample relative to the root (CASIA-SURF ``depth``, ``ir``).
    """

    dataset: str
    video_id: str
    source: str
    label: int
    method: str = ""
    attack_type: int = 0
    compression: str = ""
    split: str = ""
    subject: str = ""
    extra_paths: dict[str, str] = field(default_factory=dict)


def _missing(path: Path, what: str) -> FileNotFoundError:
    return FileNotFoundError(f"{path} not found: {what}")


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _files(folder: Path, suffixes: frozenset[str]) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


# --------------------------------------------------------------------------------------------------- FF++
def read_ffpp_splits(root: Path) -> dict[str, str]:
    """Map each FF++ video name (``000``, ``000_003``) to its split from ``splits/{train,val,test}.json``.

    A pair ``[t, s]`` puts the originals ``t`` and ``s`` and the fakes ``t_s`` and ``s_t`` in that split.
    """
    split_of: dict[str, str] = {}
    for split in FFPP_SPLITS:
        path = root / "splits" / f"{split}.json"
        if not path.is_file():
            raise _missing(path, f"the official FaceForensics++ {split} split (a JSON list of [target, source] "
                                 f"3-digit id pairs, from the FaceForensics++ repository's dataset/splits/).")
        try:
            pairs = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); expected a list of [target, source] pairs") from err
        for pair in pairs:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise ValueError(f"{path}: expected [target, source] pairs, found {pair!r}")
            target, source = (str(v) for v in pair)
            for name in (target, source, f"{target}_{source}", f"{source}_{target}"):
                split_of[name] = split
    return split_of


def index_ffpp(root: str | os.PathLike, compressions: Sequence[str] | None = None,
               methods: Sequence[str] | None = None, originals: Sequence[str] = ("youtube", "actors"),
               dataset: str = "ffpp") -> list[VideoRecord]:
    """FaceForensics++: ``original_sequences/{youtube,actors}/<c>/videos/*.mp4`` and
    ``manipulated_sequences/<method>/<c>/videos/*.mp4``, split by ``splits/*.json``.

    Args:
        root: dataset root.
        compressions: any of ``raw``, ``c23``, ``c40``; default: every one present on disk.
        methods: manipulations to include (default: all present of Deepfakes, Face2Face, FaceSwap,
            NeuralTextures, FaceShifter, DeepFakeDetection); pass ``[]`` for originals only.
        originals: which original folders to include (``actors`` are DeepFakeDetection's sources; they and
            DeepFakeDetection fakes are outside the official split: split "").
    """
    root = Path(root)
    split_of = read_ffpp_splits(root)
    compressions = list(compressions) if compressions is not None else list(FFPP_COMPRESSIONS)
    unknown = set(compressions) - set(FFPP_COMPRESSIONS)
    if unknown:
        raise ValueError(f"unknown FF++ compressions {sorted(unknown)}; choose from {FFPP_COMPRESSIONS}")
    methods = list(methods) if methods is not None else list(FFPP_METHODS)
    unknown = set(methods) - set(FFPP_METHODS)
    if unknown:
        raise ValueError(f"unknown FF++ methods {sorted(unknown)}; choose from {FFPP_METHODS}")
    records: list[VideoRecord] = []
    sources = [("original_sequences", origin, "real", 0) for origin in originals]
    sources += [("manipulated_sequences", method, method, 1) for method in methods]
    for top, folder, method, label in sources:
        for compression in compressions:
            for path in _files(root / top / folder / compression / "videos", VIDEO_SUFFIXES):
                name = path.stem
                subject = name.split("__")[0].split("_")[0]
                records.append(VideoRecord(
                    dataset=dataset, video_id=f"{folder}/{compression}/{name}", source=_rel(path, root), label=label,
                    method=method, compression=compression, split=split_of.get(name, ""), subject=subject))
    if not records:
        raise FileNotFoundError(
            f"no FF++ videos under {root}: expected original_sequences/youtube/<c23|c40|raw>/videos/NNN.mp4 and "
            f"manipulated_sequences/<method>/<c23|c40|raw>/videos/NNN_MMM.mp4 (compressions {compressions}).")
    return records


# ---------------------------------------------------------------------------------------------- Celeb-DF
def index_celebdf(root: str | os.PathLike, dataset: str = "celebdf_v2",
                  test_list: str = "List_of_testing_videos.txt") -> list[VideoRecord]:
    """Celeb-DF v1/v2: ``Celeb-real/``, ``YouTube-real/``, ``Celeb-synthesis/``; videos listed in
    ``List_of_testing_videos.txt`` (lines ``<1 real | 0 fake> <folder>/<file>.mp4``) form the test split,
    the rest train. The list's label is cross-checked against the folder."""
    root = Path(root)
    list_path = root / test_list
    if not list_path.is_file():
        raise _missing(list_path, "Celeb-DF's list of test videos (lines '1 YouTube-real/00170.mp4', 1 = real, "
                                  "0 = fake), shipped with the dataset.")
    listed: dict[str, int] = {}
    for number, line in enumerate(list_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ("0", "1"):
            raise ValueError(f"{list_path}:{number}: expected '<1|0> <folder>/<video>.mp4', found {line!r}")
        listed[parts[1]] = 0 if parts[0] == "1" else 1  # the list's 1 = real -> our 0
    folders = {"Celeb-real": ("real", 0), "YouTube-real": ("real", 0), "Celeb-synthesis": ("Celeb-synthesis", 1)}
    records: list[VideoRecord] = []
    for folder, (method, label) in folders.items():
        for path in _files(root / folder, VIDEO_SUFFIXES):
            rel = _rel(path, root)
            if rel in listed and listed[rel] != label:
                raise ValueError(f"{list_path} labels {rel} as {'real' if listed[rel] == 0 else 'fake'} but it "
                                 f"lies in {folder}/: the list's convention is 1 = real, 0 = fake")
            subject = path.stem.split("_")[0] if folder != "YouTube-real" else ""
            records.append(VideoRecord(dataset=dataset, video_id=f"{folder}/{path.stem}", source=rel, label=label,
                                       method=method, split="test" if rel in listed else "train", subject=subject))
    if not records:
        raise FileNotFoundError(f"no Celeb-DF videos under {root}: expected Celeb-real/, YouTube-real/ and "
                                f"Celeb-synthesis/ folders of .mp4 files.")
    absent = sorted(set(listed) - {r.source for r in records})
    if absent:
        warnings.warn(f"{len(absent)} videos of {list_path} are not on disk (first: {absent[0]})", stacklevel=2)
    return records


# -------------------------------------------------------------------------------------------------- DFDC
def index_dfdc(root: str | os.PathLike, val_parts: Sequence[int] = (), dataset: str = "dfdc") -> list[VideoRecord]:
    """DFDC (full): ``dfdc_train_part_K/metadata.json`` (``file.mp4 -> {label: REAL|FAKE, original, split}``)
    gives split train (parts in ``val_parts``: val); ``test/*.mp4`` with ``test/labels.csv``
    (``filename,label``, 1 = fake) gives split test. Subject = the original video (so a real and its fakes
    share it)."""
    root = Path(root)
    records: list[VideoRecord] = []
    parts = sorted((p for p in root.glob("dfdc_train_part_*") if p.is_dir()),
                   key=lambda p: int(re.sub(r"\D", "", p.name.rsplit("_", 1)[-1]) or -1))
    for part in parts:
        meta_path = part / "metadata.json"
        if not meta_path.is_file():
            raise _missing(meta_path, "DFDC's per-part metadata (JSON: 'file.mp4' -> {label: REAL|FAKE, original, "
                                      "split}), shipped inside each dfdc_train_part_K folder.")
        metadata = json.loads(meta_path.read_text())
        number = int(re.sub(r"\D", "", part.name.rsplit("_", 1)[-1]) or -1)
        split = "val" if number in set(val_parts) else "train"
        for name in sorted(metadata):
            entry = metadata[name]
            label_text = str(entry.get("label", "")).upper()
            if label_text not in ("REAL", "FAKE"):
                raise ValueError(f"{meta_path}: {name} has label {entry.get('label')!r}, expected REAL or FAKE")
            label = int(label_text == "FAKE")
            original = entry.get("original") or name
            records.append(VideoRecord(
                dataset=dataset, video_id=f"{part.name}/{Path(name).stem}", source=_rel(part / name, root),
                label=label, method="fake" if label else "real", split=split, subject=Path(original).stem))
    test_dir = root / "test"
    if test_dir.is_dir():
        labels_path = test_dir / "labels.csv"
        if not labels_path.is_file():
            raise _missing(labels_path, "DFDC test labels (CSV with header 'filename,label', 1 = fake, 0 = real).")
        with open(labels_path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        if rows and not {"filename", "label"} <= set(rows[0]):
            raise ValueError(f"{labels_path}: expected columns 'filename,label', found {list(rows[0])}")
        for row in sorted(rows, key=lambda r: r["filename"]):
            label = int(float(row["label"]) >= 0.5)
            name = row["filename"]
            records.append(VideoRecord(dataset=dataset, video_id=f"test/{Path(name).stem}",
                                       source=_rel(test_dir / name, root), label=label,
                                       method="fake" if label else "real", split="test", subject=""))
    if not records:
        raise FileNotFoundError(f"no DFDC data under {root}: expected dfdc_train_part_K/metadata.json folders "
                                f"and/or test/ with test/labels.csv.")
    return records


def index_dfdc_preview(root: str | os.PathLike, dataset: str = "dfdc_preview") -> list[VideoRecord]:
    """DFDC preview: ``dataset.json`` maps relative path -> ``{label: real|fake, set: train|test, target_id}``;
    method = the top folder of fakes (``method_A``, ``method_B``)."""
    root = Path(root)
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise _missing(meta_path, "the DFDC preview index (JSON: relative path -> {label: real|fake, "
                                  "set: train|test, target_id}), shipped at the dataset root.")
    metadata = json.loads(meta_path.read_text())
    records = []
    for rel in sorted(metadata):
        entry = metadata[rel]
        label_text = str(entry.get("label", "")).lower()
        if label_text not in ("real", "fake"):
            raise ValueError(f"{meta_path}: {rel} has label {entry.get('label')!r}, expected real or fake")
        label = int(label_text == "fake")
        split = str(entry.get("set", "")).lower()
        split = {"train": "train", "test": "test", "val": "val", "validation": "val"}.get(split, "")
        method = Path(rel).parts[0] if label else "real"
        records.append(VideoRecord(dataset=dataset, video_id=Path(rel).with_suffix("").as_posix(),
                                   source=Path(rel).as_posix(), label=label, method=method, split=split,
                                   subject=str(entry.get("target_id", ""))))
    return records


# -------------------------------------------------------------------------------------------- CASIA-SURF
def casia_attack_type(color_path: str) -> int:
    """Attack type from the ``NN_*.rssdk`` folder of a CASIA-SURF path (1..6, seed 001 Table 1); 0 for
    ``real.rssdk`` or when the path has no such folder (challenge val/test lists)."""
    for part in Path(color_path).parts:
        if part.endswith(".rssdk"):
            match = re.match(r"^(\d{2})", part)
            return int(match.group(1)) if match else 0
    return 0


def _casia_subject(color_path: str) -> str:
    parts = Path(color_path).parts
    for k, part in enumerate(parts):
        if part.endswith(".rssdk"):
            return parts[k - 1] if k > 0 else ""
    return parts[-2] if len(parts) > 1 else ""


def index_casia_surf(root: str | os.PathLike, lists: dict[str, str] | None = None,
                     dataset: str = "casia_surf") -> list[VideoRecord]:
    """CASIA-SURF (CVPR'19 challenge): list files with lines ``color depth ir label`` where the list's label
    is **1 = real, 0 = attack** (converted to ours). One record per sample; ``extra_paths`` holds depth and IR.

    Args:
        lists: split -> list file relative to root; default ``train_list.txt``, ``val_private_list.txt``,
            ``test_private_list.txt``. Every named file must exist.
    """
    root = Path(root)
    lists = dict(CASIA_LISTS if lists is None else lists)
    records = []
    for split, name in lists.items():
        list_path = root / name
        if not list_path.is_file():
            raise _missing(list_path, f"the CASIA-SURF {split} list (lines 'color_path depth_path ir_path label', "
                                      f"label 1 = real, 0 = attack), shipped with the challenge data; pass "
                                      f"`lists` to name other files.")
        for number, line in enumerate(list_path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 4 or parts[3] not in ("0", "1"):
                raise ValueError(f"{list_path}:{number}: expected 'color depth ir <1 real|0 attack>', found {line!r}")
            color, depth, ir, casia_label = parts
            label = 0 if casia_label == "1" else 1  # CASIA's 1 = real -> our 0
            attack_type = casia_attack_type(color) if label else 0
            if label == 0 and casia_attack_type(color):
                raise ValueError(f"{list_path}:{number}: labelled real (1) but {color} lies in an attack folder")
            method = "real" if label == 0 else (f"attack_{attack_type}" if attack_type else "attack")
            records.append(VideoRecord(
                dataset=dataset, video_id=Path(color).with_suffix("").as_posix(), source=color, label=label,
                method=method, attack_type=attack_type, split=split, subject=_casia_subject(color),
                extra_paths={"depth": depth, "ir": ir}))
    return records


# ------------------------------------------------------------------------------------------------ folder
def index_folder(root: str | os.PathLike, dataset: str = "folder", images: bool = True) -> list[VideoRecord]:
    """Any folder tree of videos (and images, each one a one-frame sample). Label from the nearest parent
    folder named ``real`` (0) or ``fake`` (1), case-insensitive; else -1 (unknown)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"folder dataset root {root} does not exist")
    suffixes = VIDEO_SUFFIXES | (IMAGE_SUFFIXES if images else frozenset())
    records = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        label = -1
        for part in reversed(rel.parts[:-1]):
            if part.lower() in ("real", "fake"):
                label = int(part.lower() == "fake")
                break
        method = {0: "real", 1: "fake", -1: ""}[label]
        records.append(VideoRecord(dataset=dataset, video_id=rel.with_suffix("").as_posix(), source=rel.as_posix(),
                                   label=label, method=method))
    return records


INDEXERS: dict[str, Callable[..., list[VideoRecord]]] = {
    "ffpp": index_ffpp,
    "celebdf_v1": lambda root, **kw: index_celebdf(root, dataset="celebdf_v1", **kw),
    "celebdf_v2": lambda root, **kw: index_celebdf(root, dataset="celebdf_v2", **kw),
    "celebdf": lambda root, **kw: index_celebdf(root, dataset="celebdf_v2", **kw),
    "dfdc": index_dfdc,
    "dfdc_preview": index_dfdc_preview,
    "casia_surf": index_casia_surf,
    "folder": index_folder,
}


def index_dataset(name: str, root: str | os.PathLike, **options) -> list[VideoRecord]:
    """Index a raw dataset by name (``ffpp``, ``celebdf_v1``, ``celebdf_v2`` (= ``celebdf``), ``dfdc``,
    ``dfdc_preview``, ``casia_surf``, ``folder``) with the indexer's options; records sorted by video_id."""
    if name not in INDEXERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(INDEXERS)}")
    if not Path(root).is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist or is not a folder")
    try:
        records = INDEXERS[name](Path(root), **options)
    except TypeError as err:
        if "unexpected keyword" in str(err):
            raise TypeError(f"dataset {name!r} does not take option(s) {sorted(options)}: {err}") from err
        raise
    counts = Counter(r.video_id for r in records)
    if len(counts) != len(records):
        duplicates = sorted(i for i, n in counts.items() if n > 1)
        raise ValueError(f"dataset {name!r} at {root}: duplicate video ids {duplicates[:5]}")
    return sorted(records, key=lambda r: r.video_id)
