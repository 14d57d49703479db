"""Multi-modal ResNet with SE fusion and multi-level feature aggregation (MLFA), seed 001 (Parkin & Grinchuk,
CVPR-W 2019), Sec. 3.1, 4.3 and Fig. 2.

Per modality (RGB, IR, Depth in the paper; the DataModule's ``modalities`` order here) one branch: the stem and
res1-res3 of a ResNet (``layer1``-``layer3`` of a timm ``features_only`` ResNet; 34 by default, 18 / 50
selectable). Each branch's res3 output is re-weighted by its own squeeze-and-excitation block (the "fusion SE" of
the baseline, Sec. 3.1), the three are concatenated and go through one shared res4 whose first block is widened
to take the concatenation. MLFA (Sec. 4.3): ``agg_k`` takes the concatenated res_k outputs of the branches,
reduced by a 1x1 convolution to the width of res_k, adds ``agg_(k-1)`` and goes through a residual stage shaped
like res_(k+1); ``agg3`` (res4-shaped) is summed with the modality path, then global average pooling and the
two-class head.

Choices where the paper is silent (each an argument):

* ``se_reduction`` (16): the SE reduction ratio of Hu et al.'s paper, also the baseline's (Zhang et al. 2019).
* ``agg_reduction`` (True): the concatenated 3 x C_k features are reduced to C_k by 1x1 conv-BN-ReLU before the
  sum with ``agg_(k-1)``; with it, every ``agg_k`` stage has exactly res_(k+1)'s shapes, so a single-stream
  ResNet's layer weights fit it (weight transfer). ``False`` widens the stage's first block to 3 x C_k instead.
* the sum with the modality path happens on the maps, before GAP. GAP is linear, so summing after it gives the
  same vector: there is nothing to choose.

A single-modality model is the same network fed (X, X, X) (Table 5): an input of ``branch_in_chans`` channels is
repeated into every branch. Any other channel count than ``branch_in_chans`` or ``num_branches x
branch_in_chans`` is refused (a missing modality at test time is an error, not a silent zero);
``modality_dropout`` zeroes whole branches at random during training only (off by default; not in the paper).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from lightning_dfd.errors import UserError
from lightning_dfd.models.backbones import create_backbone

log = logging.getLogger(__name__)

#: ResNets whose stages the model is built from (Table 2-3: 18, 34, 50).
RESNETS = ("resnet18", "resnet34", "resnet50")
#: timm module names of the stem and res1-res3 (a branch) and of res4.
BRANCH_PREFIXES = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.")
RES4 = "layer4"


class ModalityInputError(UserError, ValueError):
    """The input's channel count matches neither one modality nor all branches."""


class InitWeightsError(UserError, FileNotFoundError):
    """The single-stream ResNet state_dict named by ``init_weights`` cannot be read."""


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): ``x * sigmoid(W2 relu(W1 GAP(x)))``, one gate per channel.

    Args:
        channels: feature channels.
        reduction: hidden width = channels / reduction (at least 1).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def gates(self, features: Tensor) -> Tensor:
        """(B, C, 1, 1) gates in (0, 1)."""
        squeezed = features.mean(dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(squeezed))))

    def forward(self, features: Tensor) -> Tensor:
        return features * self.gates(features)


def full_resnet(name: str) -> nn.Module:
    """A randomly initialised single-stream timm ResNet (its stages are copied into the model's parts)."""
    import timm

    return timm.create_model(name, pretrained=False, num_classes=0)


def widen_stage_input(stage: nn.Sequential, in_channels: int) -> nn.Sequential:
    """``stage`` with its first block taking ``in_channels`` instead of its input width (conv1 and downsample).

    The first block's convolutions that read the stage input (``conv1`` and ``downsample.0``) are rebuilt with
    the new input width (same output, kernel, stride). res2-res4 of every ResNet open with a downsample.
    """
    first = stage[0]
    if getattr(first, "downsample", None) is None:
        raise ValueError("widen_stage_input: the stage's first block has no downsample projection to widen")
    old = first.conv1.in_channels
    for parent in (first, first.downsample):
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == old:
                setattr(parent, child_name, nn.Conv2d(in_channels, child.out_channels, child.kernel_size,
                                                      child.stride, child.padding, child.dilation, child.groups,
                                                      child.bias is not None))
    return stage


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 convolution, BatchNorm, ReLU: the MLFA reduction of the concatenated branch features."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
                         nn.ReLU(inplace=True))


