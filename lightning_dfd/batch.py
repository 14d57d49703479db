"""The batch contract: the keys of a sample dict and of a collated batch, between the data and method layers.

Every layer names these keys through the constants below, never as string literals: a DataModule produces
them, a method reads them (through :meth:`~lightning_dfd.methods.base.DetectorModule.batch_inputs` for the
model's input), the base scores them and callbacks read :class:`EvalStepOutput`, the public output of the
validation / test step.

=====================  ==============================  ==========================================================
key (constant)         shape in a batch of B           meaning
=====================  ==============================  ==========================================================
``IMAGE``              B, C, H, W float                normalised face crop; C = 3, or 3 per modality stacked
                                                       along channels (9 for RGB + Depth + IR, CASIA-SURF)
``CLIP``               B, T, C, H, W float             T consecutive crops of one video (clip mode, recurrent
                                                       models); present *instead of* ``IMAGE``
``LABEL``              B int64                         0 real / bona fide, 1 fake / attack, -1 unknown (predict)
``VIDEO_ID``           list of B str                   the video a frame belongs to (video-level aggregation)
``FRAME_INDEX``        B int64                         position of the (first) frame in its video
``FRAME_INDICES``      B, T int64                      positions of the frames of a clip (clip mode only)
``METHOD``             list of B str                   manipulation (FF++ ``Deepfakes``...), ``real``, or
                                                       ``pseudo_sbi`` / ``pseudo_bi`` for pseudo-fakes
``ATTACK_TYPE``        B int64                         CASIA-SURF attack type 1-6 (seed 001, Table 1), 0 bona
                                                       fide, -1 not an anti-spoofing dataset
``LANDMARKS``          B, 68, 2 float                  iBUG-68 landmarks in crop pixels (NaN where unknown)
``MASK``               B, 1, H, W float                blend mask M of a pseudo-fake (zeros for reals)
``HEATMAP``            B, 1, h, w float                LAA-Net vulnerable-point heatmap target (seed 003, Eq. 4)
``CONSISTENCY``        B, 1, h, w float                LAA-Net self-consistency target (seed 003, Eq. 7)
=====================  ==============================  ==========================================================

``MODEL_INPUT_KEYS`` are the keys a model may receive as input (one of them per batch); ``TARGET_KEYS`` are the
auxiliary training targets a targets transform adds. A method names the keys its loss needs in
``loss_targets`` (:class:`~lightning_dfd.methods.base.DetectorModule`); docs/architecture.md shows where each key
is made and read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # the contract is imported by light modules (preprocess, manifests): no torch at import
    from torch import Tensor

IMAGE: Final = "image"
CLIP: Final = "clip"
LABEL: Final = "label"
VIDEO_ID: Final = "video_id"
FRAME_INDEX: Final = "frame_index"
FRAME_INDICES: Final = "frame_indices"
METHOD: Final = "method"
ATTACK_TYPE: Final = "attack_type"
LANDMARKS: Final = "landmarks"
MASK: Final = "mask"
HEATMAP: Final = "heatmap"
CONSISTENCY: Final = "consistency"

#: keys a model can take as input; a batch holds exactly one of them.
MODEL_INPUT_KEYS: Final = (CLIP, IMAGE)
#: auxiliary dense targets (LAA-Net) that a targets transform adds to training samples.
TARGET_KEYS: Final = (HEATMAP, CONSISTENCY)
#: per-sample metadata that collates to lists or 1-D tensors.
META_KEYS: Final = (LABEL, VIDEO_ID, FRAME_INDEX, FRAME_INDICES, METHOD, ATTACK_TYPE)
#: every key of the contract (a method's ``loss_targets`` must be among them).
ALL_KEYS: Final = (*MODEL_INPUT_KEYS, *META_KEYS, LANDMARKS, MASK, *TARGET_KEYS)

#: label values.
REAL: Final = 0
FAKE: Final = 1
UNKNOWN_LABEL: Final = -1


def model_input(batch: dict[str, Any]) -> Tensor:
    """The model's input of a batch: ``CLIP`` in clip mode, else ``IMAGE``; a clear error when neither is there."""
    for key in MODEL_INPUT_KEYS:
        if key in batch:
            return batch[key]
    raise KeyError(f"a batch must hold one of {list(MODEL_INPUT_KEYS)} (see lightning_dfd.batch); got keys "
                   f"{sorted(batch)}")


@dataclass
class EvalStepOutput:
    """What ``validation_step`` / ``test_step`` return, and what callbacks may read (``outputs`` argument).

    Attributes:
        outputs: the method's ``forward`` outputs (at least ``"logit"``; LAA-Net adds ``"heatmap"``...).
        fake_probability: per-sample probability of fake / attack (after flip averaging), shape (B,).
        losses: the method's losses on this batch, or ``None`` when the batch lacks the targets they need.
    """

    outputs: dict[str, Tensor]
    fake_probability: Tensor
    losses: dict[str, Tensor] | None = field(default=None)
