"""WildDeepfake twin layout.

::

    {real,fake}_{train,test}/K.tar.gz     each archive: folders of face images, one face sequence each
        <sequence>/<frame>.png            the image name is the frame number in its source video
        <sequence>/<frame>.landmarks.npy  the twin's ground truth: (68, 2) landmarks in the image

Images are square face crops (the release ships faces, not frames). Fakes are face swaps of another person.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightning_dfd.data.synthetic.clips import ClipRenderer, VideoSpec
from lightning_dfd.data.synthetic.plan import TwinPlan
from lightning_dfd.io import atomic_path

PARTS = (("real", "train"), ("real", "test"), ("fake", "train"), ("fake", "test"))
SEQUENCES_PER_ARCHIVE = 2
FACE_MARGIN = 0.3


def _png(image: np.ndarray) -> bytes:
    import cv2

    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("OpenCV could not encode a twin face image")
    return data.tobytes()


@dataclass(frozen=True)
class FaceArchiveJob:
    """Render face sequences, crop the faces, and pack them (with landmark sidecars) into one tar.gz archive."""

    archive: str
    sequences: tuple[tuple[str, VideoSpec], ...]   # (folder inside the archive, what it shows)

    @property
    def group(self) -> str:
        return self.archive

    def outputs(self) -> list[str]:
        return [self.archive]

    def run(self, root: Path, renderer: ClipRenderer) -> None:
        from lightning_dfd.data.faces import crop_face

        start = 10 * (sum(map(ord, self.archive)) % 7)   # frame numbers need not start at 0
        with atomic_path(root / self.archive) as tmp, tarfile.open(tmp, "w:gz") as tar:
            for folder, spec in self.sequences:
                clip = renderer.render(spec)
                for t in range(len(clip.frames)):
                    crop = crop_face(clip.frames[t], clip.landmarks[t], FACE_MARGIN, renderer.size)
                    buffer = io.BytesIO()
                    np.save(buffer, crop.landmarks.astype(np.float32), allow_pickle=False)
                    for name, data in ((f"{start + t}.png", _png(crop.image)),
                                       (f"{start + t}.landmarks.npy", buffer.getvalue())):
                        info = tarfile.TarInfo(f"{folder}/{name}")
                        info.size, info.mtime = len(data), 0
                        tar.addfile(info, io.BytesIO(data))


def plan_wilddeepfake(seed: int, videos: int, identities: int) -> TwinPlan:
    """Plan a WildDeepfake twin: ``videos`` face sequences (>= 8: two per real/fake x train/test part)."""
    if videos < 8 or identities < 2:
        raise ValueError("WildDeepfake twin needs --videos >= 8 (two sequences per real/fake x train/test part) "
                         "and --identities >= 2")
    plan = TwinPlan()
    for k in range(videos):
        kind, split = PARTS[k % len(PARTS)]
        index = k // len(PARTS)
        person = k % identities
        key = f"wilddeepfake/{k}"
        spec = (VideoSpec(key, person) if kind == "real" else
                VideoSpec(key, person, "swap", f"wilddeepfake/donor{k}", (person + 1) % identities, "Deepfakes"))
        archive = f"{kind}_{split}/{index // SEQUENCES_PER_ARCHIVE}.tar.gz"
        sequence = f"{kind}_{k:04d}"
        job = next((j for j in plan.jobs if j.archive == archive), None)
        if job is None:
            plan.jobs.append(FaceArchiveJob(archive, ((sequence, spec),)))
        else:
            plan.jobs[plan.jobs.index(job)] = FaceArchiveJob(archive, job.sequences + ((sequence, spec),))
    return plan
