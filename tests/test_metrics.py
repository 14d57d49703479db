"""Each detection metric, functional and Metric-class form, against scikit-learn or a hand-worked case."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score, roc_curve

from lightning_dfd.metrics import (
    AntiSpoofingErrors,
    AveragePrecision,
    EqualErrorRate,
    LogWeightedPrecision,
    PartialAUC,
    RocAUC,
    ThresholdAccuracy,
    TPRAtFPR,
    TruncatedAUC,
    anti_spoofing_errors,
    average_precision,
    equal_error_rate,
    log_weighted_precision,
    partial_auc,
    roc_auc,
    threshold_accuracy,
    tpr_at_fpr,
    truncated_auc,
)

SEEDS = (0, 1, 2)


def tied_scores(seed: int, n: int = 300, levels: int = 25) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels with a weak signal and scores on a coarse grid, so many scores tie across classes."""
    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(n, generator=g) < 0.4).long()
    noisy = 0.6 * torch.rand(n, generator=g) + 0.4 * target
    preds = torch.round(noisy * (levels - 1)) / (levels - 1)
    return preds.float(), target


def feed(metric: torch.nn.Module, preds: torch.Tensor, target: torch.Tensor, **extra: torch.Tensor) -> None:
    """Update a Metric with uneven batches (7, 64, 1, rest)."""
    bounds = [0, 7, 71, 72, preds.numel()]
    for lo, hi in itertools.pairwise(bounds):
        metric.update(preds[lo:hi], target[lo:hi], **{k: v[lo:hi] for k, v in extra.items()})


def np_(x: torch.Tensor) -> np.ndarray:
    return x.double().numpy()


# ---------------------------------------------------------------- AUC / AP vs sklearn, with ties


@pytest.mark.parametrize("seed", SEEDS)
def test_auc_and_ap_match_sklearn_with_ties(seed: int) -> None:
    preds, target = tied_scores(seed)
    assert preds.unique().numel() < 30  # really tied
    auc_ref = roc_auc_score(target.numpy(), np_(preds))
    ap_ref = average_precision_score(target.numpy(), np_(preds))
    assert roc_auc(preds, target).item() == pytest.approx(auc_ref, abs=1e-6)
    assert average_precision(preds, target).item() == pytest.approx(ap_ref, abs=1e-6)
    auc_metric, ap_metric = RocAUC(), AveragePrecision()
    feed(auc_metric, preds, target)
    feed(ap_metric, preds, target)
    assert auc_metric.compute().item() == pytest.approx(auc_ref, abs=1e-6)
    assert ap_metric.compute().item() == pytest.approx(ap_ref, abs=1e-6)
    # AP of the real class (positive_label=0) = sklearn AP with the labels and score order swapped.
    ap_real_ref = average_precision_score(1 - target.numpy(), -np_(preds))
    assert average_precision(preds, target, positive_label=0).item() == pytest.approx(ap_real_ref, abs=1e-6)


def test_auc_all_scores_tied_is_one_half() -> None:
    preds = torch.full((10,), 0.3)
    target = torch.tensor([0, 1] * 5)
    assert roc_auc(preds, target).item() == pytest.approx(0.5)
    assert equal_error_rate(preds, target).item() == pytest.approx(0.5)
    # one ROC step (0,0) -> (1,1): no point with FPR <= 0.2 (= 1 / 5 negatives) except the origin
    assert tpr_at_fpr(preds, target, 0.2).item() == 0.0
    assert partial_auc(preds, target, 0.1).item() == pytest.approx(0.5)


# ---------------------------------------------------------------- EER vs brute force on sklearn's ROC


