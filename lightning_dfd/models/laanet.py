"""LAA-Net (seed 003): backbone + E-FPN decoder + classification, heatmap and self-consistency heads.

Paper level numbering -> timm (levels are 1-based, F(l) has stride 2^l up to the last stage):

=========  =================================================  ==============================
paper      timm source                                        EfficientNet-B4 at 384x384
=========  =================================================  ==============================
F(6)       head convolution output (``conv_head`` + ``bn2``)  1792 ch, stride 32, 12x12
F(5)       ``features_only`` out_index 4 (``blocks.6``)       448 ch, stride 32, 12x12
F(4)       out_index 3 (``blocks.4``)                         160 ch, stride 16, 24x24
F(3)       out_index 2 (``blocks.2``)                         56 ch, stride 8, 48x48
F(2)       out_index 1 (``blocks.1``)                         32 ch, stride 4, 96x96
F(1)       out_index 0 (``blocks.0``)                         24 ch, stride 2, 192x192
=========  =================================================  ==============================

In general F(l) = timm stage ``l - 1`` for l <= K (K stages) and F(K + 1) = the head (the full model's
``forward_intermediates`` final output; for ResNets that equals the last stage). Channels and strides are read
from ``feature_info``. The decoder runs from the top level of ``levels`` down to the level whose stride is
``heatmap_stride`` (4: 96x96 maps at 384x384, as the official targets); levels in ``levels`` below the top are
merged by E-FPN (Eq. 9), the others only upsampled. Table 4's rows are ``levels`` = [6], [6, 5], [6, 5, 4],
[6, 5, 4, 3] (the paper's model) and [6, 5, 4, 3, 2].

All three heads read the decoder output: classification (3x3 conv-BN-ReLU, global average pool, linear: one
logit), heatmap (3x3 conv-BN-ReLU, 1x1 conv: one logit per pixel), self-consistency (3x3 conv-BN-ReLU,
1x1 conv: a ``consistency_dim`` embedding per pixel). The 2-D self-consistency map of a sample is the scaled
dot product between the embedding at its vulnerable point p^s and every pixel, C_hat = sigmoid(<e_ps, e_ij> /
sqrt(d)): the (1, h, w) counterpart of the target C of Eq. 7.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lightning_dfd.batch import CONSISTENCY, HEATMAP
from lightning_dfd.models.backbones import create_backbone
from lightning_dfd.models.efpn import EnhancedFPN, FPNType

HEATMAP_PRIOR_BIAS = -2.19  # sigmoid(-2.19) ~ 0.1: the CenterNet/CornerNet prior for sparse heatmaps


def consistency_logits(embedding: Tensor, anchor_index: Tensor) -> Tensor:
    """Logits of the 2-D self-consistency map: <e(anchor), e(i, j)> / sqrt(d), shape (B, 1, h, w).

    Args:
        embedding: (B, d, h, w) per-pixel embeddings.
        anchor_index: (B,) flat index (row * w + col) of each sample's anchor (vulnerable) point.
    """
    batch, dim, height, width = embedding.shape
    flat = embedding.flatten(2)  # B, d, hw
    index = anchor_index.to(device=flat.device, dtype=torch.long).view(batch, 1, 1).expand(batch, dim, 1)
    anchor = flat.gather(2, index)  # B, d, 1
    logits = (anchor * flat).sum(dim=1, keepdim=True) / math.sqrt(dim)
    return logits.view(batch, 1, height, width)


def _dense_head(in_channels: int, hidden: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, out_channels, kernel_size=1),
    )


class LAANet(nn.Module):
    """Localized Artifact Attention Network.

    Args:
        backbone: timm model name (EfficientNet-B4, ``efficientnet_b4``, in the paper).
        pretrained: false, true (local cache only) or a local weights path (see ``models.backbones``).
        levels: paper levels merged by the pyramid, top first, contiguous (``[6, 5, 4, 3]`` in the paper).
        fpn_type: ``efpn`` (Eq. 9), ``fpn`` (plain, Table 4) or ``none`` (only the top level; ``levels``
            must then hold one level).
        gamma_w: exponent of the E-FPN gate.
        heatmap_stride: stride of the heatmap / consistency outputs (their targets are image_size / stride).
        head_channels: hidden width of the three heads.
        consistency_dim: embedding size d of the self-consistency head.
        use_heatmap: build the heatmap branch (H of Table 3).
        use_consistency: build the self-consistency branch (C of Table 3).
        dropout: dropout on the backbone feature maps F(l) read by the decoder (0.4 in the released model: the
            EfficientNet-B4 ``dropout_rate``, applied to F(6)..F(3)).
        drop_path_rate: stochastic depth of the backbone's blocks, scaled linearly with the block index (0.2 in
            the released model: EfficientNet's ``drop_connect_rate``); passed to ``timm.create_model``.
        in_chans: input channels.
    """

    def __init__(
        self,
        backbone: str = "efficientnet_b4",
        pretrained: bool | str = False,
        levels: Sequence[int] = (6, 5, 4, 3),
        fpn_type: FPNType = "efpn",
        gamma_w: float = 1.0,
        heatmap_stride: int = 4,
        head_channels: int = 64,
        consistency_dim: int = 256,
        use_heatmap: bool = True,
        use_consistency: bool = True,
        dropout: float = 0.4,
        drop_path_rate: float = 0.2,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        levels = [int(level) for level in levels]
        if not levels:
            raise ValueError("levels must name at least the top pyramid level, e.g. [6, 5, 4, 3]")
        if levels != list(range(levels[0], levels[0] - len(levels), -1)):
            raise ValueError(f"levels must be contiguous and descending from the top (e.g. [6, 5, 4, 3]), "
                             f"got {levels}")
        if fpn_type == "none" and len(levels) > 1:
            raise ValueError(f"fpn_type 'none' merges no level: give only the top level (levels: [{levels[0]}]), "
                             f"got {levels}")
        self.levels = tuple(levels)
        self.fpn_type = fpn_type
        self.use_heatmap = use_heatmap
        self.use_consistency = use_consistency

        probe = create_backbone(backbone, pretrained=False, in_chans=in_chans)  # shapes only, no weights
        stage_reductions = list(probe.feature_info.reduction())
        del probe
        num_stages = len(stage_reductions)
        top = levels[0]
        if not 1 <= top <= num_stages + 1:
            raise ValueError(f"backbone {backbone!r} has levels 1..{num_stages + 1} (the last being its head), "
                             f"got top level {top}")
        if heatmap_stride not in stage_reductions:
            raise ValueError(f"heatmap_stride {heatmap_stride} is not a stride of {backbone!r} "
                             f"(strides {stage_reductions})")
        # the output level: the highest level at the heatmap stride
        out_level = max(i + 1 for i, r in enumerate(stage_reductions) if r == heatmap_stride)
        if levels[-1] < out_level:
            raise ValueError(f"level {levels[-1]} has stride {stage_reductions[levels[-1] - 1]}, finer than "
                             f"heatmap_stride {heatmap_stride}: drop it or lower heatmap_stride")
        stage_levels = list(range(out_level, min(top, num_stages) + 1))  # paper levels read from timm stages
        self.has_head_level = top == num_stages + 1
        if not 0.0 <= dropout < 1.0 or not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"dropout and drop_path_rate must lie in [0, 1), got {dropout} and {drop_path_rate}")
        self.backbone = create_backbone(backbone, pretrained=pretrained,
                                        out_indices=[level - 1 for level in stage_levels],
                                        in_chans=in_chans, head_features=self.has_head_level,
                                        drop_path_rate=drop_path_rate)
        channels = list(self.backbone.feature_info.channels())
        reductions = list(self.backbone.feature_info.reduction())
        decoder_levels = list(range(top, out_level - 1, -1))  # top first
        position = {level: i for i, level in enumerate(stage_levels)}
        if self.has_head_level:
            position[top] = len(stage_levels)
        self._feature_positions = [position[level] for level in decoder_levels]
        self.decoder_levels = tuple(decoder_levels)
        level_channels = [channels[position[level]] for level in decoder_levels]
        fused = [level in levels[1:] and fpn_type != "none" for level in decoder_levels]
        widths = list(level_channels)
        if len(decoder_levels) > 1 and not fused[-1]:
            # an unfused output step keeps the width it receives, as the official decoder's last stage
            widths[-1] = level_channels[0] if len(decoder_levels) == 2 else widths[-2] * (2 if fused[-2] else 1)
        self.decoder = EnhancedFPN(channels=level_channels,
                                   reductions=[reductions[position[level]] for level in decoder_levels],
                                   fused=fused, fpn_type=fpn_type, gamma_w=gamma_w, widths=widths)
        self.heatmap_stride = heatmap_stride
        self.feature_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

        width = self.decoder.out_channels
        self.classification_head = nn.Sequential(
            nn.Conv2d(width, head_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(head_channels),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(head_channels, 1),
        )
        self.heatmap_head = _dense_head(width, head_channels, 1) if use_heatmap else None
        if self.heatmap_head is not None:
            nn.init.constant_(self.heatmap_head[-1].bias, HEATMAP_PRIOR_BIAS)
        self.consistency_head = _dense_head(width, head_channels, consistency_dim) if use_consistency else None

    def decode(self, images: Tensor) -> Tensor:
        """Backbone + pyramid: the decoder output F' at ``heatmap_stride``."""
        features = [self.feature_dropout(f) for f in self.backbone(images)]
        ordered = [features[i] for i in self._feature_positions]
        return self.decoder(ordered)

    def forward(self, images: Tensor, consistency_anchor: Tensor | None = None) -> dict[str, Tensor]:
        """Outputs (all logits): ``logit`` (B,), ``heatmap`` (B,1,h,w), ``consistency_embedding`` (B,d,h,w) and
        ``consistency`` (B,1,h,w) for the enabled heads.

        The consistency map is taken at ``consistency_anchor`` ((B,) flat indices) when given (training: the
        ground-truth vulnerable point), else at the peak of the predicted heatmap (else the centre pixel).
        """
        decoded = self.decode(images)
        outputs = {"logit": self.classification_head(decoded).reshape(-1)}
        if self.heatmap_head is not None:
            outputs[HEATMAP] = self.heatmap_head(decoded)
        if self.consistency_head is not None:
            embedding = self.consistency_head(decoded)
            if consistency_anchor is None:
                if HEATMAP in outputs:
                    consistency_anchor = outputs[HEATMAP].detach().flatten(1).argmax(dim=1)
                else:
                    height, width = embedding.shape[-2:]
                    consistency_anchor = torch.full((embedding.shape[0],), (height // 2) * width + width // 2,
                                                    device=embedding.device, dtype=torch.long)
            outputs["consistency_embedding"] = embedding
            outputs[CONSISTENCY] = consistency_logits(embedding, consistency_anchor)
        return outputs
