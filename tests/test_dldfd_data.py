"""DLDFD's data (seed 002, Sec. 4): the three FF++ protocols select the right videos, the class-balanced combined
test set, and the weighted BCE's class weight reaching the model through the CLI.

The FF++ twin (tests/conftest.py) has 6 ids in 3 pairs: one pair per split, so every split holds 2 real videos and
2 videos of each manipulation, 3 frames each, at c23, c40 and raw.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lightning_dfd.batch import METHOD, VIDEO_ID
from lightning_dfd.cli import main
from lightning_dfd.datamodules import FFPPDataModule
from lightning_dfd.datamodules.ffpp import balanced_test_videos
from tests.helpers.face_manifests import build_manifest, ffpp_videos

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"batch_size": 4, "num_workers": 0, "image_size": 16, "frames_per_video": None, "compression": "c40"}
FOUR = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")


def videos_per_method(rows: pd.DataFrame) -> dict[str, int]:
    return dict(Counter(rows.drop_duplicates("video_id")["method"]))


def loader_videos(loader) -> set[tuple[str, str]]:
    return {(v, m) for batch in loader for v, m in zip(batch[VIDEO_ID], batch[METHOD])}


@pytest.mark.parametrize(("protocol", "kwargs", "train", "test"), [
    ("all", {}, {"real": 2, **dict.fromkeys(FOUR, 2)}, {"real": 2, **dict.fromkeys(FOUR, 2)}),
    ("single", {"methods": ["Face2Face"]}, {"real": 2, "Face2Face": 2}, {"real": 2, "Face2Face": 2}),
    ("leave_one_out", {"holdout_method": "NeuralTextures"},
     {"real": 2, "Deepfakes": 2, "Face2Face": 2, "FaceSwap": 2}, {"real": 2, "NeuralTextures": 2}),
])
def test_each_protocol_selects_the_right_twin_videos(twins, protocol, kwargs, train, test):
    dm = FFPPDataModule(str(twins["ffpp"][1]), protocol=protocol, **kwargs, **SMALL)
    rows = dm.stage_rows()
    assert videos_per_method(rows["train"]) == train
    assert videos_per_method(rows["val"]) == train     # validation follows training (held-out kept out)
    assert videos_per_method(rows["test"]) == test
    for stage in ("train", "val", "test"):
        assert set(rows[stage]["compression"]) == {"c40"}
        assert set(rows[stage].groupby("video_id").size()) == {3}            # every frame of every video
        assert (rows[stage]["label"] == (rows[stage]["method"] != "real")).all()
    dm.setup("fit")
    dm.setup("test")
    served_train, served_val = loader_videos(dm.train_dataloader()), loader_videos(dm.val_dataloader())
    assert Counter(m for _, m in served_train) == Counter(train)  # what the loaders actually serve
    assert Counter(m for _, m in served_val) == Counter(train)
    seen = served_train | served_val
    assert Counter(m for _, m in loader_videos(dm.test_dataloader())) == Counter(test)
    if protocol == "leave_one_out":
        assert "NeuralTextures" not in {m for _, m in seen}
        assert not {v for v, _ in seen} & set(rows["test"]["video_id"])
    # weighted BCE weight: reals / fakes, 3 frames a video: 6 / (3 x fake videos)
    balanced = FFPPDataModule(str(twins["ffpp"][1]), protocol=protocol, balance="loss_weights", **kwargs, **SMALL)
    assert balanced.pos_weight == pytest.approx(2 / (sum(train.values()) - 2))


def test_balanced_combined_test_set_on_the_twin(twins):
    dm = FFPPDataModule(str(twins["ffpp"][1]), test_balance="balanced", **SMALL)
    rows = dm.stage_rows()
    # 2 real test videos -> 2 fakes: one from each of the first two manipulations in name order
    assert videos_per_method(rows["test"]) == {"real": 2, "Deepfakes": 1, "Face2Face": 1}
    assert videos_per_method(rows["train"]) == {"real": 2, **dict.fromkeys(FOUR, 2)}  # training untouched


@pytest.fixture(scope="module")
def ffpp_five_test_pairs(tmp_path_factory) -> Path:
    """Hand-built FF++ manifest: test ids 001-005 (5 real + 5 videos per manipulation), 2 frames each."""
    root = tmp_path_factory.mktemp("ffpp_balance")
    build_manifest(root, ffpp_videos({"train": ["000"], "test": ["001", "002", "003", "004", "005"]},
                                     compression="c40"), frames=2, size=(8, 8), landmarks=False)
    return root


def test_balanced_test_set_draws_fakes_evenly_with_a_fixed_seed(ffpp_five_test_pairs):
    full = FFPPDataModule(str(ffpp_five_test_pairs), **SMALL).stage_rows()["test"]
    assert videos_per_method(full) == {"real": 5, **dict.fromkeys(FOUR, 5)}
    picked = FFPPDataModule(str(ffpp_five_test_pairs), test_balance="balanced", test_balance_seed=7,
                            **SMALL).stage_rows()["test"]
    # 5 reals, 4 manipulations: 5 // 4 = 1 each and the first (5 % 4 = 1) in name order one more
    assert videos_per_method(picked) == {"real": 5, "Deepfakes": 2, "Face2Face": 1, "FaceSwap": 1,
                                         "NeuralTextures": 1}
    assert set(picked.groupby("video_id").size()) == {2}  # whole videos
    # the documented draw: a permutation of the sorted ids seeded by (seed, crc32(manipulation))
    for method, quota in (("Deepfakes", 2), ("NeuralTextures", 1)):
        ids = sorted(full.loc[full["method"] == method, "video_id"].unique())
        expected = np.random.default_rng([7, zlib.crc32(method.encode())]).permutation(np.array(ids, dtype=object))
        assert set(picked.loc[picked["method"] == method, "video_id"]) == set(expected[:quota].tolist())
    again = FFPPDataModule(str(ffpp_five_test_pairs), test_balance="balanced", test_balance_seed=7,
                           **SMALL).stage_rows()["test"]
    assert set(again["video_id"]) == set(picked["video_id"])
    other = FFPPDataModule(str(ffpp_five_test_pairs), test_balance="balanced", test_balance_seed=8,
                           **SMALL).stage_rows()["test"]
    assert set(other["video_id"]) != set(picked["video_id"])


def test_balanced_test_set_refuses_too_few_fakes():
    rows = pd.DataFrame({"video_id": [f"r{i}" for i in range(4)] + ["d0"], "label": [0, 0, 0, 0, 1],
                         "method": ["real"] * 4 + ["Deepfakes"]})
    with pytest.raises(ValueError, match="needs 4 Deepfakes test videos beside 4 real ones, the test split has 1"):
        balanced_test_videos(rows, seed=0)
    with pytest.raises(ValueError, match="test_balance"):
        FFPPDataModule("unused", test_balance="half")


def test_cli_links_the_class_weight_into_the_weighted_bce_and_logs_it(twins, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    logger = json.dumps({"class_path": "lightning.pytorch.loggers.CSVLogger",
                         "init_args": {"save_dir": str(tmp_path), "name": "csv", "version": 0}})
    cli = main(["fit", "--config", str(ROOT / "conf/dldfd/combined.yaml"), "--config",
                str(ROOT / "conf/dldfd/cross_nt.yaml"),
                "--data.init_args.path", str(twins["ffpp"][1]), "--data.init_args.image_size", "32",
                "--data.init_args.batch_size", "4", "--data.init_args.num_workers", "0",
                "--model.init_args.pretrained", "false", "--trainer.max_steps", "1", "--trainer.limit_val_batches",
                "1", "--trainer.num_sanity_val_steps", "0", "--trainer.accelerator", "cpu", "--trainer.devices", "1",
                "--trainer.enable_progress_bar", "false",
                "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", logger])
    # cross NT: 2 real vs 6 fake training videos (DF, F2F, FS), 3 frames each: 6 / 18
    assert cli.model.pos_weight == pytest.approx(1 / 3)
    hparams = yaml.safe_load((tmp_path / "csv" / "version_0" / "hparams.yaml").read_text())
    assert hparams["pos_weight_used"] == pytest.approx(1 / 3)
