"""DeeperForensics-1.0 twin layout.

::

    manipulated_videos/<variant>/TTT_SSSS.mp4    target TTT (an FF++ YouTube id), source actor SSSS (M004, W101)
    lists/splits/{train,val,test}.txt           one manipulated video name per line
    original_sequences/youtube/c23/videos/TTT.mp4   the real targets (FF++ c23; not shipped by the dataset, the
                                                    twin writes them where the indexer reads them)

Every variant holds the same names. The twin's variants differ as the dataset's perturbation levels do in one
of its seven kinds, compression: ``end_to_end`` at crf 23, ``end_to_end_level_<k>`` at crf ``23 + 4k``, the
other variants at crf 30. Splits are by target, 70 : 10 : 20 (at least one target each).
"""

from __future__ import annotations

from lightning_dfd.data.layouts import DEEPER_REALS, DEEPER_VARIANTS
from lightning_dfd.data.synthetic.clips import VideoSpec
from lightning_dfd.data.synthetic.plan import TwinPlan, VideoJob
from lightning_dfd.data.synthetic.rng import stream

DEFAULT_TWIN_VARIANTS = ("end_to_end", "end_to_end_level_3")


def variant_crf(variant: str) -> int:
    """The compression standing in for ``variant``'s perturbation in the twin."""
    if variant == "end_to_end":
        return 23
    if variant.startswith("end_to_end_level_"):
        return 23 + 4 * int(variant.rsplit("_", 1)[-1])
    return 30


def plan_deeperforensics(seed: int, videos: int, identities: int, variants: list[str]) -> TwinPlan:
    """Plan a DeeperForensics-1.0 twin: ``videos`` targets (>= 3), one DF-VAE-like swap each in every variant."""
    if videos < 3 or identities < 2:
        raise ValueError("DeeperForensics-1.0 twin needs --videos >= 3 (train/val/test targets), --identities >= 2")
    unknown = sorted(set(variants) - set(DEEPER_VARIANTS))
    if unknown:
        raise ValueError(f"unknown DeeperForensics-1.0 variants {unknown}; choose from {list(DEEPER_VARIANTS)}")
    rng = stream(seed, "deeperforensics", "layout")
    order = [int(i) for i in rng.permutation(videos)]
    n_test = max(1, round(0.2 * videos))
    n_val = max(1, round(0.1 * videos))
    split_of = {t: ("test" if k < n_test else "val" if k < n_test + n_val else "train") for k, t in enumerate(order)}
    plan = TwinPlan()
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for target in range(videos):
        person = target % identities
        donor = (person + 1) % identities
        source = f"{'MW'[donor % 2]}{donor:03d}"
        name = f"{target:03d}_{source}"
        key = f"deeperforensics/{target:03d}"
        plan.jobs.append(VideoJob(VideoSpec(key, person), ((f"{DEEPER_REALS}/{target:03d}.mp4", 23),)))
        spec = VideoSpec(key, person, "swap", f"deeperforensics/source/{source}", donor, "Deepfakes")
        plan.jobs.append(VideoJob(spec, tuple((f"manipulated_videos/{v}/{name}.mp4", variant_crf(v))
                                              for v in variants)))
        lines[split_of[target]].append(f"{name}.mp4")
    for split, names in lines.items():
        plan.texts[f"lists/splits/{split}.txt"] = "\n".join(sorted(names)) + "\n"
    return plan
