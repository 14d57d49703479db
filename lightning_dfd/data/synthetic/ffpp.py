"""FaceForensics++ twin layout.

::

    original_sequences/youtube/{c23,c40}/videos/NNN.mp4 (+ NNN.landmarks.npy)
    manipulated_sequences/<method>/{c23,c40}/videos/TTT_SSS.mp4
        <method> in Deepfakes, Face2Face, FaceSwap, NeuralTextures, FaceShifter
    splits/{train,val,test}.json     [["TTT", "SSS"], ...]

Videos are paired (target, source); both fakes ``TTT_SSS`` and ``SSS_TTT`` exist and belong, with both real
videos, to the pair's split. Pair counts follow the official 360 / 70 / 70 (720 / 140 / 140 videos) ratio,
at least one pair per split. ``full_splits`` lists all 1000 official-size ids and writes empty
placeholder videos for those not rendered.
"""

from __future__ import annotations

import json

from lightning_dfd.data.synthetic.clips import VideoSpec
from lightning_dfd.data.synthetic.encode import crf_of
from lightning_dfd.data.synthetic.plan import TwinPlan, VideoJob
from lightning_dfd.data.synthetic.rng import stream

# FF++ folder name -> (manipulation, swap style).
FFPP_METHODS: dict[str, tuple[str, str | None]] = {
    "Deepfakes": ("swap", "Deepfakes"),
    "Face2Face": ("expression", None),
    "FaceSwap": ("swap", "FaceSwap"),
    "NeuralTextures": ("neural_texture", None),
    "FaceShifter": ("swap", "FaceShifter"),
}
OFFICIAL_PAIRS = {"train": 360, "val": 70, "test": 70}
OFFICIAL_VIDEOS = 1000
SPLITS = ("train", "val", "test")


def split_pair_counts(pairs: int) -> dict[str, int]:
    """Pairs per split in the official 360:70:70 ratio, at least one in each."""
    if pairs < 3:
        raise ValueError(f"FF++ twin needs at least 3 pairs (6 videos) for train/val/test, got {pairs} "
                         "pairs; pass --videos 6 or more")
    held_out = max(1, round(pairs * OFFICIAL_PAIRS["val"] / sum(OFFICIAL_PAIRS.values())))
    return {"train": pairs - 2 * held_out, "val": held_out, "test": held_out}


def video_id(index: int) -> str:
    return f"{index:03d}"


def real_path(vid: str, quality: str) -> str:
    return f"original_sequences/youtube/{quality}/videos/{vid}.mp4"


def fake_path(method: str, target: str, source: str, quality: str) -> str:
    return f"manipulated_sequences/{method}/{quality}/videos/{target}_{source}.mp4"


def plan_ffpp(seed: int, videos: int, identities: int, compressions: list[str], methods: list[str],
              full_splits: bool = False) -> TwinPlan:
    """Plan an FF++ twin with ``videos`` rendered real videos (even, >= 6) of ``identities`` people."""
    if videos % 2:
        raise ValueError(f"FF++ pairs its videos: --videos must be even, got {videos}")
    if full_splits and videos > OFFICIAL_VIDEOS:
        raise ValueError(f"--full_splits lists {OFFICIAL_VIDEOS} ids; --videos {videos} exceeds it")
    unknown = sorted(set(methods) - set(FFPP_METHODS))
    if unknown:
        raise ValueError(f"unknown FF++ methods {unknown}; choose from {list(FFPP_METHODS)}")
    qualities = {quality: crf_of(quality) for quality in compressions}

    order = stream(seed, "ffpp", "pairs").permutation(videos)
    pairs = [(int(order[2 * k]), int(order[2 * k + 1])) for k in range(videos // 2)]
    identity = {}
    for k, (a, b) in enumerate(pairs):
        identity[a], identity[b] = (2 * k) % identities, (2 * k + 1) % identities
    counts = split_pair_counts(len(pairs))
    split_pairs: dict[str, list[tuple[int, int]]] = {}
    start = 0
    for split in SPLITS:
        split_pairs[split] = pairs[start:start + counts[split]]
        start += counts[split]

    plan = TwinPlan()
    partner = {a: b for a, b in pairs} | {b: a for a, b in pairs}
    for index in range(videos):
        vid = video_id(index)
        key = f"ffpp/{vid}"
        plan.jobs.append(VideoJob(VideoSpec(key, identity[index]),
                                  tuple((real_path(vid, q), crf) for q, crf in qualities.items())))
        source = partner[index]
        for method in methods:
            manipulation, style = FFPP_METHODS[method]
            spec = VideoSpec(key, identity[index], manipulation, f"ffpp/{video_id(source)}",
                             identity[source], style)
            outputs = tuple((fake_path(method, vid, video_id(source), q), crf)
                            for q, crf in qualities.items())
            plan.jobs.append(VideoJob(spec, outputs))

    if full_splits:
        spare = [int(i) + videos for i in stream(seed, "ffpp", "spare").permutation(OFFICIAL_VIDEOS - videos)]
        spare_pairs = [(spare[2 * k], spare[2 * k + 1]) for k in range(len(spare) // 2)]
        for split in SPLITS:
            missing = OFFICIAL_PAIRS[split] - len(split_pairs[split])
            if missing < 0:
                raise ValueError(f"--videos {videos} renders more {split} pairs than the official split has")
            added, spare_pairs = spare_pairs[:missing], spare_pairs[missing:]
            split_pairs[split] = split_pairs[split] + added
            for a, b in added:
                for quality in compressions:
                    plan.placeholders += [real_path(video_id(a), quality), real_path(video_id(b), quality)]
                    for method in methods:
                        plan.placeholders += [fake_path(method, video_id(a), video_id(b), quality),
                                              fake_path(method, video_id(b), video_id(a), quality)]

    for split in SPLITS:
        listed = [[video_id(a), video_id(b)] for a, b in split_pairs[split]]
        plan.texts[f"splits/{split}.json"] = json.dumps(listed, indent=1) + "\n"
    return plan
