"""DLDFD (seed 002): the network of Sec. 3.2 in both readings, the weighted BCE and the video decision of Sec. 3.3.

Expected values are worked by hand (parameter counts, losses, votes) or computed independently (scikit-learn).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from lightning_dfd.metrics import DetectionScores, Scoring, video_indices
from lightning_dfd.methods.dldfd import DLDFDDetector, dldfd_scoring, weighted_bce
from lightning_dfd.models.backbones import create_classifier
from lightning_dfd.models.dldfd import AugmentedLayers, DLDFDNet, widen_stem


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def resnet50_by_hand(num_classes: int = 1) -> int:
    """ResNet-50 (He et al. 2016, Table 1) counted layer by layer: convs without bias, BatchNorm = 2 per channel."""

    def bottleneck(c_in: int, width: int, downsample: bool) -> int:
        out = 4 * width
        count = c_in * width + 2 * width          # 1x1 reduce + BN
        count += 9 * width * width + 2 * width    # 3x3 + BN
        count += width * out + 2 * out            # 1x1 expand + BN
        if downsample:
            count += c_in * out + 2 * out         # projection shortcut + BN
        return count

    total = 7 * 7 * 3 * 64 + 2 * 64               # stem: 9408 + 128
    c_in = 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        total += bottleneck(c_in, width, True) + (blocks - 1) * bottleneck(4 * width, width, False)
        c_in = 4 * width
    # stage sums: 215,808 / 1,219,584 / 7,098,368 / 14,964,736 -> 23,508,032 without the classifier
    assert total == 23_508_032
    return total + 2048 * num_classes + num_classes   # linear head 2048 -> 1: 2049


def test_parameter_counts_of_both_readings_match_the_hand_count():
    branches = 3 * (3 * 3 * 3 * 64 + 64)          # three 3x3x64 convolutions on RGB with bias: 3 x 1,792 = 5,376
    fuse_a = 192 * 3 + 3                          # (a) 1x1, 192 -> 3: 579
    fuse_b = 192 * 192 + 192                      # (b) 1x1, 192 -> 192: 37,056
    wider_stem = 7 * 7 * (192 - 3) * 64           # (b) stem 7x7 with 192 instead of 3 inputs: +592,704
    resnet = resnet50_by_hand()                   # 23,510,081
    reading_a, reading_b = DLDFDNet("to_rgb"), DLDFDNet("wide_stem")
    assert n_params(reading_a.augmented) == branches + fuse_a == 5_955
    assert n_params(reading_b.augmented) == branches + fuse_b == 42_432
    assert n_params(reading_a) == branches + fuse_a + resnet == 23_516_036
    assert n_params(reading_b) == branches + fuse_b + resnet + wider_stem == 24_145_217


@pytest.mark.parametrize(("fusion", "channels"), [("to_rgb", 3), ("wide_stem", 192)])
def test_block_and_network_output_shapes(fusion, channels):
    net = DLDFDNet(fusion).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        fused = net.augmented(images)
        logits = net(images)
    assert net.augmented.concat_channels == 192  # three 64-channel branches, concatenated
    assert fused.shape == (2, channels, 64, 64)   # stride 1, padding 1: the crop keeps its size
    assert logits.shape == (2,)


def test_augmented_layers_compute_concat_relu_then_1x1():
    torch.manual_seed(0)
    layers = AugmentedLayers(out_channels=3).eval()
    x = torch.randn(1, 3, 5, 5)
    # by hand: each branch is a 3x3 convolution, zero padding 1; ReLU on the concatenation; then the 1x1 mixes
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    maps = []
    for branch in layers.branches:
        w, b = branch.weight, branch.bias
        out = torch.zeros(1, 64, 5, 5)
        for i in range(5):
            for j in range(5):
                out[0, :, i, j] = (w * padded[0, :, i:i + 3, j:j + 3]).sum((1, 2, 3)) + b
        maps.append(out)
    hidden = torch.cat(maps, 1).clamp_min(0)
    expected = torch.einsum("oc,bchw->bohw", layers.fuse.weight[:, :, 0, 0], hidden) + layers.fuse.bias[:, None, None]
    with torch.no_grad():
        torch.testing.assert_close(layers(x), expected, rtol=1e-4, atol=1e-4)


def test_widened_stem_on_a_repeated_input_equals_the_rgb_stem():
    torch.manual_seed(0)
    rgb = create_classifier("resnet50", pretrained=False, num_classes=1).eval()
    wide = widen_stem(copy.deepcopy(rgb), 192).eval()
    stem = wide.conv1.weight
    assert stem.shape == (64, 192, 7, 7)
    # tiled 64 times and scaled by 3 / 192
    torch.testing.assert_close(stem[:, 3:6], rgb.conv1.weight / 64)
    torch.testing.assert_close(stem.reshape(64, 64, 3, 7, 7).sum(1), rgb.conv1.weight)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(wide(images.repeat(1, 64, 1, 1)), rgb(images), rtol=1e-4, atol=1e-4)
    # reading (b) of the network: its stem was widened the same way
    assert DLDFDNet("wide_stem").backbone.conv1.in_channels == 192


def test_weighted_bce_matches_the_hand_computation():
    logits = torch.tensor([0.0, math.log(3.0)])   # sigmoid: 0.5, 0.75
    target = torch.tensor([1.0, 0.0])
    # (1/2) [w_fake * -ln 0.5 + 1 * -ln(1 - 0.75)] = (1/2) [2 ln 2 + ln 4] = 2 ln 2 with w_fake = 2
    torch.testing.assert_close(weighted_bce(logits, target, 2.0), torch.tensor(2 * math.log(2.0)))
    torch.testing.assert_close(weighted_bce(logits, target, None), torch.tensor(1.5 * math.log(2.0)))
    model = DLDFDDetector(pos_weight=0.25)
    loss = model.compute_loss({"logit": logits}, {"label": torch.tensor([1, 0])})["loss"]
    torch.testing.assert_close(loss, torch.tensor((0.25 * math.log(2.0) + math.log(4.0)) / 2))


def frames_of_five_videos():
    """(probabilities, labels, video names, groups) of the hand-worked vote example below."""
    videos = {  # name: (label, manipulation, frame probabilities)
        "A": (0, "real", [0.9, 0.1]),         # votes 1/2: tie -> fake (wrong)
        "D": (0, "real", [0.4, 0.3]),         # 0/2 -> real (right)
        "B": (1, "Deepfakes", [0.5, 0.2, 0.1]),   # 1/3 (0.5 = threshold votes fake) -> real (wrong)
        "C": (1, "FaceSwap", [0.6, 0.7, 0.26]),   # 2/3 -> fake (right)
        "E": (1, "FaceSwap", [0.5, 0.1]),         # 1/2: a frame at the threshold and a tie -> fake (right)
    }
    probs, labels, names, groups = [], [], [], []
    for name, (label, group, frames) in videos.items():
        probs += frames
        labels += [label] * len(frames)
        names += [name] * len(frames)
        groups += [group] * len(frames)
    return videos, probs, labels, names, groups


def video_metrics(scoring: Scoring) -> dict[str, float]:
    _, probs, labels, names, groups = frames_of_five_videos()
    metric = DetectionScores(scoring)
    ids = {g: metric.register_group(g) for g in set(groups)}
    p = torch.tensor(probs, dtype=torch.float64)
    metric.update(p.float(), torch.tensor(labels), video_indices(names), torch.tensor([ids[g] for g in groups]),
                  log_odds=torch.logit(p))
    with pytest.warns(UserWarning):  # frame/video tpr at fpr below 1 / n_negatives
        return {k: float(v) for k, v in metric.compute().items()}


def test_majority_vote_tcr_with_ties_and_mean_score_video_auc():
    videos, *_ = frames_of_five_videos()
    out = video_metrics(dldfd_scoring())
    # TCR: A wrong, D right, B wrong, C right, E right -> 3 / 5; per manipulation on all reals + its fakes
    assert out["video/acc"] == pytest.approx(3 / 5)
    assert out["video/acc/Deepfakes"] == pytest.approx(1 / 3)   # A, D, B
    assert out["video/acc/FaceSwap"] == pytest.approx(3 / 4)    # A, D, C, E
    # video AUC from the mean probability: reals A 0.5, D 0.35; fakes B 0.2667, C 0.52, E 0.3
    # fake > real in (C, A), (C, D) only: 2 of 6 pairs
    assert out["video/auc"] == pytest.approx(2 / 6)
    labels = [label for label, _, _ in videos.values()]
    means = [float(np.mean(frames)) for _, _, frames in videos.values()]
    assert out["video/auc"] == pytest.approx(roc_auc_score(labels, means))
    # the vote fraction would rank otherwise: A 1/2, D 0; B 1/3, C 2/3, E 1/2 -> (1 + 1 + 1 + 1 + 0.5) / 6
    vote_ranked = video_metrics(Scoring(aggregation="vote"))
    assert vote_ranked["video/auc"] == pytest.approx(4.5 / 6)
    assert vote_ranked["video/acc"] == pytest.approx(3 / 5)


def test_scoring_rejects_an_unknown_ranking_aggregation():
    with pytest.raises(ValueError, match="ranking_aggregation"):
        Scoring(ranking_aggregation="median")
    assert Scoring(aggregation="vote").video_ranking_aggregation == "vote"
    assert dldfd_scoring().video_ranking_aggregation == "mean"
