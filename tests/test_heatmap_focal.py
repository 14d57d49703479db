"""LAA-Net losses against maps worked by hand: the released heatmap loss (default), Eq. 5-6 (heatmap focal), the
CornerNet variant, L_C (and the real images' target), smoothed BCE, and the total of Eq. 8."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_dfd.losses import (
    LAANetLoss,
    cornernet_focal_loss,
    heatmap_focal_loss,
    released_focal_loss,
    self_consistency_loss,
    smoothed_bce_with_logits,
)

L3 = math.log(3.0)  # logit of 3/4; -L3 is the logit of 1/4


def as_map(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64).view(1, 1, len(rows), len(rows[0]))


# 3x3 case: one vulnerable point (h = 1) in the centre, a Gaussian flank of 0.5 around it on the cross, 0 elsewhere
TARGET_3X3 = as_map([[0.0, 0.5, 0.0],
                     [0.5, 1.0, 0.5],
                     [0.0, 0.5, 0.0]])
# predicted probabilities: centre 3/4; flanks 3/4, 1/4, 1/2, 1/2; corners 1/4, 1/2, 1/4, 3/4
LOGITS_3X3 = as_map([[-L3, L3, 0.0],
                     [-L3, L3, 0.0],
                     [-L3, 0.0, L3]])


def test_paper_focal_loss_3x3_by_hand() -> None:
    # Eq. 6: h~ = h^ at the centre (h = 1), 1 - h^ elsewhere (the flanks count as negatives)
    # centre: h^ = 3/4 -> -(1/4)^2 log(3/4)
    # negatives with h^ = 1/4 (h~ = 3/4): (0,0), (1,0), (2,0)         -> 3 x -(1/4)^2 log(3/4)
    # negatives with h^ = 1/2 (h~ = 1/2): (0,2), (1,2), (2,1)         -> 3 x -(1/2)^2 log(1/2)
    # negatives with h^ = 3/4 (h~ = 1/4): (0,1), (2,2)                -> 2 x -(3/4)^2 log(1/4)
    expected = (4 * -(1 / 16) * math.log(3 / 4) + 3 * -(1 / 4) * math.log(1 / 2)
                + 2 * -(9 / 16) * math.log(1 / 4))
    loss = heatmap_focal_loss(LOGITS_3X3, TARGET_3X3, gamma=2.0)
    assert math.isclose(float(loss), expected, rel_tol=1e-12)


def test_paper_focal_loss_gamma_zero_is_summed_cross_entropy() -> None:
    # gamma = 0: sum of -log h~ over the 9 pixels
    expected = 4 * -math.log(3 / 4) + 3 * -math.log(1 / 2) + 2 * -math.log(1 / 4)
    assert math.isclose(float(heatmap_focal_loss(LOGITS_3X3, TARGET_3X3, gamma=0.0)), expected, rel_tol=1e-12)


def test_paper_focal_loss_is_batch_mean_of_map_sums() -> None:
    # a 2x2 real image (no positive) with all predictions 1/2: 4 x -(1/2)^2 log(1/2) = log 2
    real_target = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    real_logits = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    assert math.isclose(float(heatmap_focal_loss(real_logits, real_target)), math.log(2), rel_tol=1e-12)
    # a 2x2 fake with its vulnerable point predicted at 3/4 and the rest at 1/4: 4 x -(1/16) log(3/4)
    fake_target = as_map([[1.0, 0.0], [0.0, 0.0]])
    fake_logits = as_map([[L3, -L3], [-L3, -L3]])
    fake = 4 * -(1 / 16) * math.log(3 / 4)
    batch = heatmap_focal_loss(torch.cat([real_logits, fake_logits]), torch.cat([real_target, fake_target]))
    assert math.isclose(float(batch), (math.log(2) + fake) / 2, rel_tol=1e-12)


def test_cornernet_focal_loss_3x3_by_hand() -> None:
    # positives: (1 - p)^2 log p; negatives: (1 - h)^4 p^2 log(1 - p); divided by N_pos = 1
    pos = (1 / 4) ** 2 * math.log(3 / 4)
    neg = 0.0
    for h, p in [(0.0, 1 / 4), (0.5, 3 / 4), (0.0, 1 / 2),      # row 0
                 (0.5, 1 / 4), (0.5, 1 / 2),                   # row 1 without the centre
                 (0.0, 1 / 4), (0.5, 1 / 2), (0.0, 3 / 4)]:    # row 2
        neg += (1 - h) ** 4 * p ** 2 * math.log(1 - p)
    expected = -(pos + neg)
    loss = cornernet_focal_loss(LOGITS_3X3, TARGET_3X3, alpha=2.0, beta=4.0)
    assert math.isclose(float(loss), expected, rel_tol=1e-12)


def test_released_focal_loss_3x3_by_hand() -> None:
    # the released _neg_loss: positive weight (1 - 0.35) + 0.35 * 0.2 = 0.72; negatives (1 - h)^4 p^2 log(1 - p)
    positive = 0.72 * (1 / 16) * math.log(3 / 4)                      # centre, p = 3/4
    corners_h0 = (2 * (1 / 16) * math.log(3 / 4)                      # (0,0), (2,0): p = 1/4
                  + (1 / 4) * math.log(1 / 2)                         # (0,2): p = 1/2
                  + (9 / 16) * math.log(1 / 4))                       # (2,2): p = 3/4
    flanks_h05 = (1 / 16) * ((9 / 16) * math.log(1 / 4)               # (0,1): p = 3/4, (1 - 0.5)^4 = 1/16
                             + (1 / 16) * math.log(3 / 4)             # (1,0): p = 1/4
                             + 2 * (1 / 4) * math.log(1 / 2))         # (1,2), (2,1): p = 1/2
    expected = -(positive + corners_h0 + flanks_h05) / 1              # one positive
    assert math.isclose(float(released_focal_loss(LOGITS_3X3, TARGET_3X3)), expected, rel_tol=1e-12)
    assert math.isclose(float(LAANetLoss().heatmap(LOGITS_3X3, TARGET_3X3)), expected, rel_tol=1e-12)  # default


@pytest.mark.parametrize("flank", [0.5, 0.999])
def test_flank_pixels_are_not_positives(flank: float) -> None:
    # one peak (h = 1) and one flank pixel (0 < h < 1), both predicted at 1/2
    target = as_map([[1.0, flank]])
    logits = torch.zeros(1, 1, 1, 2, dtype=torch.float64)
    log_half = math.log(1 / 2)
    released = -(0.72 * (1 / 4) * log_half + (1 - flank) ** 4 * (1 / 4) * log_half) / 1
    assert math.isclose(float(released_focal_loss(logits, target)), released, rel_tol=1e-12)
    cornernet = -((1 / 4) * log_half + (1 - flank) ** 4 * (1 / 4) * log_half) / 1
    assert math.isclose(float(cornernet_focal_loss(logits, target)), cornernet, rel_tol=1e-12)
    # Eq. 6 literally: the flank is a plain negative, h~ = 1 - h^ = 1/2, and the map is summed
    paper = 2 * -(1 / 4) * log_half
    assert math.isclose(float(heatmap_focal_loss(logits, target)), paper, rel_tol=1e-12)


def test_released_loss_clamps_probabilities_like_the_released_code() -> None:
    # no positive: the plain negative sum; a confident wrong logit 60 is clamped to p = 1 - 1e-4
    target = torch.zeros(1, 1, 1, 2, dtype=torch.float64)
    logits = torch.tensor([60.0, 0.0], dtype=torch.float64).view(1, 1, 1, 2).requires_grad_(True)
    expected = -((1 - 1e-4) ** 2 * math.log(1e-4) + (1 / 4) * math.log(1 / 2))
    loss = released_focal_loss(logits, target)
    assert math.isclose(loss.item(), expected, rel_tol=1e-12)
    loss.backward()
    assert logits.grad[0, 0, 0, 0] == 0.0 and logits.grad[0, 0, 0, 1] > 0.0  # clamped pixel: no gradient
    # normalised by the positives of the whole batch: two copies of the 3x3 case give the single-map value
    single = float(released_focal_loss(LOGITS_3X3, TARGET_3X3))
    double = released_focal_loss(torch.cat([LOGITS_3X3, LOGITS_3X3]), torch.cat([TARGET_3X3, TARGET_3X3]))
    assert math.isclose(float(double), single, rel_tol=1e-12)


def test_consistency_target_of_reals_released_zero_paper_one() -> None:
    # a real and a fake, both predicted at 3/4 on a 1x2 map; the fake's target is [1, 0.5], the real's (as the
    # targets transform writes it) [1, 1]
    target = torch.tensor([[1.0, 1.0], [1.0, 0.5]], dtype=torch.float64).view(2, 1, 1, 2)
    outputs = {"logit": torch.zeros(2, dtype=torch.float64),
               "consistency": torch.full((2, 1, 1, 2), L3, dtype=torch.float64)}
    labels = torch.tensor([0, 1])
    # released: real target 0 -> -log(1/4) twice; fake: c = 1 -> -log(3/4), c = 1/2 -> -(log(3/4) + log(1/4)) / 2
    fake = -math.log(3 / 4) - 0.5 * (math.log(3 / 4) + math.log(1 / 4))
    released = (2 * -math.log(1 / 4) + fake) / 4
    terms = LAANetLoss()(outputs, labels, consistency=target)
    assert math.isclose(float(terms["consistency"]), released, rel_tol=1e-6)  # the loss runs in float32
    # paper (Eq. 7 with B = 0): real target 1 -> -log(3/4) twice
    paper = (2 * -math.log(3 / 4) + fake) / 4
    terms = LAANetLoss(real_consistency_target=1.0)(outputs, labels, consistency=target)
    assert math.isclose(float(terms["consistency"]), paper, rel_tol=1e-6)
    with pytest.raises(ValueError, match="real_consistency_target"):
        LAANetLoss(real_consistency_target=2.0)


def test_cornernet_normalises_by_batch_positives_and_handles_none() -> None:
    target = torch.cat([TARGET_3X3, TARGET_3X3])
    logits = torch.cat([LOGITS_3X3, LOGITS_3X3])
    single = float(cornernet_focal_loss(LOGITS_3X3, TARGET_3X3))
    assert math.isclose(float(cornernet_focal_loss(logits, target)), single, rel_tol=1e-12)  # 2x sum / 2 positives
    # no positive at all: the plain negative sum; 4 pixels at p = 1/2, h = 0 -> -4 (1/4) log(1/2) = log 2
    zeros = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    assert math.isclose(float(cornernet_focal_loss(zeros, zeros)), math.log(2), rel_tol=1e-12)


def test_focal_losses_stable_for_confident_logits() -> None:
    target = as_map([[1.0, 0.0], [0.0, 0.0]])
    logits = as_map([[60.0, -60.0], [-60.0, -60.0]])
    assert float(heatmap_focal_loss(logits, target)) < 1e-20
    wrong = as_map([[-60.0, 60.0], [60.0, 60.0]])
    # -(1 - h~)^2 log h~ with h~ = sigmoid(-60): log h~ = -60 (no clamp, no inf)
    assert math.isclose(float(heatmap_focal_loss(wrong, target)), 4 * 60.0, rel_tol=1e-9)


def test_self_consistency_bce_4x4_by_hand() -> None:
    # C of Eq. 7 with b_uv = 1: C = 1 - |1 - B| = B; predictions at 3/4 on the left half, 1/2 on the right half
    target = torch.tensor([[1.0, 0.5, 0.0, 1.0]] * 4, dtype=torch.float64).view(1, 1, 4, 4)
    logits = torch.tensor([[L3, L3, 0.0, 0.0]] * 4, dtype=torch.float64).view(1, 1, 4, 4)
    per_column = [-math.log(3 / 4),                                      # c = 1, p = 3/4
                  -(0.5 * math.log(3 / 4) + 0.5 * math.log(1 / 4)),      # c = 1/2, p = 3/4
                  math.log(2), math.log(2)]                              # p = 1/2: log 2 whatever c
    assert math.isclose(float(self_consistency_loss(logits, target)), sum(per_column) / 4, rel_tol=1e-12)


def test_smoothed_bce_by_hand() -> None:
    labels = torch.tensor([1, 0])
    logits = torch.tensor([L3, L3], dtype=torch.float64)
    # eps = 0.1: targets 0.95 and 0.05
    fake = -(0.95 * math.log(3 / 4) + 0.05 * math.log(1 / 4))
    real = -(0.05 * math.log(3 / 4) + 0.95 * math.log(1 / 4))
    assert math.isclose(float(smoothed_bce_with_logits(logits, labels, 0.1)), (fake + real) / 2, rel_tol=1e-12)
    assert math.isclose(float(smoothed_bce_with_logits(logits, labels, 0.0)),
                        (-math.log(3 / 4) - math.log(1 / 4)) / 2, rel_tol=1e-12)
    with pytest.raises(ValueError):
        smoothed_bce_with_logits(logits, labels, 1.0)


def test_total_loss_eq8_and_switched_heads() -> None:
    consistency_target = torch.full((1, 1, 3, 3), 1.0, dtype=torch.float64)
    consistency_logits = torch.zeros(1, 1, 3, 3, dtype=torch.float64)  # L_C = log 2
    outputs = {"logit": torch.tensor([0.0], dtype=torch.float64), "heatmap": LOGITS_3X3,
               "consistency": consistency_logits}
    labels = torch.tensor([1])
    l_h = float(heatmap_focal_loss(LOGITS_3X3, TARGET_3X3))
    terms = LAANetLoss(heatmap_loss="paper")(outputs, labels, heatmap=TARGET_3X3, consistency=consistency_target)
    assert math.isclose(float(terms["bce"]), math.log(2), rel_tol=1e-6)
    assert math.isclose(float(terms["heatmap"]), l_h, rel_tol=1e-6)
    assert math.isclose(float(terms["consistency"]), math.log(2), rel_tol=1e-6)
    # Eq. 8 with lambda1 = 10, lambda2 = 100
    assert math.isclose(float(terms["loss"]), math.log(2) + 10 * l_h + 100 * math.log(2), rel_tol=1e-6)
    # heads off: their terms vanish from the sum and the dict
    only_cls = LAANetLoss()({"logit": outputs["logit"]}, labels)
    assert set(only_cls) == {"loss", "bce"} and math.isclose(float(only_cls["loss"]), math.log(2), rel_tol=1e-6)
    with pytest.raises(KeyError, match="targets transform"):
        LAANetLoss()(outputs, labels, heatmap=None, consistency=consistency_target)
    with pytest.raises(ValueError, match="heatmap_loss"):
        LAANetLoss(heatmap_loss="focal")
    with pytest.raises(ValueError, match="image_size / heatmap_stride"):
        heatmap_focal_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 3, 3))
