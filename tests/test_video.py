"""Frame decoding: index arithmetic, decoder agreement, images, and clear errors for bad files."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from lightning_dfd.data.video import (
    VideoDecodeError,
    evenly_spaced,
    frame_count,
    iter_frames,
    read_frames,
    write_video,
)

NUM = 20
STEP = 12  # frame i is flat grey 12 * i: decoded values identify the frame


@pytest.fixture(scope="module")
def grey_video(tmp_path_factory):
    folder = tmp_path_factory.mktemp("video")
    frames = np.stack([np.full((48, 64, 3), STEP * i, np.uint8) for i in range(NUM)])
    frames[:, :8, :8] = 255 - frames[:, :8, :8]  # some texture so the encoder has work
    write_video(folder / "grey.mp4", frames, crf=0)
    write_video(folder / "grey.mov", frames, crf=0)
    return folder


def decoded_ids(frames: np.ndarray) -> np.ndarray:
    """Which frame each decoded image is, from its mean grey level away from the textured corner."""
    return np.rint(frames[:, 16:, 16:].reshape(len(frames), -1).mean(axis=1) / STEP).astype(int)


def test_evenly_spaced_hand_values():
    # floor((i + 1/2) * 10 / 4) = floor(1.25, 3.75, 6.25, 8.75)
    assert evenly_spaced(10, 4).tolist() == [1, 3, 6, 8]
    assert evenly_spaced(7, 1).tolist() == [3]
    assert evenly_spaced(5, 8).tolist() == [0, 1, 2, 3, 4]
    assert evenly_spaced(0, 3).tolist() == []
    spaced = evenly_spaced(301, 32)
    assert len(spaced) == 32 and np.all(np.diff(spaced) >= 9) and spaced[0] >= 0 and spaced[-1] < 301


@pytest.mark.parametrize("decoder", ["decord", "pyav", "auto"])
def test_decoders_return_the_requested_frames(grey_video, decoder):
    path = grey_video / "grey.mp4"
    assert frame_count(path, decoder) == NUM
    frames, indices = read_frames(path, num_frames=4, decoder=decoder)
    assert indices.tolist() == evenly_spaced(NUM, 4).tolist() == [2, 7, 12, 17]
    assert frames.shape == (4, 48, 64, 3) and frames.dtype == np.uint8
    assert decoded_ids(frames).tolist() == indices.tolist()
    frames, indices = read_frames(path, indices=[19, 0, 5, 5], decoder=decoder)
    assert indices.tolist() == [0, 5, 19]  # sorted, unique
    assert decoded_ids(frames).tolist() == [0, 5, 19]
    frames, indices = read_frames(path, decoder=decoder)
    assert indices.tolist() == list(range(NUM)) and decoded_ids(frames).tolist() == list(range(NUM))


def test_decord_and_pyav_agree_pixelwise(grey_video):
    a, _ = read_frames(grey_video / "grey.mp4", num_frames=5, decoder="decord")
    b, _ = read_frames(grey_video / "grey.mp4", num_frames=5, decoder="pyav")
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_iter_frames_streams_the_same_frames(grey_video):
    frames, indices = read_frames(grey_video / "grey.mov", decoder="pyav")
    streamed = list(iter_frames(grey_video / "grey.mov", decoder="decord", chunk=3))
    assert [i for i, _ in streamed] == indices.tolist()
    assert np.abs(np.stack([f for _, f in streamed]).astype(int) - frames.astype(int)).max() <= 2


def test_auto_falls_back_to_pyav_without_decord(grey_video, monkeypatch):
    monkeypatch.setitem(sys.modules, "decord", None)  # `import decord` now raises ImportError
    with pytest.raises(ImportError):
        read_frames(grey_video / "grey.mp4", num_frames=3, decoder="decord")
    frames, indices = read_frames(grey_video / "grey.mp4", num_frames=3, decoder="auto")
    assert decoded_ids(frames).tolist() == indices.tolist() == evenly_spaced(NUM, 3).tolist()


@pytest.mark.parametrize("decoder", ["decord", "pyav", "auto"])
def test_bad_files_raise_clear_errors(grey_video, tmp_path, decoder):
    data = (grey_video / "grey.mp4").read_bytes()
    truncated = tmp_path / "truncated.mp4"  # moov atom at the end: cut off
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.mp4"
    text.write_text("this is a text file, not a video\n" * 10)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    cases = {truncated: "corrupt", text: "unreadable", empty: "unreadable", tmp_path / "missing.mp4": "unreadable"}
    for path, kind in cases.items():
        with pytest.raises(VideoDecodeError) as info:
            read_frames(path, num_frames=4, decoder=decoder)
        assert info.value.kind == kind, (path, info.value)
        assert str(path) in str(info.value) and info.value.reason


def test_truncated_faststart_video_is_corrupt(tmp_path):
    import av

    rng = np.random.default_rng(0)
    path = tmp_path / "noise.mp4"  # moov atom first (faststart): the cut falls inside the frame data
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(NUM):
            noise = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(noise, format="rgb24")))
        container.mux(stream.encode())
    data = path.read_bytes()
    assert data[4:8] == b"ftyp" and data.find(b"moov") < data.find(b"mdat")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    for decoder in ("decord", "pyav", "auto"):
        with pytest.raises(VideoDecodeError) as info:
            read_frames(cut, num_frames=4, decoder=decoder)
        assert info.value.kind == "corrupt"


def test_out_of_range_indices(grey_video):
    with pytest.raises(VideoDecodeError, match="outside"):
        read_frames(grey_video / "grey.mp4", indices=[3, NUM], decoder="decord")
    with pytest.raises(VideoDecodeError, match="past the end"):
        read_frames(grey_video / "grey.mp4", indices=[3, NUM], decoder="pyav")


def test_images_are_one_frame_videos(tmp_path):
    image = np.zeros((10, 12, 3), np.uint8)
    image[2, 3] = (255, 0, 0)  # red in RGB
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    frames, indices = read_frames(path)
    assert frames.shape == (1, 10, 12, 3) and indices.tolist() == [0]
    assert frames[0, 2, 3].tolist() == [255, 0, 0]
    assert frame_count(path) == 1
    with pytest.raises(VideoDecodeError):
        read_frames(path, indices=[1])
    fake = tmp_path / "fake.jpg"
    fake.write_text("not an image")
    with pytest.raises(VideoDecodeError) as info:
        read_frames(fake)
    assert info.value.kind == "unreadable"
