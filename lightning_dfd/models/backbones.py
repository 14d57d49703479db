"""timm backbones, created offline-safe.

``pretrained`` is ``False`` (random init, the offline default), ``True`` (timm's weights: used from the local
Hugging Face / torch-hub cache; downloaded only when ``LIGHTNING_DFD_ALLOW_DOWNLOAD=1``, e.g. on a cluster with
internet) or a path to a local weights file (``.pth``/``.safetensors``, passed to timm through
``pretrained_cfg_overlay=dict(file=...)``). A request that cannot be met raises :class:`PretrainedWeightsError`
before any training starts, naming the fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

ALLOW_DOWNLOAD_ENV = "LIGHTNING_DFD_ALLOW_DOWNLOAD"


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights were requested but cannot be had offline."""


def _cached_weights(name: str) -> str | None:
    """Path of timm's pretrained weights for ``name`` if already in a local cache, else None."""
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo = cfg.hf_hub_id.split("@")[0]
        for filename in filter(None, (cfg.hf_hub_filename, "model.safetensors", "pytorch_model.bin")):
            found = try_to_load_from_cache(repo, filename)
            if isinstance(found, str) and os.path.exists(found):
                return found
    if cfg.url:
        candidate = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)
        if candidate.exists():
            return str(candidate)
    return None


def pretrained_kwargs(name: str, pretrained: bool | str) -> dict[str, Any]:
    """timm keyword arguments for ``pretrained``; raises PretrainedWeightsError when it cannot be met offline."""
    if pretrained is False or pretrained is None:
        return {"pretrained": False}
    if isinstance(pretrained, str) and pretrained.lower() not in ("true", "false"):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise PretrainedWeightsError(
                f"pretrained weights file for '{name}': {path} not found. Give an existing .pth/.safetensors file "
                "or set `pretrained: false`."
            )
        return {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}}
    if isinstance(pretrained, str) and pretrained.lower() == "false":
        return {"pretrained": False}
    cached = _cached_weights(name)
    if cached is not None:
        return {"pretrained": True, "pretrained_cfg_overlay": {"file": cached}}
    if os.environ.get(ALLOW_DOWNLOAD_ENV) == "1":
        return {"pretrained": True}
    raise PretrainedWeightsError(
        f"pretrained weights for timm model '{name}' are not available offline (nothing in the local Hugging Face "
        f"or torch-hub cache). Fix: set `pretrained: false`, or `pretrained: /path/to/{name}.safetensors` (a local "
        f"weights file), or export {ALLOW_DOWNLOAD_ENV}=1 on a machine with internet access."
    )


def create_classifier(name: str, pretrained: bool | str = False, num_classes: int = 1, in_chans: int = 3,
                      **kwargs: Any) -> nn.Module:
    """A timm classification model with ``num_classes`` outputs (offline-safe ``pretrained``)."""
    return timm.create_model(name, num_classes=num_classes, in_chans=in_chans, **pretrained_kwargs(name, pretrained),
                             **kwargs)


def create_backbone(name: str, pretrained: bool | str = False, out_indices: tuple[int, ...] | None = None,
                    in_chans: int = 3, **kwargs: Any) -> nn.Module:
    """A timm ``features_only`` backbone; read widths from ``.feature_info.channels()`` / ``.reduction()``."""
    if out_indices is not None:
        kwargs["out_indices"] = tuple(out_indices)
    return timm.create_model(name, features_only=True, in_chans=in_chans, **pretrained_kwargs(name, pretrained),
                             **kwargs)
