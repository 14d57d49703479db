"""Video aggregation against pandas, stable video ids, and the DetectionScores collector against separate
computations (scikit-learn on pandas-aggregated data)."""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score, roc_curve

from lightning_dfd.metrics import (
    DetectionScores,
    Scoring,
    aggregate_by_video,
    aggregate_log_odds_by_video,
    video_index,
    video_indices,
)

FAKE_GROUPS = ("Deepfakes", "Face2Face", "NeuralTextures")


def frame_table(seed: int, n_videos: int = 36) -> pd.DataFrame:
    """Frames of videos with 1-9 frames each; reals are group "real"; scores tie often (coarse grid)."""
    rng = np.random.default_rng(seed)
    rows = []
    for v in range(n_videos):
        label = int(v % 3 != 0)
        group = "real" if label == 0 else FAKE_GROUPS[(v // 3) % len(FAKE_GROUPS)]
        offset = rng.uniform(0, 0.5) + 0.3 * label
        for f in range(int(rng.integers(1, 10))):
            score = np.clip(offset + rng.normal(0, 0.15), 0, 1)
            rows.append({"video_id": f"vid_{seed}_{v:03d}", "frame": f, "label": label, "group": group,
                         "pred": np.round(score * 30) / 30})
    table = pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)  # shuffle frames
    table["video_idx"] = [video_index(v) for v in table["video_id"]]
    return table


def tensors(table: pd.DataFrame, group_ids: dict[str, int]) -> dict[str, torch.Tensor]:
    return {
        "preds": torch.tensor(table["pred"].to_numpy(), dtype=torch.float32),
        "target": torch.tensor(table["label"].to_numpy(), dtype=torch.int64),
        "video_idx": torch.tensor(table["video_idx"].to_numpy(), dtype=torch.int64),
        "group_idx": torch.tensor([group_ids[g] for g in table["group"]], dtype=torch.int64),
    }


def video_table(table: pd.DataFrame, how: str, threshold: float) -> pd.DataFrame:
    """Per video: ``pred`` (thresholded score), ``ranking`` (an order-equivalent score with exact ties)."""
    grouped = table.assign(vote=(table["pred"].astype(np.float32) >= threshold).astype(float),
                           pred32=table["pred"].astype(np.float32)).groupby("video_idx")
    column = {"mean": "pred", "max": "pred", "vote": "vote"}[how]
    reducer = "max" if how == "max" else "mean"
    out = pd.DataFrame({"pred": grouped[column].agg(reducer), "label": grouped["label"].max(),
                        "group": grouped["group"].first()}).sort_index()
    if how == "mean":  # exact rational mean of the float32 scores, as a dense rank (sklearn needs floats)
        exact = grouped["pred32"].agg(lambda v: sum(Fraction(float(x)) for x in v) / len(v)).sort_index()
        order = {value: rank for rank, value in enumerate(sorted(set(exact)))}
        out["ranking"] = [float(order[value]) for value in exact]
    else:
        out["ranking"] = out["pred"]
    return out


# ---------------------------------------------------------------- aggregation


@pytest.mark.parametrize("how", ["mean", "vote", "max"])
@pytest.mark.parametrize("threshold", [0.5, 0.4])
def test_aggregate_by_video_matches_pandas_groupby(how: str, threshold: float) -> None:
    table = frame_table(0)
    data = tensors(table, {g: 0 for g in ("real", *FAKE_GROUPS)})
    video_preds, video_target, unique_idx = aggregate_by_video(data["preds"], data["target"], data["video_idx"],
                                                               how=how, threshold=threshold)
    ref = video_table(table, how, threshold)
    np.testing.assert_array_equal(unique_idx.numpy(), ref.index.to_numpy())
    np.testing.assert_allclose(video_preds.numpy(), ref["pred"].to_numpy(), rtol=1e-6)
    np.testing.assert_array_equal(video_target.numpy(), ref["label"].to_numpy())
    # independent of frame order (what makes DDP ranks agree)
    perm = torch.randperm(data["preds"].numel(), generator=torch.Generator().manual_seed(5))
    again = aggregate_by_video(data["preds"][perm], data["target"][perm], data["video_idx"][perm], how, threshold)
    torch.testing.assert_close(again[0], video_preds)
    assert torch.equal(again[2], unique_idx)


def test_vote_is_majority_vote_and_mixed_labels_warn() -> None:
    preds = torch.tensor([0.9, 0.8, 0.1, 0.2, 0.3, 0.6])
    target = torch.tensor([1, 1, 1, 0, 0, 1])
    video = torch.tensor([7, 7, 7, 3, 3, 3])
    with pytest.warns(UserWarning, match="1 of 2 videos have both real and fake frames"):
        video_preds, video_target, unique_idx = aggregate_by_video(preds, target, video, how="vote")
    assert unique_idx.tolist() == [3, 7]
    assert video_preds.tolist() == pytest.approx([1 / 3, 2 / 3])  # majority: video 7 fake, video 3 real
    assert video_target.tolist() == [1, 1]  # mixed video 3 is labelled fake
    with pytest.raises(ValueError, match="how must be one of"):
        aggregate_by_video(preds, target, video, how="median")  # type: ignore[arg-type]


def test_video_index_is_stable_int63() -> None:
    # fixed value: every process and every release must map ids alike
    assert video_index("000_003") == 6822080506078621262
    ids = [f"video_{i}" for i in range(5000)]
    values = video_indices(ids)
    assert values.dtype == torch.int64 and values.unique().numel() == len(ids)
    assert int(values.min()) >= 0
    assert values[17].item() == video_index("video_17")


# ---------------------------------------------------------------- the collector


def eer_brute_force(target: np.ndarray, preds: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(target, preds, drop_intermediate=False)
    best = int(np.argmin(np.abs(fpr - (1 - tpr))))
    return float((fpr[best] + 1 - tpr[best]) / 2)


def tpr_or_nan(fpr: np.ndarray, tpr: np.ndarray, rate: float, n_negatives: int) -> float:
    """max TPR with FPR <= rate; NaN when the rate is below 1 / n_negatives (not a measurement)."""
    return float("nan") if rate * n_negatives < 1 else float(tpr[fpr <= rate + 1e-12].max())


def expected_level(table: pd.DataFrame, threshold: float, level: str) -> dict[str, float]:
    """Every key of one level from sklearn / pandas / NumPy on the frame or video table."""
    y = table["label"].to_numpy()
    decided = (table["pred"].to_numpy().astype(np.float32) >= threshold).astype(int)
    ranking = table["ranking"] if "ranking" in table else table["pred"]
    p = ranking.to_numpy().astype(np.float32).astype(np.float64) if "ranking" not in table else ranking.to_numpy()
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    n_real = int((y == 0).sum())
    attacks = table[y == 1]
    missed_per_group = (attacks["pred"].astype(np.float32) < threshold).groupby(attacks["group"]).mean()
    apcer, bpcer = float(missed_per_group.max()), float(decided[y == 0].mean())
    out = {
        "auc": roc_auc_score(y, p), "ap": average_precision_score(y, p), "eer": eer_brute_force(y, p),
        "acc": accuracy_score(y, decided),
        "tpr@fpr=1e-1": tpr_or_nan(fpr, tpr, 1e-1, n_real), "tpr@fpr=2e-2": tpr_or_nan(fpr, tpr, 2e-2, n_real),
        "n_negatives": n_real, "pauc@0.1": roc_auc_score(y, p, max_fpr=0.1),
        "tauc@0.1": tpr[fpr <= 0.1 + 1e-12].mean(), "tauc@0.3": tpr[fpr <= 0.3 + 1e-12].mean(),
        "apcer": apcer, "bpcer": bpcer, "acer": (apcer + bpcer) / 2,
    }
    for group in FAKE_GROUPS:
        keep = (y == 0) | (table["group"].to_numpy() == group)
        out[f"auc/{group}"] = roc_auc_score(y[keep], p[keep])
        out[f"ap/{group}"] = average_precision_score(y[keep], p[keep])
        out[f"acc/{group}"] = accuracy_score(y[keep], decided[keep])
        out[f"apcer/{group}"] = float(missed_per_group[group])  # per attack type, ISO/IEC 30107-3
        out[f"acer/{group}"] = (float(missed_per_group[group]) + bpcer) / 2
    return {f"{level}/{k}": float(v) for k, v in out.items()}


@pytest.mark.parametrize(("aggregation", "threshold"), [("mean", 0.5), ("vote", 0.45), ("max", 0.6)])
def test_detection_scores_match_separate_computations(aggregation: str, threshold: float) -> None:
    table = frame_table(1)
    metric = DetectionScores(Scoring(aggregation=aggregation, threshold=threshold, fpr_points=(1e-1, 2e-2),
                                     tauc_fars=(0.1, 0.3)))
    group_ids = {name: metric.register_group(name) for name in ("real", *FAKE_GROUPS)}
    data = tensors(table, group_ids)
    for lo, hi in [(0, 5), (5, 60), (60, len(table))]:
        metric.update(*(data[k][lo:hi] for k in ("preds", "target", "video_idx", "group_idx")))
    result = metric.compute()
    videos = video_table(table, aggregation, threshold)
    video_threshold = 0.5 if aggregation == "vote" else threshold
    expected = expected_level(table, threshold, "frame") | expected_level(videos, video_threshold, "video")
    assert set(result) == set(expected)  # "real" has no fakes: no per-group keys for it
    assert 10 <= expected["video/n_negatives"] < 50 <= expected["frame/n_negatives"]  # 2e-2: video NaN, frame not
    for key, value in expected.items():
        assert result[key].item() == pytest.approx(value, abs=1e-5, nan_ok=True), key
    # last_scores: the synced frame and video arrays
    scores = metric.last_scores
    np.testing.assert_array_equal(np.sort(scores["frame_preds"]), np.sort(data["preds"].numpy()))
    np.testing.assert_allclose(scores["video_preds"], videos["pred"].to_numpy(), rtol=1e-6)
    np.testing.assert_array_equal(scores["video_target"], videos["label"].to_numpy())
    np.testing.assert_array_equal(scores["video_idx"], videos.index.to_numpy())


def test_detection_scores_unregistered_group_and_log_wp() -> None:
    metric = DetectionScores(Scoring(fpr_points=(0.5,), tauc_fars=(), log_wp_recalls=(0.5,)))
    preds = torch.tensor([0.9, 0.8, 0.3, 0.2, 0.6, 0.1])
    target = torch.tensor([1, 1, 1, 0, 0, 0])
    metric.update(preds, target, torch.arange(6), torch.tensor([4, 4, 5, 0, 0, 0]))
    result = metric.compute()
    assert "frame/tpr@fpr=5e-1" in result and "frame/log_wp@recall=0.5" in result
    assert result["frame/log_wp@recall=0.5"].item() == pytest.approx(0.0)  # threshold .8: TP 2, FP 0
    assert result["frame/auc/4"].item() == pytest.approx(1.0)  # group 4 fakes .9 .8 above all reals
    assert result["frame/auc/5"].item() == pytest.approx(2 / 3)  # .3 beats .2 and .1, not .6
    assert result["frame/apcer"].item() == pytest.approx(1.0)  # worst group 5: its only attack missed


def test_detection_scores_undefined_values_are_nan_with_warning() -> None:
    metric = DetectionScores()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        empty = metric.compute()
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert any("frame-level" in m and "undefined on 0 samples" in m for m in messages)
    assert any("video-level" in m and "undefined on 0 samples" in m for m in messages)
    assert all(torch.isnan(v) for k, v in empty.items() if not k.endswith("/n_negatives"))
    assert empty["frame/n_negatives"].item() == 0 and empty["video/n_negatives"].item() == 0
    metric.reset()
    metric.update(torch.tensor([0.2, 0.7, 0.4]), torch.tensor([0, 0, 0]), torch.tensor([1, 1, 2]))
    with pytest.warns(UserWarning) as record:
        single = metric.compute()
    messages = [str(w.message) for w in record]
    assert len(messages) == 2  # one warning per level, not one per metric
    assert "frame-level" in messages[0] and "auc" in messages[0] and "(0 fake, 3 real)" in messages[0]
    assert "video-level" in messages[1] and "undefined on 2 samples (0 fake, 2 real)" in messages[1]
    assert torch.isnan(single["frame/auc"]) and torch.isnan(single["video/eer"])
    assert single["frame/acc"].item() == pytest.approx(2 / 3) and single["frame/bpcer"].item() == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="video_indices"):
        metric.update(torch.rand(2), torch.tensor([0, 1]), torch.tensor([0.5, 1.5]))


# ---------------------------------------------------------------- aggregations told apart (hand-worked)

# Two real and two fake videos of three frames. By hand (threshold 0.5; video threshold 0.5 for vote):
#   video  frames            mean    vote (p >= .5)  max
#   R1     .1 .1 .9          .3667   1/3             .9
#   R2     .3 .3 .3          .3      0               .3
#   F1     .5 .4 .3          .4      1/3             .5
#   F2     .2 .6 .6          .4667   2/3             .6
# video AUC = ordered (fake, real) pairs / 4, ties count 1/2:
#   mean: all 4 ordered -> 1;  vote: F1~R1 tie, F1>R2, F2>R1, F2>R2 -> 3.5/4;  max: F1>R2, F2>R2 only -> 1/2.
HAND_FRAMES = {"R1": (0, [0.1, 0.1, 0.9]), "R2": (0, [0.3, 0.3, 0.3]), "F1": (1, [0.5, 0.4, 0.3]),
               "F2": (1, [0.2, 0.6, 0.6])}
HAND_VIDEO = {  # aggregation -> (auc, acc, apcer, bpcer)
    "mean": (1.0, 0.5, 1.0, 0.0),  # both fakes below .5; no real above
    "vote": (0.875, 0.75, 0.5, 0.0),  # F1 1/3 < .5 missed; F2 2/3 caught; reals 1/3 and 0 accepted
    "max": (0.5, 0.75, 0.0, 0.5),  # F1 .5 and F2 .6 caught; R1 .9 rejected
}


def hand_metric(scoring: Scoring) -> DetectionScores:
    metric = DetectionScores(scoring)
    for name, (label, probs) in HAND_FRAMES.items():
        metric.update(torch.tensor(probs), torch.full((3,), label), video_indices([name] * 3))
    return metric


@pytest.mark.filterwarnings("ignore:DetectionScores")
@pytest.mark.parametrize("aggregation", ["mean", "vote", "max"])
def test_mean_vote_and_max_give_the_hand_worked_video_metrics(aggregation: str) -> None:
    result = hand_metric(Scoring(aggregation=aggregation)).compute()
    auc, acc, apcer, bpcer = HAND_VIDEO[aggregation]
    assert result["video/auc"].item() == pytest.approx(auc)
    assert result["video/acc"].item() == pytest.approx(acc)
    assert result["video/apcer"].item() == pytest.approx(apcer)
    assert result["video/bpcer"].item() == pytest.approx(bpcer)
    # frame level does not depend on the aggregation: 12 frames, sklearn
    frames = np.concatenate([p for _, p in HAND_FRAMES.values()])
    labels = np.repeat([label for label, _ in HAND_FRAMES.values()], 3)
    assert result["frame/auc"].item() == pytest.approx(roc_auc_score(labels, frames.astype(np.float32)))


@pytest.mark.filterwarnings("ignore:DetectionScores")
def test_truncated_auc_under_vote_ties_reads_steps() -> None:
    # vote fractions R1 1/3, R2 0, F1 1/3, F2 2/3: ROC points (0,0) (0,1/2) (1/2,1) (1,1); R1 and F1 tie.
    # FAR 0.25 -- roc_points: mean(0, 1/2) = 1/4; far_grid: step TAR 1/2 on [0, .25] -> 1/2;
    # (the linear reading would interpolate the tie's diagonal: (.25 * (.5 + .75) / 2) / .25 = .625)
    points = hand_metric(Scoring(aggregation="vote", tauc_fars=(0.25,))).compute()
    grid = hand_metric(Scoring(aggregation="vote", tauc_fars=(0.25,), tauc_reading="far_grid")).compute()
    assert points["video/tauc@0.25"].item() == pytest.approx(0.25)
    assert grid["video/tauc@0.25"].item() == pytest.approx(0.5)
    # TAR@FAR reads the same steps: at FPR 1/2 the tie is crossed (TPR 1), below it TPR stays 1/2
    steps = hand_metric(Scoring(aggregation="vote", fpr_points=(0.5,))).compute()
    assert steps["video/tpr@fpr=5e-1"].item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="tauc_reading must be one of"):
        Scoring(tauc_reading="linear")  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore:DetectionScores")
