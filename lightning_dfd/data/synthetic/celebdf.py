"""Celeb-DF (v1 / v2) twin layout.

::

    Celeb-real/idX_NNNN.mp4            clip NNNN of celebrity X
    YouTube-real/NNNNN.mp4             other people
    Celeb-synthesis/idX_idY_NNNN.mp4   clip idX_NNNN with its face swapped for celebrity Y's
    List_of_testing_videos.txt         "1 YouTube-real/00170.mp4" / "0 Celeb-synthesis/id0_id16_0007.mp4"

In ``List_of_testing_videos.txt`` **1 means real and 0 fake** (the file's own convention, the opposite of
ours). Only face swaps: ``CelebDF-v2`` style for v2 (improved synthesis), ``CelebDF-v1`` for v1 (lower
resolution, visible colour mismatch and boundary).
"""

from __future__ import annotations

from lightning_dfd.data.synthetic.clips import VideoSpec
from lightning_dfd.data.synthetic.plan import TwinPlan, VideoJob
from lightning_dfd.data.synthetic.rng import stream

STYLE_OF_VERSION = {"celebdf": "CelebDF-v2", "celebdf_v1": "CelebDF-v1"}


def plan_celebdf(dataset: str, seed: int, videos: int, identities: int, youtube: int, fakes_per_video: int,
                 test_fraction: float, crf: int) -> TwinPlan:
    """Plan a Celeb-DF twin: ``videos`` Celeb-real clips of ``identities`` celebrities, ``youtube`` others."""
    if identities < 2:
        raise ValueError("Celeb-DF swaps faces between celebrities: --identities must be >= 2")
    if videos < 2 or youtube < 1 or fakes_per_video < 1:
        raise ValueError("Celeb-DF twin needs --videos >= 2 (two celebrities to swap), "
                         "--fakes_per_video >= 1 and at least one YouTube-real video")
    style = STYLE_OF_VERSION[dataset]
    rng = stream(seed, dataset, "layout")
    plan = TwinPlan()
    celeb = []          # (name, key, identity)
    for j in range(videos):
        person, clip = j % identities, j // identities
        name = f"id{person}_{clip:04d}"
        celeb.append((name, f"{dataset}/{name}", person))
    clips_of = {}
    for name, key, person in celeb:
        clips_of.setdefault(person, []).append(key)

    fakes_of: dict[str, list[str]] = {}
    for name, key, person in celeb:
        plan.jobs.append(VideoJob(VideoSpec(key, person), ((f"Celeb-real/{name}.mp4", crf),)))
        donors = [p for p in clips_of if p != person]
        if not donors:
            continue
        chosen = rng.choice(donors, size=min(fakes_per_video, len(donors)), replace=False)
        clip_number = name.split("_")[1]
        for donor in sorted(int(d) for d in chosen):
            donor_key = clips_of[donor][int(rng.integers(len(clips_of[donor])))]
            fake = f"id{person}_id{donor}_{clip_number}"
            spec = VideoSpec(key, person, "swap", donor_key, donor, style)
            plan.jobs.append(VideoJob(spec, ((f"Celeb-synthesis/{fake}.mp4", crf),)))
            fakes_of.setdefault(name, []).append(fake)

    youtube_names = []
    for k in range(youtube):
        name = f"{k:05d}"
        youtube_names.append(name)
        plan.jobs.append(VideoJob(VideoSpec(f"{dataset}/yt/{name}", identities + k),
                                  ((f"YouTube-real/{name}.mp4", crf),)))

    def pick(names: list[str]) -> list[str]:
        count = min(len(names), max(1, round(test_fraction * len(names))))
        return sorted(str(n) for n in rng.choice(names, size=count, replace=False))

    test_celeb = pick([name for name, _, _ in celeb])
    lines = [f"1 YouTube-real/{name}.mp4" for name in pick(youtube_names)]
    lines += [f"1 Celeb-real/{name}.mp4" for name in test_celeb]
    lines += [f"0 Celeb-synthesis/{fake}.mp4" for name in test_celeb for fake in fakes_of.get(name, [])]
    plan.texts["List_of_testing_videos.txt"] = "\n".join(lines) + "\n"
    return plan
