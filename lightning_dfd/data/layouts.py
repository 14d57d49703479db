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
from dataclasses import dataclass, field, replace
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


# ------------------------------------------------------------------------------------------------- UADFV
UADFV_SPLIT_FILE = "uadfv_split.json"


def uadfv_subject_split(subjects: Sequence[str], seed: int, test_fraction: float = 0.2) -> dict[str, list[str]]:
    """Seeded, subject-disjoint train / test split of UADFV subjects (DefakeHop, seed 000 §4.1: UADFV has no
    official split, "we randomly select 80% for training and 20% for testing"): the sorted subjects are
    permuted with ``numpy.random.default_rng(seed)`` and the first ``round(test_fraction * n)`` (at least one,
    never all) form the test split."""
    import numpy as np

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"UADFV test_fraction must lie in (0, 1), got {test_fraction}")
    unique = sorted(set(subjects))
    if len(unique) < 2:
        raise ValueError(f"a UADFV train/test split needs at least 2 subjects, found {len(unique)}")
    count = min(max(1, round(test_fraction * len(unique))), len(unique) - 1)
    order = [unique[int(i)] for i in np.random.default_rng(seed).permutation(len(unique))]
    return {"train": sorted(order[count:]), "test": sorted(order[:count])}


def read_uadfv_split(path: Path) -> dict[str, str]:
    """Subject -> split from a UADFV split file (JSON ``{"seed", "test_fraction", "train": [...], "test": [...]}``)."""
    if not path.is_file():
        raise _missing(path, "the UADFV split file (JSON {seed, test_fraction, train: [subjects], test: "
                             "[subjects]}); omit `split_file` to have it written from `seed`.")
    try:
        content = json.loads(path.read_text())
        split_of = {str(s): split for split in ("train", "test") for s in content[split]}
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a UADFV split file ({err}); expected JSON with 'train' and 'test' lists "
                         f"of subject ids; delete it to have it rewritten from the seed") from err
    return split_of


def index_uadfv(root: str | os.PathLike, seed: int = 0, test_fraction: float = 0.2,
                split_file: str | None = None, dataset: str = "uadfv") -> list[VideoRecord]:
    """UADFV (Yang et al. 2019): ``real/NNNN.mp4`` and ``fake/NNNN_fake.mp4`` (49 + 49; the fake ``NNNN_fake`` is
    made from the real ``NNNN``, so both share subject ``NNNN``). The layout is that of the release (folders
    ``real`` / ``fake``, fakes suffixed ``_fake``); any other stem in ``fake/`` keeps its own name as subject.

    No official split exists; the split is a seeded, subject-disjoint ``1 - test_fraction`` / ``test_fraction``
    one (:func:`uadfv_subject_split`, DefakeHop's 80 / 20) stored in a split file, so it is reproducible and
    can be shared: ``split_file`` (relative to ``root`` or absolute) is read when given (it must exist);
    otherwise ``<root>/uadfv_split.json`` is read, or written from ``seed`` when absent (and rewritten when its
    seed or fraction differ from the ones asked for). Subjects missing from a given file get split "".
    """
    root = Path(root)
    records: list[VideoRecord] = []
    for folder, label in (("real", 0), ("fake", 1)):
        for path in _files(root / folder, VIDEO_SUFFIXES):
            subject = path.stem[:-len("_fake")] if label and path.stem.endswith("_fake") else path.stem
            records.append(VideoRecord(dataset=dataset, video_id=f"{folder}/{path.stem}", source=_rel(path, root),
                                       label=label, method="fake" if label else "real", subject=subject))
    if not records:
        raise FileNotFoundError(f"no UADFV videos under {root}: expected real/NNNN.mp4 and fake/NNNN_fake.mp4")
    if split_file is not None:
        path = Path(split_file) if Path(split_file).is_absolute() else root / split_file
        split_of = read_uadfv_split(path)
    else:
        path = root / UADFV_SPLIT_FILE
        wanted = {"seed": int(seed), "test_fraction": float(test_fraction)}
        current = json.loads(path.read_text()) if path.is_file() else {}
        if {k: current.get(k) for k in wanted} != wanted:
            from lightning_dfd.io import write_text_atomic

            split = uadfv_subject_split([r.subject for r in records], seed, test_fraction)
            try:
                write_text_atomic(path, json.dumps({**wanted, **split}, indent=1) + "\n")
            except OSError as err:
                raise OSError(f"cannot write the UADFV split file {path} ({err}); write it elsewhere with "
                              f"uadfv_subject_split and pass dataset_options {{split_file: PATH}}") from err
        split_of = read_uadfv_split(path)
    return [replace(r, split=split_of.get(r.subject, "")) for r in records]


