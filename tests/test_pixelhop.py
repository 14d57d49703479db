"""PixelHop++ / c/w Saab / spatial PCA (seed 000, Sec. 3.2-3.3) against independent NumPy and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA

from lightning_dfd.models.pixelhop import PASSED, PixelHopPP, SpatialPCA, pooled_sizes, saab_fit


def smooth_images(n: int = 24, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Correlated RGB images (upsampled noise + a little pixel noise), float64."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 6, 6, generator=gen, dtype=torch.float64)
    images = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return images + 0.05 * torch.rand(n, 3, size, size, generator=gen, dtype=torch.float64)


def numpy_saab(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Saab from its definition: DC = 1/sqrt(D); PCA (scikit-learn) of the windows minus their DC part."""
    d = x.shape[1]
    dc = np.full(d, 1 / np.sqrt(d))
    ac = x - np.outer(x @ dc, dc)
    pca = PCA(n_components=d - 1, svd_solver="full").fit(ac)
    total = np.var(x, axis=0, ddof=1).sum()
    energies = np.concatenate([[np.var(x @ dc, ddof=1)], pca.explained_variance_]) / total
    return dc, pca.components_, energies


def numpy_windows(maps: np.ndarray, k: int = 3) -> np.ndarray:
    """(N, C, H, W) -> (N, H-k+1, W-k+1, C*k*k), channel-major like a conv weight (C, k, k)."""
    n, c, h, w = maps.shape
    out = np.empty((n, h - k + 1, w - k + 1, c * k * k))
    for i in range(h - k + 1):
        for j in range(w - k + 1):
            out[:, i, j] = maps[:, :, i: i + k, j: j + k].reshape(n, -1)
    return out


