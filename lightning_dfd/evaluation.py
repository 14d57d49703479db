"""Evaluation of saved checkpoints without a training config: ``evaluate`` (checkpoints x datasets, one table)
and ``ensemble`` (the mean fake probability of several checkpoints).

``python -m lightning_dfd evaluate --ckpt A.ckpt B.ckpt --data conf/data/ffpp.yaml conf/data/celebdf_v2.yaml``
tests every checkpoint on every dataset and writes, under ``--out``:

* ``results.csv``: one row per (model, dataset, group) with every metric of the shared
  :class:`~lightning_dfd.metrics.DetectionScores` at frame and video level (AUC, AP, EER, accuracy, TPR@FPR, pAUC,
  tAUC, APCER / BPCER / ACER, log(wP) where the method's ``Scoring`` asks for it); ``group`` is ``all`` or one
  manipulation / attack type, whose row is computed on all reals plus that type's fakes (the FF++ protocol);
* ``results.md``: the same rows as a Markdown table with AUC, AP, EER and the metrics the method's ``Scoring``
  configures (TPR@FPR points, ACER for bona-fide-positive anti-spoofing, log(wP));
* ``roc.png``: the ROC curves of every (model, dataset) in one figure (frame and video level);
* ``scores/<model>/<dataset>.csv``: the per-frame scores the metrics were computed from;
* ``runs/<model>/<dataset>/``: what ``test`` writes for one run (``test_roc.png``, ``test_score_histogram.png``,
  ``test_metrics.json``), made by the shared base (:class:`~lightning_dfd.methods.base.DetectorModule`).

Each checkpoint is rebuilt from itself (``checkpoint["lightning_dfd"]`` / its hyper-parameters, docs/architecture.md
section 7; weights-only arguments such as ``pretrained`` are switched off, the state dict replaces them), and each
dataset is built from its data config with the checkpoint's inference settings (image and resize size,
normalisation, modalities, frame / clip mode) in place of the config's: a data config describes a dataset, the
checkpoint says how its frames must be preprocessed.

``ensemble`` (or ``evaluate --ensemble true``) wraps the checkpoints into one :class:`EnsembleModule`, whose fake
probability per frame is the plain mean of its members' (optionally over the horizontal flip too, ``--flip_tta``),
and evaluates that one model the same way. Members must take the same input (:func:`common_inputs`).
Everything runs through a plain Lightning ``Trainer.test`` on one device, so the metrics and PNGs are exactly
those of ``test``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningDataModule, Trainer
from torch import Tensor, nn

from lightning_dfd import batch as keys
from lightning_dfd.errors import UserError
from lightning_dfd.io import write_text_atomic
from lightning_dfd.methods.base import CHECKPOINT_SETTINGS_KEY, INFERENCE_DATA_SETTINGS, DetectorModule
from lightning_dfd.metrics import DetectionScores, Scoring, mean_probability_log_odds, rate_key
from lightning_dfd.metrics.anti_spoofing import NO_ATTACK_TYPE

__all__ = ["CheckpointInfo", "EnsembleModule", "EvaluationError", "EvaluationResult", "common_inputs", "ensemble",
           "evaluate", "inspect_checkpoint", "load_detector"]

#: the recorded data settings that decide what a model is fed (``frames_per_video`` only shapes training epochs).
INPUT_SETTINGS: tuple[str, ...] = tuple(name for name in INFERENCE_DATA_SETTINGS if name != "frames_per_video")
#: ``__init__`` arguments that only fetch starting weights, which the checkpoint's state dict replaces: switched
#: off when a model is rebuilt, so evaluation never looks for (or downloads) pretrained weights.
INITIALISATION_ARGUMENTS: dict[str, Any] = {"pretrained": False, "init_weights": None}
#: metric names (without level) always shown in the Markdown table, before the method-specific ones.
MAIN_METRICS: tuple[str, ...] = ("auc", "ap", "eer")
#: first columns of every table row.
ROW_HEAD: tuple[str, ...] = ("model", "dataset", "group", "frames", "videos")


class EvaluationError(UserError):
    """A checkpoint, data config or combination of them that cannot be evaluated (the message says which and why)."""


# ---------------------------------------------------------------------------------------------- checkpoints
@dataclasses.dataclass
class CheckpointInfo:
    """What a checkpoint says about itself: the method's class path and the data settings it was trained with."""

    path: Path
    class_path: str
    data: dict[str, Any] | None  # checkpoint["lightning_dfd"]["data"]; None for checkpoints that predate it


