"""DefakeHop's fitted model (seed 000, Sec. 3.3-3.4, 4.2): frame windows, out-of-fold inputs, Table 4, state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import xgboost as xgb
from sklearn.model_selection import StratifiedGroupKFold

from lightning_dfd.models.pixelhop import DefakeHopModel, frame_windows, tree_parameters


def test_frame_windows_by_hand():
    video = np.array([0, 0, 0, 1, 1])
    frame = np.array([5, 1, 3, 2, 0])
    # video 0 in frame order: rows 1 (f1), 2 (f3), 0 (f5); video 1: rows 4 (f0), 3 (f2); clamped at the ends
    expected = np.array([[2, 0, 0], [1, 1, 2], [1, 2, 0], [4, 3, 3], [4, 4, 3]])
    np.testing.assert_array_equal(frame_windows(video, frame, [-1, 0, 1]), expected)
    np.testing.assert_array_equal(frame_windows(video, frame, [0, 1]), expected[:, 1:])


def test_tree_parameters_as_section_4_2():
    assert 100 * tree_parameters(1) == 400  # "When the max-depths are 1 and 6, the number of parameters are 400
    assert 100 * tree_parameters(6) == 19_000  # and 19,000"


def crops_and_labels(n_videos: int = 12, frames: int = 5, regions: int = 1, seed: int = 0):
    """Smooth 32x32 RGB crops; fakes carry a faint high-frequency pattern."""
    gen = torch.Generator().manual_seed(seed)
    n = n_videos * frames
    coarse = torch.rand(n * regions, 3, 5, 5, generator=gen)
    crops = F.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)
    crops = crops + 0.05 * torch.rand(crops.shape, generator=gen)
    video = np.repeat(np.arange(n_videos), frames)
    frame = np.tile(np.arange(frames) * 10, n_videos)
    labels = (video % 2).astype(np.float32)
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2
    crops = crops.reshape(n, regions, 3, 32, 32)
    crops[torch.from_numpy(labels).bool()] += 0.2 * checker
    return crops, labels, video, frame


@pytest.fixture(scope="module")
def paper_model():
    """One region, the paper's settings (Sec. 4.2): 3 hops, <= 10 channels per hop, spatial PCA 45/25/5, channel
    XGBoosts depth 1 x 100 trees, final depth 6 x 100 trees; low thresholds so every hop fills its 10 channels."""
    crops, labels, video, frame = crops_and_labels()
    model = DefakeHopModel(num_regions=1, split_threshold=1e-4, keep_threshold=1e-7, max_channels=10,
                           spatial_components=[45, 25, 5], frame_offsets=[0], oof_folds=3, n_jobs=1)
    model.fit(crops, labels, video, frame)
    return model, (crops, labels, video, frame)


def test_table4_parameters_from_a_fitted_model(paper_model):
    model, _ = paper_model
    table = model.parameter_breakdown()
    expected = {"PixelHop++ Hop-1": 270, "PixelHop++ Hop-2": 90, "PixelHop++ Hop-3": 90, "PCA Hop-1": 10_125,
                "PCA Hop-2": 1_225, "PCA Hop-3": 45, "Channel-wise XGBoost(s)": 12_000, "Final XGBoost": 19_000,
                "Total": 42_845}
    assert {k: table[k] for k in expected} == expected
    assert 0 < table["fitted XGBoost nodes (actual)"] <= 12_000 + 19_000


def test_final_classifier_sees_out_of_fold_channel_probabilities(paper_model):
    """Column 0 of the final classifier's training matrix = the first channel's XGBoost trained on the other folds
    (grouped by video), rebuilt here with xgboost and scikit-learn directly."""
    model, (crops, labels, video, frame) = paper_model
    feature = model.region_features(crops[:, 0], 0)[0][:, 0]  # hop 1, channel 0, all PCA components
    folds = StratifiedGroupKFold(3, shuffle=True, random_state=0).split(labels, labels, video)
    params = {"objective": "binary:logistic", "max_depth": 1, "eta": 0.3, "nthread": 1, "seed": 0,
              "tree_method": "hist", "verbosity": 0}
    expected = np.empty(len(labels), dtype=np.float32)
    for train_idx, held_idx in folds:
        assert not set(video[train_idx]) & set(video[held_idx])  # no video on both sides
        booster = xgb.train(params, xgb.DMatrix(feature[train_idx], label=labels[train_idx]), 100)
        expected[held_idx] = booster.inplace_predict(feature[held_idx])
    np.testing.assert_allclose(model.last_fit_inputs[:, 0], expected, rtol=1e-6)
    in_sample = model.channel_xgb.boosters()[0].inplace_predict(feature)
    assert not np.allclose(in_sample, expected)


def test_state_dict_round_trip_gives_identical_scores(paper_model):
    model, (crops, labels, video, frame) = paper_model
    state = model.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    fresh = DefakeHopModel(num_regions=1, spatial_components=[45, 25, 5], frame_offsets=[0], n_jobs=1)
    fresh.load_state_dict(state)
    a = model.final_probability(model.window(model.frame_features(crops), video, frame))
    b = fresh.final_probability(fresh.window(fresh.frame_features(crops), video, frame))
    np.testing.assert_array_equal(a, b)
    assert fresh.parameter_breakdown() == model.parameter_breakdown()
