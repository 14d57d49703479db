"""Google DeepFakeDetection (DFD) twin, in the FaceForensics++ layout.

::

    original_sequences/actors/<c>/videos/AA__<scene>.mp4                   actor AA in one scene
    manipulated_sequences/DeepFakeDetection/<c>/videos/AA_BB__<scene>__<code>.mp4   AA's video, BB's face

No split files: DFD is used whole as a test set.
"""

from __future__ import annotations

import string

from lightning_dfd.data.synthetic.clips import VideoSpec
from lightning_dfd.data.synthetic.encode import crf_of
from lightning_dfd.data.synthetic.plan import TwinPlan, VideoJob
from lightning_dfd.data.synthetic.rng import stream

SCENES = ("kitchen_pan", "meeting_serious", "outside_talking_still_laughing", "podium_speech_happy",
          "walking_outside_cafe_disgusted", "secret_conversation", "talking_against_wall")


def plan_dfd(seed: int, videos: int, identities: int, compressions: list[str]) -> TwinPlan:
    """Plan a DFD twin: ``videos`` real scenes of ``identities`` actors, one fake of each."""
    if videos < 1 or identities < 2:
        raise ValueError("DFD twin needs --videos >= 1 and --identities >= 2")
    rng = stream(seed, "dfd", "layout")
    qualities = {quality: crf_of(quality) for quality in compressions}
    plan = TwinPlan()
    for j in range(videos):
        actor = j % identities
        scene = SCENES[(j // identities) % len(SCENES)] + ("" if j < identities * len(SCENES) else f"_{j}")
        name = f"{actor + 1:02d}__{scene}"
        key = f"dfd/{name}"
        plan.jobs.append(VideoJob(VideoSpec(key, actor), tuple(
            (f"original_sequences/actors/{q}/videos/{name}.mp4", crf) for q, crf in qualities.items())))
        donor = (actor + 1 + int(rng.integers(identities - 1))) % identities
        code = "".join(rng.choice(list(string.ascii_uppercase + string.digits), 8))
        fake = f"{actor + 1:02d}_{donor + 1:02d}__{scene}__{code}"
        spec = VideoSpec(key, actor, "swap", f"dfd/{donor + 1:02d}__{SCENES[0]}", donor, "FaceShifter")
        plan.jobs.append(VideoJob(spec, tuple(
            (f"manipulated_sequences/DeepFakeDetection/{q}/videos/{fake}.mp4", crf) for q, crf in qualities.items())))
    return plan
