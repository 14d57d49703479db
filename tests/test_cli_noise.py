"""First-run noise: the sanity check does not warn about metrics it cannot compute; Lightning's ads are gone."""

from __future__ import annotations

import logging
import os
import warnings

from lightning.pytorch import Callback

from lightning_dfd.callbacks.quiet_sanity_check import QuietSanityCheck
from lightning_dfd.cli import build_cli, quiet_known_noise

NAN = "returning NaN"


class SanityCheckEnd(Callback):
    """Remembers how many warnings had been recorded when the sanity check ended."""

    def __init__(self, caught: list) -> None:
        self.caught, self.at_end = caught, None

    def on_sanity_check_end(self, trainer, pl_module) -> None:
        self.at_end = len(self.caught)


def nan_warnings_of_sanity_check(tmp_path, quiet: bool) -> list[str]:
    # 4 frames per video, batches of 4: the one sanity batch is a single real video, so AUC / EER / TPR@FPR are
    # undefined on it
    cli = build_cli(["--model", "BinaryClassifier", "--model.backbone", "resnet10t",
                     "--data", "tests.helpers.toy_data.ToyFaceDataModule", "--data.batch_size", "4",
                     "--data.videos", "4", "--data.size", "16", "--trainer.num_sanity_val_steps", "1",
                     "--trainer.limit_val_batches", "1", "--trainer.limit_train_batches", "1",
                     "--trainer.max_epochs", "1", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                     "--trainer.default_root_dir", str(tmp_path)], run=False)
    if not quiet:
        cli.trainer.callbacks[:] = [cb for cb in cli.trainer.callbacks if not isinstance(cb, QuietSanityCheck)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        marker = SanityCheckEnd(caught)
        cli.trainer.callbacks.append(marker)
        cli.trainer.fit(cli.model, cli.datamodule)
    assert marker.at_end is not None
    return [str(w.message) for w in caught[:marker.at_end] if NAN in str(w.message)]


def test_sanity_check_is_quiet_about_undefined_metrics(tmp_path):
    assert nan_warnings_of_sanity_check(tmp_path / "loud", quiet=False)  # the case does produce them
    assert nan_warnings_of_sanity_check(tmp_path / "quiet", quiet=True) == []


def test_quiet_sanity_check_restores_the_filters():
    from lightning_dfd.callbacks.quiet_sanity_check import QuietSanityCheck as Quiet

    before = list(warnings.filters)
    callback = Quiet()
    callback.on_sanity_check_start(None, None)
    assert warnings.filters != before
    callback.on_sanity_check_end(None, None)
    assert warnings.filters == before


def test_lightning_advertisement_and_tpu_line_are_dropped(caplog):
    quiet_known_noise()
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with caplog.at_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero"):
        log.info("💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]")
        log.info("TPU available: False, using: 0 TPU cores")
        log.info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]


def test_lightning_internal_deprecations_are_silenced(monkeypatch):
    monkeypatch.delenv("JSONARGPARSE_DEPRECATION_WARNINGS", raising=False)
    quiet_known_noise()
    assert os.environ["JSONARGPARSE_DEPRECATION_WARNINGS"] == "off"  # LightningCLI's calls of jsonargparse 4.49 APIs
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("ignore", message="nothing")  # keep the filters set by quiet_known_noise
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)`",
                      FutureWarning, stacklevel=1)
        warnings.warn("something a user should see", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something a user should see"]