def inspect_checkpoint(path: str | Path) -> CheckpointInfo:
    """Read checkpoint ``path``'s class path and data settings (cheap: nothing is built).

    Raises:
        EvaluationError: no such file, or no model class recorded.
        InvalidCheckpointError: a truncated or damaged file.
    """
    from lightning_dfd.cli import read_checkpoint

    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"--ckpt {path}: no such checkpoint file")
    checkpoint = read_checkpoint(path)
    settings = checkpoint.get(CHECKPOINT_SETTINGS_KEY) or {}
    class_path = settings.get("model_class") or (checkpoint.get("hyper_parameters") or {}).get("_class_path")
    if not class_path:
        raise EvaluationError(f"--ckpt {path} records no model class (not written by lightning-dfd's DetectorModule): "
                              f"test it with `python -m lightning_dfd test --config RUN.yaml --ckpt_path {path}`")
    return CheckpointInfo(path=path, class_path=str(class_path), data=settings.get("data"))


def load_detector(checkpoint: CheckpointInfo | str | Path) -> DetectorModule:
    """Rebuild the method saved in a checkpoint (CPU, eval mode), weights-only arguments switched off.

    Raises:
        EvaluationError: as :func:`inspect_checkpoint`, or a class that cannot be imported or rebuilt.
    """
    import inspect

    from lightning_dfd.cli import register_project_classes
    from lightning_dfd.wiring import import_class

    info = checkpoint if isinstance(checkpoint, CheckpointInfo) else inspect_checkpoint(checkpoint)
    path, class_path = info.path, info.class_path
    register_project_classes()
    try:
        cls = import_class(class_path)
    except (ImportError, AttributeError) as err:
        raise EvaluationError(f"--ckpt {path} holds a {class_path}, which cannot be imported here ({err}): run from "
                              f"the code it was trained with (PYTHONPATH)") from err
    if not (isinstance(cls, type) and issubclass(cls, DetectorModule)):
        raise EvaluationError(f"--ckpt {path} holds a {class_path}, which is not a DetectorModule")
    parameters = inspect.signature(cls.__init__).parameters
    overrides = {name: value for name, value in INITIALISATION_ARGUMENTS.items() if name in parameters}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = cls.load_from_checkpoint(path, map_location="cpu", weights_only=True, **overrides)
    except Exception as err:  # noqa: BLE001 - any failure to rebuild is reported with the file and the cause
        raise EvaluationError(f"--ckpt {path}: cannot rebuild {class_path} from it "
                              f"({type(err).__name__}: {' '.join(str(err).split())[:300]})") from err
    return module.eval()


def common_inputs(checkpoints: Sequence[CheckpointInfo]) -> dict[str, Any] | None:
    """The data settings every checkpoint was trained with (what an ensemble's single DataModule must serve).

    Checkpoints that record no data settings (older ones) are not compared; None when none records them.

    Raises:
        EvaluationError: two checkpoints recorded different :data:`INPUT_SETTINGS` (image / resize size,
            normalisation, modalities, frame / clip mode), one line naming each differing setting and file.
    """
    recorded = [c for c in checkpoints if c.data]
    if not recorded:
        return None
    first = recorded[0]
    differences = []
    for name in INPUT_SETTINGS:
        values = {str(d.path): d.data.get(name) for d in recorded}
        if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1:
            differences.append(f"{name}: " + ", ".join(f"{path} {value}" for path, value in values.items()))
    if differences:
        raise EvaluationError(
            f"ensemble members take different inputs ({'; '.join(differences)}): every member must be trained on "
            f"the same image size, normalisation, modalities and frame / clip mode, because the ensemble averages "
            f"their scores of the same preprocessed frames; leave the odd ones out or evaluate them separately")
    return dict(first.data)