def test_bona_fide_positive_tpr_keys_and_values() -> None:
    # bona fide positive: score = -p; reals R1 frames .1 .1 .9, R2 .3 x3; attacks .5 .4 .3 .2 .6 .6
    fake_keys = hand_metric(Scoring(fpr_points=(0.5,))).compute()
    bona_fide = hand_metric(Scoring(fpr_points=(0.5,), tpr_positive="bona_fide")).compute()
    assert "frame/tpr@fpr=5e-1" in fake_keys and "frame/tpr_bona_fide@fpr=5e-1" not in fake_keys
    assert "frame/tpr_bona_fide@fpr=5e-1" in bona_fide and "frame/tpr@fpr=5e-1" not in bona_fide
    frames = np.concatenate([p for _, p in HAND_FRAMES.values()]).astype(np.float32).astype(np.float64)
    labels = np.repeat([label for label, _ in HAND_FRAMES.values()], 3)
    for positive, result, key in ((1, fake_keys, "tpr"), (0, bona_fide, "tpr_bona_fide")):
        fpr, tpr, _ = roc_curve(labels == positive, frames if positive else -frames, drop_intermediate=False)
        assert result[f"frame/{key}@fpr=5e-1"].item() == pytest.approx(tpr[fpr <= 0.5].max()), key
        assert result["frame/n_negatives"].item() == 6  # 6 reals, or 6 attack frames
    assert fake_keys["frame/tpr@fpr=5e-1"].item() != pytest.approx(bona_fide["frame/tpr_bona_fide@fpr=5e-1"].item())
    assert bona_fide["video/n_negatives"].item() == 2