# ---------------------------------------------------------------------------------------------------- DFD
def index_dfd(root: str | os.PathLike, compressions: Sequence[str] | None = None,
              dataset: str = "dfd") -> list[VideoRecord]:
    """Google's DeepFakeDetection (DFD) in the FaceForensics++ layout (FaceForensics repository,
    ``dataset/DeepFakeDetection/README.md`` and ``download-FaceForensics.py``, datasets ``DeepFakeDetection`` /
    ``DeepFakeDetection_original``): ``original_sequences/actors/<c>/videos/AA__<scene>.mp4`` (real) and
    ``manipulated_sequences/DeepFakeDetection/<c>/videos/AA_BB__<scene>__<code>.mp4`` (fake: actor AA's video
    with BB's face). DFD has no official split; every video is split ``test`` (LAA-Net, seed 003 Table 1, tests on
    all of it). Subject = the target actor ``AA``. FF++'s ``splits/*.json`` are not needed.
    """
    root = Path(root)
    compressions = list(compressions) if compressions is not None else list(FFPP_COMPRESSIONS)
    unknown = set(compressions) - set(FFPP_COMPRESSIONS)
    if unknown:
        raise ValueError(f"unknown DFD compressions {sorted(unknown)}; choose from {FFPP_COMPRESSIONS}")
    records: list[VideoRecord] = []
    sources = (("original_sequences/actors", "actors", "real", 0),
               ("manipulated_sequences/DeepFakeDetection", "DeepFakeDetection", "DeepFakeDetection", 1))
    for top, folder, method, label in sources:
        for compression in compressions:
            for path in _files(root / top / compression / "videos", VIDEO_SUFFIXES):
                subject = path.stem.split("__")[0].split("_")[0]
                records.append(VideoRecord(
                    dataset=dataset, video_id=f"{folder}/{compression}/{path.stem}", source=_rel(path, root),
                    label=label, method=method, compression=compression, split="test", subject=subject))
    if not records:
        raise FileNotFoundError(
            f"no DFD videos under {root}: expected original_sequences/actors/<c23|c40|raw>/videos/*.mp4 and "
            f"manipulated_sequences/DeepFakeDetection/<c23|c40|raw>/videos/*.mp4 (compressions {compressions}).")
    return records


# ------------------------------------------------------------------------------------- DeeperForensics-1.0
DEEPER_VARIANTS = ("end_to_end", "reenact_postprocess", "end_to_end_level_1", "end_to_end_level_2",
                   "end_to_end_level_3", "end_to_end_level_4", "end_to_end_level_5", "end_to_end_random_level",
                   "end_to_end_mix_2_distortions", "end_to_end_mix_3_distortions", "end_to_end_mix_4_distortions")
DEEPER_REALS = "original_sequences/youtube/c23/videos"


def index_deeperforensics(root: str | os.PathLike, variants: Sequence[str] | None = None,
                          dataset: str = "deeperforensics") -> list[VideoRecord]:
    """DeeperForensics-1.0 (Jiang et al. 2020), layout of its ``dataset/README.md`` (EndlessSora/DeeperForensics-1.0):
    ``manipulated_videos/<variant>/<target>_<source>.mp4`` (11 variants: ``end_to_end``, ``reenact_postprocess``,
    ``end_to_end_level_<1-5>``, ``end_to_end_random_level``, ``end_to_end_mix_<2-4>_distortions``; the same 1000
    names in each) and ``lists/splits/{train,val,test}.txt`` (one fake video name per line, 703 : 96 : 21 ...).

    The real ("target") videos are FF++'s c23 YouTube originals, not shipped with the dataset: they are read
    from ``<root>/original_sequences/youtube/c23/videos/<target>.mp4`` (link FF++'s folder there). A real video
    takes the split of the fakes made from it ("the corresponding real videos ... using the first three digit
    ID", README); reals no split lists are left out. ``method`` = the variant folder (the perturbation kind
    kept per sample, for per-variant metrics); subject = the target id, so a real and its fakes stay together.
    """
    root = Path(root)
    split_of: dict[str, str] = {}
    for split in FFPP_SPLITS:
        path = root / "lists" / "splits" / f"{split}.txt"
        if not path.is_file():
            raise _missing(path, f"the DeeperForensics-1.0 {split} split (one manipulated video name "
                                 f"'<target>_<source>.mp4' per line), shipped in the dataset's lists/splits/.")
        for line in path.read_text().splitlines():
            if line.strip():
                split_of[Path(line.strip()).stem] = split
    present = sorted(p.name for p in (root / "manipulated_videos").iterdir()) if (
        root / "manipulated_videos").is_dir() else []
    chosen = list(variants) if variants is not None else [v for v in DEEPER_VARIANTS if v in present]
    unknown = sorted(set(chosen) - set(DEEPER_VARIANTS))
    if unknown:
        raise ValueError(f"unknown DeeperForensics-1.0 variants {unknown}; choose from {list(DEEPER_VARIANTS)}")
    records: list[VideoRecord] = []
    target_split: dict[str, str] = {}
    for variant in chosen:
        for path in _files(root / "manipulated_videos" / variant, VIDEO_SUFFIXES):
            target = path.stem.split("_")[0]
            split = split_of.get(path.stem, "")
            if split:
                if target_split.setdefault(target, split) != split:
                    raise ValueError(f"DeeperForensics-1.0 lists/splits put target {target} in both "
                                     f"{target_split[target]} and {split}: its real video would be in two splits")
            records.append(VideoRecord(dataset=dataset, video_id=f"{variant}/{path.stem}", source=_rel(path, root),
                                       label=1, method=variant, split=split, subject=target))
    if not records:
        raise FileNotFoundError(f"no DeeperForensics-1.0 videos under {root}/manipulated_videos/<variant>/ "
                                f"(variants {chosen}).")
    reals_dir = root / DEEPER_REALS
    if not reals_dir.is_dir():
        raise _missing(reals_dir, "the real (target) videos of DeeperForensics-1.0: FF++'s c23 YouTube originals "
                                  "NNN.mp4 (not shipped with the dataset; link FF++'s folder there).")
    for path in _files(reals_dir, VIDEO_SUFFIXES):
        if path.stem in target_split:
            records.append(VideoRecord(dataset=dataset, video_id=f"real/{path.stem}", source=_rel(path, root),
                                       label=0, method="real", compression="c23", split=target_split[path.stem],
                                       subject=path.stem))
    return records