def numpy_pool(maps: np.ndarray) -> np.ndarray:
    """(2x2)->(1x1) max pooling with ceil: odd borders pool what is there."""
    n, c, h, w = maps.shape
    out = np.empty((n, c, -(-h // 2), -(-w // 2)))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = maps[:, :, 2 * i: 2 * i + 2, 2 * j: 2 * j + 2].max(axis=(2, 3))
    return out


def test_saab_matches_numpy_pca():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 27)) @ rng.normal(size=(27, 27)) + rng.normal(size=27)
    kernels, energies, mean = saab_fit(torch.from_numpy(x))
    dc, components, expected = numpy_saab(x)
    np.testing.assert_allclose(kernels[0].numpy(), dc, atol=1e-12)  # DC kernel: constant 1/sqrt(27)
    np.testing.assert_allclose(energies.numpy(), expected, rtol=1e-8, atol=1e-12)
    assert energies.sum().item() == pytest.approx(1.0)
    # same subspace: |cos| = 1 between matching kernels (distinct eigenvalues), orthonormal rows
    cosines = np.abs(np.sum(kernels[1:].numpy() * components, axis=1))
    np.testing.assert_allclose(cosines, 1.0, atol=1e-6)
    np.testing.assert_allclose(kernels.numpy() @ kernels.numpy().T, np.eye(27), atol=1e-9)
    np.testing.assert_allclose(mean.numpy(), x.mean(0), atol=1e-12)


def test_saab_batched_equals_one_by_one():
    rng = np.random.default_rng(1)
    sets = rng.normal(size=(3, 200, 9)) * rng.uniform(0.5, 2, size=(3, 1, 9))
    _, energies, _ = saab_fit(torch.from_numpy(sets))
    for i in range(3):
        np.testing.assert_allclose(energies[i].numpy(), numpy_saab(sets[i])[2], rtol=1e-8, atol=1e-12)


@pytest.fixture(scope="module")
def fitted():
    images = smooth_images()
    model = PixelHopPP(split_threshold=0.01, keep_threshold=0.0005, max_channels=10, max_fit_windows=None).fit(images)
    return model, images


def test_pooled_sizes_and_channel_limits(fitted):
    model, images = fitted
    outputs = model(images)
    assert pooled_sizes(32) == [15, 7, 3]
    assert [o.shape[-1] * o.shape[-2] for o in outputs] == [225, 49, 9]
    for hop, out in enumerate(outputs):
        weight, _, _, energy, role = model.hop_buffers(hop)
        assert out.shape[1] == len(energy) <= 10
        assert torch.all(energy[:-1] >= energy[1:])  # most energetic first
        assert torch.all(energy >= model.keep_threshold)
        assert torch.equal(role == PASSED, energy >= model.split_threshold)
    assert model.kernel_parameters() == [27 * len(model.energy0), 9 * len(model.energy1), 9 * len(model.energy2)]


def test_transform_equals_patch_loop_and_energies_multiply(fitted):
    """Hop 1 and hop 2 responses from an explicit NumPy window loop with the fitted kernels; hop-2 energies are the
    NumPy Saab energies of each parent's windows times the parent's energy."""
    model, images = fitted
    x = images.numpy()
    w0, b0 = model.weight0.reshape(len(model.weight0), -1).numpy(), model.bias0.numpy()
    mean0 = numpy_windows(x).reshape(-1, 27).mean(0)
    np.testing.assert_allclose(b0, -(w0 @ mean0), atol=1e-10)
    hop1 = numpy_pool(np.moveaxis((numpy_windows(x) - mean0) @ w0.T, -1, 1))
    outputs = model(images)
    np.testing.assert_allclose(outputs[0].numpy(), hop1, atol=1e-9)

    w1, parent1 = model.weight1.reshape(len(model.weight1), -1).numpy(), model.parent1.numpy()
    expected = np.empty_like(outputs[1].numpy())
    all_energies = []
    for p in np.unique(parent1):
        windows = numpy_windows(hop1[:, p: p + 1])
        _, _, energies = numpy_saab(windows.reshape(-1, 9))
        all_energies.append(energies * model.energy0[p].item())
        children = np.nonzero(parent1 == p)[0]
        resp = (windows - windows.reshape(-1, 9).mean(0)) @ w1[children].T
        expected[:, children] = numpy_pool(np.moveaxis(resp, -1, 1))
    np.testing.assert_allclose(outputs[1].numpy(), expected, atol=1e-8)
    passed = np.nonzero(model.role0.numpy() == PASSED)[0]
    assert sorted(np.unique(parent1)) == sorted(set(passed) & set(parent1))
    top = np.sort(np.concatenate(all_energies))[::-1]
    # the selected hop-2 channels are the most energetic children of all passed-on hop-1 channels
    every_child = np.concatenate([numpy_saab(numpy_windows(hop1[:, p: p + 1]).reshape(-1, 9))[2]
                                  * model.energy0[p].item() for p in passed])
    top = np.sort(every_child[every_child >= model.keep_threshold])[::-1][:10]
    np.testing.assert_allclose(model.energy1.numpy(), top, rtol=1e-7)


def test_state_dict_round_trip_resizes_buffers(fitted):
    model, images = fitted
    fresh = PixelHopPP()
    fresh.load_state_dict(model.state_dict())
    for a, b in zip(model(images), fresh(images)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("components", [5, 0.9])
def test_spatial_pca_matches_sklearn(components):
    rng = np.random.default_rng(2)
    responses = rng.normal(size=(40, 6, 7, 7)) @ rng.normal(size=(7, 7))
    pca = SpatialPCA(components).fit(torch.from_numpy(responses))
    flat = responses.reshape(-1, 49)
    ref = PCA(n_components=components, svd_solver="full").fit(flat)
    assert pca.basis.shape == ref.components_.shape
    ours = pca(torch.from_numpy(responses)).reshape(-1, pca.basis.shape[0]).numpy()
    theirs = ref.transform(flat)
    np.testing.assert_allclose(np.abs(ours), np.abs(theirs), atol=1e-8)  # components are defined up to sign
