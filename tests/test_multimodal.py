"""MultiModalResNet (seed 001, Fig. 2): SE gates, MLFA wiring, single-modality input, weight transfer."""

from __future__ import annotations

import pytest
import torch

from lightning_dfd.models.multimodal import ModalityInputError, MultiModalResNet, SqueezeExcitation, full_resnet


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MultiModalResNet("resnet18").eval()


def test_se_gates_in_unit_interval_and_per_channel():
    se = SqueezeExcitation(8, reduction=2)
    x = torch.randn(2, 8, 4, 4)
    gates = se.gates(x)
    assert gates.shape == (2, 8, 1, 1) and bool((gates > 0).all() and (gates < 1).all())
    torch.testing.assert_close(se(x), x * gates)  # one gate per (sample, channel), broadcast over space


def test_every_agg_output_sees_every_modality(model):
    x = torch.randn(1, 9, 32, 32)
    with torch.no_grad():
        base = model.branch_features(x)
        for m in range(3):
            zeroed = x.clone()
            zeroed[:, 3 * m:3 * m + 3] = 0
            feats = model.branch_features(zeroed)
            previous_a = previous_b = None
            for k in range(3):
                merged_a = model.agg_reduce[k](torch.cat(base[k], 1))
                merged_b = model.agg_reduce[k](torch.cat(feats[k], 1))
                if previous_a is not None:
                    merged_a, merged_b = merged_a + previous_a, merged_b + previous_b
                previous_a, previous_b = model.agg[k](merged_a), model.agg[k](merged_b)
                assert not torch.allclose(previous_a, previous_b), f"agg{k + 1} ignores modality {m}"


def test_single_modality_is_fed_to_every_branch_and_bad_channels_refused(model):
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.repeat(1, 3, 1, 1)))
    with pytest.raises(ModalityInputError):
        model(torch.randn(1, 6, 32, 32))


def test_weight_transfer_lands_every_tensor(tmp_path):
    torch.manual_seed(1)
    source = full_resnet("resnet18").state_dict()
    path = tmp_path / "r18.pth"
    torch.save(source, path)
    model = MultiModalResNet("resnet18")
    report = model.load_single_stream(torch.load(path, weights_only=True), to_aggregation=True)
    own = model.state_dict()
    for m in range(3):
        for name in ("conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer3.1.bn2.weight"):
            torch.testing.assert_close(own[f"branches.{m}.{name}"], source[name])
    torch.testing.assert_close(own["res4.0.conv1.weight"], source["layer4.0.conv1.weight"].repeat(1, 3, 1, 1) / 3)
    torch.testing.assert_close(own["res4.0.downsample.0.weight"],
                               source["layer4.0.downsample.0.weight"].repeat(1, 3, 1, 1) / 3)
    torch.testing.assert_close(own["res4.1.conv2.weight"], source["layer4.1.conv2.weight"])
    torch.testing.assert_close(own["agg.0.0.conv1.weight"], source["layer2.0.conv1.weight"])
    torch.testing.assert_close(own["agg.2.1.bn2.running_var"], source["layer4.1.bn2.running_var"])
    assert any(n.startswith("se.") for n in report["unmatched"]) and "head.weight" in report["unmatched"]


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_parameter_count_from_the_single_stream_parts(name):
    with torch.device("meta"):
        model = MultiModalResNet(name, mlfa=False)
        ref = full_resnet(name)

    def count(module):
        return sum(p.numel() for p in module.parameters())

    c3 = model.branches[0].feature_info.channels()[-1]
    branch = count(ref.conv1) + count(ref.bn1) + count(ref.layer1) + count(ref.layer2) + count(ref.layer3)
    hidden = c3 // 16
    se = c3 * hidden + hidden + hidden * c3 + c3
    first = ref.layer4[0]
    widened = 2 * (first.conv1.weight.numel() + first.downsample[0].weight.numel())  # 3 x C3 inputs, not C3
    head = ref.num_features * 2 + 2
    assert count(model) == 3 * (branch + se) + count(ref.layer4) + widened + head