# ---------------------------------------------------------------------------------------------- the ensemble
class EnsembleModule(DetectorModule):
    """Several trained detectors as one: the fake probability of a frame is the plain mean of the members'.

    ``p(x) = (1 / K) sum_k p_k(x)`` with ``p_k`` each member's own :meth:`~DetectorModule.fake_probability` (seed
    001 Sec. 4.1: the three attack-fold networks are "a single model by simply averaging their prediction scores";
    Sec. 4.3 / 5.7: the final score averages 24 networks, folds x initialisations x two seeds); with
    ``scoring.flip_tta`` the base's :meth:`~DetectorModule.score` also averages ``p`` with ``p`` of the flipped
    frame, i.e. the mean over all ``2K`` views (Sec. 5.2: TTA brought nothing, its configs leave it off).
    The ranking score is the log-odds of that mean, formed from the members' log-odds without
    rounding to probabilities (:func:`~lightning_dfd.metrics.mean_probability_log_odds`), so confident members
    never tie. Members' own ``flip_tta`` settings are not used: the ensemble's ``scoring`` decides.

    It is evaluated, never trained (:meth:`compute_loss` refuses), and every member receives the same input:
    build it from members that agree on their inputs (:func:`common_inputs`).

    Args:
        members: the trained detectors (each a :class:`DetectorModule`), at least one.
        scoring: evaluation settings of the ensemble; default: the first member's.
    """

    def __init__(self, members: Sequence[DetectorModule], scoring: Scoring | None = None) -> None:
        if not members:
            raise ValueError("EnsembleModule needs at least one member")
        super().__init__(scoring=scoring or dataclasses.replace(members[0].scoring))
        self.members = nn.ModuleList(members)

    def forward(self, inputs: Tensor) -> dict[str, Tensor]:
        probs, log_odds = [], []
        for member in self.members:
            outputs = member(inputs)
            probs.append(member.fake_probability(outputs).float().reshape(-1))
            log_odds.append(member.fake_log_odds(outputs).reshape(-1))
        member_probs = torch.stack(probs, dim=1)  # (B, K)
        return {"logit": mean_probability_log_odds(torch.stack(log_odds), dim=0),
                "fake_probability": member_probs.mean(dim=1), "member_fake_probability": member_probs}

    def fake_probability(self, outputs: dict[str, Tensor]) -> Tensor:
        return outputs["fake_probability"]

    def fake_log_odds(self, outputs: dict[str, Tensor]) -> Tensor:
        return outputs["logit"].detach()

    def compute_loss(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        raise TypeError("an EnsembleModule is evaluated, not trained: fit each member on its own, then combine the "
                        "checkpoints with `python -m lightning_dfd ensemble --ckpt ...`")


# ---------------------------------------------------------------------------------------------- data
def read_data_config(path: Path) -> dict[str, Any]:
    """The DataModule config (``class_path`` / ``init_args``) in ``path``: a data config (``conf/data/*.yaml``) or
    a run config with a ``data:`` section (a mapping, or a file relative to the run config)."""
    import yaml

    if not path.is_file():
        raise EvaluationError(f"--data {path}: no such data config (e.g. conf/data/ffpp.yaml)")
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise EvaluationError(f"--data {path}: not valid YAML ({' '.join(str(err).split())})") from err
    if isinstance(content, dict) and "data" in content and "class_path" not in content:
        section = content["data"]
        if isinstance(section, str):
            return read_data_config((path.parent / section) if not Path(section).is_absolute() else Path(section))
        content = section
    if not isinstance(content, dict) or "class_path" not in content:
        raise EvaluationError(f"--data {path}: not a DataModule config (a `class_path` with `init_args`, as in "
                              f"conf/data/ffpp.yaml) nor a run config with a `data:` section")
    return {"class_path": content["class_path"], "init_args": dict(content.get("init_args") or {})}


def build_datamodule(config_path: Path, trained: dict[str, Any] | None, trained_by: str,
                     data_path: str | None = None, data_args: dict[str, Any] | None = None,
                     override_checkpoint_settings: bool = False) -> LightningDataModule:
    """The DataModule of ``config_path`` preprocessing as ``trained`` (a checkpoint's data settings) says.

    ``data_path`` replaces ``init_args.path``, ``data_args`` any other init argument (``batch_size``,
    ``num_workers``...). The checkpoint's settings replace the config file's; one that ``data_args`` sets to
    another value, or that the DataModule class fixes to another value, is refused
    (:class:`~lightning_dfd.wiring.CheckpointSettingsError`) unless ``override_checkpoint_settings``.
    """
    from jsonargparse import ArgumentParser, Namespace

    from lightning_dfd.cli import register_project_classes
    from lightning_dfd.wiring import OVERRIDE_FLAG, apply_data_settings

    register_project_classes()
    config = read_data_config(config_path)
    if data_path is not None:
        config["init_args"]["path"] = str(data_path)
    config["init_args"].update(data_args or {})
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningDataModule, "data", required=True)
    parser.add_argument(f"--{OVERRIDE_FLAG}", type=bool, default=False)
    try:
        parsed = parser.parse_object({"data": config, OVERRIDE_FLAG: override_checkpoint_settings})
    except Exception as err:  # jsonargparse's report of a bad key or value, summarised as `fit` does
        from lightning_dfd.cli import summarize_parser_error

        reason = summarize_parser_error(str(err)).split(". Fix it in", 1)[0]
        raise EvaluationError(f"--data {config_path}: {reason} (in the data config or --data_args)") from err
    if trained:
        before = {name: parsed.data.init_args.get(name) for name in trained if name in parsed.data.init_args}
        explicit = Namespace()
        for name, value in (data_args or {}).items():
            explicit[f"data.init_args.{name}"] = value
        apply_data_settings(parsed, explicit, {k: v for k, v in trained.items() if k in INPUT_SETTINGS},
                            trained_by)
        from lightning_dfd.methods.base import plain

        changed = [f"{name} {plain(before[name])} -> {plain(parsed.data.init_args.get(name))}" for name in before
                   if name in INPUT_SETTINGS and plain(before[name]) != plain(parsed.data.init_args.get(name))]
        if changed:
            print(f"[lightning-dfd] {config_path.name}: {', '.join(changed)} (the settings recorded in {trained_by})")
    try:
        return parser.instantiate_classes(parsed).data
    except Exception as err:  # a DataModule that refuses its arguments
        from lightning_dfd.errors import find_user_error

        cause = find_user_error(err) or err.__cause__ or err
        raise EvaluationError(f"--data {config_path}: {' '.join(str(cause).split())[:400]}") from err


