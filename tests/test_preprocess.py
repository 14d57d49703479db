"""Preprocessing end to end on tiny hand-drawn face videos: crops, landmarks, failures, resume, workers."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from lightning_dfd.data.faces import sidecar_path
from lightning_dfd.data.manifest import read_manifest
from lightning_dfd.data.preprocess import part_path, preprocess
from lightning_dfd.data.video import evenly_spaced, read_frames, write_video

FRAMES, SIZE, SIDE = 10, 64, 96
SKIN = (220, 170, 140)


def template_landmarks(cx: float, cy: float, r: float) -> np.ndarray:
    """A frontal 68-point iBUG-ordered face of radius ``r`` centred at (cx, cy) (y down)."""
    t = np.linspace(np.pi, 0.0, 17)
    jaw = np.stack([cx + r * np.cos(t), cy + 0.1 * r + 1.1 * r * np.sin(t)], 1)
    brow = lambda sx: np.stack([cx + sx * r * np.linspace(0.75, 0.15, 5), cy - 0.45 * r - 0.08 * r * np.sin(
        np.linspace(0, np.pi, 5))], 1)
    nose_bridge = np.stack([np.full(4, cx), cy - 0.3 * r + np.linspace(0, 0.5 * r, 4)], 1)
    nostrils = np.stack([cx + r * np.linspace(-0.2, 0.2, 5), np.full(5, cy + 0.3 * r)], 1)
    eye = lambda ex: np.stack([ex + 0.18 * r * np.cos(a := np.linspace(np.pi, -np.pi, 6, endpoint=False)),
                               cy - 0.25 * r - 0.08 * r * np.sin(a)], 1)
    a12 = np.linspace(np.pi, -np.pi, 12, endpoint=False)
    mouth_outer = np.stack([cx + 0.4 * r * np.cos(a12), cy + 0.62 * r - 0.12 * r * np.sin(a12)], 1)
    a8 = np.linspace(np.pi, -np.pi, 8, endpoint=False)
    mouth_inner = np.stack([cx + 0.3 * r * np.cos(a8), cy + 0.62 * r - 0.05 * r * np.sin(a8)], 1)
    points = np.concatenate([jaw, brow(-1), brow(1)[::-1], nose_bridge, nostrils, eye(cx - 0.4 * r),
                             eye(cx + 0.4 * r), mouth_outer, mouth_inner])
    assert points.shape == (68, 2)
    return points.astype(np.float32)


def draw_face(frame: np.ndarray, points: np.ndarray) -> None:
    cx, cy = points[27:31, 0].mean(), points[:, 1].mean()
    r = (points[16, 0] - points[0, 0]) / 2
    cv2.ellipse(frame, (int(cx), int(cy)), (int(r), int(1.25 * r)), 0, 0, 360, SKIN, -1)
    for part, colour in ((slice(36, 42), (30, 30, 30)), (slice(42, 48), (30, 30, 30)), (slice(48, 60), (180, 40, 50))):
        cv2.fillPoly(frame, [np.round(points[part]).astype(np.int32)], colour)


def write_face_video(path: Path, centres: list[tuple[float, float]], radius: float = 24.0,
                     missing: set[int] = frozenset()) -> np.ndarray:
    """A video with one drawn face per frame at ``centres[t]`` and its sidecar (NaN on frames in ``missing``)."""
    frames, truth = [], []
    for t, (cx, cy) in enumerate(centres):
        frame = np.full((SIDE, SIDE, 3), (40, 90, 60), np.uint8)
        points = template_landmarks(cx, cy, radius)
        if t not in missing:
            draw_face(frame, points)
        frames.append(frame)
        truth.append(np.full((68, 2), np.nan, np.float32) if t in missing else points)
    write_video(path, np.stack(frames), crf=12)
    np.save(sidecar_path(path), np.stack(truth))
    return np.stack(truth)


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """A `folder` dataset: 3 good videos (one with faceless frames), a faceless video, a corrupt and a fake file."""
    root = tmp_path_factory.mktemp("raw")
    for k in range(3):
        path = root / ("real" if k < 2 else "fake") / f"clip{k}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        centres = [(40 + 2 * t + 3 * k, 44 + t % 3) for t in range(FRAMES)]
        write_face_video(path, centres, missing={2, 7} if k == 2 else set())
    write_face_video(root / "real" / "empty.mp4", [(48, 48)] * FRAMES, missing=set(range(FRAMES)))
    good = (root / "real" / "clip0.mp4").read_bytes()
    (root / "fake" / "truncated.mp4").write_bytes(good[: len(good) // 2])
    (root / "fake" / "text.mp4").write_text("not a video at all\n" * 20)
    return root


def run(raw: Path, out: Path, **kwargs) -> pd.DataFrame:
    options = {"frames": 4, "size": SIZE, "margin": 0.3, "backend": "sidecar", "progress": False}
    options.update(kwargs)
    return read_manifest(preprocess("folder", raw, out, **options))


def test_crops_and_landmarks_match_the_ground_truth(raw, tmp_path):
    manifest = run(raw, tmp_path / "out")
    clip = manifest[manifest.video_id == "real/clip1"]
    assert clip.frame_index.tolist() == evenly_spaced(FRAMES, 4).tolist() and set(clip.status) == {"ok"}
    assert (clip.label == 0).all() and (clip.source_video == "real/clip1.mp4").all()
    truth = np.load(raw / "real" / "clip1.landmarks.npy")
    frames, _ = read_frames(raw / "real" / "clip1.mp4", indices=clip.frame_index.tolist())
    for (_, row), frame in zip(clip.iterrows(), frames):
        crop = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / row.path)), cv2.COLOR_BGR2RGB)
        assert crop.shape == (SIZE, SIZE, 3)
        assert row.path == f"crops/real/clip1/{row.frame_index:06d}.png"
        left, top, right, bottom = row.box
        side = right - left
        assert side == bottom - top
        gt = truth[row.frame_index]
        # square side = 1.3 x the larger side of the landmark box (the sidecar box is that box)
        assert side == pytest.approx(round(1.3 * max(np.ptp(gt[:, 0]), np.ptp(gt[:, 1]))), abs=1)
        scale = SIZE / side
        landmarks = np.asarray(row.landmarks, np.float64).reshape(68, 2)
        assert np.allclose((landmarks + 0.5) / scale - 0.5 + [left, top], gt, atol=1e-3)
        # the crop shows the frame's pixels: resampling the frame's box region gives the same image
        region = frame[int(top):int(bottom), int(left):int(right)]
        expected = cv2.resize(region, (SIZE, SIZE), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        assert np.abs(crop.astype(int) - expected.astype(int)).max() <= 1
        mouth = landmarks[48:60].mean(0).round().astype(int)
        assert crop[mouth[1], mouth[0], 0] > 150 and crop[mouth[1], mouth[0], 1] < 90  # the red mouth


def test_failures_become_rows_with_reasons(raw, tmp_path):
    manifest = run(raw, tmp_path / "out", frames=FRAMES)
    status = manifest.groupby("video_id")["status"].agg(lambda s: sorted(set(s)))
    assert status["fake/truncated"] == ["corrupt"] and status["fake/text"] == ["unreadable"]
    assert status["real/empty"] == ["no_face_video"] and status["real/clip0"] == ["ok"]
    partial = manifest[manifest.video_id == "fake/clip2"].set_index("frame_index")
    assert partial.loc[[2, 7], "status"].tolist() == ["no_face", "no_face"]
    assert (partial.drop([2, 7]).status == "ok").all() and len(partial) == FRAMES
    failed = manifest[manifest.status != "ok"]
    assert (failed.reason != "").all() and (failed.path == "").all()
    assert "video" in manifest.set_index("video_id").loc["fake/text", "reason"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["rows_by_status"] == {"corrupt": 1, "no_face": 2, "no_face_video": 1, "ok": 3 * FRAMES - 2,
                                         "unreadable": 1}
    assert summary["videos_by_status"] == {"corrupt": 1, "no_face_video": 1, "ok": 3, "unreadable": 1}
    assert (manifest[manifest.video_id.str.startswith("fake/")].label == 1).all()


def crop_bytes(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "crops").rglob("*.png"))}


def test_interrupted_run_resumes_to_the_same_manifest(raw, tmp_path):
    fresh = run(raw, tmp_path / "fresh")
    partial = run(raw, tmp_path / "resumed", limit=2)  # "killed" after two videos
    assert partial.video_id.nunique() == 2
    # and a crash mid-video: a crop written but no part file, plus a leftover temp file
    (tmp_path / "resumed" / "crops" / "real" / "clip0").mkdir(parents=True, exist_ok=True)
    (tmp_path / "resumed" / "crops" / "real" / "clip0" / "000001.png").write_bytes(b"half a png")
    resumed = run(raw, tmp_path / "resumed")
    pd.testing.assert_frame_equal(resumed, fresh)
    assert crop_bytes(tmp_path / "resumed") == crop_bytes(tmp_path / "fresh")
    summary = json.loads((tmp_path / "resumed" / "summary.json").read_text())
    assert (summary["processed_this_run"], summary["skipped_already_done"]) == (4, 2)
    # a finished output is left alone: nothing to redo
    part = part_path(tmp_path / "resumed", "real/clip0")
    mtime = part.stat().st_mtime_ns
    run(raw, tmp_path / "resumed")
    assert part.stat().st_mtime_ns == mtime


def test_changed_settings_are_refused(raw, tmp_path):
    run(raw, tmp_path / "out", limit=1)
    with pytest.raises(ValueError, match="margin"):
        run(raw, tmp_path / "out", margin=0.5)


def test_two_workers_give_the_same_result(raw, tmp_path):
    one = run(raw, tmp_path / "one", image_format="jpg")
    two = run(raw, tmp_path / "two", image_format="jpg", workers=2)
    pd.testing.assert_frame_equal(one, two)
    assert one.path[one.status == "ok"].str.endswith(".jpg").all()


def test_casia_surf_images_are_copied_with_depth_and_ir(tmp_path):
    root = tmp_path / "casia"
    lines = []
    for k, (folder, casia_label) in enumerate([("real.rssdk", 1), ("03_en_b.rssdk", 0)]):
        base = f"Training/part/SUBJ{k}/{folder}"
        for modality, value in (("color", 100), ("depth", 150), ("ir", 200)):
            path = root / base / modality / "7.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.full((40, 30, 3), value + k, np.uint8))
        lines.append(f"{base}/color/7.jpg {base}/depth/7.jpg {base}/ir/7.jpg {casia_label}")
    (root / "train_list.txt").write_text("\n".join(lines) + "\n")
    lists = {"train": "train_list.txt"}
    manifest = read_manifest(preprocess("casia_surf", root, tmp_path / "copied", size=None, progress=False,
                                        dataset_options={"lists": lists}))
    assert manifest.label.tolist() == [0, 1] and manifest.attack_type.tolist() == [0, 3]
    assert (manifest.status == "ok").all() and manifest.box.iloc[0].tolist() == [0, 0, 30, 40]
    for _, row in manifest.iterrows():
        extra = json.loads(row.extra_paths)
        assert set(extra) == {"depth", "ir"}
        assert (tmp_path / "copied" / row.path).read_bytes() == (root / row.source_video).read_bytes()
        assert (tmp_path / "copied" / extra["ir"]).read_bytes() == (
            root / row.source_video.replace("/color/", "/ir/")).read_bytes()
    resized = read_manifest(preprocess("casia_surf", root, tmp_path / "resized", size=16, progress=False,
                                       dataset_options={"lists": lists}))
    depth = cv2.imread(str(tmp_path / "resized" / json.loads(resized.extra_paths.iloc[1])["depth"]))
    assert depth.shape == (16, 16, 3) and abs(int(depth.mean()) - 151) <= 2


def test_dlib_backend_on_a_real_face_video(tmp_path):
    pytest.importorskip("dlib")
    skimage_data = pytest.importorskip("skimage.data")
    photo = cv2.resize(skimage_data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    frames = []
    for t in range(4):
        canvas = np.zeros((288, 288, 3), np.uint8)
        canvas[4 * t:4 * t + 256, 8 * t:8 * t + 256] = photo
        frames.append(canvas)
    root = tmp_path / "raw"
    write_video(root / "real" / "astronaut.mp4", np.stack(frames), crf=12)
    manifest = run(root, tmp_path / "out", backend="dlib", frames=4, size=128)
    assert (manifest.status == "ok").all() and len(manifest) == 4
    for _, row in manifest.iterrows():
        landmarks = np.asarray(row.landmarks).reshape(68, 2)
        assert np.all((landmarks > 0) & (landmarks < 128))
        assert landmarks[36:48, 1].mean() < landmarks[30, 1] < landmarks[48:68, 1].mean()
    # the face moves by (8, 4) px per frame: landmarks mapped back to frame pixels follow it
    centres = []
    for _, row in manifest.iterrows():
        left, top, right, _ = row.box
        scale = 128 / (right - left)
        centres.append(((np.asarray(row.landmarks).reshape(68, 2) + 0.5) / scale - 0.5 + [left, top]).mean(0))
    assert np.allclose(np.diff(np.stack(centres), axis=0), [8, 4], atol=1.5)


def test_ffpp_twin_end_to_end(tmp_path):
    """Synthetic FF++ twin -> preprocess (sidecar): every video in, labels/splits from the official files,
    crop landmarks mapping back onto the rendered ground truth."""
    cli = pytest.importorskip("lightning_dfd.data.synthetic.cli")
    root = cli.synth("ffpp", tmp_path / "twin", seed=0, identities=4, videos=6, frames=6, size=64,
                     compressions=["c23"], methods=["Deepfakes", "NeuralTextures"])
    manifest = read_manifest(preprocess("ffpp", root, tmp_path / "out", frames=3, size=SIZE, progress=False))
    assert (manifest.status == "ok").all() and manifest.video_id.nunique() == 6 + 2 * 6
    assert len(manifest) == 3 * 18 and set(manifest.frame_index) == set(evenly_spaced(6, 3).tolist())
    splits = {split: json.loads((root / "splits" / f"{split}.json").read_text()) for split in ("train", "val", "test")}
    for _, row in manifest.iterrows():
        name = row.video_id.rsplit("/", 1)[-1]
        ids = name.split("_")
        assert row.label == (0 if row.method == "real" else 1)
        assert any(set(ids) <= set(pair) for pair in splits[row.split])
        truth = np.load(sidecar_path(root / row.source_video))[row.frame_index]
        left, top, right, _ = row.box
        scale = SIZE / (right - left)
        back = (np.asarray(row.landmarks).reshape(68, 2) + 0.5) / scale - 0.5 + [left, top]
        assert np.allclose(back, truth, atol=1e-3)


# ------------------------------------------------------------------------------------ content-keyed resume
def _copy_raw(raw: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(raw, dest)
    return dest


def test_a_video_replaced_under_the_same_name_is_redone_and_others_are_kept(raw, tmp_path):
    root = _copy_raw(raw, tmp_path / "raw")
    first = run(root, tmp_path / "out")
    kept_part = part_path(tmp_path / "out", "real/clip0")
    kept_mtime = kept_part.stat().st_mtime_ns
    old_paths = set(first.path[first.video_id == "real/clip1"])
    # another video (6 frames, the face elsewhere) under the old name: other frame indices, other crops
    write_face_video(root / "real" / "clip1.mp4", [(60 - 2 * t, 50) for t in range(6)])
    again = run(root, tmp_path / "out")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["processed_this_run"], summary["redone_source_changed"], summary["skipped_already_done"]) == (
        1, 1, 5)
    assert kept_part.stat().st_mtime_ns == kept_mtime  # untouched videos are skipped
    # the result is that of a fresh run on the new content, and no crop of the old video is left behind
    fresh = run(root, tmp_path / "fresh")
    pd.testing.assert_frame_equal(again, fresh)
    assert crop_bytes(tmp_path / "out") == crop_bytes(tmp_path / "fresh")
    new_paths = set(again.path[again.video_id == "real/clip1"])
    assert new_paths != old_paths and again[again.video_id == "real/clip1"].frame_index.tolist() == [0, 2, 3, 5]


def test_content_change_with_same_size_and_mtime_is_seen_and_touch_alone_is_not(raw, tmp_path):
    import os

    root = _copy_raw(raw, tmp_path / "raw")
    run(root, tmp_path / "out")
    video = root / "fake" / "clip2.mp4"
    part = part_path(tmp_path / "out", "fake/clip2")
    # touch: new mtime, same bytes -> still done (the whole-file digest settles it)
    stat = video.stat()
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    mtime = part.stat().st_mtime_ns
    run(root, tmp_path / "out")
    assert part.stat().st_mtime_ns == mtime
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["processed_this_run"] == 0
    # the same size and mtime but other bytes (the sidecar landmarks shifted by one pixel): redone
    sidecar = root / "fake" / "clip2.landmarks.npy"
    stat = sidecar.stat()
    np.save(sidecar, np.load(sidecar) + 1.0)
    os.utime(sidecar, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert sidecar.stat().st_size == stat.st_size
    manifest = run(root, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["redone_source_changed"] == 1
    fresh = run(root, tmp_path / "fresh")
    pd.testing.assert_frame_equal(manifest, fresh)


def test_a_part_without_content_key_is_redone(raw, tmp_path):
    """Parts written before content keys (or damaged) cannot vouch for their source: the video is redone."""
    import pyarrow.parquet as pq

    run(raw, tmp_path / "out", limit=1)
    part = part_path(tmp_path / "out", "fake/clip2")
    pq.write_table(pq.read_table(part).replace_schema_metadata(None), part)
    run(raw, tmp_path / "out", limit=1)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["redone_source_changed"] == 1


# --------------------------------------------------------------------------------------------- signals
STOPPABLE_RUN = """
import sys, time
import lightning_dfd.data.preprocess as pp
crop_video = pp.crop_video
def slow_crop_video(*args, **kwargs):
    time.sleep(0.3)  # slow enough that the signal arrives mid-run
    return crop_video(*args, **kwargs)
