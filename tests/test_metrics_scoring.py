"""The scoring path of ``DetectorModule`` end to end: several test dataloaders, ranking on logits, flip-TTA
log-odds, the ``Scoring`` settings in configs and checkpoints, and the low-FPR shading of the ROC PNG."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from scipy.special import expit
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader

from lightning_dfd.batch import IMAGE, LABEL, METHOD, VIDEO_ID
from lightning_dfd.callbacks.plots import roc_figure
from lightning_dfd.methods.base import Scoring
from lightning_dfd.metrics import scoring as scoring_module
from tests.helpers.toy_data import LogitIsImageMean


def batch_of(logits: list[float], labels: list[int], videos: list[str]) -> dict:
    images = torch.tensor(logits).view(-1, 1, 1, 1).expand(-1, 3, 2, 2).clone()
    return {IMAGE: images, LABEL: torch.tensor(labels), VIDEO_ID: videos,
            METHOD: ["Deepfakes" if label else "real" for label in labels]}


def trainer(tmp_path) -> Trainer:
    return Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                   default_root_dir=tmp_path, enable_checkpointing=False)


@pytest.mark.filterwarnings("ignore:DetectionScores")
def test_two_test_dataloaders_report_both(tmp_path) -> None:
    first = batch_of([-2.0, 0.5, 1.0, 3.0, -1.0, -0.5], [0, 0, 1, 1, 1, 1], ["a", "a", "b", "b", "c", "c"])
    second = batch_of([0.3, -0.7, 2.0, -1.5, 0.1], [1, 0, 0, 1, 1], ["p", "q", "r", "s", "t"])
    loaders = [DataLoader([first], batch_size=None), DataLoader([second], batch_size=None)]
    results = trainer(tmp_path).test(LogitIsImageMean(), dataloaders=loaders, verbose=False)
    merged = {k: v for result in results for k, v in result.items()}
    for prefix, batch in (("test_0", first), ("test_1", second)):
        logits = batch[IMAGE].flatten(1).mean(1).numpy()
        assert merged[f"{prefix}/frame/auc"] == pytest.approx(roc_auc_score(batch[LABEL].numpy(), logits), abs=1e-6)
        saved = json.loads((tmp_path / f"{prefix}_metrics.json").read_text())
        assert saved[f"{prefix}/frame/auc"] == pytest.approx(merged[f"{prefix}/frame/auc"])
        for name in (f"{prefix}_roc.png", f"{prefix}_score_histogram.png"):
            assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert merged["test_0/frame/auc"] != pytest.approx(merged["test_1/frame/auc"])  # two data sets, two results
    assert merged["test_1/video/n_negatives"] == 2


@pytest.mark.filterwarnings("ignore:DetectionScores")
def test_ranking_metrics_see_the_logits_not_saturated_probabilities(tmp_path) -> None:
    # every logit above ~16.6 is a float32 probability of exactly 1.0: the old path gave AUC 0.5 here
    logits = [17.0, 18.0, 19.0, 20.0, 21.0, 22.0, -3.0, 25.0]
    labels = [0, 1, 0, 1, 1, 0, 0, 1]
    batch = batch_of(logits, labels, [f"v{i}" for i in range(8)])
    results = trainer(tmp_path).test(LogitIsImageMean(), dataloaders=DataLoader([batch], batch_size=None),
                                     verbose=False)[0]
    expected = roc_auc_score(labels, logits)
    assert expected != pytest.approx(roc_auc_score(labels, expit(np.float32(logits)).astype(np.float32)))
    assert results["test/frame/auc"] == pytest.approx(expected)
    assert results["test/video/auc"] == pytest.approx(expected)  # one frame per video: the same ranking
    assert results["test/frame/acc"] == pytest.approx(5 / 8)  # thresholds stay on probabilities: only -3 "real"


def test_flip_tta_averages_probabilities_and_keeps_their_log_odds() -> None:
    class LeftColumn(LogitIsImageMean):
        def forward(self, images):  # depends on the left column only
            return {"logit": images[..., 0].flatten(1).mean(1)}

    model = LeftColumn(scoring=Scoring(flip_tta=True))
    images = torch.zeros(2, 3, 2, 2)
    images[0, ..., 0], images[0, ..., 1] = 20.0, 30.0  # views: logits 20 and 30
    images[1, ..., 0], images[1, ..., 1] = -2.0, 1.0
    _, probs, log_odds = model.score({IMAGE: images})
    views = np.array([[20.0, 30.0], [-2.0, 1.0]])
    np.testing.assert_allclose(probs.numpy(), expit(views).mean(1).astype(np.float32), rtol=1e-6)
    expected_log_odds = np.log(expit(views).mean(1)) - np.log(expit(-views).mean(1))
    np.testing.assert_allclose(log_odds.numpy(), expected_log_odds, rtol=1e-9)


def test_scoring_is_one_object_shared_with_the_metrics_and_parsed_from_config() -> None:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(LogitIsImageMean, "model")
    config = parser.parse_object({"model": {"scoring": {"aggregation": "vote", "tpr_positive": "bona_fide",
                                                        "fpr_points": [0.01], "tauc_reading": "far_grid"}}})
    model = parser.instantiate(config).model
    assert model.scoring == Scoring(aggregation="vote", tpr_positive="bona_fide", fpr_points=(0.01,),
                                    tauc_reading="far_grid")
    assert model.val_scores.scoring is model.scoring and model.test_scores[0].scoring is model.scoring
    assert model._collector("test", 2).scoring is model.scoring  # a third test dataloader, same settings
    assert len(model.test_scores) == 3
    with pytest.raises(ValueError, match="tpr_positive must be one of"):
        Scoring(tpr_positive="attack")  # type: ignore[arg-type]


def test_checkpoints_with_scoring_load_weights_only_under_the_old_and_new_module(monkeypatch) -> None:
    for module in ("lightning_dfd.metrics.scoring", "lightning_dfd.methods.base"):  # the latter: old checkpoints
        monkeypatch.setattr(scoring_module.Scoring, "__module__", module)
        buffer = io.BytesIO()
        torch.save({"hyper_parameters": {"scoring": Scoring(aggregation="max", fpr_points=(0.1,))}}, buffer)
        assert module.encode() in buffer.getvalue()
        monkeypatch.undo()
        buffer.seek(0)
        loaded = torch.load(buffer, weights_only=True)["hyper_parameters"]["scoring"]
        assert loaded == Scoring(aggregation="max", fpr_points=(0.1,))


def test_roc_png_shades_the_fpr_region_below_one_over_n_negatives() -> None:
    rng = np.random.default_rng(0)
    target = np.array([0] * 40 + [1] * 60)
    scores = {"frame_ranking": rng.normal(size=100) + target, "frame_preds": rng.random(100),
              "frame_target": target, "video_ranking": np.array([0.1, 0.2, 0.9, 0.8, 0.3]),
              "video_target": np.array([0, 0, 1, 1, 1]), "tpr_positive_label": np.asarray(1)}
    fig = roc_figure(scores)
    log_panel = fig.axes[1]
    shaded = {patch.get_label(): patch.get_path().get_extents().transformed(patch.get_patch_transform())
              for patch in log_panel.patches}
    spans = {label.split(":")[0]: box for label, box in shaded.items() if "not measurable" in label}
    assert set(spans) == {"frame", "video"}
    assert spans["frame"].x1 == pytest.approx(1 / 40)  # 40 reals
    assert spans["video"].x1 == pytest.approx(1 / 2)  # 2 real videos
    assert log_panel.get_xlim()[0] <= 1 / 40
    # bona fide positive: the negatives are the attacks (60 frames, 3 videos)
    fig_bona_fide = roc_figure({**scores, "tpr_positive_label": np.asarray(0)})
    labels = [patch.get_label() for patch in fig_bona_fide.axes[1].patches]
    assert any("1/60" in label for label in labels) and any("1/3" in label for label in labels)