class MultiModalResNet(nn.Module):
    """RGB / IR / Depth branches, SE fusion, shared widened res4, optional MLFA (seed 001, Fig. 2).

    Args:
        backbone: ``resnet18``, ``resnet34`` (paper's default, Sec. 4.3) or ``resnet50``.
        num_branches: modality branches (3: RGB, IR, Depth).
        branch_in_chans: channels of one modality (3: the DataModule stores IR and depth as 3-channel images).
        in_chans: channels of the input (linked from the data: 3 per modality); ``branch_in_chans`` means one
            modality fed to every branch (Table 5).
        se_reduction: reduction ratio of the fusion SE blocks (not given in the paper; 16 as in SE-Net).
        mlfa: multi-level feature aggregation blocks agg1-agg3 (Sec. 4.3, Table 3 rows A-D).
        agg_reduction: 1x1 conv reduction of the concatenated res_k features to C_k inside agg_k (see the module
            docstring).
        num_classes: outputs of the head (2: two-class cross-entropy, Sec. 5.1).
        dropout: dropout before the head (0: none, as the paper describes none).
        modality_dropout: probability of zeroing each branch's input during training (0: off; never at eval).
    """

    def __init__(self, backbone: str = "resnet34", num_branches: int = 3, branch_in_chans: int = 3,
                 in_chans: int = 9, se_reduction: int = 16, mlfa: bool = True, agg_reduction: bool = True,
                 num_classes: int = 2, dropout: float = 0.0, modality_dropout: float = 0.0) -> None:
        super().__init__()
        if backbone not in RESNETS:
            raise ValueError(f"model.init_args.backbone must be one of {list(RESNETS)}, got {backbone!r}")
        if in_chans not in (branch_in_chans, num_branches * branch_in_chans):
            raise ModalityInputError(
                f"model.init_args.in_chans = {in_chans}: the multi-modal model takes {branch_in_chans} channels "
                f"(one modality, fed to all {num_branches} branches) or {num_branches * branch_in_chans} (one "
                f"modality per branch): set data.init_args.modalities to 1 or {num_branches} modalities")
        self.backbone_name = backbone
        self.num_branches = num_branches
        self.branch_in_chans = branch_in_chans
        self.in_chans = in_chans
        self.mlfa = mlfa
        self.modality_dropout = float(modality_dropout)
        self.branches = nn.ModuleList(
            create_backbone(backbone, pretrained=False, out_indices=(1, 2, 3), in_chans=branch_in_chans)
            for _ in range(num_branches))
        widths = self.branches[0].feature_info.channels()  # C1, C2, C3 of res1-res3
        self.se = nn.ModuleList(SqueezeExcitation(widths[-1], se_reduction) for _ in range(num_branches))
        reference = full_resnet(backbone)
        self.res4 = widen_stage_input(copy.deepcopy(reference.layer4), num_branches * widths[-1])
        self.num_features = int(reference.num_features)
        if mlfa:
            later = [reference.layer2, reference.layer3, reference.layer4]  # agg_k is shaped like res_(k+1)
            self.agg_reduce = nn.ModuleList(
                conv_bn_relu(num_branches * c, c) if agg_reduction else nn.Identity() for c in widths)
            stages = []
            for k, stage in enumerate(later):
                stage = copy.deepcopy(stage)
                if not agg_reduction:
                    stage = widen_stage_input(stage, num_branches * widths[k])
                stages.append(stage)
            self.agg = nn.ModuleList(stages)
            if not agg_reduction:  # agg_(k-1) (C_k channels) joins the 3 x C_k concat: sum needs equal widths
                self.agg_previous = nn.ModuleList(
                    nn.Identity() if k == 0 else nn.Conv2d(widths[k], num_branches * widths[k], 1, bias=False)
                    for k in range(len(widths)))
        del reference
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes)

    # ------------------------------------------------------------------ forward
    def split_modalities(self, inputs: Tensor) -> list[Tensor]:
        """One (B, branch_in_chans, H, W) tensor per branch; a single modality is repeated (Table 5)."""
        channels = inputs.shape[1]
        if channels == self.branch_in_chans:
            parts = [inputs] * self.num_branches
        elif channels == self.num_branches * self.branch_in_chans:
            parts = list(inputs.split(self.branch_in_chans, dim=1))
        else:
            raise ModalityInputError(
                f"MultiModalResNet got {channels} input channels; it was built for {self.in_chans} "
                f"({self.branch_in_chans} per modality, {self.num_branches} branches): the data's "
                f"modalities differ from training (data.init_args.modalities)")
        if self.training and self.modality_dropout > 0:
            keep = [(torch.rand(inputs.shape[0], 1, 1, 1, device=inputs.device) >= self.modality_dropout).to(
                inputs.dtype) for _ in parts]
            parts = [part * mask for part, mask in zip(parts, keep)]
        return parts

    def branch_features(self, inputs: Tensor) -> list[list[Tensor]]:
        """``features[k][m]``: res_(k+1) output of branch m (k = 0, 1, 2)."""
        per_branch = [branch(part) for branch, part in zip(self.branches, self.split_modalities(inputs))]
        return [list(level) for level in zip(*per_branch)]

    def aggregate(self, features: list[list[Tensor]]) -> Tensor:
        """agg3's output: agg_k(reduce(cat res_k) + agg_(k-1)) for k = 1, 2, 3 (Fig. 2)."""
        previous = None
        for k, (reduce, stage) in enumerate(zip(self.agg_reduce, self.agg)):
            merged = reduce(torch.cat(features[k], dim=1))
            if previous is not None:
                prev = previous if not hasattr(self, "agg_previous") else self.agg_previous[k](previous)
                merged = merged + prev
            previous = stage(merged)
        return previous

    def forward_features(self, inputs: Tensor) -> Tensor:
        """(B, num_features, H/32, W/32): res4 of the SE-fused branches (+ agg3 with MLFA)."""
        features = self.branch_features(inputs)
        fused = torch.cat([se(f) for se, f in zip(self.se, features[-1])], dim=1)
        out = self.res4(fused)
        if self.mlfa:
            out = out + self.aggregate(features)
        return out

    def forward(self, inputs: Tensor) -> Tensor:
        """(B, num_classes) logits."""
        pooled = self.forward_features(inputs).mean(dim=(2, 3))
        return self.head(self.dropout(pooled))

    # ------------------------------------------------------------------ weight transfer (Sec. 4.2, 5.5)
    def transfer_plan(self, source: Mapping[str, Tensor], to_aggregation: bool = False) -> dict[str, str]:
        """target parameter / buffer name -> source name of a single-stream ResNet state_dict.

        Branches take ``conv1/bn1/layer1-3``; ``res4`` takes ``layer4`` (its widened input tensors are tiled, see
        :meth:`load_single_stream`); with ``to_aggregation`` every ``agg.k`` stage takes ``layer{k+2}`` where the
        shapes match (they do with ``agg_reduction``). SE, the 1x1 reductions and the head are never matched.
        """
        plan: dict[str, str] = {}
        for name in source:
            if name.startswith(BRANCH_PREFIXES):
                for m in range(self.num_branches):
                    plan[f"branches.{m}.{name}"] = name
            elif name.startswith(RES4 + "."):
                plan["res4." + name[len(RES4) + 1:]] = name
            if to_aggregation and self.mlfa:
                for k, layer in enumerate(("layer2", "layer3", "layer4")):
                    if name.startswith(layer + "."):
                        plan[f"agg.{k}." + name[len(layer) + 1:]] = name
        return plan

    def load_single_stream(self, state_dict: Mapping[str, Tensor], to_aggregation: bool = False) -> dict[str, list]:
        """Copy a single-stream ResNet (ImageNet, face recognition...) into the branches, res4 and optionally MLFA.

        A widened input tensor of res4 (``num_branches x C3`` input channels) gets the source tensor tiled along
        its input axis and divided by the number of branches, so three equal inputs give the source's response.
        Returns ``{"loaded": [...], "unmatched": [...]}`` (target names without a source tensor of a usable
        shape); both are logged.
        """
        state_dict = {strip_prefix(k): v for k, v in state_dict.items()}
        own = self.state_dict()
        plan = self.transfer_plan(state_dict, to_aggregation)
        loaded, new = [], {}
        for target, source_name in plan.items():
            if target not in own:
                continue
            src, dst = state_dict[source_name], own[target]
            if src.shape == dst.shape:
                new[target] = src
            elif (src.dim() == 4 and dst.dim() == 4 and src.shape[0] == dst.shape[0]
                  and dst.shape[1] % src.shape[1] == 0 and src.shape[2:] == dst.shape[2:]):
                repeats = dst.shape[1] // src.shape[1]
                new[target] = src.repeat(1, repeats, 1, 1) / repeats
            else:
                continue
            loaded.append(target)
        self.load_state_dict(new, strict=False)
        unmatched = sorted(set(own) - set(loaded))
        log.info("MultiModalResNet: %d tensors transferred from the single-stream ResNet; %d left as initialised: "
                 "%s", len(loaded), len(unmatched), ", ".join(unmatched))
        return {"loaded": sorted(loaded), "unmatched": unmatched}


def strip_prefix(name: str) -> str:
    """A state_dict key without a ``module.`` (DataParallel) or ``model.`` / ``backbone.`` wrapper prefix."""
    for prefix in ("module.", "model.", "backbone."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A single-stream ResNet state_dict from a local ``.pth`` / ``.pt`` / ``.safetensors`` file (no download)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InitWeightsError(f"model.init_args.init_weights: {path} not found. Give a local ResNet state_dict "
                               f"(.pth/.safetensors, timm or torchvision names) or set `init_weights: null` "
                               f"(random initialisation)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise InitWeightsError(f"model.init_args.init_weights: {path} holds a {type(loaded).__name__}, not a "
                               f"state_dict (save one with torch.save(model.state_dict(), path))")
    return loaded
