"""UADFV twin layout.

::

    real/NNNN.mp4          one person per video (UADFV's 49 reals are 49 people)
    fake/NNNN_fake.mp4     NNNN's video with another person's face swapped in

No split file: UADFV has none; the indexer writes the seeded subject split (``uadfv_split.json``).
"""

from __future__ import annotations

from lightning_dfd.data.synthetic.clips import VideoSpec
from lightning_dfd.data.synthetic.plan import TwinPlan, VideoJob


def plan_uadfv(seed: int, videos: int, crf: int) -> TwinPlan:
    """Plan a UADFV twin: ``videos`` real videos (one person each) and one face-swap fake of each."""
    if videos < 2:
        raise ValueError(f"UADFV twin needs --videos >= 2 (a swap needs a donor), got {videos}")
    plan = TwinPlan()
    for j in range(videos):
        name = f"{j:04d}"
        key = f"uadfv/{name}"
        donor = (j + 1) % videos
        plan.jobs.append(VideoJob(VideoSpec(key, j), ((f"real/{name}.mp4", crf),)))
        spec = VideoSpec(key, j, "swap", f"uadfv/{donor:04d}", donor, "Deepfakes")
        plan.jobs.append(VideoJob(spec, ((f"fake/{name}_fake.mp4", crf),)))
    return plan