# ---------------------------------------------------------------- NaN in, NaN out through aggregation


@pytest.mark.parametrize("how", ["mean", "vote", "max"])
def test_nan_frame_makes_its_video_nan(how: str) -> None:
    preds = torch.tensor([0.9, float("nan"), 0.2, 0.3, 0.7])
    target = torch.tensor([1, 1, 0, 0, 1])
    video = torch.tensor([5, 5, 6, 6, 7])
    with pytest.warns(UserWarning, match="1 of 3 videos have NaN frame scores"):
        video_preds, _, unique_idx = aggregate_by_video(preds, target, video, how=how)
    assert unique_idx.tolist() == [5, 6, 7]
    assert np.isnan(video_preds[0].item()) and not torch.isnan(video_preds[1:]).any()
    ranking = aggregate_log_odds_by_video(torch.logit(preds.double()), preds, video, how=how)
    assert np.isnan(ranking[0].item()) and not torch.isnan(ranking[1:]).any()


def test_nan_score_makes_every_detection_score_nan() -> None:
    metric = DetectionScores(Scoring(fpr_points=(0.5,)))
    group_ids = {name: metric.register_group(name) for name in ("real", "Deepfakes")}
    preds = torch.tensor([0.9, 0.8, 0.6, float("nan"), 0.2, 0.1])  # the NaN is a real frame: in every subset
    target = torch.tensor([1, 1, 1, 0, 0, 0])
    groups = torch.tensor([group_ids[g] for g in ["Deepfakes"] * 3 + ["real"] * 3])
    metric.update(preds, target, torch.arange(6), groups)
    with pytest.warns(UserWarning) as record:
        result = metric.compute()
    assert any("frame-level" in str(w.message) and "1 NaN scores" in str(w.message) for w in record)
    assert any("video-level" in str(w.message) and "1 NaN scores" in str(w.message) for w in record)
    nan_keys = {k for k, v in result.items() if bool(torch.isnan(v))}
    assert nan_keys == {k for k in result if not k.endswith("/n_negatives")}
    assert {"frame/acc", "frame/apcer", "frame/bpcer", "frame/acer", "video/acc", "frame/acc/Deepfakes"} <= nan_keys


