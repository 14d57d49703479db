"""Two-branch recurrent network (seed 004): split point, fusion, scores, per-block learning rates, rebalancing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_dfd.datamodules.samplers import VideoFrameSampler
from lightning_dfd.losses.hypersphere import natural_clip_indices
from lightning_dfd.methods.two_branch import TwoBranchDetector
from lightning_dfd.models.two_branch import GroupedFusion, TwoBranchNet, interleave_channels
from lightning_dfd.optim.plateau import LimitedReduceLROnPlateau

TINY = {"growth_rate": 8, "block_config": [1, 1, 1, 1]}  # a 4-block timm DenseNet small enough for CPU tests


def tiny_method(**kwargs) -> TwoBranchDetector:
    torch.manual_seed(0)
    return TwoBranchDetector(backbone="densenet121", backbone_args=TINY, **kwargs)


# ------------------------------------------------------------------------------------------ architecture
def test_densenet121_splits_after_the_first_dense_block_and_transition_into_two_28x28x128_maps():
    net = TwoBranchNet("densenet121").eval()
    assert net.low_names[-2:] == ["denseblock1", "transition1"]
    assert net.high_names == ["denseblock2", "transition2", "denseblock3", "transition3", "denseblock4", "norm5"]
    with torch.no_grad():
        rgb, log = net.split_maps(torch.zeros(1, 3, 224, 224))
    assert rgb.shape == log.shape == (1, 128, 28, 28)
    assert (net.split_channels, net.split_reduction) == (128, 8)
    assert net.num_features == 1024 and net.embedding_dim == 256
    # Deep LoG right after the stem convolution, on its 64 planes: K = 64 -> 3 K -> K' = 64
    assert list(net.log._modules)[:2] == ["conv0", "deep_log"]
    assert net.log.deep_log.pointwise.weight.shape == (64, 192, 1, 1)
    # dropout 0.2 after every dense layer
    assert {layer.drop_rate for name, layer in net.named_modules() if name.split(".")[-1].startswith("denselayer")} \
        == {0.2}


def test_branches_start_from_the_same_weights_but_do_not_share_them():
    net = TwoBranchNet("densenet121", backbone_args=TINY)
    torch.testing.assert_close(net.rgb.conv0.weight, net.log.conv0.weight)
    assert net.rgb.conv0.weight is not net.log.conv0.weight
    rgb_ids = {id(p) for p in net.rgb.parameters()}
    assert not rgb_ids & {id(p) for p in net.log.parameters()}


def test_interleaving_orders_channels_branch_by_branch():
    rgb = torch.arange(3.0).view(1, 3, 1, 1)
    log = 10 + torch.arange(3.0).view(1, 3, 1, 1)
    assert interleave_channels(rgb, log).flatten().tolist() == [0, 10, 1, 11, 2, 12]


def test_grouped_fusion_mixes_both_branches_in_every_group():
    torch.manual_seed(0)
    fusion = GroupedFusion(8, groups=2)
    torch.nn.init.normal_(fusion.conv.weight)
    rgb, log = torch.randn(2, 8, 5, 5), torch.randn(2, 8, 5, 5)
    out = fusion(rgb, log)
    for zeroed in (fusion(torch.zeros_like(rgb), log), fusion(rgb, torch.zeros_like(log))):
        for group in (slice(0, 4), slice(4, 8)):
            assert (out[:, group] - zeroed[:, group]).abs().amax() > 1e-3


def test_fusion_starts_as_the_mean_of_the_branches():
    fusion = GroupedFusion(6, groups=2)
    rgb, log = torch.randn(1, 6, 3, 3), torch.randn(1, 6, 3, 3)
    torch.testing.assert_close(fusion(rgb, log), (rgb + log) / 2)


def test_rgb_only_and_no_lstm_variants():
    rgb_only = TwoBranchNet("densenet121", backbone_args=TINY, branches="rgb_only")
    assert rgb_only.log is None and rgb_only.fusion is None
    no_lstm = TwoBranchNet("densenet121", backbone_args=TINY, use_lstm=False).eval()
    clip = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        phi = no_lstm(clip)
        frames = no_lstm.frame_features(clip.flatten(0, 1)).view(2, 3, -1)
    assert phi.shape == (2, no_lstm.num_features)
    torch.testing.assert_close(phi, frames.mean(dim=1))
    method = tiny_method(use_lstm=False)
    assert (method.loss_fn.r_minus, method.loss_fn.r_plus) == (2.5, 97.5)
    assert (tiny_method().loss_fn.r_minus, tiny_method().loss_fn.r_plus) == (0.042, 1.638)


def test_bilstm_embedding_concatenates_both_directions_final_states():
    net = TwoBranchNet("densenet121", backbone_args=TINY, lstm_hidden=5).eval()
    clip = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        phi = net(clip)
        out, _ = net.lstm(net.frame_features(clip.flatten(0, 1)).view(2, 4, -1))
    assert phi.shape == (2, 10)
    torch.testing.assert_close(phi[:, :5], out[:, -1, :5])  # forward direction: after the last frame
    torch.testing.assert_close(phi[:, 5:], out[:, 0, 5:])  # backward direction: after the first frame


# ------------------------------------------------------------------------------------------ scores
def test_score_is_the_distance_to_the_centre_through_a_monotone_non_saturating_map():
    method = tiny_method().eval()
    method.center.copy_(torch.linspace(-1, 1, 256))
    clips = torch.randn(3, 2, 3, 32, 32)
    with torch.no_grad():
        out = method(clips)
    phi = out["embedding"].numpy().astype(np.float64)
    d = np.linalg.norm(phi - method.center.numpy(), axis=1)
    np.testing.assert_allclose(out["distance"].numpy(), d, rtol=1e-5)
    r = (0.042 + 1.638) / 2
    np.testing.assert_allclose(method.fake_probability(out).numpy(), d / (d + r), rtol=1e-5)
    # ranking scores keep the distances' order even where float32 probabilities would tie
    far = {"logit": torch.log(torch.tensor([1e9, 2e9], dtype=torch.float64)) - math.log(r)}
    assert method.fake_probability(far).tolist() == [1.0, 1.0]
    odds = method.fake_log_odds(far)
    assert odds.dtype == torch.float64 and odds[1] > odds[0]


# ------------------------------------------------------------------------------------------ optimisation
def test_per_block_learning_rates_are_mu_over_two_to_the_l():
    method = tiny_method(optimizer=lambda params: torch.optim.Adam(params, lr=1e-3, weight_decay=1e-6))
    optimizer = method.configure_optimizers()
    lrs = {group["name"]: group["lr"] for group in optimizer.param_groups}
    expected = {"rgb_branch": 1e-3 / 16, "dense_block_2": 1e-3 / 8, "dense_block_3": 1e-3 / 4,
                "dense_block_4": 1e-3 / 2, "log_branch": 1e-3, "fusion": 1e-3, "lstm": 1e-3}
    assert lrs == pytest.approx(expected)
    assert all(group["weight_decay"] == 1e-6 for group in optimizer.param_groups)
    grouped = [id(p) for group in optimizer.param_groups for p in group["params"]]
    assert sorted(grouped) == sorted(id(p) for p in method.parameters())  # every parameter exactly once


def test_plateau_scheduler_is_monitored_and_reduces_each_group_three_times_at_most():
    method = tiny_method(optimizer=lambda params: torch.optim.Adam(params, lr=1e-3),
                         lr_scheduler=lambda opt: LimitedReduceLROnPlateau(opt, patience=0, max_reductions=3))
    config = method.configure_optimizers()
    assert config["lr_scheduler"]["monitor"] == "val/loss"
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    start = [group["lr"] for group in optimizer.param_groups]
    for _ in range(8):
        scheduler.step(1.0)  # never improves
    for group, lr in zip(optimizer.param_groups, start):
        assert group["lr"] == pytest.approx(lr * 1e-3, rel=1e-9)


# ------------------------------------------------------------------------------------------ rebalancing
def make_videos():
    groups = ["real"] * 4 + ["Deepfakes"] * 4 + ["Face2Face"] * 4
    unit_video, unit_label, unit_group = [], [], []
    for v, group in enumerate(groups):
        for _ in range(5):  # 5 clips per video
            unit_video.append(f"{group}/{v}")
            unit_label.append(0 if group == "real" else 1)
            unit_group.append(group)
    return unit_video, unit_label, unit_group


def test_video_factors_oversample_reals_and_undersample_each_manipulation():
    unit_video, unit_label, unit_group = make_videos()
    sampler = VideoFrameSampler(unit_video, unit_label, frames_per_video=1, seed=3, unit_group=unit_group,
                                video_factors={"real": 2.0, "Deepfakes": 0.5, "Face2Face": 0.5})
    assert len(sampler) == 8 + 2 + 2
    seen_fakes = set()
    for epoch in range(6):
        sampler.set_epoch(epoch)
        drawn = [unit_video[int(i)] for i in sampler]
        counts = {video: drawn.count(video) for video in set(drawn)}
        assert all(counts[f"real/{v}"] == 2 for v in range(4))  # every real video twice
        for method in ("Deepfakes", "Face2Face"):  # half of each manipulation's videos, once each
            picked = [v for v in counts if v.startswith(method)]
            assert len(picked) == 2 and all(counts[v] == 1 for v in picked)
            seen_fakes.update(picked)
    assert len(seen_fakes) == 8  # re-drawn every epoch: every fake video shows up over a few epochs


def test_video_factors_name_groups_the_data_has():
    unit_video, unit_label, unit_group = make_videos()
    with pytest.raises(ValueError, match="NeuralTextures"):
        VideoFrameSampler(unit_video, unit_label, 1, unit_group=unit_group, video_factors={"NeuralTextures": 0.5})


def test_center_clip_cap_is_evenly_spaced_over_the_natural_clips():
    labels = np.array([0, 1, 0, 0, 1, 0, 0])
    assert natural_clip_indices(labels).tolist() == [0, 2, 3, 5, 6]
    assert natural_clip_indices(labels, 3).tolist() == [0, 3, 6]