def check_test_split(datamodule: LightningDataModule, config_path: Path) -> int:
    """Number of test samples of ``datamodule`` (set up for ``test``); a dataset without any is refused."""
    datamodule.prepare_data()
    datamodule.setup("test")
    dataset = datamodule.dataset("test") if hasattr(datamodule, "dataset") else None
    if dataset is None:
        try:
            loader = datamodule.test_dataloader()
            size = len(loader.dataset) if hasattr(loader, "dataset") else len(loader)
        except Exception as err:  # noqa: BLE001 - a DataModule without a test loader
            raise EvaluationError(f"--data {config_path}: {type(datamodule).__name__} has no test split "
                                  f"({err})") from err
    else:
        size = len(dataset)
    if size == 0:
        raise EvaluationError(f"--data {config_path}: {type(datamodule).__name__} at "
                              f"{getattr(datamodule, 'path', '?')} has no test split (0 test samples with these "
                              f"settings): preprocess the dataset's test videos, or pick a protocol / data config "
                              f"that defines one")
    return size


# ---------------------------------------------------------------------------------------------- one test run
class FrameNames(Callback):
    """Video id and frame index of every labelled test sample, in the order the base's collector receives them."""

    def __init__(self) -> None:
        self.video_ids: list[str] = []
        self.frame_indices: list[int] = []

    def on_test_epoch_start(self, trainer: Trainer, pl_module: Any) -> None:
        self.video_ids, self.frame_indices = [], []

    def on_test_batch_end(self, trainer: Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                          dataloader_idx: int = 0) -> None:
        labels = torch.as_tensor(batch[keys.LABEL]).reshape(-1).tolist()
        frames = torch.as_tensor(batch.get(keys.FRAME_INDEX, [-1] * len(labels))).reshape(-1).tolist()
        for video, frame, label in zip(batch[keys.VIDEO_ID], frames, labels):
            if label >= 0:  # what the base scores (unlabelled samples never enter metrics)
                self.video_ids.append(str(video))
                self.frame_indices.append(int(frame))


