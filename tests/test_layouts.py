"""Dataset indexers on hand-made miniature trees of each official layout, label conventions included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lightning_dfd.data.layouts import casia_attack_type, index_dataset


def touch(root: Path, *relpaths: str) -> None:
    for rel in relpaths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def by_id(records) -> dict:
    return {r.video_id: r for r in records}


@pytest.fixture
def ffpp(tmp_path):
    splits = {"train": [["000", "003"]], "val": [["001", "004"]], "test": [["002", "005"]]}
    for split, pairs in splits.items():
        touch(tmp_path, f"splits/{split}.json")
        (tmp_path / f"splits/{split}.json").write_text(json.dumps(pairs))
    touch(tmp_path, *[f"original_sequences/youtube/c23/videos/{i:03d}.mp4" for i in range(6)],
          "original_sequences/youtube/c40/videos/000.mp4",
          "original_sequences/actors/c23/videos/01__walking.mp4",
          "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4",
          "manipulated_sequences/Deepfakes/c23/videos/003_000.mp4",
          "manipulated_sequences/Deepfakes/c23/videos/001_004.mp4",
          "manipulated_sequences/Deepfakes/c40/videos/000_003.mp4",
          "manipulated_sequences/FaceSwap/c23/videos/005_002.mp4",
          "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__walking__ABCD1234.mp4")
    return tmp_path


def test_ffpp_pairs_splits_labels(ffpp):
    records = by_id(index_dataset("ffpp", ffpp))
    assert len(records) == 6 + 1 + 1 + 4 + 1 + 1
    real = records["youtube/c23/003"]
    assert (real.label, real.method, real.compression, real.split, real.subject) == (0, "real", "c23", "train", "003")
    assert real.source == "original_sequences/youtube/c23/videos/003.mp4"
    # pair [000, 003] in train: both orders of the fake are train; [001, 004] val; [002, 005] test
    assert records["Deepfakes/c23/000_003"].split == records["Deepfakes/c23/003_000"].split == "train"
    assert records["Deepfakes/c23/001_004"].split == "val"
    fake = records["FaceSwap/c23/005_002"]
    assert (fake.label, fake.method, fake.split, fake.subject) == (1, "FaceSwap", "test", "005")
    assert {records[f"youtube/c23/{i:03d}"].split for i in (2, 5)} == {"test"}
    assert records["youtube/c40/000"].compression == "c40"
    # DeepFakeDetection and its actor sources have no official split
    dfd = records["DeepFakeDetection/c23/01_02__walking__ABCD1234"]
    assert (dfd.label, dfd.split, dfd.subject) == (1, "", "01")
    assert (records["actors/c23/01__walking"].label, records["actors/c23/01__walking"].subject) == (0, "01")


def test_ffpp_options_and_missing_split(ffpp):
    records = index_dataset("ffpp", ffpp, compressions=["c40"], methods=["Deepfakes"], originals=["youtube"])
    assert sorted(r.video_id for r in records) == ["Deepfakes/c40/000_003", "youtube/c40/000"]
    assert all(r.label == 0 for r in index_dataset("ffpp", ffpp, methods=[]))
    with pytest.raises(ValueError, match="unknown FF\\+\\+ methods"):
        index_dataset("ffpp", ffpp, methods=["DeepFake"])
    with pytest.raises(TypeError, match="does not take option"):
        index_dataset("ffpp", ffpp, compression=["c23"])
    (ffpp / "splits/val.json").unlink()
    with pytest.raises(FileNotFoundError) as info:
        index_dataset("ffpp", ffpp)
    assert str(ffpp / "splits" / "val.json") in str(info.value) and "[target, source]" in str(info.value)


@pytest.fixture
def celebdf(tmp_path):
    touch(tmp_path, "Celeb-real/id0_0000.mp4", "Celeb-real/id1_0001.mp4", "YouTube-real/00170.mp4",
          "YouTube-real/00001.mp4", "Celeb-synthesis/id0_id1_0000.mp4", "Celeb-synthesis/id1_id0_0001.mp4")
    (tmp_path / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00170.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n1 Celeb-real/id1_0001.mp4\n")
    return tmp_path


def test_celebdf_list_convention_is_one_for_real(celebdf):
    records = by_id(index_dataset("celebdf_v2", celebdf))
    assert len(records) == 6 and {r.dataset for r in records.values()} == {"celebdf_v2"}
    listed_real = records["YouTube-real/00170"]  # list says 1 -> real -> our label 0
    assert (listed_real.label, listed_real.split, listed_real.method) == (0, "test", "real")
    listed_fake = records["Celeb-synthesis/id0_id1_0000"]  # list says 0 -> fake -> our label 1
    assert (listed_fake.label, listed_fake.split, listed_fake.method, listed_fake.subject) == (
        1, "test", "Celeb-synthesis", "id0")
    assert records["Celeb-real/id1_0001"].split == "test"
    assert {records[k].split for k in ("Celeb-real/id0_0000", "YouTube-real/00001",
                                       "Celeb-synthesis/id1_id0_0001")} == {"train"}
    assert index_dataset("celebdf_v1", celebdf)[0].dataset == "celebdf_v1"


def test_celebdf_contradicting_list_and_missing_list(celebdf):
    (celebdf / "List_of_testing_videos.txt").write_text("1 Celeb-synthesis/id1_id0_0001.mp4\n")
    with pytest.raises(ValueError, match="1 = real"):
        index_dataset("celebdf", celebdf)
    (celebdf / "List_of_testing_videos.txt").unlink()
    with pytest.raises(FileNotFoundError, match="List_of_testing_videos.txt"):
        index_dataset("celebdf", celebdf)


def test_dfdc_parts_test_labels_and_val_parts(tmp_path):
    touch(tmp_path, "dfdc_train_part_0/aaa.mp4", "dfdc_train_part_0/bbb.mp4", "dfdc_train_part_1/ccc.mp4",
          "test/xxx.mp4", "test/yyy.mp4")
    (tmp_path / "dfdc_train_part_0/metadata.json").write_text(json.dumps({
        "aaa.mp4": {"label": "FAKE", "original": "bbb.mp4", "split": "train"},
        "bbb.mp4": {"label": "REAL", "original": None, "split": "train"}}))
    (tmp_path / "dfdc_train_part_1/metadata.json").write_text(json.dumps({
        "ccc.mp4": {"label": "REAL", "split": "train"}}))
    (tmp_path / "test/labels.csv").write_text("filename,label\nxxx.mp4,1\nyyy.mp4,0\n")
    records = by_id(index_dataset("dfdc", tmp_path, val_parts=[1]))
    fake, real = records["dfdc_train_part_0/aaa"], records["dfdc_train_part_0/bbb"]
    assert (fake.label, fake.split, fake.subject, fake.source) == (1, "train", "bbb", "dfdc_train_part_0/aaa.mp4")
    assert (real.label, real.subject) == (0, "bbb")  # a real and its fakes share the subject
    assert records["dfdc_train_part_1/ccc"].split == "val"
    assert (records["test/xxx"].label, records["test/xxx"].split) == (1, "test")  # labels.csv: 1 = fake
    assert records["test/yyy"].label == 0
    (tmp_path / "test/labels.csv").unlink()
    with pytest.raises(FileNotFoundError, match="labels.csv"):
        index_dataset("dfdc", tmp_path)
    (tmp_path / "dfdc_train_part_1/metadata.json").unlink()
    with pytest.raises(FileNotFoundError, match="dfdc_train_part_1.metadata.json"):
        index_dataset("dfdc", tmp_path)


def test_dfdc_preview(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({
        "method_A/1255229/1255229_A/2198_58.mp4": {"label": "fake", "set": "train", "target_id": "1255229"},
        "original_videos/1255229/2198_58.mp4": {"label": "real", "set": "test", "target_id": "1255229"}}))
    records = by_id(index_dataset("dfdc_preview", tmp_path))
    fake = records["method_A/1255229/1255229_A/2198_58"]
    assert (fake.label, fake.method, fake.split, fake.subject) == (1, "method_A", "train", "1255229")
    real = records["original_videos/1255229/2198_58"]
    assert (real.label, real.method, real.split) == (0, "real", "test")
    (tmp_path / "dataset.json").unlink()
    with pytest.raises(FileNotFoundError, match="dataset.json"):
        index_dataset("dfdc_preview", tmp_path)


def test_casia_surf_label_convention_attack_types_and_modalities(tmp_path):
    def sample(folder: str) -> str:
        return " ".join(f"{folder}/{m}/121.jpg" for m in ("color", "depth", "ir"))

    (tmp_path / "train_list.txt").write_text(
        f"{sample('Training/real_part/CLKJ_AS0005/real.rssdk')} 1\n"
        f"{sample('Training/fake_part/CLKJ_AS0137/04_en_b.rssdk')} 0\n"
        f"{sample('Training/fake_part/CLKJ_AS0137/06_enm_b.rssdk')} 0\n")
    (tmp_path / "val_private_list.txt").write_text("Val/0000/000000-color.jpg Val/0000/000000-depth.jpg "
                                                   "Val/0000/000000-ir.jpg 0\n")
    (tmp_path / "test_private_list.txt").write_text("")
    records = by_id(index_dataset("casia_surf", tmp_path))
    real = records["Training/real_part/CLKJ_AS0005/real.rssdk/color/121"]
    assert (real.label, real.attack_type, real.method, real.subject, real.split) == (
        0, 0, "real", "CLKJ_AS0005", "train")  # CASIA's 1 = real -> our 0
    attack = records["Training/fake_part/CLKJ_AS0137/04_en_b.rssdk/color/121"]
    assert (attack.label, attack.attack_type, attack.method, attack.subject) == (1, 4, "attack_4", "CLKJ_AS0137")
    assert attack.extra_paths == {"depth": "Training/fake_part/CLKJ_AS0137/04_en_b.rssdk/depth/121.jpg",
                                  "ir": "Training/fake_part/CLKJ_AS0137/04_en_b.rssdk/ir/121.jpg"}
    assert records["Training/fake_part/CLKJ_AS0137/06_enm_b.rssdk/color/121"].attack_type == 6
    val = records["Val/0000/000000-color"]
    assert (val.label, val.attack_type, val.method, val.split) == (1, 0, "attack", "val")
    assert casia_attack_type("a/b/02_x.rssdk/color/1.jpg") == 2 and casia_attack_type("Val/1.jpg") == 0
    (tmp_path / "train_list.txt").write_text("only two columns\n")
    with pytest.raises(ValueError, match="train_list.txt:1"):
        index_dataset("casia_surf", tmp_path)
    (tmp_path / "test_private_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="test_private_list.txt"):
        index_dataset("casia_surf", tmp_path, lists={"test": "test_private_list.txt"})


def test_folder_labels_from_parent_names(tmp_path):
    touch(tmp_path, "set1/Real/a.mp4", "set1/fake/deep/b.avi", "loose/c.png", "loose/notes.txt", ".hidden/d.mp4")
    records = by_id(index_dataset("folder", tmp_path))
    assert sorted(records) == ["loose/c", "set1/Real/a", "set1/fake/deep/b"]
    assert records["set1/Real/a"].label == 0 and records["set1/fake/deep/b"].label == 1
    assert records["loose/c"].label == -1 and records["loose/c"].source == "loose/c.png"
    with pytest.raises(ValueError, match="unknown dataset"):
        index_dataset("ffhq", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        index_dataset("folder", tmp_path / "absent")


TWINS = [("ffpp", "ffpp"), ("celebdf", "celebdf_v2"), ("celebdf_v1", "celebdf_v1"), ("dfdc", "dfdc"),
         ("dfdc_preview", "dfdc_preview"), ("casia_surf", "casia_surf")]


@pytest.mark.parametrize(("twin", "name"), TWINS)
def test_indexers_agree_with_the_synthetic_twin_plan(tmp_path, monkeypatch, twin, name):
    """Labels and attack types read back from each twin's official files equal what the generator rendered
    (its plan: the manipulation of every video, the attack type of every CASIA sample)."""
    cli = pytest.importorskip("lightning_dfd.data.synthetic.cli")
    plans = []
    real_run_plan = cli.run_plan

    def recording_run_plan(root, plan, *args, **kwargs):
        plans.append(plan)
        return real_run_plan(root, plan, *args, **kwargs)

    monkeypatch.setattr(cli, "run_plan", recording_run_plan)
    root = cli.synth(twin, tmp_path / twin, seed=3, identities=4, videos=6, frames=2, size=32,
                     compressions=["c23"], methods=["Deepfakes", "Face2Face"])
    truth: dict[str, tuple[int, int]] = {}  # source path -> (label, attack type)
    for job in plans[0].jobs:
        if hasattr(job, "spec"):
            for path, _ in job.outputs_crf:
                truth[path] = (int(job.spec.manipulation != "real"), 0)
        else:
            for frame in job.frame_numbers:
                truth[job.paths(frame)[0]] = (int(job.attack_type > 0), job.attack_type)
    records = index_dataset(name, root)
    assert {r.source: (r.label, r.attack_type) for r in records} == truth
    assert {r.split for r in records} >= {"train", "test"}
    assert all((root / r.source).is_file() for r in records)
    assert all((root / p).is_file() for r in records for p in r.extra_paths.values())


def test_ffpp_full_size_twin_gives_official_split_sizes(tmp_path):
    """A twin at full split size (placeholder videos) is indexed 720/140/140 real ids, 4 x that many fakes."""
    from lightning_dfd.data.synthetic.cli import synth

    root = synth("ffpp", tmp_path / "full", videos=6, frames=1, size=32, full_splits=True, compressions=["c23"],
                 methods=["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"])
    records = index_dataset("ffpp", root, compressions=["c23"])
    reals = {s: {r.video_id for r in records if r.label == 0 and r.split == s} for s in ("train", "val", "test")}
    fakes = {s: {r.video_id for r in records if r.label == 1 and r.split == s} for s in ("train", "val", "test")}
    assert {s: len(v) for s, v in reals.items()} == {"train": 720, "val": 140, "test": 140}
    assert {s: len(v) for s, v in fakes.items()} == {"train": 4 * 720, "val": 4 * 140, "test": 4 * 140}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not reals[a] & reals[b] and not fakes[a] & fakes[b]
    # no source/target id of a fake crosses splits either
    ids = {s: {i for v in reals[s] for i in [v.rsplit("/", 1)[1]]} for s in reals}
    for split, videos in fakes.items():
        for video in videos:
            target, source = video.rsplit("/", 1)[1].split("_")
            assert target in ids[split] and source in ids[split]
