"""Anti-spoofing (seed 001) around the model: loss, schedule, attack folds, flip, TPR@FPR, per-attack errors, ROC
operating points, the sweep file and the CASIA-SURF data config. Every expected value is worked by hand, by
NumPy / scikit-learn / torch from the definition, or read off the data (never from the project's function)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import roc_curve

from lightning_dfd.batch import IMAGE, LABEL

ROOT = Path(__file__).resolve().parents[1]
FOLD1 = ROOT / "conf" / "anti_spoofing" / "attack_fold1.yaml"


@pytest.fixture(scope="module")
def casia_twin(tmp_path_factory):
    """A tiny CASIA-SURF twin: 8 subjects (6 in the training list), 2 images per sample, 64 px."""
    from lightning_dfd.data.preprocess import preprocess
    from lightning_dfd.data.synthetic.cli import synth

    base = tmp_path_factory.mktemp("casia")
    raw = synth("casia_surf", base / "raw", seed=0, frames=2, size=64, identities=8, subject_split=[0.75, 0.125, 0.125])
    preprocess("casia_surf", raw, base / "cache", frames=2, backend="sidecar", size=64, progress=False)
    return base / "cache"


def fold1_data_args() -> dict:
    return yaml.safe_load(FOLD1.read_text())["data"]["init_args"]


# ------------------------------------------------------------------------------------------ loss (Sec. 5.1)
def test_loss_is_two_class_cross_entropy_and_logit_is_the_attack_log_odds():
    from lightning_dfd.methods.anti_spoofing import MultiModalAntiSpoofing

    method = MultiModalAntiSpoofing(backbone="resnet18")
    z = torch.tensor([[2.0, 0.5], [0.1, 1.3], [-0.4, -0.4]])  # (z_bona_fide, z_attack)
    labels = torch.tensor([0, 1, 1])  # 1 = attack
    # -log softmax of the true class, by hand: -log(e^{z_y} / (e^{z_0} + e^{z_1}))
    by_hand = [-(z0 if y == 0 else z1) + math.log(math.exp(z0) + math.exp(z1))
               for (z0, z1), y in zip(z.tolist(), labels.tolist())]
    assert by_hand[0] == pytest.approx(math.log(1 + math.exp(-1.5)))
    loss = method.compute_loss({"class_logits": z}, {LABEL: labels})["loss"]
    assert loss.item() == pytest.approx(sum(by_hand) / 3, rel=1e-6)

    method.eval()
    with torch.no_grad():
        out = method(torch.randn(2, 9, 32, 32))
    softmax_attack = torch.softmax(out["class_logits"], dim=1)[:, 1]
    torch.testing.assert_close(out["logit"], out["class_logits"][:, 1] - out["class_logits"][:, 0])
    torch.testing.assert_close(torch.sigmoid(out["logit"]), softmax_attack)  # the base's fake probability


# ------------------------------------------------------------------------------------------ cosine schedule
def test_cosine_decay_follows_the_closed_form_and_torch_cosine_annealing():
    from lightning_dfd.optim import CosineDecayLR

    def lrs(make, steps):
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
        scheduler, out = make(optimizer), []
        for _ in range(steps):
            out.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return out

    ours = lrs(lambda o: CosineDecayLR(o, total_steps=4), 6)
    # by hand: 0.2 (1 + cos(pi t / 4)) / 2, then 0 after the run
    half = 0.2 * (1 + math.sqrt(0.5)) / 2
    assert ours == pytest.approx([0.2, half, 0.1, 0.2 - half, 0.0, 0.0], abs=1e-12)
    reference = lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.02), 11)
    assert lrs(lambda o: CosineDecayLR(o, total_steps=10, final_factor=0.1), 11) == pytest.approx(reference)


def test_anti_spoofing_schedule_length_is_linked_to_max_epochs():
    from lightning_dfd.cli import build_cli

    config = yaml.safe_load(FOLD1.read_text())
    assert "total_steps" not in config["model"]["init_args"]["lr_scheduler"]["init_args"]  # the link sets it
    cli = build_cli(["--config", str(FOLD1), "--trainer.max_epochs", "7", "--trainer.logger", "false",
                     "--model.init_args.backbone", "resnet18", "--data.init_args.path", "unused"], run=False)
    scheduler = cli.model.lr_scheduler_factory(torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1.0))
    assert scheduler.total_steps == 7
    lr_at = []
    for _ in range(8):
        lr_at.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    assert lr_at[-1] == 0.0 and lr_at[-2] > 0.0  # reaches 0 exactly at the last epoch, not before or after


# ------------------------------------------------------------------------------------------ protocols (Sec. 4.1)
@pytest.mark.parametrize("fold", [0, 1, 2])
def test_attack_folds_share_no_attack_type_and_no_real_subject(casia_twin, fold):
    from lightning_dfd.datamodules import CasiaSurfDataModule

    dm = CasiaSurfDataModule(path=str(casia_twin), fold_protocol="attack", fold=fold, image_size=64)
    rows = dm.stage_rows()
    train, val = rows["train"], rows["val"]
    held = (4, 5, 6)[fold]
    train_types = set(train.loc[train["label"] == 1, "attack_type"].astype(int))
    val_types = set(val.loc[val["label"] == 1, "attack_type"].astype(int))
    assert val_types == {held} and train_types == {4, 5, 6} - {held}
    train_real = set(train.loc[train["label"] == 0, "subject"])
    val_real = set(val.loc[val["label"] == 0, "subject"])
    assert train_real and val_real and not train_real & val_real
    # together the two sides are exactly the challenge's training list (no row lost, none on both sides)
    listed = CasiaSurfDataModule(path=str(casia_twin), fold_protocol="none").stage_rows()["train"]
    assert len(train) and len(val) and not set(train["path"]) & set(val["path"])
    assert sorted([*train["path"], *val["path"]]) == sorted(listed["path"])


def test_attack_folds_validate_each_real_subject_once(casia_twin):
    from lightning_dfd.datamodules import CasiaSurfDataModule

    listed = CasiaSurfDataModule(path=str(casia_twin), fold_protocol="none").stage_rows()["train"]
    real_subjects = set(listed.loc[listed["label"] == 0, "subject"])
    validated = []
    for fold in range(3):
        val = CasiaSurfDataModule(path=str(casia_twin), fold_protocol="attack", fold=fold).stage_rows()["val"]
        validated += sorted(set(val.loc[val["label"] == 0, "subject"]))
    assert len(real_subjects) >= 3 and sorted(validated) == sorted(real_subjects)  # a partition of the subjects


# ------------------------------------------------------------------------------------------ flip (Sec. 5.2)
def test_horizontal_flip_is_one_draw_for_the_three_modalities(casia_twin):
    from lightning_dfd.datamodules import CasiaSurfDataModule

    args = fold1_data_args()
    with_flip = args["train_transforms"]
    without_flip = [t for t in with_flip if t["class_path"] != "HorizontalFlip"]
    assert len(without_flip) == len(with_flip) - 1

    def dataset(transforms):
        return CasiaSurfDataModule(path=str(casia_twin), fold_protocol="attack", image_size=64, num_workers=0,
                                   train_transforms=transforms, seed=3).dataset("train")

    flipped, reference = dataset(with_flip), dataset(without_flip)
    decisions = []
    for i in range(len(flipped)):
        image, ref = flipped[i][IMAGE], reference[i][IMAGE]
        per_modality = []
        for m in range(3):
            got, plain = image[3 * m:3 * m + 3], ref[3 * m:3 * m + 3]
            assert not torch.equal(plain, plain.flip(-1))  # asymmetric: the two cases are distinguishable
            is_plain, is_mirror = torch.equal(got, plain), torch.equal(got, plain.flip(-1))
            assert is_plain != is_mirror, f"sample {i}, modality {m}: neither the crop nor its mirror"
            per_modality.append(is_mirror)
        assert len(set(per_modality)) == 1, f"sample {i}: modalities flipped independently {per_modality}"
        decisions.append(per_modality[0])
    assert len(decisions) >= 16 and 0 < sum(decisions) < len(decisions)  # p = 0.5: both happen


# ------------------------------------------------------------------------------------------ TPR@FPR (Sec. 3.2)
def test_tpr_at_fpr_is_zero_when_no_threshold_reaches_the_fpr():
    """Bona fide positive (ChaLearn): 10 000 attacks, so FPR = 1e-4 is measurable, but the two attacks that look
    most bona fide tie below every real: accepting any real accepts both (FPR >= 2e-4). The ROC has no point
    with 0 < FPR <= 1e-4, only (0, 0): TPR@FPR=1e-4 is 0, a measurement, not NaN and not a crash."""
    from lightning_dfd.metrics import DetectionScores, Scoring
    from lightning_dfd.metrics.operating_point import tpr_at_fpr

    rng = np.random.default_rng(0)
    n_attacks, n_real = 10_000, 50
    p_attack = np.concatenate([rng.uniform(0.6, 1.0, n_attacks - 2), [0.01, 0.01], rng.uniform(0.1, 0.5, n_real)])
    target = np.concatenate([np.ones(n_attacks, int), np.zeros(n_real, int)])
    # independent: the ROC of "bona fide" ranked by 1 - p_attack
    fpr, tpr, _ = roc_curve(1 - target, 1 - p_attack, drop_intermediate=False)
    assert fpr[fpr > 0].min() == pytest.approx(2e-4) and tpr[fpr <= 1e-4].max() == 0.0
    assert tpr[fpr <= 1e-3 + 1e-12].max() == 1.0  # at 1e-3 (10 attacks accepted) every real passes
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "undefined" warning: the rate is measurable
        values = tpr_at_fpr(torch.tensor(p_attack), torch.tensor(target), [1e-4, 1e-3], positive_label=0)
    assert values.tolist() == [0.0, 1.0]

    metric = DetectionScores(Scoring(tpr_positive="bona_fide", fpr_points=(1e-4, 1e-3)))
    metric.update(torch.tensor(p_attack, dtype=torch.float32), torch.tensor(target), torch.arange(len(target)))
    result = metric.compute()
    assert result["frame/tpr_bona_fide@fpr=1e-4"].item() == 0.0
    assert result["frame/tpr_bona_fide@fpr=1e-3"].item() == 1.0
    assert result["frame/n_negatives"].item() == n_attacks

    # the same pattern on 100 attacks cannot measure 1e-4 at all (resolution 1e-2): NaN with a warning
    few = np.concatenate([p_attack[:98], p_attack[n_attacks - 2:]])
    few_target = np.concatenate([target[:98], target[n_attacks - 2:]])
    with pytest.warns(UserWarning, match="only 100 negatives"):
        value = tpr_at_fpr(torch.tensor(few), torch.tensor(few_target), 1e-4, positive_label=0)
    assert math.isnan(value.item())


# ------------------------------------------------------------------------------------------ per attack type
def test_per_attack_type_apcer_bpcer_acer_by_hand():
    from lightning_dfd.metrics import DetectionScores, Scoring

    metric = DetectionScores(Scoring(tpr_positive="bona_fide", fpr_points=()))
    ids = {name: metric.register_group(name) for name in ("real", "attack_4", "attack_5")}
    # reals: one of four called attack (BPCER 1/4); attack_4: 1 of 2 missed; attack_5: 0 of 3 missed
    preds = torch.tensor([0.1, 0.2, 0.7, 0.3, 0.4, 0.9, 0.8, 0.6, 0.95])
    target = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1])
    group = torch.tensor([ids["real"]] * 4 + [ids["attack_4"]] * 2 + [ids["attack_5"]] * 3)
    metric.update(preds, target, torch.arange(9), group)
    result = metric.compute()
    assert result["frame/bpcer"].item() == pytest.approx(0.25)
    assert result["frame/apcer/attack_4"].item() == pytest.approx(0.5)
    assert result["frame/acer/attack_4"].item() == pytest.approx((0.5 + 0.25) / 2)
    assert result["frame/apcer/attack_5"].item() == pytest.approx(0.0)
    assert result["frame/acer/attack_5"].item() == pytest.approx(0.25 / 2)
    assert result["frame/apcer"].item() == pytest.approx(0.5)  # the worst species (ISO/IEC 30107-3)


# ------------------------------------------------------------------------------------------ ROC PNG
def test_roc_png_marks_the_tpr_at_fpr_and_threshold_operating_points(tmp_path):
    from lightning_dfd.callbacks.plots import plot_roc, roc_figure

    rng = np.random.default_rng(1)
    target = np.array([0] * 300 + [1] * 500)  # 0 = bona fide, 1 = attack
    p_attack = 1 / (1 + np.exp(-(rng.normal(size=800) + 2.5 * target - 1.0)))
    scores = {"frame_ranking": np.log(p_attack / (1 - p_attack)), "frame_preds": p_attack, "frame_target": target,
              "tpr_positive_label": np.asarray(0), "fpr_points": np.array([1e-2, 1e-3]),
              "frame_threshold": np.asarray(0.5)}
    fig = roc_figure(scores)
    marks = {line.get_label(): (line.get_xdata()[0], line.get_ydata()[0]) for line in fig.axes[0].lines
             if line.get_marker() in ("o", "s")}
    # bona fide positive, 500 attacks: 1e-2 = 5 attacks accepted is measurable, 1e-3 is not (not marked)
    fpr, tpr, _ = roc_curve(1 - target, -p_attack, drop_intermediate=False)
    best = np.argmax(np.where(fpr <= 1e-2, tpr, -1))
    (label, (x, y)), = [(k, v) for k, v in marks.items() if "TPR@FPR" in k]
    assert "TPR@FPR=0.01" in label and (x, y) == pytest.approx((fpr[best], tpr[best]))
    (label, (x, y)), = [(k, v) for k, v in marks.items() if "threshold" in k]
    apcer = (p_attack[target == 1] < 0.5).mean()  # attacks accepted = FPR of the bona fide convention
    bpcer = (p_attack[target == 0] >= 0.5).mean()
    assert (x, y) == pytest.approx((apcer, 1 - bpcer))
    assert plot_roc(scores, tmp_path / "roc.png").stat().st_size > 0


# ------------------------------------------------------------------------------------------ configs
def test_sweep_runs_the_fold_config_with_every_swept_key():
    from lightning_dfd.cli import main

    sweep = yaml.safe_load((ROOT / "sweeps" / "anti_spoofing.yaml").read_text())
    assert sweep["metric"]["name"] == "val/video/auc"
    command = sweep["command"]
    config = command[command.index("--config") + 1]
    assert (ROOT / config).is_file()
    args = ["fit", "--config", str(ROOT / config)]
    for key, spec in sweep["parameters"].items():
        args += [f"--{key}", yaml.safe_dump(spec["values"][-1], default_flow_style=True).strip().removesuffix("...")
                 .strip()]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    assert exit_info.value.code == 0


@pytest.mark.parametrize("image_size", [64, 112])
def test_casia_surf_data_config_works_at_any_image_size(casia_twin, image_size):
    from lightning_dfd.datamodules import CasiaSurfDataModule

    args = yaml.safe_load((ROOT / "conf" / "data" / "casia_surf.yaml").read_text())["init_args"]
    args.update(path=str(casia_twin), image_size=image_size, num_workers=0)
    dm = CasiaSurfDataModule(**args)
    for stage in ("train", "val"):
        assert dm.dataset(stage)[0][IMAGE].shape == (9, image_size, image_size)
