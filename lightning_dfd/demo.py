"""`make demo`: the whole pipeline on a synthetic FF++ twin in a few CPU minutes.

synth (official FF++ layout, H.264, landmark sidecars) -> preprocess (sidecar landmarks, aligned crops, manifest)
-> fit BinaryClassifier (conf/demo/binary_ffpp_twin.yaml) -> test the best checkpoint -> print frame/video metrics
and where the PNGs and checkpoints are. Every step resumes: a second run reuses the twin and the crops.
"""

from __future__ import annotations

import json
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[1] / "conf" / "demo" / "binary_ffpp_twin.yaml"
SHOWN = ("auc", "ap", "eer", "acc", "tpr@fpr=1e-2", "pauc@0.1")


def demo(out: Path = Path("outputs/demo"), videos: int = 24, frames: int = 8, size: int = 128, epochs: int = 6,
         seed: int = 0, config: Path = CONFIG) -> dict[str, float]:
    """Run the demo pipeline; returns the test metrics.

    Args:
        out: working folder (twin in ``raw/``, crops in ``cache/``, run in ``run/``).
        videos: real FF++ ids of the twin (each also gets one video per manipulation).
        frames: frames per video, all of them cropped.
        size: frame side of the twin's videos.
        epochs: training epochs.
        seed: seed of the twin and of training.
        config: LightningCLI config of the run.
    """
    from lightning_dfd.cli import build_cli
    from lightning_dfd.data.preprocess import preprocess
    from lightning_dfd.data.synthetic.cli import synth

    out = Path(out)
    raw, cache, run = out / "raw", out / "cache", out / "run"
    if not (raw / "splits" / "test.json").exists():
        print(f"[demo] 1/4 writing a synthetic FF++ twin ({videos} ids, {frames} frames, {size}px) -> {raw}")
        synth("ffpp", raw, seed=seed, videos=videos, frames=frames, size=size, compressions=["c23"],
              methods=["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"])
    else:
        print(f"[demo] 1/4 reusing the twin in {raw}")
    print(f"[demo] 2/4 preprocessing (sidecar landmarks, aligned crops) -> {cache}")
    preprocess("ffpp", raw, cache, frames=frames, backend="sidecar", size=size, image_format="png",
               dataset_options={"compressions": ["c23"]})
    common = ["--config", str(config), "--data.init_args.path", str(cache), "--trainer.default_root_dir", str(run),
              "--seed_everything", str(seed)]
    loggers = ["--trainer.logger", json.dumps([
        {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(run), "name": "csv"}},
        {"class_path": "lightning.pytorch.loggers.WandbLogger",
         "init_args": {"project": "lightning-dfd-demo", "save_dir": str(run)}},
    ])]
    print(f"[demo] 3/4 training BinaryClassifier for {epochs} epochs on CPU -> {run}")
    fit = build_cli(["fit", *common, *loggers, "--trainer.max_epochs", str(epochs)])
    best = fit.trainer.checkpoint_callback.best_model_path or str(run / "checkpoints" / "last.ckpt")
    print(f"[demo] 4/4 testing {best}")
    tested = build_cli(["test", *common, "--trainer.logger", "false", "--ckpt_path", best])
    metrics = {k: float(v) for k, v in tested.trainer.callback_metrics.items() if k.startswith("test/")}
    print("\n[demo] results on the twin's test split (a pipeline check, not a forensic benchmark):")
    print(f"  {'metric':<18}{'frame':>10}{'video':>10}")
    for name in SHOWN:
        print(f"  {name:<18}{metrics.get(f'test/frame/{name}', float('nan')):>10.4f}"
              f"{metrics.get(f'test/video/{name}', float('nan')):>10.4f}")
    for method in ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"):
        print(f"  {'auc/' + method:<18}{metrics.get(f'test/frame/auc/{method}', float('nan')):>10.4f}"
              f"{metrics.get(f'test/video/auc/{method}', float('nan')):>10.4f}")
    print(f"\n  checkpoints : {run / 'checkpoints'} (best: {Path(best).name})")
    print(f"  ROC curve   : {run / 'test_roc.png'}")
    print(f"  histogram   : {run / 'test_score_histogram.png'}")
    print(f"  metrics     : {run / 'test_metrics.json'}")
    print(f"  W&B (offline, `wandb sync` later): {run / 'wandb'}")
    return metrics
