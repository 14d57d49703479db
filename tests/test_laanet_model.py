"""LAA-Net model: heads and their switches (Table 3), the 2-D self-consistency map, paper-level -> timm mapping,
and the offline rule for pretrained backbones."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import timm
import torch

from lightning_dfd.models import backbones
from lightning_dfd.models.backbones import HeadFeatures, create_backbone
from lightning_dfd.models.laanet import LAANet, consistency_logits

TINY = {"backbone": "efficientnet_b0", "head_channels": 8, "consistency_dim": 8}


@pytest.fixture(scope="module")
def paper_model() -> LAANet:
    torch.manual_seed(0)
    return LAANet(levels=(6, 5, 4, 3), **TINY).eval()


@pytest.mark.parametrize("use_heatmap,use_consistency", [(True, True), (True, False), (False, True), (False, False)])
def test_heads_switch_outputs(use_heatmap: bool, use_consistency: bool) -> None:
    model = LAANet(levels=(6, 5, 4, 3), use_heatmap=use_heatmap, use_consistency=use_consistency, **TINY).eval()
    with torch.no_grad():
        outputs = model(torch.randn(3, 3, 64, 64))
    assert outputs["logit"].shape == (3,)
    assert ("heatmap" in outputs) == use_heatmap and (model.heatmap_head is None) == (not use_heatmap)
    assert ("consistency" in outputs) == use_consistency and ("consistency_embedding" in outputs) == use_consistency
    if use_heatmap:
        assert outputs["heatmap"].shape == (3, 1, 16, 16)
    if use_consistency:
        assert outputs["consistency"].shape == (3, 1, 16, 16)
        assert outputs["consistency_embedding"].shape == (3, 8, 16, 16)


def test_consistency_map_by_hand() -> None:
    # d = 4, a 2x2 map; anchor (0, 1) in sample 0, (1, 0) in sample 1
    emb = torch.zeros(2, 4, 2, 2)
    emb[0, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    emb[0, :, 0, 1] = torch.tensor([2.0, 2.0, 0.0, 0.0])  # anchor
    emb[0, :, 1, 0] = torch.tensor([0.0, -1.0, 3.0, 0.0])
    emb[0, :, 1, 1] = torch.tensor([0.5, 0.5, 0.5, 0.5])
    emb[1] = torch.arange(16, dtype=torch.float32).view(4, 2, 2) / 4
    logits = consistency_logits(emb, torch.tensor([1, 2]))
    # <anchor, e_ij> / sqrt(4): [2, 8, -2, 2] / 2
    assert torch.allclose(logits[0, 0], torch.tensor([[1.0, 4.0], [-1.0, 1.0]]))
    # sample 1: anchor (1, 0) = channels at flat index 2: [2, 6, 10, 14] / 4
    anchor = torch.tensor([2.0, 6.0, 10.0, 14.0]) / 4
    expected = torch.einsum("c,chw->hw", anchor, emb[1]) / 2
    assert torch.allclose(logits[1, 0], expected)
    # the anchor's own consistency is its squared norm / sqrt(d)
    assert math.isclose(float(logits[1, 0, 1, 0]), float(anchor.pow(2).sum() / 2), rel_tol=1e-6)


def test_default_anchor_is_predicted_heatmap_peak(paper_model: LAANet) -> None:
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        outputs = paper_model(images)
        peak = outputs["heatmap"].flatten(1).argmax(dim=1)
        anchored = paper_model(images, consistency_anchor=peak)
    assert torch.allclose(outputs["consistency"], anchored["consistency"])


def test_heatmap_prior_bias(paper_model: LAANet) -> None:
    assert torch.allclose(paper_model.heatmap_head[-1].bias, torch.tensor([-2.19]))  # sigmoid ~ 0.1


def test_paper_levels_map_to_timm_stages(paper_model: LAANet) -> None:
    # F(6) is the head (1280 ch for B0), F(2..5) timm stages 1..4
    assert isinstance(paper_model.backbone, HeadFeatures)
    assert paper_model.backbone.out_indices == (1, 2, 3, 4)
    assert paper_model.backbone.feature_info.channels() == [24, 40, 112, 320, 1280]
    assert paper_model.decoder_levels == (6, 5, 4, 3, 2)
    # without the head level a features_only model is used, same stage mapping l -> l - 1
    no_head = LAANet(levels=(5, 4, 3), **TINY)
    assert not isinstance(no_head.backbone, HeadFeatures)
    assert no_head.backbone.feature_info.out_indices == (1, 2, 3, 4)


def test_head_features_equal_full_model_head() -> None:
    torch.manual_seed(0)
    backbone = create_backbone("efficientnet_b0", out_indices=(1, 4), head_features=True).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        features = backbone(x)
        head = backbone.model.forward_features(x)  # conv_head + bn2 of the classifier network
    assert [f.shape[1] for f in features] == [24, 320, 1280]
    assert torch.allclose(features[-1], head)


@pytest.mark.parametrize("levels", [(6, 4, 3), (4, 5, 6), ()])
def test_levels_must_be_contiguous_descending(levels: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="levels"):
        LAANet(levels=levels, **TINY)


def test_invalid_level_configurations() -> None:
    with pytest.raises(ValueError, match="fpn_type 'none'"):
        LAANet(levels=(6, 5), fpn_type="none", **TINY)
    with pytest.raises(ValueError, match="finer than heatmap_stride"):
        LAANet(levels=(6, 5, 4, 3, 2, 1), **TINY)
    with pytest.raises(ValueError, match="top level 7"):
        LAANet(levels=(7, 6), **TINY)


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No HF / torch hub cache, downloads not allowed: pretrained=True must fail without touching the network."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv(backbones.ALLOW_DOWNLOAD_ENV, raising=False)
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch"))
    yield tmp_path
    torch.hub.set_dir(old)


def test_pretrained_without_local_weights_raises_with_fix(empty_caches: Path) -> None:
    with pytest.raises(RuntimeError, match="pretrained: false"):
        LAANet(pretrained=True, **TINY)


def test_pretrained_missing_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(RuntimeError, match="nowhere.pth"):
        create_backbone("efficientnet_b0", pretrained=str(missing))


@pytest.mark.parametrize("levels", [(6, 5, 4, 3), (5, 4, 3)])
def test_pretrained_local_file_is_loaded(tmp_path: Path, levels: tuple[int, ...], empty_caches: Path) -> None:
    torch.manual_seed(123)
    reference = timm.create_model("efficientnet_b0", pretrained=False)
    weights = tmp_path / "b0.pth"
    torch.save(reference.state_dict(), weights)
    model = LAANet(pretrained=str(weights), levels=levels, **TINY)
    stem = model.backbone.model.conv_stem if isinstance(model.backbone, HeadFeatures) else model.backbone.conv_stem
    assert torch.equal(stem.weight, reference.conv_stem.weight)
    if isinstance(model.backbone, HeadFeatures):
        assert torch.equal(model.backbone.model.conv_head.weight, reference.conv_head.weight)


def test_released_dropout_and_drop_path_reach_the_model() -> None:
    from timm.layers import DropPath

    model = LAANet(levels=(6, 5, 4, 3), dropout=0.4, drop_path_rate=0.2, **TINY)
    assert isinstance(model.feature_dropout, torch.nn.Dropout) and model.feature_dropout.p == 0.4
    rates = [m.drop_prob for m in model.backbone.modules() if isinstance(m, DropPath)]
    assert rates and 0.0 < max(rates) <= 0.2 and rates == sorted(rates)  # scaled with the block index
    off = LAANet(levels=(6, 5, 4, 3), dropout=0.0, drop_path_rate=0.0, **TINY)
    assert isinstance(off.feature_dropout, torch.nn.Identity)
    assert not [m for m in off.backbone.modules() if isinstance(m, DropPath) and m.drop_prob > 0]
    with pytest.raises(ValueError, match="dropout"):
        LAANet(levels=(6,), fpn_type="none", dropout=1.0, **TINY)