@dataclasses.dataclass
class TestRun:
    """What one ``Trainer.test`` of one model on one dataset gave."""

    scores: dict[str, np.ndarray]  # DetectionScores.last_scores
    group_names: dict[int, str]
    video_ids: list[str]
    frame_indices: list[int]
    seconds: float


def run_test(module: DetectorModule, datamodule: LightningDataModule, run_dir: Path, accelerator: str,
             precision: str | None) -> TestRun:
    """``Trainer.test`` on one device; the base writes its PNGs and metrics JSON into ``run_dir``."""
    from lightning_dfd.cli import quiet_known_noise

    quiet_known_noise()
    names = FrameNames()
    trainer_args: dict[str, Any] = {"precision": precision} if precision else {}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*`srun` command is available.*")  # one device, never srun
        trainer = Trainer(accelerator=accelerator, devices=1, logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, enable_model_summary=False, default_root_dir=run_dir,
                          callbacks=[names], **trainer_args)
        trainer.test(module, datamodule=datamodule, verbose=False)
    collector = module.test_scores[0]
    return TestRun(scores=dict(collector.last_scores), group_names=dict(collector.group_names),
                   video_ids=names.video_ids, frame_indices=names.frame_indices,
                   seconds=time.perf_counter() - start)


def level_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """``frame/<name>`` and ``video/<name>`` entries (per-group ``frame/auc/<group>`` keys become group rows)."""
    return {key: value for key, value in metrics.items() if key.count("/") == 1}


def subset_metrics(scores: dict[str, np.ndarray], names: dict[int, str], scoring: Scoring,
                   keep: Tensor | None = None) -> dict[str, Any]:
    """Every frame- and video-level metric of :class:`DetectionScores` (float64, as the base's metrics JSON) on
    the frames ``keep`` (all by default) of one run's frame scores, with their frame and video counts."""
    target = torch.as_tensor(scores["frame_target"]).long()
    keep = torch.ones_like(target, dtype=torch.bool) if keep is None else keep
    collector = DetectionScores(dataclasses.replace(scoring))
    collector.group_names.update(names)
    collector.update(torch.as_tensor(scores["frame_preds"])[keep].float(), target[keep],
                     torch.as_tensor(scores["frame_video_idx"])[keep].long(),
                     torch.as_tensor(scores["frame_group_idx"])[keep].long(),
                     log_odds=torch.as_tensor(scores["frame_ranking"])[keep])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined values are NaN in the table (the test run warned already)
        values = collector.compute()
    return {"frames": int(keep.sum()), "videos": int(collector.last_scores["video_target"].size),
            **level_metrics({key: float(value) for key, value in values.items()})}


def group_metrics(scores: dict[str, np.ndarray], names: dict[int, str], scoring: Scoring) -> dict[str, dict]:
    """:func:`subset_metrics` on all reals plus the fakes of each manipulation / attack type (the FF++
    per-manipulation protocol, as the base's ``auc/<group>``), by group name."""
    target = torch.as_tensor(scores["frame_target"]).long()
    group = torch.as_tensor(scores["frame_group_idx"]).long()
    out = {}
    for group_id in sorted(set(group[target == 1].tolist()), key=lambda g: names.get(g, str(g))):
        if group_id != NO_ATTACK_TYPE:
            keep = (target == 0) | ((group == group_id) & (target == 1))
            out[names.get(group_id, str(group_id))] = subset_metrics(scores, names, scoring, keep)
    return out


