"""UADFV, WildDeepfake, DFD and DeeperForensics-1.0: layouts read on their twins, the UADFV split, missing files,
and a fast_dev_run through each data config."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from lightning_dfd.cli import main
from lightning_dfd.data.layouts import index_dataset, uadfv_subject_split
from lightning_dfd.data.manifest import read_manifest

CONF = Path(__file__).resolve().parents[1] / "conf"


def videos_by(manifest, *columns):
    return Counter(tuple(row) for row in manifest.drop_duplicates("video_id")[list(columns)].itertuples(index=False))


def assert_no_video_in_two_splits(manifest):
    splits_per_video = manifest.groupby("video_id")["split"].nunique()
    assert (splits_per_video == 1).all()


def test_uadfv_twin_split_counts(twins):
    manifest = read_manifest(twins["uadfv"][1])
    # 5 subjects, 20 % test -> 1 test subject (its real and its fake), 4 train subjects
    assert videos_by(manifest, "split", "label") == {("train", 0): 4, ("train", 1): 4, ("test", 0): 1, ("test", 1): 1}
    assert_no_video_in_two_splits(manifest)
    by_subject = manifest.groupby("subject")["split"].nunique()
    assert (by_subject == 1).all()  # subject-disjoint: a real and its fake on one side


def test_uadfv_split_reproducible_from_seed(tmp_path, twins):
    subjects = [f"{i:04d}" for i in range(49)]
    first, again = uadfv_subject_split(subjects, 3), uadfv_subject_split(subjects, 3)
    assert first == again and len(first["test"]) == 10 and len(first["train"]) == 39  # round(0.2 * 49) = 10
    assert not set(first["train"]) & set(first["test"])
    assert uadfv_subject_split(subjects, 4) != first
    raw = twins["uadfv"][0]
    content = json.loads((raw / "uadfv_split.json").read_text())
    assert content["seed"] == 0 and content == {"seed": 0, "test_fraction": 0.2,
                                                **uadfv_subject_split([f"{i:04d}" for i in range(5)], 0)}


def test_uadfv_given_split_file_missing_names_it(twins):
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        index_dataset("uadfv", twins["uadfv"][0], split_file="nowhere.json")


def test_wilddeepfake_twin_parts(twins):
    manifest = read_manifest(twins["wilddeepfake"][1])
    assert videos_by(manifest, "split", "label") == {("train", 0): 2, ("train", 1): 2, ("test", 0): 2, ("test", 1): 2}
    assert_no_video_in_two_splits(manifest)
    ok = manifest[manifest["status"] == "ok"]
    assert ok["landmarks"].map(len).eq(136).all()  # landmarks fitted on the face images
    assert set(ok["frame_index"]) >= {10, 11, 12} or min(ok["frame_index"]) >= 0  # frame numbers of the names


def test_wilddeepfake_archives_need_unpacking(twins):
    with pytest.raises(FileNotFoundError, match="unpack"):
        index_dataset("wilddeepfake", twins["wilddeepfake"][0])


def test_dfd_all_test(twins):
    manifest = read_manifest(twins["dfd"][1])
    assert videos_by(manifest, "split", "label", "method") == {("test", 0, "real"): 2,
                                                               ("test", 1, "DeepFakeDetection"): 2}


def test_deeperforensics_splits_and_variants(twins):
    manifest = read_manifest(twins["deeperforensics"][1])
    counts = videos_by(manifest, "split", "method")
    for split in ("train", "val", "test"):  # 3 targets: one per split, a real and a fake per variant
        assert counts[(split, "real")] == 1
        assert counts[(split, "end_to_end")] == 1 and counts[(split, "end_to_end_level_3")] == 1
    assert_no_video_in_two_splits(manifest)
    assert (manifest.groupby("subject")["split"].nunique() == 1).all()


def test_deeperforensics_missing_split_names_it(tmp_path):
    (tmp_path / "manipulated_videos").mkdir()
    with pytest.raises(FileNotFoundError, match=r"lists/splits/train\.txt"):
        index_dataset("deeperforensics", tmp_path)


@pytest.mark.parametrize("name", ["uadfv", "wilddeepfake", "deeperforensics", "dfd"])
def test_data_config_fast_dev_run(name, twins, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    command = "test" if name == "dfd" else "fit"
    cli = main([command, "--config", str(CONF / "binary" / "ffpp_xception.yaml"),
                "--data", str(CONF / "data" / f"{name}.yaml"), "--data.init_args.path", str(twins[name][1]),
                "--data.init_args.image_size", "64", "--data.init_args.batch_size", "4",
                "--data.init_args.num_workers", "0", "--trainer.fast_dev_run", "true", "--trainer.accelerator", "cpu",
                "--trainer.devices", "1", "--trainer.default_root_dir", str(tmp_path),
                "--trainer.enable_progress_bar", "false", "--model.init_args.pretrained", "false"])
    assert cli.trainer.state.finished
    if command == "fit":
        assert cli.trainer.global_step >= 1


def test_wilddeepfake_rerun_unpacks_and_crops_nothing_again(twins):
    from lightning_dfd.data.preprocess import UNPACKED_MARK, preprocess

    raw, cache = twins["wilddeepfake"]
    marks = sorted((cache / "unpacked").rglob(UNPACKED_MARK))
    assert len(marks) == 4  # one archive per real/fake x train/test part, each unpacked once
    stamps = [m.stat().st_mtime_ns for m in marks]
    preprocess("wilddeepfake", raw, cache, frames=3, backend="sidecar", size=64, progress=False)
    assert json.loads((cache / "summary.json").read_text())["processed_this_run"] == 0
    assert [m.stat().st_mtime_ns for m in marks] == stamps
