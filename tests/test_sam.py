"""SAM against a hand computation on a linear model, its state handling, and LAA-Net's learning-rate schedule."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from lightning_dfd.optim import (
    SAM,
    RampLinearDecayLR,
    batchnorm_stats_frozen,
    laanet_sam,
    ramp_linear_decay_factor,
)

X = [1.0, 2.0]
W0 = [0.5, -1.0]


def linear_model() -> nn.Linear:
    model = nn.Linear(2, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([W0], dtype=torch.float64))
    return model


def loss_of(model: nn.Linear) -> torch.Tensor:
    """0.5 (w.x - y)^2 with y = 0: gradient (w.x) x."""
    return 0.5 * model(torch.tensor([X], dtype=torch.float64)).pow(2).sum()


def hand_sam_gradient(rho: float, adaptive: bool = False) -> list[float]:
    """Gradient at w + e(w), worked in plain floats."""
    r = sum(w * x for w, x in zip(W0, X))  # -1.5
    g = [r * x for x in X]  # [-1.5, -3]
    if adaptive:
        scaled = [abs(w) * gi for w, gi in zip(W0, g)]
        norm = math.sqrt(sum(s * s for s in scaled))
        e = [rho * w * w * gi / norm for w, gi in zip(W0, g)]
    else:
        norm = math.sqrt(sum(gi * gi for gi in g))  # 1.5 sqrt(5)
        e = [rho * gi / norm for gi in g]
    w_adv = [w + ei for w, ei in zip(W0, e)]
    r_adv = sum(w * x for w, x in zip(w_adv, X))
    return [r_adv * x for x in X]


def two_pass_step(model: nn.Module, sam: SAM) -> None:
    sam.zero_grad()
    loss_of(model).backward()
    sam.first_step(zero_grad=True)
    loss_of(model).backward()
    sam.step()


@pytest.mark.parametrize("adaptive", [False, True])
def test_sam_with_sgd_matches_hand_computation(adaptive: bool) -> None:
    rho, lr = 0.05, 0.1
    model = linear_model()
    sam = SAM(model.parameters(), base_optimizer=lambda p: torch.optim.SGD(p, lr=lr), rho=rho, adaptive=adaptive)
    two_pass_step(model, sam)
    g_adv = hand_sam_gradient(rho, adaptive)
    expected = [w - lr * g for w, g in zip(W0, g_adv)]
    assert torch.allclose(model.weight[0], torch.tensor(expected, dtype=torch.float64), atol=1e-14)
    # non-adaptive: r_adv = -1.5 - rho sqrt(5) in closed form
    if not adaptive:
        assert math.isclose(g_adv[0], -1.5 - rho * math.sqrt(5), rel_tol=1e-12)


def test_sam_with_adam_matches_hand_computation() -> None:
    rho, lr, eps = 0.05, 1e-2, 1e-8
    model = linear_model()
    sam = SAM(model.parameters(), base_optimizer=lambda p: torch.optim.Adam(p, lr=lr, eps=eps), rho=rho)
    two_pass_step(model, sam)
    # first Adam step: m_hat = g, v_hat = g^2 -> update lr g / (|g| + eps)
    g_adv = hand_sam_gradient(rho)
    expected = [w - lr * g / (abs(g) + eps) for w, g in zip(W0, g_adv)]
    assert torch.allclose(model.weight[0], torch.tensor(expected, dtype=torch.float64), atol=1e-12)
    assert torch.equal(sam.state[model.weight]["exp_avg"], sam.base_optimizer.state[model.weight]["exp_avg"])


def test_full_step_equals_explicit_passes() -> None:
    a, b = linear_model(), linear_model()
    sam_a = SAM(a.parameters(), base_optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    sam_b = SAM(b.parameters(), base_optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    two_pass_step(a, sam_a)

    def closure() -> torch.Tensor:
        sam_b.zero_grad()
        loss = loss_of(b)
        loss.backward()
        return loss

    sam_b.full_step(closure)
    assert torch.equal(a.weight, b.weight)


def test_restore_is_exact_and_misuse_raises() -> None:
    torch.manual_seed(0)
    model = nn.Linear(7, 3)
    before = [p.detach().clone() for p in model.parameters()]
    sam = SAM(model.parameters(), rho=0.3)
    model(torch.randn(4, 7)).pow(2).sum().backward()
    sam.first_step()
    assert sam.is_perturbed and not torch.equal(model.weight, before[0])
    with pytest.raises(RuntimeError, match="twice"):
        sam.first_step()
    sam.restore()
    assert not sam.is_perturbed
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))  # bit-exact
    with pytest.raises(RuntimeError, match="without first_step"):
        sam.step()


def test_non_finite_gradient_gives_no_perturbation() -> None:
    model = linear_model()
    sam = SAM(model.parameters(), base_optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    model.weight.grad = torch.tensor([[float("inf"), 1.0]], dtype=torch.float64)
    sam.first_step()
    assert torch.equal(model.weight, torch.tensor([W0], dtype=torch.float64))
    sam.restore()


def test_state_dict_roundtrip_and_shared_groups() -> None:
    model = linear_model()
    sam = laanet_sam(model.parameters())
    assert isinstance(sam.base_optimizer, torch.optim.Adam)
    assert sam.param_groups[0]["lr"] == 2e-4 and sam.param_groups[0]["weight_decay"] == 1e-4
    assert sam.param_groups[0]["rho"] == 0.05
    two_pass_step(model, sam)
    state = sam.state_dict()
    assert state["state"][0]["step"] == 1  # the Adam moments are in the checkpoint

    other_model = linear_model()
    other = laanet_sam(other_model.parameters())
    other.load_state_dict(state)
    assert other.param_groups is other.base_optimizer.param_groups
    assert other.state is other.base_optimizer.state
    assert torch.equal(other.state[other_model.weight]["exp_avg"], sam.state[model.weight]["exp_avg"])
    # a learning-rate change through SAM's groups reaches the base optimizer
    other.param_groups[0]["lr"] = 0.5
    assert other.base_optimizer.param_groups[0]["lr"] == 0.5


def test_batchnorm_stats_frozen() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, momentum=0.3)).train()
    net(torch.randn(2, 3, 5, 5))
    mean, var = net[1].running_mean.clone(), net[1].running_var.clone()
    with batchnorm_stats_frozen(net):
        net(torch.randn(2, 3, 5, 5) + 3.0)
    assert torch.equal(net[1].running_mean, mean) and torch.equal(net[1].running_var, var)
    assert net[1].momentum == 0.3
    net(torch.randn(2, 3, 5, 5) + 3.0)
    assert not torch.equal(net[1].running_mean, mean)


def test_paper_schedule_shape() -> None:
    # Sec. 4.1: 5e-5 -> 2e-4 over the first quarter, then linear decay to 0 (100 epochs)
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=2e-4)
    scheduler = RampLinearDecayLR(optimizer, total_steps=100)
    lrs = []
    for _ in range(101):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert math.isclose(lrs[0], 5e-5, rel_tol=1e-12)
    assert math.isclose(lrs[10], 5e-5 + (2e-4 - 5e-5) * 10 / 25, rel_tol=1e-12)
    assert math.isclose(lrs[25], 2e-4, rel_tol=1e-12)
    assert math.isclose(lrs[50], 2e-4 * 50 / 75, rel_tol=1e-12)
    assert math.isclose(lrs[99], 2e-4 / 75, rel_tol=1e-12)
    assert lrs[100] == 0.0
    assert max(lrs) == lrs[25] and all(a <= b for a, b in itertools.pairwise(lrs[:26]))


def test_schedule_drives_sam_learning_rate() -> None:
    model = linear_model()
    sam = laanet_sam(model.parameters())
    scheduler = RampLinearDecayLR(sam, total_steps=8, ramp_fraction=0.25, start_factor=0.25)
    assert math.isclose(sam.base_optimizer.param_groups[0]["lr"], 5e-5, rel_tol=1e-12)
    two_pass_step(model, sam)
    scheduler.step()
    scheduler.step()
    assert math.isclose(sam.base_optimizer.param_groups[0]["lr"], 2e-4, rel_tol=1e-12)
    assert ramp_linear_decay_factor(8, 8) == 0.0


def test_perturbation_is_normalised_over_all_tensors_together() -> None:
    # a model with two tensors (weight and bias): e(w) = rho g / ||g|| with the norm over both (Foret et al. Eq. 2)
    rho, lr = 0.05, 0.1
    model = nn.Linear(2, 1, bias=True).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([W0], dtype=torch.float64))
        model.bias.fill_(0.25)
    sam = SAM(model.parameters(), base_optimizer=lambda p: torch.optim.SGD(p, lr=lr), rho=rho)
    two_pass_step(model, sam)
    # by hand: r = w.x + b = -1.25, g_w = r x, g_b = r, ||g|| = |r| sqrt(|x|^2 + 1) = 1.25 sqrt(6)
    r = 0.5 * 1.0 - 1.0 * 2.0 + 0.25
    norm = abs(r) * math.sqrt(1.0 + 4.0 + 1.0)
    e_w = [rho * r * x / norm for x in X]
    e_b = rho * r / norm
    r_adv = (W0[0] + e_w[0]) * X[0] + (W0[1] + e_w[1]) * X[1] + 0.25 + e_b
    expected_w = [w - lr * r_adv * x for w, x in zip(W0, X)]
    expected_b = 0.25 - lr * r_adv
    # (the norm is accumulated in float32, hence 1e-8)
    assert torch.allclose(model.weight[0], torch.tensor(expected_w, dtype=torch.float64), atol=1e-8)
    assert math.isclose(model.bias.item(), expected_b, abs_tol=1e-8)
