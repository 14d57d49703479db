"""DFDC (full) and DFDC preview twin layouts.

DFDC::

    dfdc_train_part_K/xxxxxxxxxx.mp4    ten lowercase letters
    dfdc_train_part_K/metadata.json     {"f.mp4": {"label": "REAL"|"FAKE", "split": "train",
                                                   "original": "o.mp4"|null}}
    test/xxxxxxxxxx.mp4
    test/labels.csv                     header "filename,label"; **1 = fake, 0 = real**

Fakes stay in the part of their original. Test actors are not in the training parts.

DFDC preview::

    dataset.json                        {"rel/path.mp4": {"label": "real"|"fake", "set": "train"|"test",
                                                          "target_id": "<subject>"}}
    original_videos/<subject>/<clip>.mp4
    method_A/<subject>/<subject>_A/<clip>.mp4       (method_B likewise)
"""

from __future__ import annotations

import json
import string

import numpy as np

from lightning_dfd.data.synthetic.clips import VideoSpec
from lightning_dfd.data.synthetic.plan import TwinPlan, VideoJob
from lightning_dfd.data.synthetic.rng import stream

DFDC_STYLES = ("DFDC-A", "DFDC-B", "DFDC-C")
PREVIEW_METHODS = {"A": "DFDC-A", "B": "DFDC-B"}


def _unique_names(rng: np.random.Generator, count: int, make) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        name = make(rng)
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _letters(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list(string.ascii_lowercase), 10))


def plan_dfdc(seed: int, videos: int, identities: int, fakes_per_video: int, parts: int,
              test_fraction: float, crf: int) -> TwinPlan:
    """Plan a DFDC twin: ``videos`` real videos (train parts + test), each with ``fakes_per_video`` fakes."""
    if videos < 2 or identities < 2 or parts < 1 or fakes_per_video < 1:
        raise ValueError("DFDC twin needs --videos >= 2, --identities >= 2, --parts >= 1, "
                         "--fakes_per_video >= 1")
    rng = stream(seed, "dfdc", "layout")
    n_test = min(videos - 1, max(1, round(test_fraction * videos)))
    n_train = videos - n_test
    names = iter(_unique_names(stream(seed, "dfdc", "names"), videos * (1 + fakes_per_video), _letters))
    # Train actors 0..identities-1 (several videos each); every test video is a new actor.
    reals = [(f"dfdc_train_part_{j % parts}", j % identities, next(names)) for j in range(n_train)]
    reals += [("test", identities + k, next(names)) for k in range(n_test)]
    clips_of: dict[str, dict[int, list[str]]] = {}
    for folder, person, name in reals:
        group = "test" if folder == "test" else "train"
        clips_of.setdefault(group, {}).setdefault(person, []).append(f"dfdc/{name}")

    plan = TwinPlan()
    metadata: dict[str, dict[str, dict]] = {}
    test_labels: dict[str, int] = {}
    for folder, person, name in reals:
        key = f"dfdc/{name}"
        group = "test" if folder == "test" else "train"
        plan.jobs.append(VideoJob(VideoSpec(key, person), ((f"{folder}/{name}.mp4", crf),)))
        donors = {p: keys for p, keys in clips_of[group].items() if p != person}
        if not donors:   # a lone actor in its group borrows donors from the other group
            donors = {p: keys for g in clips_of.values() for p, keys in g.items() if p != person}
        donor_ids = sorted(donors)
        entries = {f"{name}.mp4": {"label": "REAL", "split": "train", "original": None}}
        for _ in range(fakes_per_video):
            donor = donor_ids[int(rng.integers(len(donor_ids)))]
            donor_key = donors[donor][int(rng.integers(len(donors[donor])))]
            style = DFDC_STYLES[int(rng.integers(len(DFDC_STYLES)))]
            fake = next(names)
            plan.jobs.append(VideoJob(VideoSpec(key, person, "swap", donor_key, donor, style),
                                      ((f"{folder}/{fake}.mp4", crf),)))
            entries[f"{fake}.mp4"] = {"label": "FAKE", "split": "train", "original": f"{name}.mp4"}
        if folder == "test":
            test_labels.update({file: int(entry["label"] == "FAKE") for file, entry in entries.items()})
        else:
            metadata.setdefault(folder, {}).update(entries)

    for folder, entries in metadata.items():
        plan.texts[f"{folder}/metadata.json"] = json.dumps(dict(sorted(entries.items())), indent=1) + "\n"
    rows = ["filename,label"] + [f"{file},{label}" for file, label in sorted(test_labels.items())]
    plan.texts["test/labels.csv"] = "\n".join(rows) + "\n"
    return plan


def plan_dfdc_preview(seed: int, videos: int, identities: int, test_fraction: float, crf: int) -> TwinPlan:
    """Plan a DFDC-preview twin: ``identities`` subjects, ``videos`` real clips, one fake per method each."""
    if identities < 3 or videos < identities:
        raise ValueError("DFDC preview twin needs --identities >= 3 and --videos >= --identities")
    subjects = _unique_names(stream(seed, "dfdc_preview", "subjects"), identities,
                             lambda r: str(int(r.integers(1_000_000, 9_999_999))))
    clip_names = iter(_unique_names(stream(seed, "dfdc_preview", "clips"), videos,
                                    lambda r: str(int(r.integers(1_000_000, 9_999_999)))))
    rng = stream(seed, "dfdc_preview", "layout")
    n_test = min(identities - 2, max(1, round(test_fraction * identities)))
    test_subjects = set(rng.choice(identities, size=n_test, replace=False).tolist())
    clips: list[tuple[int, str]] = [(j % identities, next(clip_names)) for j in range(videos)]
    keys_of: dict[bool, dict[int, list[str]]] = {True: {}, False: {}}
    for person, clip in clips:
        keys_of[person in test_subjects].setdefault(person, []).append(f"dfdc_preview/{clip}")

    plan = TwinPlan()
    index: dict[str, dict[str, str]] = {}
    for person, clip in clips:
        subject = subjects[person]
        is_test = person in test_subjects
        split = "test" if is_test else "train"
        key = f"dfdc_preview/{clip}"
        real = f"original_videos/{subject}/{clip}.mp4"
        plan.jobs.append(VideoJob(VideoSpec(key, person), ((real, crf),)))
        index[real] = {"label": "real", "set": split, "target_id": subject}
        donors = {p: k for p, k in keys_of[is_test].items() if p != person} or keys_of[False]
        for letter, style in PREVIEW_METHODS.items():
            donor = sorted(donors)[int(rng.integers(len(donors)))]
            donor_key = donors[donor][int(rng.integers(len(donors[donor])))]
            fake = f"method_{letter}/{subject}/{subject}_{letter}/{clip}.mp4"
            spec = VideoSpec(key, person, "swap", donor_key, donor, style)
            plan.jobs.append(VideoJob(spec, ((fake, crf),)))
            index[fake] = {"label": "fake", "set": split, "target_id": subject}
    plan.texts["dataset.json"] = json.dumps(dict(sorted(index.items())), indent=1) + "\n"
    return plan