pp.crop_video = slow_crop_video
pp.preprocess("folder", sys.argv[1], sys.argv[2], frames=4, size=64, backend="sidecar", progress=False)
"""


@pytest.mark.parametrize(("signum", "code"), [(15, 143), (2, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_cleanly_and_prints_how_to_resume(raw, tmp_path, signum, code):
    import os
    import shlex
    import subprocess
    import sys
    import time

    from lightning_dfd.commands import run_extra_command

    root = _copy_raw(raw, tmp_path / "raw")
    for k in range(6):  # 12 videos in all
        write_face_video(root / "real" / f"more{k}.mp4", [(44 + t, 46) for t in range(4)])
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    process = subprocess.Popen([sys.executable, "-c", STOPPABLE_RUN, str(root), str(out)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    def finished_parts() -> list[Path]:  # not the hidden temporary files an atomic write renames into place
        return [part for part in (out / "parts").glob("*.parquet") if not part.name.startswith(".")]

    deadline = time.monotonic() + 60
    while not (out / "parts").is_dir() or len(finished_parts()) < 2:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    finished = len(finished_parts())
    assert not [part for part in (out / "parts").iterdir() if part.name.startswith(".")]  # no temp file is left
    assert 2 <= finished < 12 and not (out / "manifest.parquet").exists()
    assert f"{finished} of 12 videos finished" in stderr and str(out) in stderr, stderr
    command = shlex.split(stderr.strip().splitlines()[-1])
    assert command[:4] == ["python", "-m", "lightning_dfd", "preprocess"], command
    # every finished part is a valid, complete parquet file; the printed command resumes to the full result
    import pyarrow.parquet as pq

    for part in finished_parts():
        assert pq.read_table(part).num_rows > 0
    manifest = read_manifest(run_extra_command("preprocess", command[4:]))
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["processed_this_run"], summary["skipped_already_done"]) == (12 - finished, finished)
    pd.testing.assert_frame_equal(manifest, run(root, tmp_path / "fresh"))
    assert crop_bytes(out) == crop_bytes(tmp_path / "fresh")
