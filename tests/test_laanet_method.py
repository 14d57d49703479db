"""LAA-Net as a Lightning method: SAM under manual optimisation (equal to a hand-written PyTorch step), heads-off
configurations (Table 3), backbone freezing, the schedule, bf16, the YAML configs, and 2-process DDP."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from lightning.pytorch import Callback, LightningDataModule, Trainer
from torch.utils.data import DataLoader, Dataset

from lightning_dfd.callbacks.backbone_freeze import BackboneFreeze, _check_ddp_allows_freezing
from lightning_dfd.methods.laanet import LAANetDetector
from lightning_dfd.optim import SAM, RampLinearDecayLR, batchnorm_stats_frozen
from lightning_dfd.transforms.laanet_targets import LAANetTargets
from lightning_dfd.transforms.targets import laanet_targets, real_targets
from tests.helpers.ports import free_port

SIZE, OUT = 64, 16
TINY = {"backbone": "mobilenetv3_small_050", "head_channels": 8, "consistency_dim": 8}
ROOT = Path(__file__).resolve().parents[1]


def make_sample(index: int, prefix: str, with_targets: bool = True) -> dict:
    """A smooth random texture; odd indices are pseudo-fakes with a softly blended square (M of Eq. 1)."""
    rng = np.random.default_rng(index + 1000 * len(prefix))
    base = cv2.resize(rng.random((8, 8, 3), dtype=np.float32), (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    label = index % 2
    image = base
    sample = {"label": label, "video_id": f"{prefix}/{label}_{index // 4:03d}", "frame_index": index // 2 % 2,
              "method": "SBI" if label else "real"}
    if label:
        mask = np.zeros((SIZE, SIZE), np.float32)
        y, x = rng.integers(8, SIZE - 32, size=2)
        mask[y:y + 24, x:x + 24] = 1.0
        mask = cv2.GaussianBlur(mask, (0, 0), 3.0)
        image = mask[..., None] * (0.6 * base + 0.4) + (1 - mask[..., None]) * base
        targets = laanet_targets(mask, OUT, rng)
    else:
        targets = real_targets(OUT)
    sample["image"] = torch.from_numpy((image.transpose(2, 0, 1) - 0.5) / 0.25)
    if with_targets:
        sample["heatmap"] = torch.from_numpy(targets["heatmap"])
        sample["consistency"] = torch.from_numpy(targets["consistency"])
    return sample


class SampleList(Dataset):
    def __init__(self, samples: list[dict]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        return self.samples[i]


class PseudoFakeData(LightningDataModule):
    """In-memory reals and pseudo-fakes with LAA-Net targets; validation without targets (real deepfakes)."""

    def __init__(self, n: int = 8, batch_size: int = 4, val_targets: bool = False) -> None:
        super().__init__()
        self.train = SampleList([make_sample(i, "train") for i in range(n)])
        self.val = SampleList([make_sample(i, "val", with_targets=val_targets) for i in range(n)])
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=self.batch_size)


def cpu_trainer(tmp_path: Path, **kwargs) -> Trainer:
    defaults = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_checkpointing": False,
                "enable_progress_bar": False, "enable_model_summary": False, "default_root_dir": str(tmp_path)}
    defaults.update(kwargs)
    return Trainer(**defaults)


def test_lightning_sam_step_equals_plain_pytorch_step(tmp_path: Path) -> None:
    torch.manual_seed(0)
    detector = LAANetDetector(dropout=0.0, drop_path_rate=0.0, **TINY)  # no RNG use: the two runs can match
    reference = copy.deepcopy(detector)
    data = PseudoFakeData()
    cpu_trainer(tmp_path, fast_dev_run=1, limit_val_batches=0).fit(detector, datamodule=data)
    assert not detector.automatic_optimization
    moved = [not torch.equal(a, b) for a, b in zip(detector.parameters(), reference.parameters())]
    assert sum(moved) > len(moved) // 2  # backbone and heads trained (no freeze callback here)

    # the same SAM update written out by hand on the first batch
    batch = next(iter(data.train_dataloader()))
    reference.train()
    sam = reference.configure_optimizers()
    assert isinstance(sam, SAM)
    sam.zero_grad()
    reference.compute_loss(reference(batch["image"]), batch)["loss"].backward()
    sam.first_step(zero_grad=True)
    with batchnorm_stats_frozen(reference):
        reference.compute_loss(reference(batch["image"]), batch)["loss"].backward()
    sam.step()

    for (name, trained), (_, expected) in zip(detector.named_parameters(), reference.named_parameters()):
        assert torch.allclose(trained, expected, atol=1e-6, rtol=1e-5), name
    for (name, trained), (_, expected) in zip(detector.named_buffers(), reference.named_buffers()):
        assert torch.allclose(trained.float(), expected.float(), atol=1e-6), name  # BN stats: first pass only


# Table 3 rows (C, H, E-FPN) and a plain-FPN row of Table 4
@pytest.mark.parametrize("use_consistency,use_heatmap,levels,fpn_type", [
    (False, False, (6,), "none"),
    (False, True, (6, 5, 4, 3), "efpn"),
    (True, False, (6, 5, 4, 3), "efpn"),
    (True, True, (6, 5, 4, 3), "fpn"),
])
def test_heads_off_configurations_train(tmp_path: Path, use_consistency: bool, use_heatmap: bool,
                                        levels: tuple[int, ...], fpn_type: str) -> None:
    torch.manual_seed(0)
    detector = LAANetDetector(use_consistency=use_consistency, use_heatmap=use_heatmap, levels=levels,
                              fpn_type=fpn_type, **TINY)
    trainer = cpu_trainer(tmp_path, fast_dev_run=1)
    trainer.fit(detector, datamodule=PseudoFakeData())
    logged = trainer.callback_metrics
    assert torch.isfinite(logged["train/loss"])
    assert ("train/heatmap" in logged) == use_heatmap
    assert ("train/consistency" in logged) == use_consistency
    expected = logged["train/bce"] + 10 * logged.get("train/heatmap", 0) + 100 * logged.get("train/consistency", 0)
    assert torch.allclose(logged["train/loss"], torch.as_tensor(expected), rtol=1e-5)  # Eq. 8
    # validation data carry no targets: scored, and a loss only when no branch needs targets
    assert ("val/loss" in logged) == (not use_heatmap and not use_consistency)


def test_validation_loss_with_targets_and_test_scores(tmp_path: Path) -> None:
    torch.manual_seed(0)
    detector = LAANetDetector(**TINY)
    trainer = cpu_trainer(tmp_path, fast_dev_run=1)
    data = PseudoFakeData(val_targets=True)
    trainer.fit(detector, datamodule=data)
    assert torch.isfinite(trainer.callback_metrics["val/loss"])
    trainer.test(detector, datamodule=data)


def test_backbone_freeze_then_unfreeze_with_schedule(tmp_path: Path) -> None:
    torch.manual_seed(0)
    detector = LAANetDetector(
        lr_scheduler=lambda optimizer: RampLinearDecayLR(optimizer, total_steps=4, ramp_fraction=0.25,
                                                         start_factor=0.25), **TINY)
    initial = {name: p.detach().clone() for name, p in detector.named_parameters()}
    seen = []

    class Spy(BackboneFreeze):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            backbone = self.backbone(pl_module)
            seen.append((all(not p.requires_grad for p in backbone.parameters()),
                         pl_module.optimizers().optimizer.param_groups[0]["lr"],
                         {n: p.detach().clone() for n, p in pl_module.named_parameters()}))

    trainer = cpu_trainer(tmp_path, max_epochs=2, limit_train_batches=1, limit_val_batches=0,
                          callbacks=[Spy(freeze_epochs=1)])
    trainer.fit(detector, datamodule=PseudoFakeData())
    (frozen0, lr0, params0), (frozen1, lr1, params1) = seen
    assert frozen0 and not frozen1
    backbone = [n for n in initial if n.startswith("model.backbone.")]
    heads = [n for n in initial if n.startswith("model.heatmap_head.")]
    # epoch 0: backbone untouched, heads trained; epoch 1: backbone trained too
    assert all(torch.equal(params0[n], initial[n]) for n in backbone)
    assert any(not torch.equal(params0[n], initial[n]) for n in heads)
    assert any(not torch.equal(params1[n], params0[n]) for n in backbone)
    # the schedule is stepped per epoch under manual optimisation: 5e-5 in epoch 0, peak 2e-4 in epoch 1
    assert lr0 == pytest.approx(5e-5) and lr1 == pytest.approx(2e-4)
    assert detector.optimizers().optimizer.param_groups[0]["lr"] == pytest.approx(2e-4 * 2 / 3)


def test_plain_optimizer_uses_automatic_optimisation(tmp_path: Path) -> None:
    torch.manual_seed(0)
    detector = LAANetDetector(optimizer=lambda p: torch.optim.Adam(p, lr=1e-3), **TINY)
    before = [p.detach().clone() for p in detector.parameters()]
    trainer = cpu_trainer(tmp_path, fast_dev_run=1, limit_val_batches=0)
    trainer.fit(detector, datamodule=PseudoFakeData())
    assert detector.automatic_optimization
    assert any(not torch.equal(a, b) for a, b in zip(before, detector.parameters()))


def test_sam_under_bf16_autocast(tmp_path: Path) -> None:
    torch.manual_seed(0)
    detector = LAANetDetector(**TINY)
    trainer = cpu_trainer(tmp_path, fast_dev_run=1, limit_val_batches=0, precision="bf16-mixed")
    trainer.fit(detector, datamodule=PseudoFakeData())
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert not detector.optimizers().optimizer.is_perturbed
    assert all(torch.isfinite(p).all() for p in detector.parameters())


def test_sam_refuses_gradient_clipping(tmp_path: Path) -> None:
    detector = LAANetDetector(**TINY)
    with pytest.raises(Exception, match="gradient clipping"):
        cpu_trainer(tmp_path, fast_dev_run=1, gradient_clip_val=1.0).fit(detector, datamodule=PseudoFakeData())


def test_freeze_under_ddp_requires_find_unused_parameters() -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        class FakeStrategy:
            model = DistributedDataParallel(torch.nn.Linear(2, 2), find_unused_parameters=False)

        class FakeTrainer:
            strategy = FakeStrategy()

        with pytest.raises(RuntimeError, match="ddp_find_unused_parameters_true"):
            _check_ddp_allows_freezing(FakeTrainer())
        FakeStrategy.model = DistributedDataParallel(torch.nn.Linear(2, 2), find_unused_parameters=True)
        _check_ddp_allows_freezing(FakeTrainer())
    finally:
        dist.destroy_process_group()


CONFIGS = sorted((ROOT / "conf" / "laanet").glob("*.yaml"))
FAST = ["--model.init_args.backbone=mobilenetv3_small_050", "--model.init_args.pretrained=false",
        "--data.init_args.path=unused", "--trainer.logger=false"]


def _cli_args(config: Path) -> list[str]:
    """Overlays (BI, ablations, Table 4 rows, cross-dataset tests) go on top of the main config."""
    configs = [config]
    if config.name.startswith(("ffpp_bi", "ablation_", "table4_", "test_")):
        configs = [ROOT / "conf" / "laanet" / "ffpp_sbi.yaml", config]
    return [arg for path in configs for arg in ("--config", str(path))]


def test_configs_exist() -> None:
    names = {c.name for c in CONFIGS}
    assert {"ffpp_sbi.yaml", "ffpp_bi.yaml", "test_celebdf_v2.yaml", "test_dfdc.yaml"} <= names
    assert sum(n.startswith("ablation_") for n in names) == 5
    assert sum(n.startswith("table4_") for n in names) == 8


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_config_instantiates(config: Path) -> None:
    from lightning_dfd.cli import build_cli

    cli = build_cli(_cli_args(config) + FAST, run=False)
    model = cli.model
    assert isinstance(model, LAANetDetector)
    hp = model.hparams
    # the released code's settings (README "Paper vs released code"); runs offline as shipped
    assert (hp["lambda1"], hp["lambda2"]) == ((10.0 if config.stem == "ffpp_bi" else 100.0), 100.0)
    assert hp["heatmap_loss"] == "released" and hp["real_consistency_target"] == 0.0
    assert (hp["dropout"], hp["drop_path_rate"], hp["label_smoothing"]) == (0.4, 0.2, 0.0)
    assert hp["pretrained"] is False
    assert isinstance(model.configure_optimizers()["optimizer"], SAM)
    stem = config.stem
    if stem.startswith("ablation_"):
        flags = stem.removeprefix("ablation_").split("_")
        assert hp["use_consistency"] == ("c" in flags)
        assert hp["use_heatmap"] == ("h" in flags)
        assert (hp["fpn_type"] == "efpn") == ("efpn" in flags)
    if stem.startswith("table4_"):
        fpn_type = stem.split("_")[-1]
        assert hp["fpn_type"] == fpn_type
    if stem == "ffpp_sbi":
        assert list(hp["levels"]) == [6, 5, 4, 3] and hp["fpn_type"] == "efpn"
        assert cli.trainer.max_epochs == 100
        assert any(isinstance(cb, BackboneFreeze) and cb.freeze_epochs == 6 for cb in cli.trainer.callbacks)
    if stem.startswith("test_"):
        expected = {"test_celebdf_v2": "CelebDFDataModule", "test_dfdc": "DFDCDataModule",
                    "test_dfdc_preview": "DFDCDataModule", "test_dfw": "WildDeepfakeDataModule",
                    "test_dfd": "DFDDataModule"}  # LAA-Net Table 1's columns
        assert type(cli.datamodule).__name__ == expected[stem]
        assert cli.datamodule.image_size == 384 and not hp["pretrained"]
    else:
        data = cli.datamodule
        assert type(data).__name__ == "FFPPDataModule" and data.image_size == 384
        assert data.pseudo_fake == ("bi" if stem == "ffpp_bi" else "sbi")
        assert isinstance(data.targets_transform, LAANetTargets)
        assert data.target_map_size == 384 // hp["heatmap_stride"]


class DumpParameters(Callback):
    """Each rank saves its parameters at every epoch end (compared across ranks by the test)."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        state = {name: p.detach().cpu().clone() for name, p in pl_module.named_parameters()}
        torch.save(state, Path(self.out_dir) / f"epoch{trainer.current_epoch}_rank{trainer.global_rank}.pt")


