"""Hypersphere margin loss, Eq. 2 of seed 004 (Sec. 3.3), on batches worked by hand."""

from __future__ import annotations

import pytest
import torch

from lightning_dfd.losses.hypersphere import HypersphereLoss, hypersphere_terms

R_MINUS, R_PLUS = 0.042, 1.638


def test_a_mixed_batch_worked_by_hand():
    # natural: d = 0.02 (inside r-, 0), 0.5 (0.5 - 0.042 = 0.458) -> mean 0.229
    # manipulated: d = 1.0 (1.638 - 1.0 = 0.638), 2.0 (outside r+, 0), 1.6 (0.038) -> mean 0.676 / 3
    d = torch.tensor([0.02, 1.0, 0.5, 2.0, 1.6])
    labels = torch.tensor([0, 1, 0, 1, 1])
    loss, nat, man = HypersphereLoss(R_MINUS, R_PLUS)(d, labels)
    assert nat.item() == pytest.approx(0.229, abs=1e-6)
    assert man.item() == pytest.approx(0.676 / 3, abs=1e-6)
    assert loss.item() == pytest.approx(0.229 + 0.676 / 3, abs=1e-6)


def test_each_term_is_averaged_over_its_own_class():
    # 1 natural vs 3 manipulated: the natural term is not diluted by the batch size
    d = torch.tensor([1.042, 0.638, 0.638, 0.638])
    _, nat, man = HypersphereLoss(R_MINUS, R_PLUS)(d, torch.tensor([0, 1, 1, 1]))
    assert nat.item() == pytest.approx(1.0, abs=1e-6) and man.item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_batches_skip_the_missing_term(label):
    d = torch.tensor([0.3, 0.9], requires_grad=True)
    loss, nat, man = HypersphereLoss(R_MINUS, R_PLUS)(d, torch.tensor([label, label]))
    expected = ((0.3 - R_MINUS) + (0.9 - R_MINUS)) / 2 if label == 0 else ((R_PLUS - 0.3) + (R_PLUS - 0.9)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert (man if label == 0 else nat).item() == 0.0
    loss.backward()
    assert torch.isfinite(d.grad).all()


def test_gradients_are_zero_inside_the_margins_and_one_over_class_size_outside():
    # natural at 0.01 (< r-) and 0.8 (> r-); manipulated at 3.0 (> r+) and 1.0 (< r+)
    d = torch.tensor([0.01, 0.8, 3.0, 1.0], requires_grad=True)
    loss, _, _ = HypersphereLoss(R_MINUS, R_PLUS)(d, torch.tensor([0, 0, 1, 1]))
    loss.backward()
    torch.testing.assert_close(d.grad, torch.tensor([0.0, 0.5, 0.0, -0.5]))


def test_radii_must_be_ordered_and_positive():
    for r_minus, r_plus in ((1.638, 0.042), (0.0, 1.0), (1.0, 1.0)):
        with pytest.raises(ValueError, match="0 < r_minus < r_plus"):
            HypersphereLoss(r_minus, r_plus)
    with pytest.raises(ValueError, match="r_minus"):
        hypersphere_terms(torch.ones(2), torch.tensor([0, 1]), 2.0, 1.0)
