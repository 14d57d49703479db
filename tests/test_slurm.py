"""`python -m lightning_dfd slurm`: the rendered sbatch script, and real jobs on a SLURM cluster (`make slurm-up`).

The cluster tests submit two jobs that train the demo BinaryClassifier on the FF++ twin for 2 epochs: one runs
straight through; the other waits at step 9 (mid epoch 2) until it is signalled with SIGUSR1 as SLURM does before
a time limit (``scancel --signal=USR1``, delivered to the job step). Lightning's SLURMEnvironment then writes
``hpc_ckpt_1.ckpt`` and requeues the job; the requeued run (``--ckpt_path last``) must end at the straight job's
global step with the same weights.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lightning_dfd.cluster.slurm import render_sbatch, slurm, srun_arguments
from lightning_dfd.commands import run_extra_command
from lightning_dfd.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "conf" / "demo" / "binary_ffpp_twin.yaml"
PAUSE_STEP = 9


def directives(script: str) -> dict[str, str]:
    out = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH --"):
            key, _, value = line.removeprefix("#SBATCH --").partition("=")
            out[key] = value
    return out


def srun_words(script: str) -> list[str]:
    (line,) = [line for line in script.splitlines() if line.startswith("srun ")]
    return shlex.split(line)[1:]


# ------------------------------------------------------------------ the script (no cluster needed)
def test_dry_run_renders_the_job(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_extra_command("slurm", ["--config", str(DEMO), "--config", str(ROOT / "conf/laanet/test_dfd.yaml"),
                                "--nodes", "2", "--gpus-per-node", "4", "--time", "24:00:00", "--partition", "gpu",
                                "--account", "proj", "--dry-run", "--", "--trainer.precision", "bf16-mixed",
                                "--data.init_args.path", "/data/a b"])
    script = capsys.readouterr().out
    d = directives(script)
    assert d["nodes"] == "2" and d["ntasks-per-node"] == "4" and d["gres"] == "gpu:4"
    assert d["signal"] == "SIGUSR1@90" and "requeue" in d and d["time"] == "24:00:00"
    assert d["partition"] == "gpu" and d["account"] == "proj" and d["cpus-per-task"] == "4"
    assert d["output"].endswith("%x-%j.out") and d["job-name"] == "ldfd-test_dfd"
    words = srun_words(script)
    assert words[:4] == [sys.executable, "-m", "lightning_dfd", "fit"]  # the python that rendered it
    assert words[4:8] == ["--config", str(DEMO), "--config", str(ROOT / "conf/laanet/test_dfd.yaml")]
    pairs = dict(zip(words[8::2], words[9::2]))
    assert pairs["--trainer.devices"] == "4" and pairs["--trainer.num_nodes"] == "2"
    assert pairs["--trainer.accelerator"] == "gpu" and pairs["--trainer.strategy"] == "ddp"
    assert pairs["--trainer.sync_batchnorm"] == "true"  # GPUs: BatchNorm over the global batch
    assert pairs["--ckpt_path"] == "last" and pairs["--if_no_checkpoint"] == "fresh"
    assert words[-4:] == ["--trainer.precision", "bf16-mixed", "--data.init_args.path", "/data/a b"]
    assert f"cd {tmp_path}" in script and f"PYTHONPATH={ROOT}" in script
    assert not (tmp_path / "outputs").exists()  # a dry run writes nothing


def test_one_cpu_task_has_no_gres_and_no_ddp():
    args = srun_arguments(["a.yaml"], "test", nodes=1, gpus_per_node=0, root_dir=None, sync_batchnorm=True,
                          cli_args=[])
    assert "--trainer.strategy" not in args and "--trainer.sync_batchnorm" not in args
    assert "--ckpt_path" not in args  # only fit resumes
    assert args[args.index("--trainer.accelerator") + 1] == "cpu"
    script = slurm([str(DEMO)], dry_run=True)
    assert "gres" not in directives(script) and directives(script)["ntasks-per-node"] == "1"


def test_template_placeholder_without_value_is_named(tmp_path):
    template = tmp_path / "t.sbatch"
    template.write_text("#SBATCH --nodes={{ nodes }}\n#SBATCH --qos={{ qos }}\n")
    with pytest.raises(UserError, match=r"\['qos'\]"):
        render_sbatch(template, {"nodes": 1})


@pytest.mark.parametrize("args, match", [(["--time", "soon"], "--time soon"),
                                         (["--nodes", "0"], "--nodes"),
                                         ([], "no such file")])
def test_bad_input_is_one_line(args, match, capsys):
    config = "missing.yaml" if not args else str(DEMO)
    with pytest.raises(SystemExit) as info:
        run_extra_command("slurm", ["--config", config, "--dry-run", *args])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err


# ------------------------------------------------------------------ real jobs
def cluster_unavailable() -> str | None:
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "no SLURM client (sbatch/sinfo) on this machine: run `make slurm-up` (root) to start a local cluster"
    try:
        states = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 10 s: is slurmctld running? (`make slurm-up`)"
    if states.returncode != 0 or not any(s.strip().rstrip("*") in ("idle", "mixed", "allocated")
                                         for s in states.stdout.splitlines()):
        return f"no SLURM node is ready (sinfo: {states.stdout.strip() or states.stderr.strip()}): `make slurm-up`"
    return None


def job_field(job: str, field: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True).stdout
    for word in out.split():
        key, _, value = word.partition("=")
        if key == field:
            return value
    return ""


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def submit(name: str, root: Path, logs: Path, cache: Path, *extra: str) -> str:
    return slurm([str(DEMO)], cpus_per_task=1, time="00:15:00", job_name=name, root_dir=str(root), log_dir=str(logs),
                 cli_args=["--data.init_args.path", str(cache), "--data.init_args.image_size", "32",
                           "--data.init_args.batch_size", "4", "--trainer.max_epochs", "2", "--trainer.logger", "false",
                           "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", *extra])


@pytest.fixture(scope="module")
def slurm_jobs(twins, tmp_path_factory):
    reason = cluster_unavailable()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("slurm")
    cache = twins["ffpp"][1]
    marker = base / "paused"
    straight = submit("ldfd-test-straight", base / "straight", base / "logs", cache)
    signalled = submit("ldfd-test-requeue", base / "requeue", base / "logs", cache,
                       "--trainer.callbacks+=tests.helpers.cluster_callbacks.PauseAtStep",
                       "--trainer.callbacks.step", str(PAUSE_STEP), "--trainer.callbacks.marker", str(marker))
    jobs = {"straight": straight, "requeue": signalled, "base": base}
    try:
        wait_for(lambda: marker.exists() or job_field(signalled, "JobState") in ("FAILED", "COMPLETED"), 240,
                 f"job {signalled} to reach step {PAUSE_STEP}")
        assert marker.exists(), (base / "logs" / f"ldfd-test-requeue-{signalled}.out").read_text()
        # what SLURM sends --signal-seconds before the time limit: SIGUSR1 to the job step
        subprocess.run(["scancel", "--signal=USR1", signalled], check=True)
        wait_for(lambda: job_field(signalled, "Restarts") == "1" and job_field(signalled, "JobState") == "PENDING",
                 120, f"job {signalled} to be requeued")
        # a requeued job waits ~2 min (BeginTime) before it may start again
        subprocess.run(["scontrol", "update", f"JobId={signalled}", "StartTime=now"], check=True)
        for job in (straight, signalled):
            wait_for(lambda: job_field(job, "JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), 300,
                     f"job {job} to finish")
    except BaseException:
        subprocess.run(["scancel", straight, signalled])
        raise
    return jobs


def read_log(jobs, name: str) -> str:
    return (jobs["base"] / "logs" / f"ldfd-test-{name}-{jobs[name]}.out").read_text()


@pytest.mark.slurm
@pytest.mark.slow
def test_job_trains_and_finishes(slurm_jobs):
    job = slurm_jobs["straight"]
    assert job_field(job, "JobState") == "COMPLETED", read_log(slurm_jobs, "straight")
    last = torch.load(slurm_jobs["base"] / "straight" / "checkpoints" / "last.ckpt", weights_only=True,
                      map_location="cpu")
    assert last["epoch"] == 1 and last["global_step"] > PAUSE_STEP
    assert "SLURM auto-requeueing enabled" in read_log(slurm_jobs, "straight")


@pytest.mark.slurm
@pytest.mark.slow
def test_signalled_job_is_requeued_and_resumes_to_the_same_weights(slurm_jobs):
    job, base = slurm_jobs["requeue"], slurm_jobs["base"]
    log = read_log(slurm_jobs, "requeue")
    assert job_field(job, "JobState") == "COMPLETED", log
    assert job_field(job, "Restarts") == "1"
    assert "Handling auto-requeue signal" in log and "(restart 1)" in log
    assert (base / "requeue" / "hpc_ckpt_1.ckpt").is_file()
    hpc = torch.load(base / "requeue" / "hpc_ckpt_1.ckpt", weights_only=True, map_location="cpu")
    assert hpc["global_step"] == PAUSE_STEP
    assert "Restored all states from the checkpoint" in log.split("(restart 1)")[1]  # the second run resumed
    straight = torch.load(base / "straight" / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    resumed = torch.load(base / "requeue" / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert resumed["global_step"] == straight["global_step"] and resumed["epoch"] == straight["epoch"]
    for name, value in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], value, rtol=0, atol=1e-6, msg=name)
    # written once: one best per epoch name, no `-v1` duplicates from the interruption
    names = sorted(p.name for p in (base / "requeue" / "checkpoints").glob("*.ckpt"))
    assert not [n for n in names if "-v" in n], names


def test_ckpt_path_last_takes_the_newest_of_last_and_hpc(tmp_path):
    """A requeued job runs `--ckpt_path last`: the SIGUSR1 checkpoint (hpc_ckpt_N.ckpt in default_root_dir) counts
    when it is newer than checkpoints/last.ckpt, and not otherwise; stray names are ignored."""
    import os

    from lightning_dfd.cli import newest_resumable

    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    files = {name: (tmp_path / name if name.startswith("hpc") else checkpoints / name)
             for name in ("last.ckpt", "hpc_ckpt_1.ckpt", "hpc_ckpt_2.ckpt", "best-epoch001.ckpt", "hpc_ckpt_x.ckpt")}
    for age, path in enumerate(files.values()):
        path.write_bytes(b"")
        os.utime(path, (1000 + age, 1000 + age))
    os.utime(files["hpc_ckpt_2.ckpt"], (3000, 3000))
    assert newest_resumable(checkpoints, tmp_path)[-1] == files["hpc_ckpt_2.ckpt"]
    os.utime(files["last.ckpt"], (4000, 4000))
    found = newest_resumable(checkpoints, tmp_path)
    assert found[-1] == files["last.ckpt"]
    assert {p.name for p in found} == {"last.ckpt", "hpc_ckpt_1.ckpt", "hpc_ckpt_2.ckpt"}
