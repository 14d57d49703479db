"""``python -m lightning_dfd sweep sweeps/X.yaml``: a W&B sweep, online (``wandb agent``) or offline.

Online the sweep is created on W&B and ``wandb agent`` runs its ``command``. ``--offline`` drives the same file on
this machine (a cluster without internet) with W&B's open-source engine, the ``sweeps`` package (grid, random,
bayes: the code the W&B server runs). It is installed by ``make install`` with ``pip install --no-deps`` because its
metadata pins ``numpy<2``, which it does not need. Each trial runs the file's ``command`` (``${args}`` = the
proposed ``--key=value`` pairs, LightningCLI arguments) one after another, or as a SLURM job (``--slurm``), in
``<out>/<sweep>/trial_NNN``; a callback (:class:`SweepSummary`) records the trial's validation metrics, and the
results table is written as ``results.csv`` and ``results.png`` (the metric per trial, best marked).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch import Callback

from lightning_dfd.errors import UserError

__all__ = ["SweepSummary", "plot_results", "sweep", "trial_command"]

SUMMARY_FILE = "sweep_summary.json"


class SweepSummary(Callback):
    """Write every validation's metrics (rank 0) to a JSON file: what the offline sweep reads from a trial.

    Args:
        path: the JSON file (``{"history": [{metric: value, ...}, ...], "summary": {...last values}}``).
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.history: list[dict[str, float]] = []

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        row = {key: float(value) for key, value in trainer.callback_metrics.items() if value.numel() == 1}
        row["epoch"], row["trainer/global_step"] = trainer.current_epoch, trainer.global_step
        self.history.append(row)
        summary: dict[str, float] = {}
        for entry in self.history:
            summary.update(entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"history": self.history, "summary": summary}, indent=1))


def load_sweep(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"sweep: no such sweep file {path} (see sweeps/*.yaml)")
    config = yaml.safe_load(path.read_text()) or {}
    for key in ("method", "metric", "parameters", "command"):
        if key not in config:
            raise UserError(f"{path}: the sweep file has no `{key}`; a sweep file needs method, metric (name, goal), "
                            f"parameters and command (see sweeps/laanet.yaml)")
    return config


def trial_command(command: list[str], params: dict[str, Any], program: str | None = None) -> list[str]:
    """The sweep file's ``command`` with W&B's macros expanded for one trial.

    ``${env}`` is dropped (the environment is inherited), ``python`` / ``${interpreter}`` become this python
    (``sys.executable``), ``${program}`` the file's ``program``, ``${args}`` / ``${args_no_boolean_flags}`` the
    ``--key=value`` pairs and ``${args_no_hyphens}`` the ``key=value`` pairs; values as YAML (``1e-4``, ``[1,2]``).
    """
    def value(v: Any) -> str:
        return v if isinstance(v, str) else json.dumps(v)

    args = [f"--{k}={value(v)}" for k, v in params.items()]
    words: list[str] = []
    for word in command:
        if word == "${env}":
            continue
        if word in ("python", "python3", "${interpreter}"):
            words.append(sys.executable)
        elif word == "${program}":
            words.append(str(program))
        elif word in ("${args}", "${args_no_boolean_flags}"):
            words += args
        elif word == "${args_no_hyphens}":
            words += [a[2:] for a in args]
        else:
            words.append(word)
    return words


def trial_configs(words: list[str]) -> list[str]:
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word == "--config"]


def read_summary(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"history": [], "summary": {}}
    return json.loads(path.read_text())


def wait_for_job(job: str, poll: float = 2.0) -> str:
    """Poll ``scontrol`` until the job has ended; its final state (requeued jobs count as running)."""
    while True:
        out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True).stdout
        state = next((w.split("=", 1)[1] for w in out.split() if w.startswith("JobState=")), "UNKNOWN")
        if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "UNKNOWN"):
            return state
        time.sleep(poll)


