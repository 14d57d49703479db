"""Synthetic twin generator: layouts, label conventions, sidecars, determinism, manipulations, CASIA-SURF."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from jsonargparse import auto_cli

from lightning_dfd.data.synthetic.casia_surf import (
    CasiaRenderer,
    attack_folder,
    attack_type_of,
)
from lightning_dfd.data.synthetic.cli import synth
from lightning_dfd.data.synthetic.clips import ClipRenderer, VideoSpec
from lightning_dfd.data.synthetic.dfdc import plan_dfdc
from lightning_dfd.data.synthetic.faces import Expression, Pose, canonical_landmarks
from lightning_dfd.data.synthetic.ffpp import FFPP_METHODS, split_pair_counts
from lightning_dfd.data.synthetic.manipulations import colour_transfer, piecewise_affine_warp

SIZE, FRAMES = 64, 4


def decode(path: Path) -> tuple[np.ndarray, str, str]:
    """All frames (RGB), codec name and pixel format, read with PyAV independently of the generator."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec, pix_fmt = stream.codec_context.name, stream.codec_context.pix_fmt
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    return frames, codec, pix_fmt


def sidecar(video: Path) -> Path:
    return video.with_name(video.stem + ".landmarks.npy")


def sample(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` (H, W[, C]) at (x, y) points."""
    xs, ys = points[:, 0].astype(np.float32)[None], points[:, 1].astype(np.float32)[None]
    return cv2.remap(image.astype(np.float32), xs, ys, cv2.INTER_LINEAR)[0]


def luminance(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


@pytest.fixture(scope="module")
def ffpp(tmp_path_factory) -> Path:
    return synth("ffpp", tmp_path_factory.mktemp("ffpp"), seed=0, identities=8, videos=6, frames=FRAMES,
                 size=SIZE)


# --- FF++ ---------------------------------------------------------------------------------------------
def test_split_pair_counts_follow_official_ratio():
    # 360:70:70 pairs; hand-worked: round(p * 70 / 500), at least 1.
    assert split_pair_counts(3) == {"train": 1, "val": 1, "test": 1}
    assert split_pair_counts(8) == {"train": 6, "val": 1, "test": 1}
    assert split_pair_counts(50) == {"train": 36, "val": 7, "test": 7}
    assert split_pair_counts(500) == {"train": 360, "val": 70, "test": 70}
    with pytest.raises(ValueError, match="--videos 6"):
        split_pair_counts(2)


def test_ffpp_layout_and_splits(ffpp: Path):
    assert (ffpp / "README.twin.txt").read_text().count("SYNTHETIC TWIN") == 1
    splits = {s: json.loads((ffpp / "splits" / f"{s}.json").read_text()) for s in ("train", "val", "test")}
    assert {s: len(p) for s, p in splits.items()} == {"train": 1, "val": 1, "test": 1}
    ids = [vid for pairs in splits.values() for pair in pairs for vid in pair]
    assert sorted(ids) == [f"{i:03d}" for i in range(6)]          # every video in exactly one pair
    for pairs in splits.values():
        for pair in pairs:
            assert isinstance(pair, list) and len(pair) == 2 and all(re.fullmatch(r"\d{3}", v) for v in pair)
    expected = set()
    for quality in ("c23", "c40"):
        for vid in ids:
            expected.add(f"original_sequences/youtube/{quality}/videos/{vid}.mp4")
        for target, source in (p for pairs in splits.values() for p in pairs):
            for method in FFPP_METHODS:
                for a, b in ((target, source), (source, target)):
                    expected.add(f"manipulated_sequences/{method}/{quality}/videos/{a}_{b}.mp4")
    written = {p.relative_to(ffpp).as_posix() for p in ffpp.rglob("*.mp4")}
    assert written == expected
    for path in expected:
        assert sidecar(ffpp / path).is_file(), path


def test_full_splits_lists_official_sizes(tmp_path: Path):
    root = synth("ffpp", tmp_path / "full", videos=6, frames=1, size=32, full_splits=True,
                 compressions=["c23"], methods=["Deepfakes"])
    ids = {}
    for split in ("train", "val", "test"):
        pairs = json.loads((root / "splits" / f"{split}.json").read_text())
        ids[split] = [v for pair in pairs for v in pair]
    assert {s: len(v) for s, v in ids.items()} == {"train": 720, "val": 140, "test": 140}
    assert set(ids["train"]).isdisjoint(ids["val"]) and set(ids["train"]).isdisjoint(ids["test"])
    assert set(ids["val"]).isdisjoint(ids["test"])
    assert set(ids["train"]) | set(ids["val"]) | set(ids["test"]) == {f"{i:03d}" for i in range(1000)}
    videos = root / "original_sequences/youtube/c23/videos"
    assert (videos / "005.mp4").stat().st_size > 0 and (videos / "999.mp4").stat().st_size == 0
    assert not sidecar(videos / "999.mp4").exists()
    train_pair = json.loads((root / "splits/train.json").read_text())[-1]
    fake = root / f"manipulated_sequences/Deepfakes/c23/videos/{train_pair[1]}_{train_pair[0]}.mp4"
    assert fake.is_file()


def test_videos_decode_with_frame_count_and_sidecar(ffpp: Path):
    videos = sorted(ffpp.rglob("*.mp4"))
    assert len(videos) == 2 * 6 * (1 + len(FFPP_METHODS))
    for video in videos[::7]:
        frames, codec, pix_fmt = decode(video)
        assert frames.shape == (FRAMES, SIZE, SIZE, 3)
        assert (codec, pix_fmt) == ("h264", "yuv420p")
        landmarks = np.load(sidecar(video))
        assert landmarks.dtype == np.float32 and landmarks.shape == (FRAMES, 68, 2)
        assert landmarks.min() >= 0 and landmarks.max() <= SIZE - 1


def test_landmarks_lie_on_the_drawn_face(ffpp: Path):
    for vid in ("000", "003"):
        video = ffpp / f"original_sequences/youtube/c23/videos/{vid}.mp4"
        frames, _, _ = decode(video)
        landmarks = np.load(sidecar(video))
        for frame, lm in zip(frames, landmarks, strict=True):
            lum = luminance(frame)
            cheeks = np.stack([(lm[31] + lm[2]) / 2, (lm[35] + lm[14]) / 2])
            cheek = sample(lum, cheeks).mean()
            eyes = sample(lum, lm[36:48]).mean()
            assert eyes < cheek - 20, (vid, eyes, cheek)
            # lips are redder than the cheek: (R - G) larger on the mouth's outer contour
            red = frame[..., 0].astype(np.float32) - frame[..., 1]
            assert sample(red, lm[48:60]).mean() > sample(red, cheeks).mean() + 5
            # the face spans 30-70 % of the frame height (brows to chin)
            height = lm[:, 1].max() - lm[17:27, 1].min()
            assert 0.3 * SIZE < height < 0.7 * SIZE


def test_same_seed_same_twin_other_seed_differs(tmp_path: Path):
    kwargs = {"videos": 6, "frames": 3, "size": 48, "compressions": ["c23"],
              "methods": ["Deepfakes", "Face2Face"]}
    a = synth("ffpp", tmp_path / "a", seed=3, **kwargs)
    b = synth("ffpp", tmp_path / "b", seed=3, workers=2, **kwargs)         # parallel rendering: same bytes
    c = synth("ffpp", tmp_path / "c", seed=4, **kwargs)
    files = sorted(p.relative_to(a) for p in a.rglob("*.landmarks.npy"))
    assert len(files) == 6 * 3
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
        video = rel.with_name(rel.name.replace(".landmarks.npy", ".mp4"))
        assert (a / video).read_bytes() == (b / video).read_bytes()
        assert np.array_equal(decode(a / video)[0], decode(b / video)[0])
    rel = Path("original_sequences/youtube/c23/videos/000")
    assert (a / f"{rel}.landmarks.npy").read_bytes() != (c / f"{rel}.landmarks.npy").read_bytes()
    assert not np.array_equal(decode(a / f"{rel}.mp4")[0], decode(c / f"{rel}.mp4")[0])


def test_fakes_change_the_face_and_not_the_rest():
    renderer = ClipRenderer(seed=1, size=96, frames=2)
    real = renderer.real("t", 0)
    for manipulation, style in (("swap", "Deepfakes"), ("swap", "FaceSwap"), ("swap", "FaceShifter"),
                                ("expression", None), ("neural_texture", None)):
        fake = renderer.render(VideoSpec("t", 0, manipulation, "s", 1, style))
        diff = np.abs(fake.frames.astype(np.int16) - real.frames).max(axis=-1)
        outside = fake.masks == 0
        assert outside.mean() > 0.5 and (diff[outside] == 0).all(), manipulation     # untouched outside
        inside = fake.masks > 0.5
        assert diff[inside].mean() > 2.0, (manipulation, style, diff[inside].mean())
        # the blend mask lies on the face: its centre of mass is inside the landmarks' hull
        for t in range(2):
            ys, xs = np.nonzero(fake.masks[t] > 0.5)
            hull = cv2.convexHull(fake.landmarks[t].astype(np.float32))
            assert cv2.pointPolygonTest(hull, (float(xs.mean()), float(ys.mean())), False) > 0


def test_fakes_differ_from_their_target_inside_the_face_after_encoding(ffpp: Path):
    pairs = json.loads((ffpp / "splits/train.json").read_text())
    target, source = pairs[0]
    real, _, _ = decode(ffpp / f"original_sequences/youtube/c23/videos/{target}.mp4")
    landmarks = np.load(sidecar(ffpp / f"original_sequences/youtube/c23/videos/{target}.mp4"))
    for method in ("Deepfakes", "FaceSwap", "FaceShifter", "Face2Face"):
        fake, _, _ = decode(ffpp / f"manipulated_sequences/{method}/c23/videos/{target}_{source}.mp4")
        diff = np.abs(fake.astype(np.float32) - real).mean(axis=-1)
        inside, far = [], []
        for t, lm in enumerate(landmarks):
            hull = np.zeros((SIZE, SIZE), np.uint8)
            cv2.fillConvexPoly(hull, cv2.convexHull(np.round(lm).astype(np.int32)), 1)
            near = cv2.dilate(hull, np.ones((15, 15), np.uint8))
            inside.append(diff[t][cv2.erode(hull, np.ones((5, 5), np.uint8)) > 0].mean())
            far.append(diff[t][near == 0].mean())
        assert np.mean(inside) > 3 * np.mean(far) and np.mean(inside) > 2.0, (method, inside, far)


def test_deepfakes_is_blurrier_than_faceswap():
    renderer = ClipRenderer(seed=2, size=128, frames=2)
    energy = {}
    for style in ("Deepfakes", "FaceSwap"):
        fake = renderer.render(VideoSpec("t", 0, "swap", "s", 1, style))
        lap = np.abs(cv2.Laplacian(luminance(fake.frames[0]), cv2.CV_32F))
        core = fake.masks[0] > 0.99
        energy[style] = lap[core].mean()
    assert energy["Deepfakes"] < 0.6 * energy["FaceSwap"], energy


# --- building blocks against independent computations -------------------------------------------------
def test_piecewise_affine_warp_matches_a_global_affine():
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (80, 80, 3)).astype(np.uint8), (0, 0), 2)
    points = rng.uniform(15, 65, (20, 2))
    affine = np.array([[0.9, -0.1, 4.0], [0.12, 1.05, -3.0]])      # source -> target
    target_points = points @ affine[:, :2].T + affine[:, 2]
    warped = piecewise_affine_warp(image, points, target_points)
    expected = cv2.warpAffine(image, affine, (80, 80), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # inside the hull of the landmarks every triangle carries the same affine (outside, anchors follow
    # only the best similarity)
    hull = np.zeros((80, 80), np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.round(target_points).astype(np.int32)), 1)
    core = cv2.erode(hull, np.ones((5, 5), np.uint8)) > 0
    assert core.sum() > 1000
    assert np.abs(warped[core].astype(int) - expected[core]).max() <= 2


def test_colour_transfer_matches_reference_statistics():
    rng = np.random.default_rng(1)
    image = np.clip(rng.normal(90, 20, (40, 40, 3)), 0, 255).astype(np.uint8)
    reference = np.clip(rng.normal([180, 140, 120], 12, (40, 40, 3)), 0, 255).astype(np.uint8)
    mask = np.ones((40, 40), np.float32)
    moved = colour_transfer(image, reference, mask, "mean_std")
    lab = lambda x: cv2.cvtColor(x.astype(np.float32) / 255, cv2.COLOR_RGB2LAB).reshape(-1, 3)
    assert np.allclose(lab(moved).mean(0), lab(reference).mean(0), atol=1.0)
    assert np.allclose(lab(moved).std(0), lab(reference).std(0), rtol=0.1, atol=0.5)


# --- Celeb-DF -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset", ["celebdf", "celebdf_v1"])
def test_celebdf_layout_and_test_list_convention(tmp_path: Path, dataset: str):
    root = synth(dataset, tmp_path / dataset, identities=3, videos=4, frames=2, size=32, fakes_per_video=2)
    real = {p.name for p in (root / "Celeb-real").glob("*.mp4")}
    youtube = {p.name for p in (root / "YouTube-real").glob("*.mp4")}
    fakes = {p.name for p in (root / "Celeb-synthesis").glob("*.mp4")}
    assert real == {"id0_0000.mp4", "id1_0000.mp4", "id2_0000.mp4", "id0_0001.mp4"}
    assert youtube == {"00000.mp4"}
    assert len(fakes) == 2 * len(real)
    for name in fakes:
        x, y, clip = re.fullmatch(r"id(\d+)_id(\d+)_(\d{4})\.mp4", name).groups()
        assert x != y and f"id{x}_{clip}.mp4" in real
        assert sidecar(root / "Celeb-synthesis" / name).is_file()
    lines = (root / "List_of_testing_videos.txt").read_text().splitlines()
    assert lines
    labels = {}
    for line in lines:
        label, path = line.split(" ")
        assert (root / path).is_file()
        labels[path] = int(label)
    # the file's own convention: 1 = real, 0 = fake
    assert all(v == 1 for p, v in labels.items() if p.startswith(("Celeb-real/", "YouTube-real/")))
    assert all(v == 0 for p, v in labels.items() if p.startswith("Celeb-synthesis/"))
    assert set(labels.values()) == {0, 1}


# --- DFDC ---------------------------------------------------------------------------------------------
def test_dfdc_metadata_and_test_labels(tmp_path: Path):
    kwargs = {"seed": 0, "videos": 5, "identities": 3, "fakes_per_video": 2, "parts": 2,
              "test_fraction": 0.25, "crf": 23}
    root = synth("dfdc", tmp_path / "dfdc", frames=2, size=32, videos=5, identities=3, fakes_per_video=2,
                 parts=2, test_fraction=0.25)
    parts = sorted(p.name for p in root.glob("dfdc_train_part_*"))
    assert parts == ["dfdc_train_part_0", "dfdc_train_part_1"]
    n_real = n_fake = 0
    for part in parts:
        metadata = json.loads((root / part / "metadata.json").read_text())
        assert {p.name for p in (root / part).glob("*.mp4")} == set(metadata)
        for name, entry in metadata.items():
            assert re.fullmatch(r"[a-z]{10}\.mp4", name)
            assert entry["split"] == "train" and entry["label"] in ("REAL", "FAKE")
            if entry["label"] == "FAKE":
                n_fake += 1
                assert metadata[entry["original"]]["label"] == "REAL"    # the original is in the same part
            else:
                n_real += 1
                assert entry["original"] is None
    assert (n_real, n_fake) == (4, 8)
    with open(root / "test/labels.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["filename", "label"]
    labels = {name: int(label) for name, label in rows[1:]}
    assert set(labels) == {p.name for p in (root / "test").glob("*.mp4")}
    # independent truth from the plan: a swap job is a fake -> label 1 (DFDC test convention 1 = fake)
    truth = {Path(job.outputs_crf[0][0]).name: int(job.spec.manipulation != "real")
             for job in plan_dfdc(**kwargs).jobs if job.outputs_crf[0][0].startswith("test/")}
    assert labels == truth and sorted(truth.values()) == [0, 1, 1]


def test_dfdc_preview_dataset_json(tmp_path: Path):
    root = synth("dfdc_preview", tmp_path / "p", videos=5, identities=5, frames=2, size=32, test_fraction=0.2)
    index = json.loads((root / "dataset.json").read_text())
    assert set(index) == {p.relative_to(root).as_posix() for p in root.rglob("*.mp4")}
    subjects = {"train": set(), "test": set()}
    for path, entry in index.items():
        subject = entry["target_id"]
        subjects[entry["set"]].add(subject)
        if entry["label"] == "real":
            assert re.fullmatch(rf"original_videos/{subject}/\d+\.mp4", path)
        else:
            assert entry["label"] == "fake"
            assert re.fullmatch(rf"method_([AB])/{subject}/{subject}_\1/\d+\.mp4", path)
    assert subjects["train"] and subjects["test"] and subjects["train"].isdisjoint(subjects["test"])
    assert sum(e["label"] == "fake" for e in index.values()) == 2 * 5


# --- CASIA-SURF ---------------------------------------------------------------------------------------
def test_attack_folder_names_follow_table_1():
    # seed 001, Table 1: 1 flat eyes, 2 curved eyes, 3 flat eyes+nose, 4 curved eyes+nose, 5/6 + mouth
    expected = {1: "01_e_f.rssdk", 2: "02_e_b.rssdk", 3: "03_en_f.rssdk", 4: "04_en_b.rssdk",
                5: "05_enm_f.rssdk", 6: "06_enm_b.rssdk", 0: "real.rssdk"}
    assert {k: attack_folder(k) for k in expected} == expected
    assert all(attack_type_of(name) == k for k, name in expected.items())
    with pytest.raises(ValueError, match="should be"):
        attack_type_of("04_e_f.rssdk")


def test_casia_lists_and_layout(tmp_path: Path):
    root = synth("casia_surf", tmp_path / "casia", identities=4, frames=2, size=48)
    seen_subjects = {}
    for split, list_file, split_dir, attacks in (("train", "train_list.txt", "Training", {4, 5, 6}),
                                                 ("val", "val_private_list.txt", "Val", {1, 2, 3}),
                                                 ("test", "test_private_list.txt", "Testing", {1, 2, 3})):
        lines = (root / list_file).read_text().splitlines()
        types = set()
        for line in lines:
            color, depth, ir, label = line.split(" ")
            parts = color.split("/")
            assert parts[0] == split_dir and re.fullmatch(r"CLKJ_[A-D]S\d{4}", parts[2])
            assert depth == color.replace("/color/", "/depth/") and ir == color.replace("/color/", "/ir/")
            assert cv2.imread(str(root / color)).shape == (48, 48, 3)
            assert cv2.imread(str(root / depth), cv2.IMREAD_UNCHANGED).shape == (48, 48)
            kind = attack_type_of(parts[3])
            types.add(kind)
            assert int(label) == (1 if kind == 0 else 0)                  # CASIA: 1 = bona fide
            assert parts[1] == ("real_part" if kind == 0 else "fake_part")
            seen_subjects.setdefault(parts[2], set()).add(split)
        assert types == attacks | {0}
    assert all(len(splits) == 1 for splits in seen_subjects.values())     # subject-disjoint splits
    assert len(seen_subjects) == 4


def test_casia_depth_is_face_shaped_for_bona_fide_and_flat_for_flat_prints():
    clips = ClipRenderer(seed=0, size=96, frames=1)
    casia = CasiaRenderer(clips)
    identity = clips.identity(0)
    pose = Pose(48.0, 50.0, 96 * 0.8 / 2.55, 0.0)
    expression = Expression(1.0, 0.1)
    background = np.full((96, 96, 3), 120, np.uint8)
    lm = pose.apply(canonical_landmarks(identity, expression))
    nose, cheeks = lm[30:31], np.stack([(lm[31] + lm[2]) / 2, (lm[35] + lm[14]) / 2])
    bona_fide, _, _ = casia.live(identity, pose, expression, background)
    depth = bona_fide.depth.astype(np.float32)
    assert sample(depth, nose).mean() > sample(depth, cheeks).mean() + 15
    assert bona_fide.depth[0, 0] == 0 and bona_fide.ir[lm[36:48, 1].astype(int), :].max() > 200   # glints
    rng = np.random.default_rng(0)
    flat = casia.print_attack(identity, 1, pose, pose, expression, background, rng).depth.astype(np.float32)
    assert abs(sample(flat, nose).mean() - sample(flat, cheeks).mean()) < 4
    face_box = flat[int(lm[:, 1].min()):int(lm[:, 1].max()), int(lm[:, 0].min()):int(lm[:, 0].max())]
    eye_holes = np.zeros(flat.shape, bool)
    for eye in (lm[36:42], lm[42:48]):
        c, r = eye.mean(0), np.ptp(eye[:, 0]) * 1.2
        eye_holes |= np.hypot(*np.meshgrid(np.arange(96) - c[0], np.arange(96) - c[1])) < r
    inner = np.zeros(flat.shape, bool)  # inside the face (the crop's background is removed around the printed head)
    inner[int(lm[:, 1].min()) + 3:int(lm[:, 1].max()) - 3, int(lm[:, 0].min()) + 3:int(lm[:, 0].max()) - 3] = True
    paper = flat[inner & ~eye_holes]
    assert paper.std() < 2.5 and paper.size > 0.1 * flat.size and face_box.size > 0
    curved = casia.print_attack(identity, 2, pose, pose, expression, background, rng).depth.astype(np.float32)
    assert curved[50, 44:52].mean() > curved[50, 2:8].mean() + 10                     # bent sheet
    # cut-outs show the live face, farther than the paper: darker depth inside the eye holes
    assert sample(flat, lm[36:42].mean(0, keepdims=True)).mean() < sample(flat, cheeks).mean() - 10


# --- CLI and errors -----------------------------------------------------------------------------------
def test_jsonargparse_cli_and_clear_errors(tmp_path: Path):
    out = tmp_path / "cli"
    # as the package CLI dispatches it: auto_cli(synth, as_positional=False)
    auto_cli(synth, as_positional=False, args=["--dataset", "ffpp", "--out", str(out), "--videos", "6",
                                               "--frames", "1", "--size", "32", "--methods", "[FaceSwap]",
                                               "--compressions", "[c40]"])
    assert (out / "manipulated_sequences/FaceSwap/c40/videos").is_dir()
    assert json.loads((out / "twin.json").read_text())["methods"] == ["FaceSwap"]
    with pytest.raises(ValueError, match="size"):
        synth("ffpp", tmp_path / "x", size=33)
    with pytest.raises(ValueError, match="even"):
        synth("ffpp", tmp_path / "y", videos=7)
    with pytest.raises(ValueError, match="unknown quality"):
        synth("ffpp", tmp_path / "z", compressions=["c99"])
    with pytest.raises(ValueError, match="frames differ"):
        synth("ffpp", out, videos=6, frames=2, size=32, methods=["FaceSwap"], compressions=["c40"])
