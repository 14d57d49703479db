"""``python -m lightning_dfd slurm``: render a training config as an sbatch script and submit it.

The script comes from a plain template (``slurm/train.sbatch``, ``{{ name }}`` placeholders) rather than a
submission library such as submitit: the user sees and keeps exactly the file SLURM runs (``--dry_run`` prints it),
sites edit one template for their own ``#SBATCH`` lines, and requeue / resume stays Lightning's own mechanism
(``SLURMEnvironment`` with ``auto_requeue``: on ``SIGUSR1`` every rank writes ``hpc_ckpt_N.ckpt`` and rank 0 runs
``scontrol requeue``), which submitit would duplicate with pickled callables. The rendered job runs
``srun <this python> -m lightning_dfd fit --config ... --ckpt_path last --if_no_checkpoint fresh``, so a requeued
job resumes from the newest of ``last.ckpt`` and ``hpc_ckpt_N.ckpt`` (:func:`lightning_dfd.cli.newest_resumable`).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

from lightning_dfd.errors import UserError

__all__ = ["SbatchJob", "render_sbatch", "slurm", "srun_arguments"]

#: the template shipped with the repository (``--template`` picks another).
DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "slurm" / "train.sbatch"
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_TIME = re.compile(r"^(\d+-)?\d{1,3}:\d{2}(:\d{2})?$|^\d+$")


class SbatchJob(dict):
    """The values substituted into the template (a dict; names are the template's placeholders)."""


def srun_arguments(configs: list[str], subcommand: str, nodes: int, gpus_per_node: int, root_dir: str | None,
                   sync_batchnorm: bool, cli_args: list[str]) -> list[str]:
    """The ``python -m lightning_dfd`` arguments each task runs: configs, the trainer's topology, resume, extras.

    One task per GPU (``--trainer.devices`` = GPUs per node, ``--trainer.num_nodes``); without GPUs one CPU task
    per node. DDP when there is more than one task, with ``sync_batchnorm`` on GPUs (BatchNorm statistics over the
    global batch; torch's SyncBatchNorm refuses CPU modules, where DDP's buffer broadcast keeps ranks equal).
    ``fit`` always resumes (``--ckpt_path last --if_no_checkpoint fresh``): a requeued job continues.
    """
    tasks = max(gpus_per_node, 1)
    args = [subcommand]
    for config in configs:
        args += ["--config", config]
    args += ["--trainer.accelerator", "gpu" if gpus_per_node > 0 else "cpu", "--trainer.devices", str(tasks),
             "--trainer.num_nodes", str(nodes)]
    if nodes * tasks > 1:
        args += ["--trainer.strategy", "ddp"]
        if sync_batchnorm and gpus_per_node > 0:  # torch's SyncBatchNorm runs on GPUs only
            args += ["--trainer.sync_batchnorm", "true"]
    if root_dir:
        args += ["--trainer.default_root_dir", root_dir]
    if subcommand == "fit":
        args += ["--ckpt_path", "last", "--if_no_checkpoint", "fresh"]
    return args + list(cli_args)


def render_sbatch(template: str | Path, values: dict[str, object]) -> str:
    """The template with every ``{{ name }}`` replaced; a placeholder without a value is an error naming it."""
    text = Path(template).read_text()
    missing = sorted({name for name in _PLACEHOLDER.findall(text) if name not in values})
    if missing:
        raise UserError(f"slurm template {template} uses {missing}, which `python -m lightning_dfd slurm` does not "
                        f"fill (known: {sorted(values)}): fix the template")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def slurm(
    train_configs: list[str],
    nodes: int = 1,
    gpus_per_node: int = 0,
    cpus_per_task: int = 4,
    time: str = "04:00:00",
    partition: str | None = None,
    account: str | None = None,
    mem: str | None = None,
    job_name: str | None = None,
    subcommand: Literal["fit", "validate", "test"] = "fit",
    root_dir: str | None = None,
    log_dir: str = "outputs/slurm",
    signal_seconds: int = 90,
    sync_batchnorm: bool = True,
    template: str | None = None,
    dry_run: bool = False,
    cli_args: list[str] | None = None,
) -> str:
    """Write an sbatch script for ``python -m lightning_dfd fit --config ...`` and submit it (``--dry_run``: print).

    ``python -m lightning_dfd slurm --config conf/laanet/ffpp_sbi.yaml --nodes 2 --gpus-per-node 4 --time 24:00:00
    -- --trainer.precision bf16-mixed``: the words after ``--`` go to the training command unchanged. The script
    (``<log_dir>/<job_name>.sbatch``) asks for ``--nodes``, ``--ntasks-per-node`` (one per GPU), ``--gres=gpu:N``,
    ``--cpus-per-task``, ``--signal=SIGUSR1@<signal_seconds>`` and ``--requeue``, and runs the job with the python
    that rendered it (``sys.executable``) and this code on ``PYTHONPATH``, the submitting environment exported.

    Args:
        train_configs: training configs (``--config`` on the command line, repeatable; stacked in order).
        nodes: number of nodes (``--trainer.num_nodes``).
        gpus_per_node: GPUs per node, one task each (``--trainer.devices``); 0 runs one CPU task per node.
        cpus_per_task: CPU cores per task (DataLoader workers).
        time: the job's time limit, ``HH:MM:SS`` or ``D-HH:MM:SS``.
        partition: SLURM partition (the cluster's default when unset).
        account: SLURM account to charge.
        mem: memory per node (``--mem``, e.g. ``64G``); the cluster's default when unset.
        job_name: job name; by default the last config's file name.
        subcommand: ``fit`` (resumes with ``--ckpt_path last``), ``validate`` or ``test``.
        root_dir: ``--trainer.default_root_dir`` of the run (checkpoints, logs; where a requeued job resumes);
            the config's when unset.
        log_dir: folder of the rendered script and the job's output file ``<job_name>-<job id>.out``.
        signal_seconds: SIGUSR1 this many seconds before the time limit (Lightning checkpoints and requeues).
        sync_batchnorm: with more than one GPU task, synchronise BatchNorm statistics across ranks.
        template: sbatch template; ``slurm/train.sbatch`` by default.
        dry_run: print the script instead of submitting it.
        cli_args: extra arguments of the training command (the words after ``--``).

    Returns:
        The script (``--dry_run``) or the job id.
    """
    if not train_configs:
        raise UserError("slurm: give at least one training config: --config conf/<method>/<file>.yaml")
    for config in train_configs:
        if not Path(config).is_file():
            raise UserError(f"slurm --config {config}: no such file")
    if nodes < 1 or gpus_per_node < 0 or cpus_per_task < 1:
        raise UserError(f"slurm: --nodes ({nodes}) and --cpus-per-task ({cpus_per_task}) must be >= 1 and "
                        f"--gpus-per-node ({gpus_per_node}) >= 0")
    if not _TIME.match(time):
        raise UserError(f"slurm --time {time}: expected HH:MM:SS, D-HH:MM:SS or minutes (e.g. --time 04:00:00)")
    name = job_name or f"ldfd-{Path(train_configs[-1]).stem}"
    logs = Path(log_dir).resolve()
    args = srun_arguments(list(train_configs), subcommand, nodes, gpus_per_node, root_dir, sync_batchnorm,
                          list(cli_args or []))
    code_root = Path(__file__).resolve().parents[2]
    directives = [f"#SBATCH --{key}={value}" for key, value in
                  (("partition", partition), ("account", account), ("mem", mem)) if value]
    values = SbatchJob(
        template=Path(template or DEFAULT_TEMPLATE).name,
        job_name=name, nodes=nodes, tasks_per_node=max(gpus_per_node, 1), cpus_per_task=cpus_per_task,
        gres=f"#SBATCH --gres=gpu:{gpus_per_node}\n" if gpus_per_node > 0 else "",
        time=time, signal_seconds=signal_seconds, log_file=str(logs / "%x-%j.out"),
        extra_directives="\n".join(directives), workdir=shlex.quote(str(Path.cwd())),
        pythonpath=shlex.quote(str(code_root)),
        command=" ".join(shlex.quote(word) for word in [sys.executable, "-m", "lightning_dfd", *args]),
    )
    script = render_sbatch(template or DEFAULT_TEMPLATE, values)
    if dry_run:
        print(script)
        return script
    if shutil.which("sbatch") is None:
        raise UserError("slurm: `sbatch` not found on this machine; run on a SLURM login node (or --dry_run to "
                        "print the script)")
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"{name}.sbatch"
    path.write_text(script)
    result = subprocess.run(["sbatch", "--parsable", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"slurm: sbatch {path} failed: {result.stderr.strip() or result.stdout.strip()}")
    job_id = result.stdout.strip().split(";")[0]
    print(f"submitted job {job_id} ({path}); log: {logs / f'{name}-{job_id}.out'}; "
          f"watch: squeue -j {job_id}; cancel: scancel {job_id}")
    return job_id