def plot_results(rows: list[dict[str, Any]], metric: str, goal: str, path: Path) -> Path:
    """PNG of the metric per trial (bars; the best trial in another colour; a failed trial shown as missing)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    values = [row[metric] if row[metric] is not None else math.nan for row in rows]
    finite = [v for v in values if not math.isnan(v)]
    best = (max if goal == "maximize" else min)(finite) if finite else None
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(rows) + 2), 3.6))
    colours = ["tab:orange" if v == best else "tab:blue" for v in values]
    ax.bar([str(row["trial"]) for row in rows], [0 if math.isnan(v) else v for v in values], color=colours)
    for x, v in enumerate(values):
        ax.text(x, 0 if math.isnan(v) else v, "failed" if math.isnan(v) else f"{v:.3f}", ha="center",
                va="bottom", fontsize=8)
    ax.set(xlabel="trial", ylabel=metric)
    ax.set_title(f"sweep {path.parent.name}: {metric} per trial ({goal}; best in orange)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def sweep(
    sweep_file: Path,
    count: int | None = None,
    offline: bool = False,
    slurm: bool = False,
    out: Path = Path("outputs/sweeps"),
    project: str | None = None,
    entity: str | None = None,
    seed: int = 0,
    gpus_per_node: int = 0,
    cpus_per_task: int = 4,
    time_limit: str = "04:00:00",
    partition: str | None = None,
    account: str | None = None,
    cli_args: list[str] | None = None,
) -> Path | str:
    """Run a W&B sweep file: online with ``wandb agent``, or ``--offline`` on this machine / SLURM.

    Args:
        sweep_file: a ``sweeps/<method>.yaml`` (W&B sweep configuration: method, metric, parameters, command).
        count: number of trials (all of a grid when unset; required for random and bayes offline).
        offline: run locally with the ``sweeps`` engine instead of the W&B server.
        slurm: with ``--offline``: run each trial as a SLURM job (``python -m lightning_dfd slurm`` defaults, one
            CPU or GPU task) and wait for it, instead of in this process's machine.
        out: folder of the offline sweep: ``<out>/<sweep file stem>/trial_NNN`` and ``results.csv`` / ``.png``.
        project: W&B project (online).
        entity: W&B entity (online).
        seed: seed of the random and bayes proposals (offline).
        gpus_per_node: with ``--slurm``: GPUs of each trial's job (one node; DDP when more than one).
        cpus_per_task: with ``--slurm``: CPU cores per task.
        time_limit: with ``--slurm``: each trial's time limit (``HH:MM:SS``).
        partition: with ``--slurm``: SLURM partition.
        account: with ``--slurm``: SLURM account.
        cli_args: extra arguments appended to every trial's command (the words after ``--``).

    Returns:
        The results CSV (offline) or the sweep id (online).
    """
    config = load_sweep(Path(sweep_file))
    if not offline:
        return run_online(config, Path(sweep_file), count, project, entity)
    try:
        import sweeps as engine
        from sweeps import RunState
    except ImportError as err:
        raise UserError("sweep --offline needs W&B's open-source sweep engine: `make install` installs it, or "
                        "`pip install --no-deps sweeps==0.3.0 jsonschema jsonref`") from err
    method = config["method"]
    if count is None and method != "grid":
        raise UserError(f"{sweep_file}: method {method} proposes trials without end: give --count N")
    engine_config = {k: v for k, v in config.items() if k not in ("command", "program", "name", "description")}
    violations = engine.schema_violations_from_proposed_config(engine_config)
    if violations:
        raise UserError(f"{sweep_file}: not a valid sweep configuration: {'; '.join(map(str, violations))}")
    metric, goal = config["metric"]["name"], config["metric"].get("goal", "minimize")
    folder = Path(out) / Path(sweep_file).stem
    folder.mkdir(parents=True, exist_ok=True)
    runs: list = []
    rows: list[dict[str, Any]] = []
    trial = 0
    while count is None or trial < count:
        import numpy as np

        np.random.seed(seed + trial)  # random and bayes proposals draw from NumPy's global generator
        proposal = engine.next_run(engine_config, runs, validate=True)
        if proposal is None:  # a grid is exhausted
            break
        params = {key: entry["value"] for key, entry in proposal.config.items()}
        root = (folder / f"trial_{trial:03d}").resolve()
        summary_path = root / SUMMARY_FILE
        extra = ["--trainer.default_root_dir", str(root),
                 f"--trainer.callbacks+={SweepSummary.__module__}.SweepSummary",
                 "--trainer.callbacks.path", str(summary_path), *(cli_args or [])]
        words = trial_command(list(config["command"]), params, config.get("program"))
        print(f"[sweep] trial {trial}: {' '.join(f'{k}={v}' for k, v in params.items())}", flush=True)
        started = time.monotonic()
        if slurm:
            from lightning_dfd.cluster.slurm import slurm as submit

            fit_args = [w for w in words[words.index("fit") + 1:]] if "fit" in words else []
            configs = trial_configs(fit_args)
            rest = [w for i, w in enumerate(fit_args) if w != "--config" and (i == 0 or fit_args[i - 1] != "--config")]
            name = f"sweep-{Path(sweep_file).stem}-{trial:03d}"
            job = submit(configs, job_name=name, log_dir=str(folder), root_dir=str(root), cli_args=rest + extra[2:],
                         gpus_per_node=gpus_per_node, cpus_per_task=cpus_per_task, time=time_limit,
                         partition=partition, account=account)
            state = wait_for_job(job)
            ok = state == "COMPLETED"
            trial_log = folder / f"{name}-{job}.out"
        else:
            root.mkdir(parents=True, exist_ok=True)
            trial_log = root / "trial.log"
            with trial_log.open("w") as log:
                log.write(shlex.join(words + extra) + "\n")
                log.flush()
                env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                    p for p in [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")] if p)}
                ok = subprocess.run(words + extra, stdout=log, stderr=subprocess.STDOUT, env=env).returncode == 0
        result = read_summary(summary_path)
        value = result["summary"].get(metric)
        proposal.state = RunState.finished if ok else RunState.failed
        proposal.summary_metrics = {metric: value} if value is not None else {}
        proposal.history = [row for row in result["history"] if metric in row]
        runs.append(proposal)
        best = [row[metric] for row in result["history"] if metric in row and not math.isnan(row[metric])]
        rows.append({"trial": trial, "state": "finished" if ok else "failed", **params,
                     metric: value if value is not None and not math.isnan(value) else None,
                     f"best {metric}": (max if goal == "maximize" else min)(best) if best else None,
                     "seconds": round(time.monotonic() - started, 1), "root_dir": str(root)})
        print(f"[sweep] trial {trial}: {'finished' if ok else 'FAILED (see ' + str(trial_log) + ')'}, "
              f"{metric} = {value}", flush=True)
        trial += 1
    if not rows:
        raise UserError(f"{sweep_file}: the engine proposed no trial")
    table = folder / "results.csv"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    png = plot_results(rows, metric, goal, folder / "results.png")
    print(f"[sweep] {len(rows)} trials -> {table}, {png}")
    return table


def run_online(config: dict[str, Any], path: Path, count: int | None, project: str | None,
               entity: str | None) -> str:
    """Create the sweep on W&B and run ``wandb agent`` on it here (needs ``WANDB_API_KEY`` and the network)."""
    import wandb

    from lightning_dfd.cli import wandb_unreachable

    reason = wandb_unreachable()
    if reason is not None or not os.environ.get("WANDB_API_KEY"):
        raise UserError(f"sweep {path}: W&B is not usable here ({reason or 'no WANDB_API_KEY'}): run it with "
                        f"--offline (same file, local engine), or set WANDB_API_KEY on a machine with internet")
    sweep_id = wandb.sweep(config, project=project, entity=entity)
    agent = [sys.executable, "-m", "wandb", "agent"] + (["--count", str(count)] if count else [])
    target = "/".join(part for part in (entity, project, sweep_id) if part)
    subprocess.run(agent + [target], check=True)
    return sweep_id
