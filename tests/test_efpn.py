"""E-FPN (seed 003, Eq. 9): output shapes per level set (Table 4), the gate 1 - sigmoid(E), the plain-FPN variant."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_dfd.models.efpn import EnhancedFPN, efpn_gate
from lightning_dfd.models.laanet import LAANet

# a miniature EfficientNet pyramid at a 64x64 input, top first: F(6) head, F(5), F(4), F(3), F(2)
LEVEL_CHANNELS = {6: 40, 5: 24, 4: 16, 3: 12, 2: 8}
LEVEL_STRIDES = {6: 32, 5: 32, 4: 16, 3: 8, 2: 4}
INPUT = 64


def pyramid(levels_top_first: list[int], batch: int = 2, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, LEVEL_CHANNELS[level], INPUT // LEVEL_STRIDES[level], INPUT // LEVEL_STRIDES[level],
                        generator=g) for level in levels_top_first]


def build(fused_levels: list[int], fpn_type: str = "efpn", gamma_w: float = 1.0) -> EnhancedFPN:
    decoder_levels = [6, 5, 4, 3, 2]
    torch.manual_seed(0)
    return EnhancedFPN(channels=[LEVEL_CHANNELS[lv] for lv in decoder_levels],
                       reductions=[LEVEL_STRIDES[lv] for lv in decoder_levels],
                       fused=[lv in fused_levels for lv in decoder_levels], fpn_type=fpn_type, gamma_w=gamma_w)


@pytest.mark.parametrize("fpn_type", ["efpn", "fpn"])
@pytest.mark.parametrize("fused", [[], [5], [5, 4], [5, 4, 3], [5, 4, 3, 2]])  # Table 4 rows (a)-(e)
def test_output_shape_per_level_set(fused: list[int], fpn_type: str) -> None:
    decoder = build(fused, fpn_type).eval()
    out, steps = decoder(pyramid([6, 5, 4, 3, 2]), return_intermediates=True)
    # the output sits at the finest level (stride 4 -> 16x16); a fused level doubles its channels
    expected_channels = 2 * LEVEL_CHANNELS[2] if 2 in fused else LEVEL_CHANNELS[2]
    assert out.shape == (2, expected_channels, INPUT // 4, INPUT // 4)
    assert decoder.out_channels == expected_channels and decoder.out_reduction == 4
    for level, step in zip([5, 4, 3, 2], steps):
        side = INPUT // LEVEL_STRIDES[level]
        # E(l) has the shape of F(l) (Eq. 9)
        assert step["E"].shape == (2, LEVEL_CHANNELS[level], side, side)
        width = 2 * LEVEL_CHANNELS[level] if level in fused else LEVEL_CHANNELS[level]
        assert step["out"].shape == (2, width, side, side)


def test_gate_is_one_minus_sigmoid_of_e_by_hand() -> None:
    e = torch.tensor([0.0, math.log(3.0), -math.log(3.0), 40.0, -40.0])
    # 1 - sigmoid(0) = 1/2; 1 - 3/4 = 1/4; 1 - 1/4 = 3/4; saturations stay in [0, 1]
    expected = torch.tensor([0.5, 0.25, 0.75, 0.0, 1.0])
    assert torch.allclose(efpn_gate(e), expected, atol=1e-7)
    assert torch.allclose(efpn_gate(e, gamma_w=2.0), expected ** 2, atol=1e-7)


@pytest.mark.parametrize("gamma_w", [1.0, 2.0])
def test_efpn_merge_is_gated_feature_concatenated_with_e(gamma_w: float) -> None:
    decoder = build([5, 4, 3], "efpn", gamma_w=gamma_w).eval()
    features = pyramid([6, 5, 4, 3, 2])
    with torch.no_grad():
        _, steps = decoder(features, return_intermediates=True)
    for level, step, lateral in zip([5, 4, 3], steps, features[1:4]):
        n = LEVEL_CHANNELS[level]
        gate = (1.0 - torch.sigmoid(step["E"])) ** gamma_w  # computed independently of efpn_gate
        assert torch.allclose(step["out"][:, :n], lateral * gate, atol=1e-6)
        assert torch.equal(step["out"][:, n:], step["E"])
        assert step["F"] is lateral


def test_e_is_transposed_conv_of_reduced_upper_level() -> None:
    decoder = build([5, 4], "efpn").eval()
    features = pyramid([6, 5, 4, 3, 2])
    with torch.no_grad():
        _, steps = decoder(features, return_intermediates=True)
        # F(6) and F(5) share a resolution: E(5) = f(F(6)) (T is the identity)
        assert torch.allclose(steps[0]["E"], decoder.steps[0].reduce(features[0]), atol=1e-6)
        # F(4) has twice the resolution of F(5): E(4) = T(f(F'(5)))
        expected = decoder.steps[1].upsample(decoder.steps[1].reduce(steps[0]["out"]))
        assert torch.allclose(steps[1]["E"], expected, atol=1e-6)


def test_plain_fpn_concatenates_without_gate() -> None:
    decoder = build([5, 4, 3], "fpn").eval()
    features = pyramid([6, 5, 4, 3, 2])
    with torch.no_grad():
        _, steps = decoder(features, return_intermediates=True)
    for level, step, lateral in zip([5, 4, 3], steps, features[1:4]):
        n = LEVEL_CHANNELS[level]
        assert torch.equal(step["out"][:, :n], lateral)
        assert torch.equal(step["out"][:, n:], torch.relu(step["E"]))


def test_none_merges_nothing() -> None:
    decoder = build([5, 4, 3], "none").eval()
    out = decoder([pyramid([6])[0], None, None, None, None])  # laterals are not even read
    assert out.shape == (2, LEVEL_CHANNELS[2], 16, 16)
    assert decoder.fused == (False,) * 5


def test_bad_configurations_raise() -> None:
    with pytest.raises(ValueError, match="fpn_type"):
        EnhancedFPN([8, 4], [8, 4], [False, True], fpn_type="bifpn")
    with pytest.raises(ValueError, match="keep its width"):
        EnhancedFPN([8, 4], [8, 4], [False, True], widths=[8, 6])
    with pytest.raises(ValueError, match="power of 2"):
        EnhancedFPN([8, 4], [24, 8], [False, True])
    decoder = EnhancedFPN([8, 4], [8, 4], [False, True]).eval()
    with pytest.raises(ValueError, match="divisible"):
        decoder([torch.randn(1, 8, 3, 3), torch.randn(1, 4, 7, 7)])


@pytest.mark.parametrize("levels,fpn_type", [((6,), "none"), ((6, 5), "efpn"), ((6, 5, 4), "fpn"),
                                             ((6, 5, 4, 3), "efpn"), ((6, 5, 4, 3, 2), "efpn")])
def test_laanet_decoder_over_timm_levels(levels: tuple[int, ...], fpn_type: str) -> None:
    model = LAANet("efficientnet_b0", levels=levels, fpn_type=fpn_type, consistency_dim=8, head_channels=8).eval()
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 64, 64))
    assert outputs["heatmap"].shape == (1, 1, 16, 16)
    assert model.decoder.fused[1:] == tuple(level in levels[1:] and fpn_type != "none" for level in (5, 4, 3, 2))


def test_efficientnet_b4_widths_follow_paper_levels() -> None:
    model = LAANet("efficientnet_b4", levels=(6, 5, 4, 3), consistency_dim=8)
    # F(6) = 1792-ch head, F(5) 448, F(4) 160, F(3) 56 (Sec. 3.2 / official decoder); F(2) stage is not fused
    assert model.backbone.feature_info.channels() == [32, 56, 160, 448, 1792]
    assert model.backbone.feature_info.reduction() == [4, 8, 16, 32, 32]
    assert [step.out_channels for step in model.decoder.steps] == [896, 320, 112, 112]
    with torch.no_grad():
        outputs = model.eval()(torch.randn(1, 3, 128, 128))
    assert outputs["heatmap"].shape == (1, 1, 32, 32)  # 384 -> 96 in the paper; stride 4


def _numpy_transposed_conv_stride2(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """ConvTranspose2d(k=4, stride=2, padding=1) from its definition: every input pixel scatters kernel-weighted
    copies of itself onto a 4x4 window at twice its position; the padding crops one pixel per side.
    x: (C_in, H, W); kernel: (C_in, C_out, 4, 4) -> (C_out, 2H, 2W)."""
    c_in, height, width = x.shape
    out = np.zeros((kernel.shape[1], 2 * height + 2, 2 * width + 2))
    for c in range(c_in):
        for p in range(height):
            for q in range(width):
                out[:, 2 * p:2 * p + 4, 2 * q:2 * q + 4] += x[c, p, q] * kernel[c]
    return out[:, 1:-1, 1:-1]


def test_e_upsampling_is_a_learned_stride2_transposed_convolution() -> None:
    # F(5) -> F(4) doubles the resolution: T must be the 4x4 stride-2 transposed convolution of Eq. 9 (learned),
    # not a fixed interpolation
    decoder = build([5, 4], "efpn").eval()
    features = pyramid([6, 5, 4, 3, 2])
    step = decoder.steps[1]
    with torch.no_grad():
        _, steps = decoder(features, return_intermediates=True)
        reduced = step.reduce(steps[0]["out"])
    transposed, norm = step.upsample[0][0], step.upsample[0][1]
    kernel = transposed.weight.detach().double().numpy()
    scale = (norm.weight / torch.sqrt(norm.running_var + norm.eps)).detach().double().numpy()
    shift = (norm.bias - norm.running_mean * norm.weight / torch.sqrt(norm.running_var + norm.eps)).detach().double()
    for sample in range(reduced.shape[0]):
        expected = _numpy_transposed_conv_stride2(reduced[sample].double().numpy(), kernel)
        expected = expected * scale[:, None, None] + shift.numpy()[:, None, None]
        np.testing.assert_allclose(steps[1]["E"][sample].double().numpy(), expected, atol=1e-4)
