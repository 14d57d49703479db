"""timm backbones, created offline-safe.

``pretrained`` is ``False`` (random init, the offline default), ``True`` (timm's weights: used from the local
Hugging Face / torch-hub cache, which ``python -m lightning_dfd weights fetch NAME`` fills on a machine with internet;
downloaded at run time only when ``LIGHTNING_DFD_ALLOW_DOWNLOAD=1``) or a path to a local weights file
(``.pth``/``.safetensors``, passed to timm through ``pretrained_cfg_overlay=dict(file=...)``). A request that cannot
be met raises :class:`PretrainedWeightsError` before any training starts, naming the fix. timm is imported when a
model is built, not with this module, so the CLI's ``--help`` does not pay for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightning_dfd.errors import UserError

ALLOW_DOWNLOAD_ENV = "LIGHTNING_DFD_ALLOW_DOWNLOAD"


class PretrainedWeightsError(UserError, RuntimeError):
    """Pretrained weights were requested but cannot be had offline (printed by the CLI as one line)."""


def _cached_weights(name: str) -> str | None:
    """Path of timm's pretrained weights for ``name`` if already in a local cache, else None."""
    import timm

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
        f"or torch-hub cache). Fix: run `python -m lightning_dfd weights fetch {name}` on a machine with internet "
        f"(same cache), or set `pretrained: false`, or `pretrained: /path/to/{name}.safetensors` (a local weights "
        f"file)."
    )


def create_classifier(name: str, pretrained: bool | str = False, num_classes: int = 1, in_chans: int = 3,
                      **kwargs: Any) -> nn.Module:
    """A timm classification model with ``num_classes`` outputs (offline-safe ``pretrained``)."""
    import timm

    return timm.create_model(name, num_classes=num_classes, in_chans=in_chans, **pretrained_kwargs(name, pretrained),
                             **kwargs)


class HeadFeatures(nn.Module):
    """A full timm model returning its stage features at ``out_indices`` plus the output of its head convolution.

    ``features_only`` models drop the final 1x1 "head" convolution (EfficientNet's ``conv_head`` + ``bn2``: 448 ->
    1792 channels for B4); LAA-Net's top level F(6) is that output. This wrapper keeps the whole (pretrained) network
    and calls timm's ``forward_intermediates``; its ``feature_info`` lists the stages at ``out_indices`` and then the
    head (``module == "head"``, ``num_features`` channels) at the stride of the last stage.
    """

    def __init__(self, model: nn.Module, out_indices: tuple[int, ...]) -> None:
        super().__init__()
        if not hasattr(model, "forward_intermediates"):
            raise ValueError(f"timm model {type(model).__name__} has no forward_intermediates(), so its head features "
                             "cannot be returned: choose another backbone or a level set without the head")
        from timm.models import FeatureInfo

        stages = [dict(info) for info in model.feature_info]
        bad = [i for i in out_indices if not 0 <= i < len(stages)]
        if bad:
            raise ValueError(f"out_indices {list(out_indices)}: {bad} not in 0..{len(stages) - 1}")
        head = {"num_chs": int(model.num_features), "reduction": stages[-1]["reduction"], "module": "head"}
        self.model = model
        self.out_indices = tuple(int(i) for i in out_indices)
        self.feature_info = FeatureInfo(stages + [head], self.out_indices + (len(stages),))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        final, intermediates = self.model.forward_intermediates(images, indices=list(self.out_indices))
        return [*intermediates, final]


def create_backbone(name: str, pretrained: bool | str = False, out_indices: tuple[int, ...] | None = None,
                    in_chans: int = 3, head_features: bool = False, **kwargs: Any) -> nn.Module:
    """A timm ``features_only`` backbone; read widths from ``.feature_info.channels()`` / ``.reduction()``.

    With ``head_features`` the model is a :class:`HeadFeatures` (full model: stage maps plus the head output last).
    """
    import timm

    if head_features:
        model = timm.create_model(name, num_classes=0, global_pool="", in_chans=in_chans,
                                  **pretrained_kwargs(name, pretrained), **kwargs)
        indices = tuple(out_indices) if out_indices is not None else tuple(range(len(model.feature_info)))
        return HeadFeatures(model, indices)
    if out_indices is not None:
        kwargs["out_indices"] = tuple(out_indices)
    return timm.create_model(name, features_only=True, in_chans=in_chans, **pretrained_kwargs(name, pretrained),
                             **kwargs)
