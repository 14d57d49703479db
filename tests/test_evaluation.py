"""`ensemble` and `evaluate` (lightning_dfd/evaluation.py): checkpoints rebuilt from themselves, tested on data
configs with their own preprocessing, reported as one table.

Expected values are computed here from the definitions: the ensemble probability by hand from known-score members
(logit = mean of the image + a bias), AUCs with scikit-learn on the frame scores the command wrote.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer
from sklearn.metrics import roc_auc_score
from torch import nn

from lightning_dfd import batch as keys
from lightning_dfd.cli import main
from lightning_dfd.datamodules import FFPPDataModule
from lightning_dfd.evaluation import EnsembleModule
from lightning_dfd.methods.base import DetectorModule, Scoring
from tests.helpers.face_manifests import build_manifest, ffpp_videos
from tests.helpers.toy_data import LogitIsImageMean

ROOT = Path(__file__).resolve().parents[1]
FFPP_CONFIG, CELEBDF_CONFIG = ROOT / "conf/data/ffpp.yaml", ROOT / "conf/data/celebdf_v2.yaml"
DATA_ARGS = ["--data_args", "{num_workers: 0, batch_size: 8}", "--accelerator", "cpu"]
BIASES = (-1.0, 0.5, 2.0)  # the known-score members: logit = mean(image) + bias
MANIPULATIONS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
AUC_TOL = 1e-6  # the shared metrics compute AUC in float32; one rank step of these tiny sets is > 1e-3


class TinyConv(DetectorModule):
    """A one-convolution method trained through the CLI (its checkpoint is rebuilt by LightningCLI's instantiator).

    Args:
        width: channels of the convolution.
        pretrained: starting weights; a checkpoint's weights replace them, so evaluation must rebuild the model
            with ``pretrained=False`` (this test method refuses ``True``, as an offline machine would).
    """

    def __init__(self, width: int = 4, pretrained: bool | str = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        if pretrained:
            raise RuntimeError("evaluation must rebuild models with pretrained=False")
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.fc = nn.Linear(width, 1)

    def forward(self, inputs):
        return {"logit": self.fc(self.conv(inputs).mean(dim=(2, 3))).reshape(-1)}

    def compute_loss(self, outputs, batch):
        return {"loss": F.binary_cross_entropy_with_logits(outputs["logit"], batch[keys.LABEL].float())}


class LeftColumnMean(DetectorModule):
    """logit = scale x mean of the image's first column (not flip-invariant: flip TTA changes it)."""

    def __init__(self, scale: float = 1.0, scoring: Scoring | None = None) -> None:
        super().__init__(scoring=scoring)
        self.scale = scale

    def forward(self, inputs):
        return {"logit": self.scale * inputs[..., 0].flatten(1).mean(1)}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def ffpp_module(cache: Path, image_size: int = 64) -> FFPPDataModule:
    return FFPPDataModule(path=str(cache), image_size=image_size, batch_size=8, num_workers=0)


def save_known_checkpoint(path: Path, cache: Path, bias: float, image_size: int = 64) -> Path:
    """LogitIsImageMean fitted one step on the FF++ twin (so the checkpoint records its data settings), then given
    ``bias``: its fake probability of an image x is sigmoid(mean(x) + bias)."""
    model = LogitIsImageMean()
    trainer = Trainer(accelerator="cpu", max_steps=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=path.parent)
    trainer.fit(model, datamodule=ffpp_module(cache, image_size))
    model.bias.data.fill_(bias)
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, twins) -> dict[str, Path]:
    """Known-score members at 64 px (one per bias), one at 32 px, and a TinyConv trained by the CLI at 64 px."""
    out = tmp_path_factory.mktemp("eval_ckpts")
    cache = twins["ffpp"][1]
    found = {f"known{i}": save_known_checkpoint(out / f"known{i}.ckpt", cache, bias)
             for i, bias in enumerate(BIASES)}
    found["small"] = save_known_checkpoint(out / "small.ckpt", cache, 0.0, image_size=32)
    main(["fit", "--model", f"{__name__}.TinyConv", "--data", str(FFPP_CONFIG), "--data.init_args.path", str(cache),
          "--data.init_args.image_size", "64", "--data.init_args.batch_size", "8", "--data.init_args.num_workers", "0",
          "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
          "--trainer.logger", "false", "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
          "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(out / "tiny")])
    found["tiny"] = out / "tiny" / "checkpoints" / "last.ckpt"
    saved = torch.load(found["tiny"], weights_only=True)
    saved["hyper_parameters"]["pretrained"] = True  # as a run started from pretrained weights records it
    torch.save(saved, found["tiny"])
    return found


def read_frame_scores(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False)


def results(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


# ------------------------------------------------------------------------------------------ the ensemble
def test_ensemble_probability_is_the_mean_of_the_members_with_and_without_flips():
    torch.manual_seed(0)
    images = torch.randn(5, 3, 4, 6)
    scales = (0.5, -2.0, 3.0)
    members = [LeftColumnMean(scale) for scale in scales]
    model = EnsembleModule(members)
    batch = {keys.IMAGE: images, keys.LABEL: torch.tensor([0, 1, 0, 1, 1]), keys.VIDEO_ID: list("abcde")}
    left = images[..., 0].flatten(1).mean(1).double().numpy()
    right = images[..., -1].flatten(1).mean(1).double().numpy()  # the first column once flipped
    by_hand = np.mean([sigmoid(s * left) for s in scales], axis=0)
    _, probs, log_odds = model.score(batch)
    np.testing.assert_allclose(probs.numpy(), by_hand, rtol=1e-6)
    np.testing.assert_allclose(log_odds.numpy(), np.log(by_hand / (1 - by_hand)), rtol=1e-6, atol=1e-6)
    model.scoring.flip_tta = True  # mean over the 2K views
    by_hand_flip = np.mean([sigmoid(s * left) for s in scales] + [sigmoid(s * right) for s in scales], axis=0)
    _, probs, log_odds = model.score(batch)
    np.testing.assert_allclose(probs.numpy(), by_hand_flip, rtol=1e-6)
    np.testing.assert_allclose(log_odds.numpy(), np.log(by_hand_flip / (1 - by_hand_flip)), rtol=1e-6,
                               atol=1e-6)
    assert all(not m.scoring.flip_tta for m in members)  # the ensemble's scoring decides, members are untouched
    with pytest.raises(TypeError, match="evaluated, not trained"):
        model.compute_loss({}, batch)


def test_ensemble_command_scores_the_hand_computed_mean(tmp_path, checkpoints, twins):
    cache = twins["ffpp"][1]
    members = [checkpoints[f"known{i}"] for i in range(len(BIASES))]
    main(["ensemble", "--ckpt", *map(str, members), "--config", str(FFPP_CONFIG), "--data_paths", str(cache),
          "--out", str(tmp_path), *DATA_ARGS])
    scores = read_frame_scores(tmp_path / "scores" / "ensemble_of_3" / "ffpp.csv")
    # by hand: every test frame as the DataModule serves it at the members' 64 px, p = mean_k sigmoid(mean(x) + b_k)
    datamodule = ffpp_module(cache)
    datamodule.setup("test")
    frames = {(str(s[keys.VIDEO_ID]), int(s[keys.FRAME_INDEX])): s for s in datamodule.dataset("test")}
    assert len(frames) == len(scores) > 0
    means = np.array([float(frames[(v, f)][keys.IMAGE].flatten().mean())
                      for v, f in zip(scores["video_id"], scores["frame_index"])])
    by_hand = np.mean([sigmoid(means + b) for b in BIASES], axis=0)
    np.testing.assert_allclose(scores["fake_probability"], by_hand, rtol=1e-5)
    labels = np.array([int(frames[(v, f)][keys.LABEL]) for v, f in zip(scores["video_id"], scores["frame_index"])])
    np.testing.assert_array_equal(scores["label"], labels)
    table = results(tmp_path / "results.csv")
    overall = table[table["group"] == "all"].iloc[0]
    assert overall["frame/auc"] == pytest.approx(roc_auc_score(labels, by_hand), abs=AUC_TOL)
    video = pd.DataFrame({"video": scores["video_id"], "p": by_hand, "y": labels}).groupby("video").mean()
    assert overall["video/auc"] == pytest.approx(roc_auc_score(video["y"], video["p"]), abs=AUC_TOL)
    # the same PNGs and metrics JSON as `test`
    run = tmp_path / "runs" / "ensemble_of_3" / "ffpp"
    assert {"test_roc.png", "test_score_histogram.png", "test_metrics.json"} <= {p.name for p in run.iterdir()}
    logged = json.loads((run / "test_metrics.json").read_text())
    assert logged["test/frame/auc"] == pytest.approx(overall["frame/auc"], abs=1e-12)


def one_error_line(capsys, args) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_refusals_are_one_line_each(tmp_path, checkpoints, twins, capsys):
    cache = str(twins["ffpp"][1])
    known, small = str(checkpoints["known0"]), str(checkpoints["small"])
    common = ["--data_paths", cache, "--out", str(tmp_path / "out"), *DATA_ARGS]
    line = one_error_line(capsys, ["ensemble", "--ckpt", known, small, "--config", str(FFPP_CONFIG), *common])
    assert re.search(rf"members take different inputs \(image_size: {re.escape(known)} 64, {re.escape(small)} 32\)",
                     line), line
    line = one_error_line(capsys, ["evaluate", "--ckpt", known, "--data", str(FFPP_CONFIG), *common,
                                   "--data_args", "{batch_sise: 4}"])
    assert line == f"error: --data {FFPP_CONFIG}: data.batch_sise: unknown key for FFPPDataModule (in the data " \
                   "config or --data_args)"
    line = one_error_line(capsys, ["evaluate", "--ckpt", known, "--data", str(FFPP_CONFIG), *common,
                                   "--data_args", "{image_size: 128, num_workers: 0}"])
    assert re.search(r"data.init_args.image_size: trained with 64, the config sets 128.*"
                     r"--override_checkpoint_settings true", line), line
    missing = str(tmp_path / "nope.ckpt")
    line = one_error_line(capsys, ["evaluate", "--ckpt", missing, "--data", str(FFPP_CONFIG), *common])
    assert line == f"error: --ckpt {missing}: no such checkpoint file"
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(Path(known).read_bytes()[:1000])
    line = one_error_line(capsys, ["evaluate", "--ckpt", str(corrupt), "--data", str(FFPP_CONFIG), *common])
    assert line.startswith(f"error: not a valid checkpoint: {corrupt}")
    line = one_error_line(capsys, ["evaluate", "--ckpt", known, "--data", str(tmp_path / "nodata.yaml"), *common])
    assert line == f"error: --data {tmp_path / 'nodata.yaml'}: no such data config (e.g. conf/data/ffpp.yaml)"
    no_test = tmp_path / "no_test"
    build_manifest(no_test, ffpp_videos({"train": ["000"], "val": ["001"]}, methods=("Deepfakes",)), frames=1)
    line = one_error_line(capsys, ["evaluate", "--ckpt", known, "--data", str(FFPP_CONFIG), "--data_paths",
                                   str(no_test), "--out", str(tmp_path / "out"), *DATA_ARGS])
    assert re.search(r"ffpp.yaml: FFPPDataModule at .*no_test has no test split \(0 test samples", line), line
    assert not (tmp_path / "out" / "results.csv").exists()


# ------------------------------------------------------------------------------------------ evaluate
def test_evaluate_writes_one_table_of_two_datasets_that_scikit_learn_confirms(tmp_path, checkpoints, twins):
    ckpts = [checkpoints["tiny"], checkpoints["known1"]]
    main(["evaluate", "--ckpt", *map(str, ckpts), "--data", str(FFPP_CONFIG), str(CELEBDF_CONFIG),
          "--data_paths", str(twins["ffpp"][1]), str(twins["celebdf"][1]), "--out", str(tmp_path), *DATA_ARGS])
    table = results(tmp_path / "results.csv")
    models = ["tiny/last", "known1"]
    assert sorted(set(table["model"])) == sorted(models) and set(table["dataset"]) == {"ffpp", "celebdf_v2"}
    markdown = (tmp_path / "results.md").read_text()
    for model in models:
        for dataset in ("ffpp", "celebdf_v2"):
            rows = table[(table["model"] == model) & (table["dataset"] == dataset)]
            scores = read_frame_scores(tmp_path / "scores" / model.replace("/", "__") / f"{dataset}.csv")
            overall = rows[rows["group"] == "all"].iloc[0]
            assert overall["frames"] == len(scores)
            assert overall["frame/auc"] == pytest.approx(roc_auc_score(scores["label"], scores["fake_probability"]),
                                                         abs=AUC_TOL)
            video = scores.groupby("video_id")[["label", "fake_probability"]].mean()
            assert overall["videos"] == len(video)
            assert overall["video/auc"] == pytest.approx(roc_auc_score(video["label"], video["fake_probability"]),
                                                         abs=AUC_TOL)
            assert f"| {model} | {dataset} | all | {len(scores)} | {len(video)} | {overall['frame/auc']:.4f} |" \
                in markdown
            # one row per manipulation: all reals + that manipulation's fakes, as the base's auc/<group>
            groups = sorted(set(scores.loc[scores["label"] == 1, "group"]))
            assert sorted(rows.loc[rows["group"] != "all", "group"]) == groups
            if dataset == "ffpp":
                assert groups == sorted(MANIPULATIONS)
            logged = json.loads((tmp_path / "runs" / model.replace("/", "__") / dataset / "test_metrics.json")
                                .read_text())
            for group in groups:
                subset = scores[(scores["label"] == 0) | (scores["group"] == group)]
                row = rows[rows["group"] == group].iloc[0]
                assert row["frame/auc"] == pytest.approx(roc_auc_score(subset["label"], subset["fake_probability"]),
                                                         abs=AUC_TOL)
                assert row["frame/auc"] == pytest.approx(logged[f"test/frame/auc/{group}"], abs=1e-12)
                assert not np.isnan(row["frame/eer"]) and not np.isnan(row["video/ap"])
    png = (tmp_path / "roc.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    with open(tmp_path / "results.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert header[:5] == ["model", "dataset", "group", "frames", "videos"]
    assert {"frame/auc", "frame/ap", "frame/eer", "video/auc", "video/ap", "video/eer", "frame/acer"} <= set(header)


# ------------------------------------------------------------------------------------------ command line
def test_several_words_after_ckpt_and_data_form_one_list_and_help_lists_the_options(capsys):
    from lightning_dfd.commands import collect_option_words, run_extra_command

    args = ["--ckpt", "a b.ckpt", "c.ckpt", "--data", "x.yaml", "--flip_tta", "true", "--data_paths", "[p,q]"]
    assert collect_option_words("evaluate", args) == ['--ckpt=["a b.ckpt", "c.ckpt"]', '--data=["x.yaml"]',
                                                      "--flip_tta", "true", "--data_paths", "[p,q]"]
    assert collect_option_words("ensemble", ["--data=x.yaml", "--ckpt=[a,b]"]) == ['--data=["x.yaml"]', "--ckpt=[a,b]"]
    assert collect_option_words("synth", args) == args  # other commands are left alone
    with pytest.raises(SystemExit) as stopped:
        run_extra_command("ensemble", ["--help"])
    assert stopped.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--ckpt", "--data", "--flip_tta", "--data_paths", "--data_args", "--out"):
        assert option in help_text, option


def test_data_configs_and_names(tmp_path):
    from lightning_dfd.evaluation import EvaluationError, read_data_config, unique_names

    assert read_data_config(FFPP_CONFIG)["class_path"] == "lightning_dfd.datamodules.FFPPDataModule"
    run = read_data_config(ROOT / "conf/laanet/test_celebdf_v2.yaml")  # a run config's `data:` mapping
    assert run["class_path"].endswith("CelebDFDataModule") and run["init_args"]["image_size"] == 384
    run_config = tmp_path / "run.yaml"
    run_config.write_text(f"model: {{}}\ndata: {FFPP_CONFIG}\n")  # `data:` naming a data config file
    assert read_data_config(run_config)["init_args"]["compression"] == "c23"
    (tmp_path / "model.yaml").write_text("model: {class_path: X}\n")
    with pytest.raises(EvaluationError, match=r"model.yaml: not a DataModule config"):
        read_data_config(tmp_path / "model.yaml")
    assert unique_names([Path("o/a/checkpoints/last.ckpt"), Path("o/b/checkpoints/last.ckpt"), Path("m/fold1.ckpt")]) \
        == ["a/last", "b/last", "fold1"]