def eer_brute_force(target: np.ndarray, preds: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(target, preds, drop_intermediate=False)
    fnr = 1 - tpr
    best = int(np.argmin(np.abs(fpr - fnr)))
    return float((fpr[best] + fnr[best]) / 2)


@pytest.mark.parametrize("seed", SEEDS)
def test_eer_matches_brute_force(seed: int) -> None:
    preds, target = tied_scores(seed)
    ref = eer_brute_force(target.numpy(), np_(preds))
    assert equal_error_rate(preds, target).item() == pytest.approx(ref, abs=1e-6)
    metric = EqualErrorRate()
    feed(metric, preds, target)
    assert metric.compute().item() == pytest.approx(ref, abs=1e-6)


def test_eer_separable_is_zero() -> None:
    assert equal_error_rate(torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([0, 0, 1, 1])).item() == 0.0


# ---------------------------------------------------------------- TPR@FPR: max TPR with FPR <= target


def tpr_at_fpr_reference(target: np.ndarray, preds: np.ndarray, fpr_target: float) -> float:
    fpr, tpr, _ = roc_curve(target, preds, drop_intermediate=False)
    return float(tpr[fpr <= fpr_target + 1e-12].max())


@pytest.mark.parametrize("seed", SEEDS)
def test_tpr_at_fpr_matches_sklearn_curve(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(4000, generator=g) < 0.5).long()
    preds = torch.round((torch.rand(4000, generator=g) + 0.8 * target) * 300) / 300  # some ties
    assert int((target == 0).sum()) >= 1000 and int(target.sum()) >= 1000  # 1e-3 measurable either way
    fprs = [1e-1, 1e-2, 2e-3, 1e-3]
    ref = [tpr_at_fpr_reference(target.numpy(), np_(preds), f) for f in fprs]
    np.testing.assert_allclose(tpr_at_fpr(preds, target, fprs).numpy(), ref, atol=1e-6)
    assert tpr_at_fpr(preds, target, 1e-2).item() == pytest.approx(ref[1], abs=1e-6)
    metric = TPRAtFPR(fpr=fprs)
    feed(metric, preds, target)
    np.testing.assert_allclose(metric.compute().numpy(), ref, atol=1e-6)
    # Anti-spoofing convention (seed 001): bona fide positive = sklearn on flipped labels and reversed scores.
    ref_bona_fide = [tpr_at_fpr_reference(1 - target.numpy(), -np_(preds), f) for f in fprs]
    np.testing.assert_allclose(tpr_at_fpr(preds, target, fprs, positive_label=0).numpy(), ref_bona_fide, atol=1e-6)
    flipped = TPRAtFPR(fpr=fprs, positive_label=0)
    feed(flipped, preds, target)
    np.testing.assert_allclose(flipped.compute().numpy(), ref_bona_fide, atol=1e-6)


def test_tpr_at_fpr_hand_worked() -> None:
    # 4 reals, 4 fakes. Descending: .9F .8R .7F .6F .5R .4F .3R .2R
    preds = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    target = torch.tensor([1, 0, 1, 1, 0, 1, 0, 0])
    assert tpr_at_fpr(preds, target, 0.0).item() == pytest.approx(0.25)  # threshold .9
    # 0.24 < 1 / 4 negatives: the same value as FPR 0, not a measurement -> NaN with a warning (issue 10)
    with pytest.warns(UserWarning, match=r"TPR@FPR=0.24 is undefined \(only 4 negatives"):
        assert math.isnan(tpr_at_fpr(preds, target, 0.24).item())
    assert tpr_at_fpr(preds, target, 0.25).item() == pytest.approx(0.75)  # threshold .6, FPR exactly .25
    assert tpr_at_fpr(preds, target, 0.5).item() == pytest.approx(1.0)  # threshold .4
    # bona fide positive: liveness order .2R .3R .4F .5R .6F .7F .8R .9F; FPR = accepted attacks / 4
    assert tpr_at_fpr(preds, target, 0.0, positive_label=0).item() == pytest.approx(0.5)
    assert tpr_at_fpr(preds, target, 0.25, positive_label=0).item() == pytest.approx(0.75)


# ---------------------------------------------------------------- accuracy at threshold (TCR)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.72])
def test_threshold_accuracy_matches_sklearn(threshold: float) -> None:
    preds, target = tied_scores(3)
    ref = accuracy_score(target.numpy(), (preds >= threshold).numpy().astype(int))
    assert threshold_accuracy(preds, target, threshold).item() == pytest.approx(ref)
    metric = ThresholdAccuracy(threshold=threshold)
    feed(metric, preds, target)
    assert metric.compute().item() == pytest.approx(ref)
    # one class is fine for accuracy
    assert threshold_accuracy(torch.tensor([0.2, 0.7]), torch.tensor([0, 0])).item() == pytest.approx(0.5)


# ---------------------------------------------------------------- pAUC vs sklearn roc_auc_score(max_fpr)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("max_fpr", [0.01, 0.1, 0.35, 1.0])
def test_partial_auc_matches_sklearn(seed: int, max_fpr: float) -> None:
    preds, target = tied_scores(seed)
    ref = roc_auc_score(target.numpy(), np_(preds), max_fpr=max_fpr)
    assert partial_auc(preds, target, max_fpr).item() == pytest.approx(ref, abs=1e-6)
    metric = PartialAUC(max_fpr=max_fpr)
    feed(metric, preds, target)
    assert metric.compute().item() == pytest.approx(ref, abs=1e-6)


# ---------------------------------------------------------------- tAUC (seed 004): ROC points and FAR grid


def tauc_points_reference(target: np.ndarray, preds: np.ndarray, far: float) -> float:
    """Mean TPR of sklearn's ROC points (one per distinct score + origin) with FPR <= far."""
    fpr, tpr, _ = roc_curve(target, preds, drop_intermediate=False)
    return float(tpr[fpr <= far + 1e-12].mean())


def tauc_grid_reference(target: np.ndarray, preds: np.ndarray, far: float, n_grid: int = 200_001) -> float:
    """Mean over a fine FAR grid of TAR@FAR = max{TPR : FPR <= f} (the step reading TPR@FPR uses)."""
    fpr, tpr, _ = roc_curve(target, preds, drop_intermediate=False)
    grid = np.linspace(0, far, n_grid)
    last = np.searchsorted(fpr, grid + 1e-12, side="right") - 1
    return float(np.maximum.accumulate(tpr)[last].mean())


def test_truncated_auc_hand_worked() -> None:
    # Descending .9F .8R .7F .6R .5F .4R, 3 fakes / 3 reals.
    # ROC points: (0,0) (0,1/3) (1/3,1/3) (1/3,2/3) (2/3,2/3) (2/3,1) (1,1)
    preds = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    target = torch.tensor([1, 0, 1, 0, 1, 0])
    # roc_points up to FAR 0.5: (0,0) (0,1/3) (1/3,1/3) (1/3,2/3) -> mean TPR (0 + 1/3 + 1/3 + 2/3) / 4 = 1/3
    assert truncated_auc(preds, target, 0.5).item() == pytest.approx(1 / 3)
    # up to FAR 0.2: (0,0) (0,1/3) -> 1/6
    assert truncated_auc(preds, target, 0.2).item() == pytest.approx(1 / 6)
    # far_grid: step TAR 1/3 on [0, 1/3), 2/3 on [1/3, 0.5] -> (1/9 + 1/9) / 0.5 = 4/9
    assert truncated_auc(preds, target, 0.5, reading="far_grid").item() == pytest.approx(4 / 9)
    assert truncated_auc(preds, target, 0.2, reading="far_grid").item() == pytest.approx(1 / 3)
    # cut-off 1 on the grid = the full AUC (no ties: steps = trapezoids), 6 of 9 pairs ordered
    assert truncated_auc(preds, target, 1.0, reading="far_grid").item() == pytest.approx(2 / 3)
    metric, grid_metric = TruncatedAUC(max_far=0.5), TruncatedAUC(max_far=0.5, reading="far_grid")
    feed(metric, preds, target)
    feed(grid_metric, preds, target)
    assert metric.compute().item() == pytest.approx(1 / 3)
    assert grid_metric.compute().item() == pytest.approx(4 / 9)
    with pytest.raises(ValueError, match="reading must be one of"):
        truncated_auc(preds, target, 0.5, reading="linear")  # type: ignore[arg-type]


def test_truncated_auc_reads_ties_as_steps_like_tar_at_far() -> None:
    # a fake and a real tie at .8: ROC (0,0) -> (1/2,1/2) -> (1,1). TAR@FAR=0.2 is 0 (the tie cannot be split),
    # so the step reading gives tAUC 0 where the linear (diagonal) reading gave chance FAR_tau / 2 = 0.1.
    preds = torch.tensor([0.8, 0.8, 0.2, 0.2])
    target = torch.tensor([1, 0, 1, 0])
    assert tpr_at_fpr(preds, target, 0.5).item() == pytest.approx(0.5)
    assert truncated_auc(preds, target, 0.2, reading="far_grid").item() == pytest.approx(0.0)
    assert truncated_auc(preds, target, 0.2).item() == pytest.approx(0.0)  # only (0,0) has FPR <= 0.2
    # up to 0.75: step TAR 0 on [0, .5), .5 on [.5, .75] -> .125 / .75; points (0,0) (.5,.5) -> .25
    assert truncated_auc(preds, target, 0.75, reading="far_grid").item() == pytest.approx(0.125 / 0.75)
    assert truncated_auc(preds, target, 0.75).item() == pytest.approx(0.25)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("far", [0.01, 0.1, 0.3])
def test_truncated_auc_matches_numpy_references_with_ties(seed: int, far: float) -> None:
    preds, target = tied_scores(seed)
    y, p = target.numpy(), np_(preds)
    assert truncated_auc(preds, target, far).item() == pytest.approx(tauc_points_reference(y, p, far), abs=1e-6)
    grid_ref = tauc_grid_reference(y, p, far)
    assert truncated_auc(preds, target, far, reading="far_grid").item() == pytest.approx(grid_ref, abs=1e-4)
    # ties make the linear (trapezoid) reading differ from the step one: the test tells them apart
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    linear = np.interp(np.linspace(0, far, 200_001), fpr, tpr).mean()
    assert abs(linear - grid_ref) > 1e-3


# ---------------------------------------------------------------- log(wP), DFDC preview


def test_log_weighted_precision_hand_worked() -> None:
    # Descending .9F .8F .7R .6F .5R .4R .3F .2R, P = 4
    preds = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    target = torch.tensor([1, 1, 0, 1, 0, 0, 1, 0])
    values = log_weighted_precision(preds, target, [0.5, 0.6, 0.75, 1.0])
    expected = [
        0.0,  # recall .5 at threshold .8: TP 2, FP 0 -> wP = 1
        math.log(3 / (3 + 100 * 1)),  # recall .6 needs TP >= 3: threshold .6, FP 1
        math.log(3 / (3 + 100 * 1)),
        math.log(4 / (4 + 100 * 3)),  # threshold .3: TP 4, FP 3
    ]
    np.testing.assert_allclose(values.numpy(), expected, rtol=1e-6, atol=1e-7)
    # alpha = 1 is the plain precision
    assert log_weighted_precision(preds, target, 0.75, alpha=1.0).item() == pytest.approx(math.log(3 / 4))
    metric = LogWeightedPrecision(recall=1.0)
    feed(metric, preds, target)
    assert metric.compute().item() == pytest.approx(math.log(4 / 304))


# ---------------------------------------------------------------- ISO/IEC 30107-3 APCER / BPCER / ACER


def test_anti_spoofing_errors_hand_worked() -> None:
    preds = torch.tensor([0.9, 0.2, 0.6, 0.8, 0.1, 0.7, 0.5, 0.3])
    target = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0])
    attack_type = torch.tensor([1, 1, 2, 2, 0, 0, 0, 0])
    pooled = anti_spoofing_errors(preds, target, threshold=0.5)
    assert pooled["apcer"].item() == pytest.approx(0.25)  # 0.2 missed of 4 attacks
    assert pooled["bpcer"].item() == pytest.approx(0.5)  # 0.7 and 0.5 (>= threshold) rejected
    assert pooled["acer"].item() == pytest.approx(0.375)
    worst = anti_spoofing_errors(preds, target, threshold=0.5, attack_type=attack_type)
    assert worst["apcer"].item() == pytest.approx(0.5)  # species 1: 1 of 2 missed; species 2: 0
    assert worst["acer"].item() == pytest.approx(0.5)
    metric = AntiSpoofingErrors(threshold=0.5)
    feed(metric, preds, target, attack_type=attack_type)
    assert {k: round(v.item(), 6) for k, v in metric.compute().items()} == {"apcer": 0.5, "bpcer": 0.5, "acer": 0.5}


