"""Video aggregation against pandas, stable video ids, and the DetectionScores collector against separate
computations (scikit-learn on pandas-aggregated data)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score, roc_curve

from lightning_dfd.metrics import (
    DetectionScores,
    aggregate_by_video,
    truncated_auc,
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
    grouped = table.assign(vote=(table["pred"].astype(np.float32) >= threshold).astype(float)).groupby("video_idx")
    column = {"mean": "pred", "max": "pred", "vote": "vote"}[how]
    reducer = "max" if how == "max" else "mean"
    return pd.DataFrame({"pred": grouped[column].agg(reducer), "label": grouped["label"].max(),
                         "group": grouped["group"].first()}).sort_index()


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


def expected_level(table: pd.DataFrame, threshold: float, level: str) -> dict[str, float]:
    """Every key of one level from sklearn / pandas on the frame or video table."""
    y = table["label"].to_numpy()
    p = table["pred"].to_numpy().astype(np.float32).astype(np.float64)
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    decided = (p >= threshold).astype(int)
    attacks = table[y == 1]
    missed_per_group = (attacks["pred"].astype(np.float32) < threshold).groupby(attacks["group"]).mean()
    apcer, bpcer = float(missed_per_group.max()), float(decided[y == 0].mean())
    out = {
        "auc": roc_auc_score(y, p), "ap": average_precision_score(y, p), "eer": eer_brute_force(y, p),
        "acc": accuracy_score(y, decided),
        "tpr@fpr=1e-2": tpr[fpr <= 1e-2].max(), "tpr@fpr=1e-3": tpr[fpr <= 1e-3].max(),
        "tpr@fpr=1e-4": tpr[fpr <= 1e-4].max(), "pauc@0.1": roc_auc_score(y, p, max_fpr=0.1),
        "tauc@0.01": truncated_auc(torch.tensor(p), torch.tensor(y), 0.01).item(),
        "tauc@0.1": truncated_auc(torch.tensor(p), torch.tensor(y), 0.1).item(),
        "apcer": apcer, "bpcer": bpcer, "acer": (apcer + bpcer) / 2,
    }
    for group in FAKE_GROUPS:
        keep = (y == 0) | (table["group"].to_numpy() == group)
        out[f"auc/{group}"] = roc_auc_score(y[keep], p[keep])
        out[f"ap/{group}"] = average_precision_score(y[keep], p[keep])
        out[f"acc/{group}"] = accuracy_score(y[keep], decided[keep])
    return {f"{level}/{k}": float(v) for k, v in out.items()}


@pytest.mark.parametrize(("aggregation", "threshold"), [("mean", 0.5), ("vote", 0.45), ("max", 0.6)])
def test_detection_scores_match_separate_computations(aggregation: str, threshold: float) -> None:
    table = frame_table(1)
    metric = DetectionScores(aggregation=aggregation, threshold=threshold)
    group_ids = {name: metric.register_group(name) for name in ("real", *FAKE_GROUPS)}
    data = tensors(table, group_ids)
    for lo, hi in [(0, 5), (5, 60), (60, len(table))]:
        metric.update(*(data[k][lo:hi] for k in ("preds", "target", "video_idx", "group_idx")))
    result = metric.compute()
    videos = video_table(table, aggregation, threshold)
    video_threshold = 0.5 if aggregation == "vote" else threshold
    expected = expected_level(table, threshold, "frame") | expected_level(videos, video_threshold, "video")
    assert set(result) == set(expected)  # "real" has no fakes: no per-group keys for it
    for key, value in expected.items():
        assert result[key].item() == pytest.approx(value, abs=1e-5), key
    # last_scores: the synced frame and video arrays
    scores = metric.last_scores
    np.testing.assert_array_equal(np.sort(scores["frame_preds"]), np.sort(data["preds"].numpy()))
    np.testing.assert_allclose(scores["video_preds"], videos["pred"].to_numpy(), rtol=1e-6)
    np.testing.assert_array_equal(scores["video_target"], videos["label"].to_numpy())
    np.testing.assert_array_equal(scores["video_idx"], videos.index.to_numpy())


def test_detection_scores_unregistered_group_and_log_wp() -> None:
    metric = DetectionScores(fpr_points=(0.5,), tauc_fars=(), log_wp_recalls=(0.5,))
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
    assert all(torch.isnan(v) for v in empty.values())
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
