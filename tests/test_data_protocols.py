"""Protocol rules of the data layer, each checked against counts worked out by hand from a tiny manifest.

Every test here was written to fail on one plausible bug (issue 17): FF++ ``real_sources`` ignored, DFDC's
validation rows dropped or replaced by a seeded fraction, dataset fakes kept beside SBI/BI pseudo-fakes,
``pos_weight`` counting those dropped fakes, ``failed_videos`` listing videos that still have crops, a missing
label read as real, and a real video grouped under its ``method`` in the per-manipulation metrics.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from lightning_dfd.batch import FAKE, LABEL, METHOD, REAL, UNKNOWN_LABEL, VIDEO_ID
from lightning_dfd.data.manifest import SCHEMA, ManifestError, normalise, read_manifest, write_manifest
from lightning_dfd.datamodules import DFDCDataModule, FaceForgeryDataModule, FFPPDataModule
from lightning_dfd.methods.base import group_names
from tests.helpers.face_manifests import build_manifest, ffpp_videos, row

SMALL = {"batch_size": 4, "num_workers": 0, "image_size": 16, "frames_per_video": None}
FOUR = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")


def loader_samples(loader) -> list[tuple[str, int, str]]:
    """(video_id, label, method) of every sample a loader yields."""
    return [(v, int(label), m) for batch in loader
            for v, label, m in zip(batch[VIDEO_ID], batch[LABEL].tolist(), batch[METHOD])]


# ------------------------------------------------------------------------------------------------ FF++
@pytest.fixture(scope="module")
def ffpp_with_actors(tmp_path_factory) -> Path:
    """FF++ manifest: train ids 000, 001 (real + 4 fakes each), test id 002; plus two ``actors`` originals that a
    (hypothetical) split assignment put in train and test. 2 frames per video."""
    root = tmp_path_factory.mktemp("ffpp_actors")
    videos = ffpp_videos({"train": ["000", "001"], "test": ["002"]})
    for name, split in (("01__walking", "train"), ("02__talking", "test")):
        videos.append({"dataset": "ffpp", "video_id": f"actors/c23/{name}", "label": REAL, "method": "real",
                       "compression": "c23", "split": split, "subject": name[:2]})
    build_manifest(root, videos, frames=2, size=(16, 16))
    return root


def test_ffpp_real_sources_keep_actors_out_unless_asked(ffpp_with_actors):
    default = FFPPDataModule(str(ffpp_with_actors), **SMALL).stage_rows()
    # by hand: train = youtube/000, youtube/001 + 4 fakes each; test = youtube/002 + 4 fakes
    assert set(default["train"].loc[default["train"]["label"] == REAL, "video_id"]) == {
        "youtube/c23/000", "youtube/c23/001"}
    assert set(default["test"].loc[default["test"]["label"] == REAL, "video_id"]) == {"youtube/c23/002"}
    assert default["train"]["video_id"].nunique() == 10 and default["test"]["video_id"].nunique() == 5
    both = FFPPDataModule(str(ffpp_with_actors), real_sources=("youtube", "actors"), **SMALL).stage_rows()
    assert "actors/c23/01__walking" in set(both["train"]["video_id"])
    assert "actors/c23/02__talking" in set(both["test"]["video_id"])
    only_actors = FFPPDataModule(str(ffpp_with_actors), real_sources=("actors",), **SMALL).stage_rows()
    assert set(only_actors["train"].loc[only_actors["train"]["label"] == REAL, "video_id"]) == {
        "actors/c23/01__walking"}


# ------------------------------------------------------------------------------------------------ DFDC
@pytest.fixture(scope="module")
def dfdc_with_val_rows(tmp_path_factory) -> Path:
    """DFDC manifest as preprocess writes it with ``val_parts=[2]``: parts 0-1 have split train, part 2 val."""
    root = tmp_path_factory.mktemp("dfdc_val")
    videos = []
    for part in range(3):
        for k in range(2):
            original = f"p{part}o{k}"
            split = "val" if part == 2 else "train"
            videos.append({"dataset": "dfdc", "video_id": f"dfdc_train_part_{part}/{original}", "label": REAL,
                           "method": "real", "split": split, "subject": original})
            videos.append({"dataset": "dfdc", "video_id": f"dfdc_train_part_{part}/{original}f", "label": FAKE,
                           "method": "fake", "split": split, "subject": original})
    videos.append({"dataset": "dfdc", "video_id": "test/t0", "label": FAKE, "method": "fake", "split": "test"})
    build_manifest(root, videos, frames=1, size=(16, 16), landmarks=False)
    return root


def test_dfdc_keeps_the_manifests_validation_rows_as_validation(dfdc_with_val_rows):
    part2 = {f"dfdc_train_part_2/p2o{k}{suffix}" for k in range(2) for suffix in ("", "f")}
    parts01 = {f"dfdc_train_part_{p}/p{p}o{k}{suffix}" for p in range(2) for k in range(2) for suffix in ("", "f")}
    for seed, fraction in ((0, 0.1), (1, 0.5), (7, 0.3)):  # a seeded fraction would move with these
        rows = DFDCDataModule(str(dfdc_with_val_rows), seed=seed, val_fraction=fraction, **SMALL).stage_rows()
        assert set(rows["val"]["video_id"]) == part2
        assert set(rows["train"]["video_id"]) == parts01
        assert set(rows["test"]["video_id"]) == {"test/t0"}


# --------------------------------------------------------------------------------------- pseudo-fakes
@pytest.fixture(scope="module")
def ffpp_small(tmp_path_factory) -> Path:
    """FF++ manifest: train ids 000, 001, 002 (1 real + 4 fakes each), val 003, test 004; 3 frames per video."""
    root = tmp_path_factory.mktemp("ffpp_small")
    build_manifest(root, ffpp_videos({"train": ["000", "001", "002"], "val": ["003"], "test": ["004"]}),
                   frames=3, size=(24, 24))
    return root


@pytest.mark.parametrize("pseudo_fake", ["sbi", "bi"])
def test_pseudo_fake_training_drops_the_datasets_fakes(ffpp_small, pseudo_fake):
    # protocol 'all' keeps the fakes in val/test; pseudo-fake training must still see reals + pseudo-fakes only
    dm = FFPPDataModule(str(ffpp_small), protocol="all", pseudo_fake=pseudo_fake, **{**SMALL, "batch_size": 6})
    train = dm.stage_rows()["train"]
    assert set(train["video_id"]) == {"youtube/c23/000", "youtube/c23/001", "youtube/c23/002"}
    assert len(dm.dataset("train")) == 9  # 3 real videos x 3 frames
    dm.setup("fit")
    samples = loader_samples(dm.train_dataloader())
    counts = Counter((label, method) for _, label, method in samples)
    assert counts == {(REAL, "real"): 9, (FAKE, f"pseudo_{pseudo_fake}"): 9}
    assert {v for v, _, _ in samples} == set(train["video_id"])
    assert set(dm.stage_rows()["test"]["method"]) == {"real", *FOUR}  # evaluation keeps the real fakes


def test_pos_weight_with_pseudo_fakes_counts_one_fake_per_real(ffpp_small):
    dm = FFPPDataModule(str(ffpp_small), protocol="all", pseudo_fake="sbi", balance="loss_weights",
                        **{**SMALL, "frames_per_video": 2})
    # every real frame drawn comes with exactly one pseudo-fake: 3 videos x 2 frames each side
    assert dm.epoch_label_counts() == {REAL: 6, FAKE: 6}
    assert dm.pos_weight == pytest.approx(1.0) and dm.class_weights == [1.0, pytest.approx(1.0)]
    dm.setup("fit")
    drawn = Counter(label for _, label, _ in loader_samples(dm.train_dataloader()))
    assert drawn[REAL] / drawn[FAKE] == pytest.approx(dm.pos_weight)
    plain = FFPPDataModule(str(ffpp_small), protocol="all", balance="loss_weights", **{**SMALL, "frames_per_video": 2})
    assert plain.pos_weight == pytest.approx(6 / 24)  # 3 real vs 12 fake videos, 2 frames each


# ---------------------------------------------------------------------------------------- failed videos
def test_failed_videos_lists_only_videos_without_any_usable_crop(tmp_path):
    videos = [{"dataset": "x", "video_id": vid, "label": REAL, "method": "real", "split": "test"}
              for vid in ("partly_failed", "fine")]
    build_manifest(tmp_path, videos, frames=2, size=(16, 16), landmarks=False)
    rows = read_manifest(tmp_path)
    extra = [row(dataset="x", video_id="partly_failed", frame_index=40, label=REAL, split="test", status="no_face",
                 reason="no face in frame 40"),
             row(dataset="x", video_id="no_face_at_all", frame_index=-1, label=FAKE, split="test",
                 status="no_face_video", reason="no face found in any sampled frame"),
             row(dataset="x", video_id="broken", frame_index=-1, label=UNKNOWN_LABEL, split="test", status="corrupt",
                 reason="moov atom not found"),
             row(dataset="x", video_id="broken", frame_index=-1, label=UNKNOWN_LABEL, split="test", status="corrupt",
                 reason="moov atom not found")]
    write_manifest(normalise(list(rows.to_dict("records")) + extra), tmp_path / "manifest.parquet")
    dm = FaceForgeryDataModule(str(tmp_path), **SMALL)
    assert dm.failed_videos() == {"no_face_at_all": "no_face_video: no face found in any sampled frame",
                                  "broken": "corrupt: moov atom not found"}
    dm.setup("test")
    assert set(dm.dataset("test").video_ids) == {"partly_failed", "fine"}


# ------------------------------------------------------------------------------------------ missing labels
def _write_with_null_label(root: Path, null_split: str) -> Path:
    """A manifest written by another tool: one row of split ``null_split`` has a null label."""
    videos = [{"dataset": "x", "video_id": f"{split}{k}", "label": k % 2, "method": "real" if k % 2 == 0 else "m",
               "split": split} for split in ("train", "test") for k in range(2)]
    build_manifest(root, videos, frames=2, size=(16, 16), landmarks=False)
    table = pq.read_table(root / "manifest.parquet")
    frame = table.to_pandas()
    target = frame.index[(frame["split"] == null_split) & (frame["label"] == 0)][1]  # 2nd frame of a real video
    labels = [None if i == target else int(v) for i, v in enumerate(frame["label"])]
    table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels, pa.int64()))
    assert table.schema.equals(SCHEMA)
    pq.write_table(table, root / "manifest.parquet")
    return root / "manifest.parquet"


def test_a_missing_label_is_unknown_never_real(tmp_path):
    manifest = _write_with_null_label(tmp_path / "test_null", "test")
    rows = read_manifest(manifest)
    assert rows["label"].tolist().count(UNKNOWN_LABEL) == 1 and str(rows["label"].dtype) == "int64"
    dm = FaceForgeryDataModule(str(manifest), **SMALL)
    dm.setup("fit")  # training rows are all labelled: fine
    dm.setup("test")
    test = dm.dataset("test")
    labels = dict(zip(zip(test.video_ids, test.frame_indices.tolist()), test.labels.tolist()))
    assert labels[("test0", 10)] == UNKNOWN_LABEL and labels[("test0", 0)] == REAL
    # a row written without a label at all is unknown too
    assert normalise([{"video_id": "v"}])["label"].tolist() == [UNKNOWN_LABEL]


def test_training_refuses_a_row_without_label_naming_file_and_row(tmp_path):
    manifest = _write_with_null_label(tmp_path, "train")
    row_number = int(read_manifest(manifest).index[read_manifest(manifest)["label"] == UNKNOWN_LABEL][0])
    dm = FaceForgeryDataModule(str(manifest), **SMALL)
    with pytest.raises(ManifestError) as caught:
        dm.setup("fit")
    message = str(caught.value)
    assert "\n" not in message and str(manifest) in message and f"row {row_number} " in message
    assert "video train0" in message
    with pytest.raises(ManifestError, match=f"row {row_number} "):
        FaceForgeryDataModule(str(manifest), balance="loss_weights", **SMALL).pos_weight  # noqa: B018
    with pytest.raises(ManifestError, match=f"row {row_number} "):  # pseudo-fakes must not drop it silently
        FaceForgeryDataModule(str(manifest), pseudo_fake="sbi", **SMALL).setup("fit")
    evaluation = FaceForgeryDataModule(str(manifest), **SMALL)
    evaluation.setup("test")  # evaluating a checkpoint on this manifest is not blocked by a training row
    assert set(evaluation.dataset("test").labels.tolist()) == {REAL, FAKE}


# ---------------------------------------------------------------------------------- per-manipulation groups
def test_real_videos_are_the_shared_negative_whatever_their_method_field(tmp_path):
    """A real whose ``method`` column names a manipulation (its fakes' method, or a source folder) is group
    ``real`` in the per-manipulation metrics, end to end: manifest -> DataModule batch -> base's groups."""
    videos = [{"dataset": "x", "video_id": "src/000", "label": REAL, "method": "Deepfakes", "split": "test"},
              {"dataset": "x", "video_id": "src/001", "label": REAL, "method": "youtube", "split": "test"},
              {"dataset": "x", "video_id": "Deepfakes/000_001", "label": FAKE, "method": "Deepfakes", "split": "test"},
              {"dataset": "x", "video_id": "FaceSwap/001_000", "label": FAKE, "method": "FaceSwap", "split": "test"}]
    build_manifest(tmp_path, videos, frames=1, size=(16, 16), landmarks=False)
    dm = FaceForgeryDataModule(str(tmp_path), **SMALL)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    groups = dict(zip(batch[VIDEO_ID], group_names(batch, torch.as_tensor(batch[LABEL]))))
    assert groups == {"src/000": "real", "src/001": "real", "Deepfakes/000_001": "Deepfakes",
                      "FaceSwap/001_000": "FaceSwap"}