@pytest.mark.ddp
def test_sam_with_freeze_under_two_process_ddp(tmp_path: Path) -> None:
    """Both SAM passes all-reduce: ranks fed different data end every epoch with identical weights; the frozen
    backbone (epoch 0) is untouched and trains once unfrozen (epoch 1)."""
    from lightning.pytorch.strategies import DDPStrategy

    torch.manual_seed(0)
    detector = LAANetDetector(**TINY)
    initial = {name: p.detach().clone() for name, p in detector.named_parameters()}
    strategy = DDPStrategy(start_method="spawn", process_group_backend="gloo", find_unused_parameters=True)
    trainer = cpu_trainer(tmp_path, devices=2, strategy=strategy, max_epochs=2, limit_train_batches=2,
                          limit_val_batches=0, callbacks=[BackboneFreeze(freeze_epochs=1),
                                                          DumpParameters(str(tmp_path))])
    trainer.fit(detector, datamodule=PseudoFakeData(n=16))
    for epoch in (0, 1):
        rank0 = torch.load(tmp_path / f"epoch{epoch}_rank0.pt")
        rank1 = torch.load(tmp_path / f"epoch{epoch}_rank1.pt")
        for name in rank0:
            assert torch.equal(rank0[name], rank1[name]), (epoch, name)
    after0 = torch.load(tmp_path / "epoch0_rank0.pt")
    after1 = torch.load(tmp_path / "epoch1_rank0.pt")
    backbone = [n for n in initial if n.startswith("model.backbone.")]
    assert all(torch.equal(after0[n], initial[n]) for n in backbone)
    assert any(not torch.equal(after0[n], initial[n]) for n in initial if n.startswith("model.decoder."))
    assert any(not torch.equal(after1[n], after0[n]) for n in backbone)