# ---------------------------------------------------------------------------------------------- reports
def unique_names(paths: Sequence[Path], drop: tuple[str, ...] = ("checkpoints",)) -> list[str]:
    """Short distinct names: each path's last part without suffix (and without ``checkpoints/``), with as many
    parent folders as it takes to tell it apart from the others or, for Lightning's generic ``last`` /
    ``best-epochNNN``, to say which run it is: ``outputs/laanet/ffpp_sbi/checkpoints/last.ckpt`` ->
    ``ffpp_sbi/last``, ``models/fold1.ckpt`` -> ``fold1``."""
    parts = [[p for p in Path(path).with_suffix("").parts if p not in drop and p != "/"] or [str(path)]
             for path in paths]
    depth = [1] * len(parts)
    while True:
        names = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
        grow = [i for i, name in enumerate(names) if depth[i] < len(parts[i]) and (
            names.count(name) > 1 or (depth[i] == 1 and (name == "last" or name.startswith(("best", "epoch")))))]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
    return [name if names.count(name) == 1 else f"{name}#{i}" for i, name in enumerate(names)]


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.@=+" else "_" for c in name.replace("/", "__"))


def method_metrics(scoring: Scoring) -> list[str]:
    """Metrics the Markdown table shows for a method with ``scoring``: :data:`MAIN_METRICS`, then its TPR@FPR
    points (fake- or bona-fide-positive), APCER / BPCER / ACER for bona-fide-positive (anti-spoofing) scoring and
    its log(wP) recalls (DFDC preview)."""
    names = list(MAIN_METRICS) + [f"{scoring.tpr_key}@fpr={rate_key(f)}" for f in scoring.fpr_points]
    if scoring.tpr_positive == "bona_fide":
        names += ["apcer", "bpcer", "acer"]
    return names + [f"log_wp@recall={r:g}" for r in scoring.log_wp_recalls]


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]], metrics: Sequence[str]) -> str:
    """The rows as a Markdown table: :data:`ROW_HEAD` then each metric at frame and video level; columns that
    are undefined (NaN or absent) in every row are left out and named under the table."""
    columns, dropped = [], []
    for level in ("frame", "video"):
        for name in metrics:
            key = f"{level}/{name}"
            values = [row.get(key) for row in rows]
            if any(isinstance(v, float) and not math.isnan(v) for v in values):
                columns.append(key)
            else:
                dropped.append(key)
    header = [*ROW_HEAD, *(key.replace("/", " ") for key in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for row in rows:
        cells = [format_value(row.get(key, float("nan"))) for key in (*ROW_HEAD, *columns)]
        lines.append("| " + " | ".join(cells) + " |")
    if dropped:
        lines += ["", f"Undefined on every row (one class present, or a rate below 1 / negatives): "
                      f"{', '.join(dropped)}."]
    return "\n".join(lines) + "\n"


def csv_text(rows: list[dict[str, Any]]) -> str:
    columns = list(ROW_HEAD)
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_frame_scores(path: Path, run: TestRun, names: dict[int, str]) -> None:
    """One row per scored frame: video, frame index, label, group, fake probability and its log-odds."""
    scores = run.scores
    count = len(scores["frame_target"])
    named = len(run.video_ids) == count
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["video_id", "frame_index", "label", "group", "fake_probability", "log_odds"])
    for i in range(count):
        group = int(scores["frame_group_idx"][i])
        writer.writerow([run.video_ids[i] if named else "", run.frame_indices[i] if named else "",
                         int(scores["frame_target"][i]), names.get(group, "") if group != NO_ATTACK_TYPE else "",
                         repr(float(scores["frame_preds"][i])), repr(float(scores["frame_ranking"][i]))])
    write_text_atomic(path, buffer.getvalue())


@dataclasses.dataclass
class EvaluationResult:
    """What ``evaluate`` / ``ensemble`` wrote: the table rows and the paths of the files."""

    rows: list[dict[str, Any]]
    markdown: Path
    csv: Path
    roc: Path
    frame_scores: dict[tuple[str, str], Path]
    run_dirs: dict[tuple[str, str], Path]


def models_to_evaluate(infos: Sequence[CheckpointInfo], ensemble: bool, inputs: dict[str, Any] | None,
                       flip_tta: bool | None) -> Iterator[tuple[str, DetectorModule, dict[str, Any] | None, str]]:
    """``(name, module, data settings, source)`` of each model to test, built one at a time (a checkpoint's model
    is released before the next is loaded); with ``ensemble`` one :class:`EnsembleModule` of all of them."""
    if not ensemble:
        for name, info in zip(unique_names([i.path for i in infos]), infos):
            module = load_detector(info)
            if flip_tta is not None:
                module.scoring.flip_tta = flip_tta
            yield name, module, info.data, str(info.path)
        return
    members = [load_detector(info) for info in infos]
    model = EnsembleModule(members)
    if flip_tta is not None:
        model.scoring.flip_tta = flip_tta
    differing = sorted({f.name for m in members[1:] for f in dataclasses.fields(Scoring)
                        if f.name != "flip_tta" and getattr(m.scoring, f.name) != getattr(members[0].scoring, f.name)})
    if differing:
        print(f"[lightning-dfd] ensemble members' scoring differs in {differing}: the first member's is used")
    yield f"ensemble of {len(members)}", model, inputs, " + ".join(str(i.path) for i in infos)


# ---------------------------------------------------------------------------------------------- commands
def evaluate(ckpt: list[Path], data: list[Path], out: Path = Path("outputs/evaluate"), ensemble: bool = False,
             flip_tta: bool | None = None, data_paths: list[str] | None = None,
             data_args: dict[str, Any] | None = None, accelerator: str = "auto", precision: str | None = None,
             override_checkpoint_settings: bool = False) -> EvaluationResult:
    """Test checkpoints on several datasets in one run and write one table, one ROC PNG and the frame scores.

    Every checkpoint is tested on every data config (with ``--ensemble true``: their mean, as one model); the
    rows are per (model, dataset) and per manipulation / attack type; see :mod:`lightning_dfd.evaluation`.

    Args:
        ckpt: checkpoint files (``--ckpt a.ckpt b.ckpt``); any method of the project.
        data: data configs (``--data conf/data/ffpp.yaml conf/data/celebdf_v2.yaml``), or run configs with a
            ``data:`` section (``conf/laanet/test_celebdf_v2.yaml``). Their test split is evaluated.
        out: output folder (``results.md``, ``results.csv``, ``roc.png``, ``scores/``, ``runs/``).
        ensemble: evaluate the checkpoints as one ensemble (mean fake probability) instead of one by one.
        flip_tta: also average each frame with its horizontal flip (``None``: as each checkpoint's scoring
            says; an ensemble: as its first member's).
        data_paths: one dataset path per data config, replacing its ``init_args.path`` (the preprocess output).
        data_args: init arguments set on every data config, e.g. ``'{batch_size: 64, num_workers: 8}'``.
        accelerator: Lightning accelerator (one device is used).
        precision: Lightning precision (``bf16-mixed``...); default 32-bit.
        override_checkpoint_settings: run with ``data_args`` preprocessing values that differ from the
            checkpoint's, with a warning, instead of refusing them.
    """
    ckpt, data = [Path(p) for p in ckpt], [Path(p) for p in data]
    if not ckpt or not data:
        raise EvaluationError("evaluate needs at least one --ckpt and one --data")
    if data_paths is not None and len(data_paths) != len(data):
        raise EvaluationError(f"--data_paths gives {len(data_paths)} paths for {len(data)} --data configs: give one "
                              f"per data config, in the same order")
    for path in data:  # refuse a missing or malformed data config before loading any model
        read_data_config(path)
    infos = [inspect_checkpoint(path) for path in ckpt]  # every file readable, and members compatible, first
    inputs = common_inputs(infos) if ensemble else None
    data_names = unique_names(data, drop=("conf", "data"))
    out = Path(out)
    rows: list[dict[str, Any]] = []
    curves: dict[str, dict[str, np.ndarray]] = {}
    frame_scores, run_dirs = {}, {}
    total, done = (1 if ensemble else len(infos)) * len(data), 0
    sources: list[str] = []
    metrics: list[str] = []
    for model_name, module, inputs, source in models_to_evaluate(infos, ensemble, inputs, flip_tta):
        sources.append(f"- {model_name}: {source}")
        metrics += [name for name in method_metrics(module.scoring) if name not in metrics]
        if not inputs:
            print(f"[lightning-dfd] {source} records no data settings (an older checkpoint): the data configs' "
                  f"image size and normalisation are used as they are")
        for index, (data_name, config_path) in enumerate(zip(data_names, data)):
            done += 1
            datamodule = build_datamodule(config_path, inputs, source,
                                          data_paths[index] if data_paths is not None else None, data_args,
                                          override_checkpoint_settings)
            samples = check_test_split(datamodule, config_path)
            print(f"[lightning-dfd] evaluate {done}/{total}: {model_name} on {data_name} ({samples} test samples)",
                  flush=True)
            run_dir = out / "runs" / safe_name(model_name) / safe_name(data_name)
            run = run_test(module, datamodule, run_dir, accelerator, precision)
            names = run.group_names
            overall = subset_metrics(run.scores, names, module.scoring)
            rows.append({"model": model_name, "dataset": data_name, "group": "all", **overall})
            for group, values in group_metrics(run.scores, names, module.scoring).items():
                rows.append({"model": model_name, "dataset": data_name, "group": group, **values})
            curves[f"{model_name} @ {data_name}"] = run.scores
            scores_path = out / "scores" / safe_name(model_name) / f"{safe_name(data_name)}.csv"
            write_frame_scores(scores_path, run, names)
            frame_scores[(model_name, data_name)], run_dirs[(model_name, data_name)] = scores_path, run_dir
            print(f"[lightning-dfd] evaluate {done}/{total}: {model_name} on {data_name}: frame AUC "
                  f"{format_value(overall.get('frame/auc', float('nan')))}, video AUC "
                  f"{format_value(overall.get('video/auc', float('nan')))} ({run.seconds:.1f} s)", flush=True)
    table = markdown_table(rows, metrics)
    markdown_path, csv_path = out / "results.md", out / "results.csv"
    models_text = "\n".join(sources)
    write_text_atomic(markdown_path, f"{table}\nModels:\n{models_text}\n\nData: "
                                     + ", ".join(f"{n} = {p}" for n, p in zip(data_names, data)) + "\n")
    write_text_atomic(csv_path, csv_text(rows))
    from lightning_dfd.callbacks.plots import plot_roc_datasets

    roc_path = plot_roc_datasets(curves, out / "roc.png", title="ROC")
    print(table)
    print(f"[lightning-dfd] table -> {markdown_path}, {csv_path}; ROC curves -> {roc_path}; frame scores -> "
          f"{out / 'scores'}; per-run PNGs and metrics -> {out / 'runs'}")
    return EvaluationResult(rows=rows, markdown=markdown_path, csv=csv_path, roc=roc_path,
                            frame_scores=frame_scores, run_dirs=run_dirs)


def ensemble(ckpt: list[Path], data: list[Path], out: Path = Path("outputs/ensemble"), flip_tta: bool | None = None,
             data_paths: list[str] | None = None, data_args: dict[str, Any] | None = None,
             accelerator: str = "auto", precision: str | None = None,
             override_checkpoint_settings: bool = False) -> EvaluationResult:
    """Test the ensemble of several checkpoints: the plain mean of their fake probabilities, frame by frame.

    ``python -m lightning_dfd ensemble --ckpt fold1.ckpt fold2.ckpt fold3.ckpt --config conf/data/casia_surf.yaml``
    (``--config`` names the data config here; ``--data`` is the same option). Members must take the same input
    (image size, normalisation, modalities, frame / clip mode) and may be of any method. Writes what ``test``
    writes (ROC and histogram PNGs, metrics JSON, under ``runs/``) plus the table of ``evaluate``.

    Args:
        ckpt: the members' checkpoint files.
        data: data config(s) whose test split is evaluated (``--config`` or ``--data``).
        out: output folder.
        flip_tta: also average over the horizontal flip of each frame (``None``: as the first member's scoring).
        data_paths: one dataset path per data config, replacing its ``init_args.path``.
        data_args: init arguments set on every data config (``'{batch_size: 64, num_workers: 8}'``).
        accelerator: Lightning accelerator (one device is used).
        precision: Lightning precision; default 32-bit.
        override_checkpoint_settings: run with ``data_args`` preprocessing values that differ from the members',
            with a warning, instead of refusing them.
    """
    return evaluate(ckpt, data, out=out, ensemble=True, flip_tta=flip_tta, data_paths=data_paths,
                    data_args=data_args, accelerator=accelerator, precision=precision,
                    override_checkpoint_settings=override_checkpoint_settings)
