"""Start-up time of the command line: ``python -m lightning_dfd --help`` and ``fit --help``.

Each command runs ``--trials`` times in a fresh interpreter (alternating); the table shows the fastest and the median
wall time and the CPU time (user + system, from the children's rusage: less disturbed by other processes than
wall time). The floor of ``fit --help`` is importing Lightning itself (``import lightning.pytorch``, shown as a
reference row): LightningCLI builds the parser from the Trainer's signature. ``--importtime`` adds the slowest
imports of ``fit --help`` (``python -X importtime``, cumulative microseconds).

    python benchmarks/cli_startup.py [--trials 5] [--importtime true] [--repo OTHER_CHECKOUT]

``--repo`` times another checkout with this script (e.g. the previous commit, for a before/after figure).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from jsonargparse import auto_cli

REPO = Path(__file__).resolve().parents[1]

COMMANDS = {
    "python -m lightning_dfd --help": ["-m", "lightning_dfd", "--help"],
    "python -m lightning_dfd fit --help": ["-m", "lightning_dfd", "fit", "--help"],
    "reference: import lightning.pytorch": ["-c", "import lightning.pytorch"],
    "reference: python -c pass": ["-c", "pass"],
}


def timed_run(args: list[str], repo: Path = REPO) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one fresh interpreter running ``args`` in ``repo``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=repo, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(repo)})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def slowest_imports(args: list[str], top: int, repo: Path = REPO) -> list[tuple[int, str]]:
    """The ``top`` imports with the largest cumulative time under ``python -X importtime``."""
    out = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=repo, capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(repo)})
    rows = []
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line.split("|")
            depth = (len(name) - len(name.lstrip())) // 2
            if depth <= 1:
                rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:top]


def benchmark(trials: int = 5, importtime: bool = False, top: int = 12,
              repo: Path = REPO) -> dict[str, dict[str, float]]:
    """Time every command ``trials`` times (alternating); print and return the fastest / median wall and CPU times.

    Args:
        trials: fresh interpreters per command.
        importtime: also list the slowest top-level imports of ``fit --help``.
        top: how many imports to list.
        repo: checkout to time (its package is put first on ``PYTHONPATH``).
    """
    repo = Path(repo).resolve()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
    for name, args in COMMANDS.items():  # warm the file cache once
        timed_run(args, repo)
    for _ in range(trials):
        for name, args in COMMANDS.items():
            samples[name].append(timed_run(args, repo))
    result = {}
    print(f"{repo}")
    print(f"{'command':<40} {'wall min':>9} {'wall med':>9} {'cpu min':>8}   ({trials} trials, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f})")
    for name, runs in samples.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        result[name] = {"wall_min": min(walls), "wall_median": statistics.median(walls), "cpu_min": min(cpus)}
        print(f"{name:<40} {min(walls):>8.2f}s {statistics.median(walls):>8.2f}s {min(cpus):>7.2f}s")
    if importtime:
        print("\nslowest imports of `fit --help` (cumulative, top level):")
        for micros, module in slowest_imports(COMMANDS["python -m lightning_dfd fit --help"], top, repo):
            print(f"  {micros / 1e6:7.2f}s  {module}")
    return result


if __name__ == "__main__":
    auto_cli(benchmark)