# ---------------------------------------------------------------- undefined values: NaN + warning


@pytest.mark.parametrize(("name", "fn"), [
    ("AUC", roc_auc),
    ("AP", average_precision),
    ("EER", equal_error_rate),
    ("TPR@FPR", lambda p, t: tpr_at_fpr(p, t, 0.01)),
    ("pAUC", lambda p, t: partial_auc(p, t, 0.1)),
    ("tAUC", lambda p, t: truncated_auc(p, t, 0.1)),
    ("log\\(wP\\)", lambda p, t: log_weighted_precision(p, t, 0.5)),
])
@pytest.mark.parametrize("label", [0, 1])
def test_single_class_gives_nan_and_warning(name: str, fn, label: int) -> None:
    preds = torch.tensor([0.1, 0.4, 0.9])
    with pytest.warns(UserWarning, match=f"{name}.*one class"):
        value = fn(preds, torch.full((3,), label))
    assert torch.isnan(value).all()


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")
@pytest.mark.parametrize("metric_cls", [RocAUC, AveragePrecision, EqualErrorRate, TPRAtFPR, PartialAUC,
                                        TruncatedAUC, LogWeightedPrecision, ThresholdAccuracy])
def test_empty_and_single_class_state_give_nan_and_warning(metric_cls: type) -> None:
    metric = metric_cls()
    with pytest.warns(UserWarning, match=f"{metric.metric_name.replace('(', '.').replace(')', '.')}.*no samples"):
        assert torch.isnan(metric.compute()).all()
    if metric_cls is not ThresholdAccuracy:
        metric.reset()
        metric.update(torch.tensor([0.2, 0.3]), torch.tensor([1, 1]))
        with pytest.warns(UserWarning, match="one class"):
            assert torch.isnan(metric.compute()).all()