# ---------------------------------------------------------------- ranking on log-odds, not float32 probabilities


@pytest.mark.filterwarnings("ignore:DetectionScores")
def test_ranking_metrics_see_logits_beyond_float32_saturation() -> None:
    logits = torch.tensor([17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 24.0])
    target = torch.tensor([0, 1, 0, 1, 1, 0, 1, 1])
    probs = torch.sigmoid(logits)  # float32: every one is exactly 1.0
    assert bool((probs == 1.0).all())
    metric = DetectionScores(Scoring(fpr_points=(0.34,)))
    metric.update(probs, target, torch.arange(8), log_odds=logits.double())
    result = metric.compute()
    y, s = target.numpy(), logits.double().numpy()
    assert result["frame/auc"].item() == pytest.approx(roc_auc_score(y, s))  # 11/15, not 0.5
    assert result["frame/ap"].item() == pytest.approx(average_precision_score(y, s))
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    assert result["frame/tpr@fpr=3.4e-1"].item() == pytest.approx(tpr[fpr <= 0.34].max())
    assert result["frame/acc"].item() == pytest.approx(5 / 8)  # thresholded on the probabilities: all "fake"


@pytest.mark.filterwarnings("ignore:DetectionScores")
def test_video_mean_ranks_by_the_mean_probability_of_large_logits() -> None:
    # mean probability of A (17, 17) vs B (16, 18): 1 - p ~ e^-l, so A's deficit 2 e^-17 < e^-16 + e^-18
    from scipy.special import expit

    videos = {"A": (1, [17.0, 17.0]), "B": (0, [16.0, 18.0]), "C": (1, [15.0, 30.0]), "D": (0, [40.0, 14.0])}
    metric = DetectionScores(Scoring(aggregation="mean"))
    for name, (label, logits) in videos.items():
        metric.update(torch.sigmoid(torch.tensor(logits)), torch.full((2,), label), video_indices([name] * 2),
                      log_odds=torch.tensor(logits, dtype=torch.float64))
    result = metric.compute()
    reference = {name: np.log(np.mean(expit(np.array(logits)))) - np.log(np.mean(expit(-np.array(logits))))
                 for name, (_, logits) in videos.items()}
    order = np.argsort(metric.last_scores["video_idx"])
    got = dict(zip(sorted(videos, key=lambda v: video_index(v)), metric.last_scores["video_ranking"][order]))
    for name, value in reference.items():
        assert got[name] == pytest.approx(value, rel=1e-9), name
    labels = np.array([videos[v][0] for v in videos])
    assert result["video/auc"].item() == pytest.approx(roc_auc_score(labels, [reference[v] for v in videos]))
