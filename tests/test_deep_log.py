"""Deep LoG (seed 004, Sec. 3.2, Eq. 1): x' = w_1x1(x - up(down(G * x))) over S scales."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lightning_dfd.models.deep_log import DeepLoG, gaussian_kernel_2d


def test_gaussian_kernel_follows_its_definition():
    sigma, size = 1.5, 7
    x = np.arange(size) - 3
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    np.testing.assert_allclose(gaussian_kernel_2d(sigma, size).numpy(), g / g.sum(), rtol=1e-6)
    assert gaussian_kernel_2d(2.0).shape == (13, 13)  # 2 ceil(3 sigma) + 1 taps by default


def test_constant_input_gives_zero_band_response():
    layer = DeepLoG(4)
    x = torch.full((2, 4, 24, 24), 3.7)
    x[1] = -1.25
    assert layer.band_pass(x).abs().max() < 1e-5


def test_sharp_edge_gives_a_strong_response_at_the_edge_only():
    layer = DeepLoG(1, sigmas=(1.0,), down_factors=(2,))
    x = torch.zeros(1, 1, 32, 32)
    x[..., 16:] = 1.0  # vertical step edge between columns 15 and 16
    band = layer.band_pass(x)[0, 0]
    near = band[:, 13:19].abs().max()
    far = torch.cat([band[:, :8], band[:, 24:]], dim=1).abs().max()
    assert near > 0.2 and far < 1e-3


def test_one_scale_against_an_independent_computation():
    layer = DeepLoG(2, sigmas=(1.0,), down_factors=(2,), kernel_size=5)
    x = torch.randn(1, 2, 16, 16, generator=torch.Generator().manual_seed(0))
    xs = np.arange(5) - 2
    g = np.exp(-(xs[:, None] ** 2 + xs[None, :] ** 2) / 2.0)
    g = torch.tensor(g / g.sum(), dtype=torch.float32)
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)), mode="edge")
    blurred = np.zeros_like(x.numpy())
    for i in range(16):
        for j in range(16):
            blurred[:, :, i, j] = (padded[:, :, i:i + 5, j:j + 5] * g.numpy()).sum(axis=(-1, -2))
    up = F.interpolate(torch.from_numpy(blurred[..., ::2, ::2]).contiguous(), size=(16, 16), mode="bilinear",
                       align_corners=False)
    torch.testing.assert_close(layer.band_pass(x), x - up, atol=1e-5, rtol=1e-5)


def test_gaussians_are_fixed_buffers_and_the_1x1_is_learned():
    layer = DeepLoG(8, 6)
    names = [name for name, _ in layer.named_parameters()]
    assert names == ["pointwise.weight"]
    assert {name for name, _ in layer.named_buffers()} == {"gaussian_0", "gaussian_1", "gaussian_2"}
    assert layer.pointwise.in_channels == 3 * 8 and layer.pointwise.out_channels == 6


@pytest.mark.parametrize("scales", [1, 2, 3])
def test_shapes_for_one_to_three_scales(scales):
    layer = DeepLoG(5, 7, sigmas=(1.0, 2.0, 4.0)[:scales], down_factors=(2, 4, 8)[:scales])
    x = torch.randn(2, 5, 20, 18)
    assert layer.band_pass(x).shape == (2, 5 * scales, 20, 18)  # K -> S K
    assert layer(x).shape == (2, 7, 20, 18)  # S K -> K'


def test_mismatched_scales_are_refused():
    with pytest.raises(ValueError, match="one down factor per sigma"):
        DeepLoG(4, sigmas=(1.0, 2.0), down_factors=(2,))
