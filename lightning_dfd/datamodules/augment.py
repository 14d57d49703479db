"""Albumentations pipelines from YAML: a list of ``{class_path, init_args}`` dicts, composed with ``strict=True``.

A config such as::

    train_transforms:
      - class_path: HorizontalFlip            # short names resolve in the ``albumentations`` namespace
        init_args: {p: 0.5}
      - class_path: albumentations.OneOf       # nested composes take their children under ``transforms``
        init_args:
          p: 0.3
          transforms:
            - {class_path: GaussianBlur, init_args: {blur_limit: [3, 5]}}
            - {class_path: ImageCompression, init_args: {quality_range: [40, 90]}}

becomes ``A.Compose([...], strict=True)``: an unknown or renamed argument (albumentations 2.0.8 only warns about
them by default) is an error that names the transform and the offending key.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import albumentations as A
from albumentations.core.composition import BaseCompose
from albumentations.core.transforms_interface import BasicTransform

TransformSpec = Mapping[str, Any]
"""``{"class_path": "albumentations.HorizontalFlip", "init_args": {"p": 0.5}}``."""

AnyTransform = BasicTransform | BaseCompose


class TransformConfigError(ValueError):
    """A transform entry in the data config cannot be built; the message names the entry and the fix."""


def resolve_class(class_path: str) -> type:
    """``HorizontalFlip`` -> ``albumentations.HorizontalFlip``; dotted paths are imported as given."""
    if "." not in class_path:
        if not hasattr(A, class_path):
            raise TransformConfigError(
                f"unknown albumentations transform {class_path!r}; use a name from albumentations 2.0.8 "
                f"(e.g. HorizontalFlip) or a full dotted path (package.module.Class)."
            )
        return getattr(A, class_path)
    module_name, _, attr = class_path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as err:
        raise TransformConfigError(f"cannot import transform class_path {class_path!r}: {err}") from err


def build_transform(spec: TransformSpec | AnyTransform, where: str = "transforms") -> AnyTransform:
    """One transform from its spec (instances pass through, so Python users may hand objects directly)."""
    if isinstance(spec, (BasicTransform, BaseCompose)):
        return spec
    if not isinstance(spec, Mapping) or "class_path" not in spec:
        raise TransformConfigError(
            f"{where}: expected a mapping with 'class_path' (and optional 'init_args'), got {spec!r}"
        )
    unknown = set(spec) - {"class_path", "init_args"}
    if unknown:
        raise TransformConfigError(f"{where}: unknown keys {sorted(unknown)} in {dict(spec)!r}; "
                                   f"put transform arguments under 'init_args'.")
    cls = resolve_class(str(spec["class_path"]))
    init_args = dict(spec.get("init_args") or {})
    if issubclass(cls, BaseCompose) and "transforms" in init_args:
        init_args["transforms"] = [build_transform(child, f"{where}.{spec['class_path']}.transforms[{i}]")
                                   for i, child in enumerate(init_args["transforms"])]
    try:
        transform = cls(**init_args)
    except (TypeError, ValueError) as err:
        raise TransformConfigError(f"{where}: cannot build {spec['class_path']}({init_args}): {err}") from err
    invalid = getattr(transform, "invalid_args", None)
    if invalid:
        raise TransformConfigError(
            f"{where}: {spec['class_path']} does not accept {invalid} in albumentations 2.0.8 (renamed? "
            f"e.g. quality_range, std_range, scale_range, fill)."
        )
    return transform


def build_transforms(specs: Sequence[TransformSpec | AnyTransform] | None,
                     where: str = "transforms") -> list[AnyTransform]:
    return [build_transform(spec, f"{where}[{i}]") for i, spec in enumerate(specs or [])]


def compose(transforms: Sequence[AnyTransform], additional_targets: Mapping[str, str] | None = None,
            keypoints: bool = True) -> A.Compose:
    """``A.Compose(strict=True)`` with keypoints in ``xy`` that are never dropped (landmarks keep 68 rows)."""
    with warnings.catch_warnings():  # pixel-only pipelines leave the keypoint processor idle: not a problem
        warnings.filterwarnings("ignore", message="Got processor for keypoints, but no transform to process it")
        return A.Compose(
            list(transforms),
            additional_targets=dict(additional_targets or {}),
            keypoint_params=A.KeypointParams(format="xy", remove_invisible=False) if keypoints else None,
            strict=True,
        )