# ------------------------------------------------------------------------------------------ WildDeepfake
WILDDEEPFAKE_PARTS = {("real", "train"): 0, ("real", "test"): 0, ("fake", "train"): 1, ("fake", "test"): 1}


def wilddeepfake_part_dir(root: Path, kind: str, split: str) -> Path | None:
    """``<root>/<kind>_<split>`` (the folders of the released archives), or ``<root>/<kind> <split>`` as the
    README spells them; None when neither exists."""
    for name in (f"{kind}_{split}", f"{kind} {split}"):
        if (root / name).is_dir():
            return root / name
    return None


def index_wilddeepfake(root: str | os.PathLike, dataset: str = "wilddeepfake") -> list[VideoRecord]:
    """WildDeepfake (Zi et al. 2020), layout of its README (OpenTAI/wild-deepfake): ``{real,fake}_{train,test}/``
    holding ``K.tar.gz`` archives, "in each tar.gz file, there will be several folders containing face images,
    and the images in each folder represent a face sequence. The image name in the folder represents the frame
    number". This reads the archives *unpacked* (``K/`` beside ``K.tar.gz``, or only ``K/``): preprocess unpacks
    each archive once, resumably, into its output (:func:`lightning_dfd.data.preprocess.unpack_wilddeepfake`).

    One record per face sequence (a folder of images, at any depth inside ``K/``): ``source`` is that folder,
    ``video_id`` ``<kind>_<split>/K/<folder>``; subject "" (the release names no identities).
    """
    root = Path(root)
    records: list[VideoRecord] = []
    found_any = False
    for (kind, split), label in WILDDEEPFAKE_PARTS.items():
        part = wilddeepfake_part_dir(root, kind, split)
        if part is None:
            continue
        found_any = True
        folders = sorted({p.parent for p in part.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES})
        for folder in folders:
            rel = folder.relative_to(part).as_posix()
            records.append(VideoRecord(dataset=dataset, video_id=f"{kind}_{split}/{rel}",
                                       source=_rel(folder, root), label=label, method=kind, split=split))
    if found_any and not records:
        raise FileNotFoundError(f"no unpacked WildDeepfake face sequences under {root}: its K.tar.gz archives are "
                                f"unpacked by `preprocess --dataset wilddeepfake` (into OUT/unpacked), or unpack "
                                f"each K.tar.gz into a K/ folder beside it.")
    if not found_any:
        raise FileNotFoundError(f"no WildDeepfake data under {root}: expected real_train/, real_test/, fake_train/ "
                                f"and fake_test/ folders of K.tar.gz archives (or their unpacked K/ folders).")
    return records


def wilddeepfake_frame_number(path: Path) -> int:
    """The frame number a WildDeepfake image name carries (``123.png`` -> 123; the digits of the stem)."""
    digits = re.sub(r"\D", "", path.stem)
    return int(digits) if digits else -1


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
    "uadfv": index_uadfv,
    "dfd": index_dfd,
    "deeperforensics": index_deeperforensics,
    "wilddeepfake": index_wilddeepfake,
    "folder": index_folder,
}


def index_dataset(name: str, root: str | os.PathLike, **options) -> list[VideoRecord]:
    """Index a raw dataset by name (``ffpp``, ``celebdf_v1``, ``celebdf_v2`` (= ``celebdf``), ``dfdc``,
    ``dfdc_preview``, ``casia_surf``, ``uadfv``, ``dfd``, ``deeperforensics``, ``wilddeepfake``, ``folder``) with
    the indexer's options; records sorted by video_id."""
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
