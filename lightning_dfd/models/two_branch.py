"""Two-branch recurrent network of Masi et al. (ECCV 2020; seed 004, Sec. 3.1, Fig. 2): the embedding ``Phi``.

A timm DenseNet (DenseNet-121 in the paper) is split after its first dense block and transition (the split point
is read from timm's ``feature_info``: the module following the first dense-block entry; two 28x28x128 maps at
224 px for DenseNet-121). The part before the split is duplicated into

* ``Phi_RGB``: the backbone's stem, first dense block and transition, as they are;
* ``Phi_LoG``: an unshared copy (same initial weights) with the :class:`~lightning_dfd.models.deep_log.DeepLoG`
  layer of Eq. 1 right after the first convolution (the low-level maps of Fig. 3).

The two maps are fused by a grouped point-wise convolution (Table 1b/1c: ``cat`` then ``conv1x1`` with ``p = 2``
groups); their channels are interleaved first (``rgb_0, log_0, rgb_1, log_1, ...``) so that each group sees
both branches. The remaining dense blocks follow (the last one ends with the final norm, no transition, before
the LSTM), then global average pooling (1024-d for DenseNet-121) per frame and a bidirectional LSTM (hidden 128)
over the ``F`` frames of a clip; ``Phi`` is the concatenation of the two directions' final hidden states
(``2 x 128 = 256``). Dropout (0.2) follows every dense layer (timm's ``proj_drop_rate``). No classifier head.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lightning_dfd.models.backbones import pretrained_kwargs
from lightning_dfd.models.deep_log import DeepLoG

Branches = Literal["two_branch", "rgb_only"]


def interleave_channels(first: Tensor, second: Tensor) -> Tensor:
    """``(B, 2C, H, W)`` with channels ``first_0, second_0, first_1, second_1, ...``."""
    if first.shape != second.shape:
        raise ValueError(f"branches must have the same shape to be fused, got {tuple(first.shape)} and "
                         f"{tuple(second.shape)}")
    return torch.stack([first, second], dim=2).flatten(1, 2)


class GroupedFusion(nn.Module):
    """Point-wise convolution with ``groups`` groups over the interleaved ``cat`` of two ``C``-plane maps -> ``C``.

    Initialised so that output plane ``k`` is the mean of plane ``k`` of both branches (a pretrained next block
    starts from features it knows).
    """

    def __init__(self, channels: int, groups: int = 2) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"fusion groups ({groups}) must divide the branch planes ({channels})")
        self.conv = nn.Conv2d(2 * channels, channels, 1, groups=groups, bias=False)
        with torch.no_grad():
            weight = torch.zeros_like(self.conv.weight)  # (C, 2C / groups, 1, 1)
            per_group = channels // groups
            for out in range(channels):
                j = out % per_group  # position inside the group; group inputs: rgb_j', log_j' interleaved
                weight[out, 2 * j, 0, 0] = 0.5
                weight[out, 2 * j + 1, 0, 0] = 0.5
            self.conv.weight.copy_(weight)

    def forward(self, rgb: Tensor, log: Tensor) -> Tensor:
        return self.conv(interleave_channels(rgb, log))


def densenet_split(features: nn.Sequential, feature_info: Any) -> tuple[list[str], list[str], str]:
    """(module names before and including the split, names after it, the name after which Deep LoG goes).

    The split is after the module that follows the first dense block named in ``feature_info`` (its transition);
    Deep LoG follows the stem convolution, i.e. it precedes the module of the first ``feature_info`` entry.
    """
    names = [name for name, _ in features.named_children()]
    modules = [entry["module"].split(".")[-1] for entry in feature_info]
    dense = [m for m in modules if m.startswith("denseblock")]
    if not dense or dense[0] not in names or names.index(dense[0]) + 1 >= len(names):
        raise ValueError(f"cannot find the first dense block and its transition in {names} (feature_info {modules})")
    split = names.index(dense[0]) + 1
    if not names[split].startswith("transition"):
        raise ValueError(f"expected a transition after {dense[0]}, found {names[split]}")
    first_norm = names.index(modules[0])
    return names[:split + 1], names[split + 1:], names[first_norm - 1]


class TwoBranchNet(nn.Module):
    """``Phi``: two-branch DenseNet + optional BiLSTM (module docstring).

    Args:
        backbone: timm DenseNet name (``densenet121`` in the paper).
        pretrained: ``False``, ``True`` (timm weights from the local cache) or a local weights file; both branches
            start from the same weights.
        in_chans: input channels.
        backbone_args: extra timm arguments (tests shrink the net: ``{growth_rate: 8, block_config: [1, 1, 1, 1]}``).
        branches: ``two_branch`` (``Phi_RGB`` and ``Phi_LoG`` fused) or ``rgb_only`` (``Phi_RGB`` alone).
        fusion_groups: ``p`` of the grouped point-wise fusion (Table 1c: 2).
        dense_dropout: dropout after each dense layer (Sec. 3.1: 0.2).
        use_lstm: BiLSTM over the clip (``Phi`` 2 x hidden) or not (Table 1a: the pooled backbone feature; a clip
            input is then averaged over its frames).
        lstm_hidden: LSTM hidden size per direction (Sec. 4: 128).
        log_sigmas, log_down_factors, log_kernel_size: Deep LoG scales (:class:`DeepLoG`).
    """

    def __init__(self, backbone: str = "densenet121", pretrained: bool | str = False, in_chans: int = 3,
                 backbone_args: dict[str, Any] | None = None, branches: Branches = "two_branch",
                 fusion_groups: int = 2, dense_dropout: float = 0.2, use_lstm: bool = True, lstm_hidden: int = 128,
                 log_sigmas: Sequence[float] = (1.0, 2.0, 4.0), log_down_factors: Sequence[int] = (2, 4, 8),
                 log_kernel_size: int | None = None) -> None:
        super().__init__()
        import timm

        if branches not in ("two_branch", "rgb_only"):
            raise ValueError(f"branches must be two_branch or rgb_only, got {branches!r}")
        net = timm.create_model(backbone, num_classes=0, in_chans=in_chans, proj_drop_rate=dense_dropout,
                                **pretrained_kwargs(backbone, pretrained), **dict(backbone_args or {}))
        features = getattr(net, "features", None)
        if not isinstance(features, nn.Sequential):
            raise ValueError(f"backbone {backbone!r} is not a timm DenseNet (no `features` sequence)")
        low, high, stem = densenet_split(features, net.feature_info)
        self.branches = branches
        self.rgb = nn.Sequential(OrderedDict((n, getattr(features, n)) for n in low))
        self.high = nn.Sequential(OrderedDict((n, getattr(features, n)) for n in high))
        self.low_names, self.high_names = low, high
        self.split_channels, self.split_reduction = self._probe_split(in_chans)
        self.log = None
        self.fusion = None
        if branches == "two_branch":
            log_modules: list[tuple[str, nn.Module]] = []
            for name in low:
                log_modules.append((name, copy.deepcopy(getattr(features, name))))
                if name == stem:
                    channels = getattr(features, name).out_channels
                    log_modules.append(("deep_log", DeepLoG(channels, channels, log_sigmas, log_down_factors,
                                                            log_kernel_size)))
            self.log = nn.Sequential(OrderedDict(log_modules))
            self.fusion = GroupedFusion(self.split_channels, fusion_groups)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = int(net.num_features)
        self.lstm = nn.LSTM(self.num_features, lstm_hidden, batch_first=True, bidirectional=True) if use_lstm else None
        self.embedding_dim = 2 * lstm_hidden if use_lstm else self.num_features

    @torch.no_grad()
    def _probe_split(self, in_chans: int) -> tuple[int, int]:
        """(planes, reduction) of the split maps, read from a forward pass of a small dummy input."""
        was_training = self.rgb.training
        self.rgb.eval()
        size = 64
        out = self.rgb(torch.zeros(1, in_chans, size, size))
        self.rgb.train(was_training)
        return int(out.shape[1]), size // int(out.shape[-1])

    def split_maps(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """``Phi_RGB`` and ``Phi_LoG`` maps at the split, ``(N, C, H/r, W/r)`` each (LoG None for rgb_only)."""
        return self.rgb(images), (self.log(images) if self.log is not None else None)

    def frame_features(self, images: Tensor) -> Tensor:
        """Pooled backbone feature of each image, ``(N, num_features)``."""
        rgb, log = self.split_maps(images)
        fused = rgb if self.fusion is None else self.fusion(rgb, log)
        return self.pool(self.high(fused)).flatten(1)

    def forward(self, inputs: Tensor) -> Tensor:
        """``Phi`` of each clip ``(B, T, C, H, W)`` (or image ``(B, C, H, W)``, a clip of one frame)."""
        clip = inputs if inputs.dim() == 5 else inputs.unsqueeze(1)
        b, t = clip.shape[:2]
        feats = self.frame_features(clip.flatten(0, 1)).view(b, t, -1)
        if self.lstm is None:
            return feats.mean(dim=1)
        _, (hidden, _) = self.lstm(feats)  # hidden: (2, B, H): forward's last step, backward's first step
        return torch.cat([hidden[0], hidden[1]], dim=1)

    def block_groups(self) -> list[tuple[str, list[nn.Parameter], int | None]]:
        """Parameter groups for the per-block learning rates ``mu / 2^L`` (Sec. 3.1): ``(name, params, L)``.

        ``L`` counts dense blocks from the output: the last dense block (with the final norm) is ``L = 1``, the
        one before ``L = 2``..., the RGB branch (stem, first dense block, transition) the largest ``L``; a
        transition goes with the dense block it closes. ``L = None``: the global rate ``mu`` (the Deep LoG
        branch, the fusion and the LSTM, which are new or must adapt to the frequency information).
        """
        blocks: list[list[nn.Parameter]] = []
        current: list[nn.Parameter] = []
        for name in self.high_names:
            params = list(getattr(self.high, name).parameters())
            if name.startswith("denseblock") and current:
                blocks.append(current)
                current = []
            current += params
        blocks.append(current)
        blocks.insert(0, list(self.rgb.parameters()))
        groups: list[tuple[str, list[nn.Parameter], int | None]] = []
        depth = len(blocks)
        for index, params in enumerate(blocks):
            name = "rgb_branch" if index == 0 else f"dense_block_{index + 1}"
            groups.append((name, params, depth - index))
        if self.log is not None:
            groups.append(("log_branch", list(self.log.parameters()), None))
            groups.append(("fusion", list(self.fusion.parameters()), None))
        if self.lstm is not None:
            groups.append(("lstm", list(self.lstm.parameters()), None))
        return groups