def test_anti_spoofing_without_attacks_or_bona_fide_gives_nan() -> None:
    with pytest.warns(UserWarning, match="APCER"):
        only_bona_fide = anti_spoofing_errors(torch.tensor([0.2, 0.7]), torch.tensor([0, 0]))
    assert torch.isnan(only_bona_fide["apcer"]) and torch.isnan(only_bona_fide["acer"])
    assert only_bona_fide["bpcer"].item() == pytest.approx(0.5)
    with pytest.warns(UserWarning, match="BPCER"):
        only_attacks = anti_spoofing_errors(torch.tensor([0.2, 0.7]), torch.tensor([1, 1]))
    assert only_attacks["apcer"].item() == pytest.approx(0.5) and torch.isnan(only_attacks["bpcer"])


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="only 0 .* and 1"):
        roc_auc(torch.rand(3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="float scores"):
        roc_auc(torch.tensor([0, 1]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="integer labels"):
        roc_auc(torch.rand(2), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="max_fpr"):
        PartialAUC(max_fpr=0.0)


# ---------------------------------------------------------------- TPR@FPR at 1e-3 vs 1e-4 (>= 10000 negatives)


def tpr_at_fpr_from_definition(positive_scores: np.ndarray, negative_scores: np.ndarray, fpr: float) -> float:
    """max{TPR(t) : FPR(t) <= fpr} over t in the scores (and +inf), with ``positive <=> score >= t``."""
    thresholds = np.concatenate([[np.inf], np.unique(np.concatenate([positive_scores, negative_scores]))])
    neg, pos = np.sort(negative_scores), np.sort(positive_scores)
    false_pos = len(neg) - np.searchsorted(neg, thresholds, side="left")
    true_pos = len(pos) - np.searchsorted(pos, thresholds, side="left")
    allowed = false_pos <= fpr * len(neg) + 1e-9
    return float((true_pos[allowed] / len(pos)).max())


def test_tpr_at_fpr_tells_1e_3_from_1e_4_on_ten_thousand_negatives() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(0.0, 1.0, 10_000)
    fake = rng.normal(2.5, 1.0, 3_000)
    preds = torch.tensor(np.concatenate([fake, real]))
    target = torch.tensor([1] * len(fake) + [0] * len(real))
    expected = [tpr_at_fpr_from_definition(fake, real, f) for f in (1e-3, 1e-4)]
    assert expected[0] > expected[1] + 0.05  # 10 false positives allowed vs 1: clearly different figures
    np.testing.assert_allclose(tpr_at_fpr(preds, target, [1e-3, 1e-4]).numpy(), expected, atol=1e-6)
    metric = TPRAtFPR(fpr=[1e-3, 1e-4])
    feed(metric, preds, target)
    np.testing.assert_allclose(metric.compute().numpy(), expected, atol=1e-6)
    # bona fide positive (seed 001): reals accepted (low attack score) while <= fpr of 3000 attacks are accepted
    expected_bona_fide = tpr_at_fpr_from_definition(-real, -fake, 1e-3)
    assert tpr_at_fpr(preds, target, 1e-3, positive_label=0).item() == pytest.approx(expected_bona_fide, abs=1e-6)
    # 1e-4 of 3000 attacks is below one attack: not a measurement
    with pytest.warns(UserWarning, match="only 3000 negatives"):
        assert math.isnan(tpr_at_fpr(preds, target, 1e-4, positive_label=0).item())


# ---------------------------------------------------------------- NaN in, NaN out (every metric)


NAN_PREDS = torch.tensor([0.9, float("nan"), 0.2, 0.7, 0.4, 0.1])
NAN_TARGET = torch.tensor([1, 1, 0, 1, 0, 0])


@pytest.mark.parametrize(("name", "fn"), [
    ("AUC", roc_auc),
    ("AP", average_precision),
    ("EER", equal_error_rate),
    ("TPR@FPR", lambda p, t: tpr_at_fpr(p, t, 0.5)),
    ("pAUC", lambda p, t: partial_auc(p, t, 0.1)),
    ("tAUC", lambda p, t: truncated_auc(p, t, 0.5)),
    ("tAUC", lambda p, t: truncated_auc(p, t, 0.5, reading="far_grid")),
    ("log\\(wP\\)", lambda p, t: log_weighted_precision(p, t, 0.5)),
    ("ACC", threshold_accuracy),
    ("ACER", lambda p, t: anti_spoofing_errors(p, t)["apcer"]),
    ("ACER", lambda p, t: anti_spoofing_errors(p, t)["bpcer"]),
    ("ACER", lambda p, t: anti_spoofing_errors(p, t)["acer"]),
])
def test_nan_score_gives_nan_and_warning(name: str, fn) -> None:
    with pytest.warns(UserWarning, match=f"{name}.*NaN"):
        value = fn(NAN_PREDS, NAN_TARGET)
    assert torch.isnan(value).all()


@pytest.mark.parametrize("metric_cls", [RocAUC, AveragePrecision, EqualErrorRate, TPRAtFPR, PartialAUC,
                                        TruncatedAUC, LogWeightedPrecision, ThresholdAccuracy, AntiSpoofingErrors])
def test_nan_score_in_metric_state_gives_nan_and_warning(metric_cls: type) -> None:
    metric = metric_cls() if metric_cls is not TPRAtFPR else TPRAtFPR(fpr=0.5)
    metric.update(NAN_PREDS[:3], NAN_TARGET[:3])
    metric.update(NAN_PREDS[3:], NAN_TARGET[3:])
    with pytest.warns(UserWarning, match="NaN"):
        value = metric.compute()
    values = list(value.values()) if isinstance(value, dict) else [value]
    assert all(torch.isnan(v).all() for v in values)


def test_metric_states_keep_float64_scores_beyond_float32_resolution() -> None:
    # logits 17, 18, 19 are all 1.0 as float32 probabilities; as float64 scores their order survives
    logits = torch.tensor([17.0, 18.0, 19.0, 20.0], dtype=torch.float64)
    target = torch.tensor([0, 1, 0, 1])
    metric = RocAUC()
    metric.update(torch.sigmoid(logits), target)
    assert metric.compute().item() == pytest.approx(roc_auc_score(target.numpy(), logits.numpy()))  # 0.75
    assert roc_auc_score(target.numpy(), torch.sigmoid(logits.float()).double().numpy()) == 0.5  # the old collapse