def test_consistency_loss_anchored_at_ground_truth_vulnerable_point() -> None:
    # a 1x3 map, d = 4: the predicted heatmap peaks at pixel 1 (the model's own anchor), the ground-truth C of
    # Eq. 7 at pixel 2 (p^s): L_C must read the embedding at p^s, as the released f_cstency does
    detector = LAANetDetector(**{**TINY, "consistency_dim": 4})
    embedding = torch.tensor([[1.0, 0.0, 1.0], [0.0, 2.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]).view(1, 4, 1, 3)
    heatmap_logits = torch.tensor([-3.0, 3.0, -3.0]).view(1, 1, 1, 3)
    outputs = {"logit": torch.zeros(1), "heatmap": heatmap_logits, "consistency_embedding": embedding,
               "consistency": torch.zeros(1, 1, 1, 3)}  # what the model anchored at its predicted peak
    target = [0.5, 0.2, 1.0]
    batch = {"label": torch.tensor([1]), "heatmap": torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3),
             "consistency": torch.tensor(target).view(1, 1, 1, 3)}
    # anchor e_2 = (1, 1, 0, 0): logits <e_2, e_j> / sqrt(4) = [1/2, 1, 1]
    logits = [0.5, 1.0, 1.0]
    expected = sum(-(c * math.log(1 / (1 + math.exp(-z))) + (1 - c) * math.log(1 - 1 / (1 + math.exp(-z))))
                   for c, z in zip(target, logits)) / 3
    terms = detector.compute_loss(outputs, batch)
    assert math.isclose(float(terms["consistency"]), expected, rel_tol=1e-6)
