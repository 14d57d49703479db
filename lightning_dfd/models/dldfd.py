"""DLDFD network (Singh & Ramachandra, VISAPP 2022; seed 002, Sec. 3.2): augmented layers + ResNet-50.

The face crop (224 x 224) goes through three parallel 3x3 convolutions (3 -> 64 channels each), concatenated to
192 channels, then a 1x1 convolution ("1 x 1 x 192"), then ResNet-50 and a fully connected layer (one logit here,
fake = positive). The paper leaves open stride, padding, normalisation, activations and how 192 channels meet
ResNet-50's 3-channel stem. Choices made here (all selectable):

* stride 1, padding 1 (the crop stays 224 x 224 for ResNet-50), biases on, no normalisation, a ReLU after each
  3x3 branch (as in the Inception module the paper cites, Szegedy et al. 2015; ``activation: false`` makes the
  augmented layers linear, in which case they collapse into one 3x3 convolution); the 1x1 output is linear.
* ``fusion: to_rgb`` (reading (a), the default): the 1x1 fuses 192 -> 3 channels, so ResNet-50's stem and every
  ImageNet weight stay usable unchanged (the paper initialises ResNet-50 from ImageNet, Sec. 3.3, and stresses a
  "minimal increase in computational cost" over ResNet-50, Sec. 3).
* ``fusion: wide_stem`` (reading (b)): the 1x1 keeps 192 channels and ResNet-50's stem convolution is widened to 192
  inputs, its (pretrained) 3-channel weights tiled 64 times and scaled by 3 / 192 (:func:`widen_stem_weight`), so
  on an input made of 64 copies of an image it computes what the 3-channel stem computes on the image.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from lightning_dfd.models.backbones import create_classifier

Fusion = Literal["to_rgb", "wide_stem"]
FUSIONS: tuple[str, ...] = ("to_rgb", "wide_stem")


def widen_stem_weight(weight: Tensor, in_chans: int) -> Tensor:
    """Stem weights ``(out, c, k, k)`` widened to ``in_chans`` inputs: tiled along the input channels and scaled by
    ``c / in_chans``, so the widened convolution on ``in_chans / c`` copies of an input equals the original on it."""
    channels = weight.shape[1]
    repeats = math.ceil(in_chans / channels)
    return weight.repeat(1, repeats, 1, 1)[:, :in_chans] * (channels / in_chans)


def widen_stem(model: nn.Module, in_chans: int, stem: str | None = None) -> nn.Module:
    """Replace the first convolution of a timm model (``pretrained_cfg['first_conv']`` unless ``stem`` names it)
    by one with ``in_chans`` inputs and :func:`widen_stem_weight` weights; returns the model."""
    name = stem or model.pretrained_cfg["first_conv"]
    old = model.get_submodule(name)
    if not isinstance(old, nn.Conv2d):
        raise TypeError(f"widen_stem: {name} of {type(model).__name__} is a {type(old).__name__}, not a Conv2d")
    new = nn.Conv2d(in_chans, old.out_channels, old.kernel_size, old.stride, old.padding, old.dilation,
                    old.groups, old.bias is not None, old.padding_mode)
    with torch.no_grad():
        new.weight.copy_(widen_stem_weight(old.weight, in_chans))
        if old.bias is not None:
            new.bias.copy_(old.bias)
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)
    return model


class AugmentedLayers(nn.Module):
    """Sec. 3.2's augmented layers: ``branches`` parallel 3x3 convolutions (``in_chans -> branch_channels`` each,
    stride 1, padding 1), concatenated, an optional ReLU, then a 1x1 convolution to ``out_channels``.

    Args:
        in_chans: input channels (3, RGB).
        branch_channels: outputs of each 3x3 branch (64 in the paper).
        branches: number of parallel 3x3 branches (3 in the paper).
        out_channels: outputs of the 1x1 convolution (3 for reading (a), 192 for reading (b)).
        activation: ReLU after the 3x3 branches (Inception-style); the 1x1 output is linear.
    """

    def __init__(self, in_chans: int = 3, branch_channels: int = 64, branches: int = 3, out_channels: int = 3,
                 activation: bool = True) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(in_chans, branch_channels, 3, stride=1, padding=1)
                                      for _ in range(branches))
        self.activation = nn.ReLU(inplace=True) if activation else nn.Identity()
        self.fuse = nn.Conv2d(branch_channels * branches, out_channels, 1)

    @property
    def concat_channels(self) -> int:
        return self.fuse.in_channels

    def forward(self, images: Tensor) -> Tensor:
        return self.fuse(self.activation(torch.cat([branch(images) for branch in self.branches], dim=1)))


class DLDFDNet(nn.Module):
    """Augmented layers + ResNet-50 (timm) + a linear head with one fake logit (Sec. 3.2).

    Args:
        fusion: ``to_rgb`` (reading (a), default: the 1x1 fuses 192 -> 3 and the 3-channel stem is kept) or
            ``wide_stem`` (reading (b): the 1x1 keeps 192 and the stem is widened to 192 inputs, its weights tiled
            and rescaled). Module docstring: why (a) is the default.
        backbone: timm model after the augmented layers (``resnet50`` in the paper).
        pretrained: ``False``, ``True`` (timm's ImageNet weights, offline-safe) or a local weights file.
        in_chans: channels of the input image.
        branch_channels: outputs of each 3x3 branch (64).
        branches: parallel 3x3 branches (3).
        activation: ReLU after the 3x3 branches.
        drop_rate: dropout before the linear head (none in the paper).
    """

    def __init__(self, fusion: Fusion = "to_rgb", backbone: str = "resnet50", pretrained: bool | str = False,
                 in_chans: int = 3, branch_channels: int = 64, branches: int = 3, activation: bool = True,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"DLDFD fusion must be one of {FUSIONS}, got {fusion!r} (model.init_args.fusion)")
        concat = branch_channels * branches
        out_channels = 3 if fusion == "to_rgb" else concat
        self.fusion = fusion
        self.augmented = AugmentedLayers(in_chans, branch_channels, branches, out_channels, activation)
        # the backbone is built with its own 3-channel stem (and pretrained weights), then widened if asked
        self.backbone = create_classifier(backbone, pretrained=pretrained, num_classes=1, in_chans=3,
                                          drop_rate=drop_rate)
        if fusion == "wide_stem":
            widen_stem(self.backbone, concat)

    def forward(self, images: Tensor) -> Tensor:
        """Fake logits, shape (B,)."""
        return self.backbone(self.augmented(images)).reshape(-1)
