"""Nothing contacts the network: albumentations' update check is off, W&B without network falls back to offline fast.

The subprocess tests run Python with a ``sitecustomize`` that blocks every non-local DNS lookup and connect and
records it, so they fail if anything (a library's import-time check, W&B, timm) tries to reach the internet.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest
import yaml

from lightning_dfd import cli

REPO = Path(__file__).resolve().parents[1]

BLOCK_NETWORK = '''
import os, socket
_LOG = os.environ["NETWORK_LOG"]

def _record(what):
    with open(_LOG, "a") as handle:
        handle.write(what + "\\n")

def _local(host):
    return host in (None, "", "localhost", "::1") or str(host).startswith("127.")

_getaddrinfo = socket.getaddrinfo
def getaddrinfo(host, port, *args, **kwargs):
    if not _local(host):
        _record(f"dns {host}:{port}")
        raise socket.gaierror(socket.EAI_NONAME, "blocked by the test")
    return _getaddrinfo(host, port, *args, **kwargs)

_connect = socket.socket.connect
def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
        _record(f"connect {address[0]}:{address[1]}")
        raise OSError(101, "blocked by the test")
    return _connect(self, address)

socket.getaddrinfo = getaddrinfo
socket.socket.connect = connect
'''


def run_offline(tmp_path: Path, args: list[str], **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run python ``args`` with the network blocked; the completed process and the attempted connections."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCK_NETWORK)
    log = tmp_path / "network.log"
    log.write_text("")
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("NO_ALBUMENTATIONS_UPDATE", "WANDB_MODE", "WANDB_API_KEY", "HF_HUB_OFFLINE")}
    environment.update(PYTHONPATH=os.pathsep.join([str(site), str(REPO)]), NETWORK_LOG=str(log), **env)
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, check=False,
                         env=environment, cwd=tmp_path)
    return out, log.read_text().splitlines()


def test_sandbox_records_attempts(tmp_path):
    # the harness itself: an attempted connection is seen (so an empty log below means "nothing tried")
    out, attempts = run_offline(tmp_path, ["-c", ("import urllib.request as u\ntry:\n u.urlopen('https://pypi.org')\n"
                                                 "except Exception:\n pass")])
    assert out.returncode == 0 and attempts


def test_importing_the_package_and_albumentations_contacts_nobody(tmp_path):
    out, attempts = run_offline(tmp_path, ["-c", ("import lightning_dfd, albumentations, os\n"
                                                 "print(os.environ['NO_ALBUMENTATIONS_UPDATE'])")])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
    assert attempts == [], attempts
    assert "check for updates" not in out.stderr


def test_fit_with_wandb_key_and_no_network_falls_back_to_offline(tmp_path):
    config = {
        "trainer": {"logger": [
            {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "logs", "name": "csv"}},
            {"class_path": "lightning.pytorch.loggers.WandbLogger",
             "init_args": {"project": "lightning-dfd-test", "save_dir": "logs"}}]},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    args = ["-m", "lightning_dfd", "fit", "--config", "config.yaml", "--model", "BinaryClassifier",
            "--model.backbone", "resnet10t", "--data", "tests.helpers.toy_data.ToyFaceDataModule",
            "--data.videos", "4", "--data.frames", "2", "--trainer.max_epochs", "1", "--trainer.limit_train_batches",
            "1", "--trainer.limit_val_batches", "1", "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar",
            "false", "--trainer.default_root_dir", str(tmp_path / "run")]
    out, attempts = run_offline(tmp_path, args, WANDB_API_KEY="0" * 40, WANDB_SILENT="true")
    assert out.returncode == 0, out.stderr[-3000:]
    # the only attempt is the short reachability probe of the W&B host
    assert set(attempts) == {"dns api.wandb.ai:443"}, attempts
    assert out.stderr.count("logging offline instead") == 1
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*")), "W&B did not log offline"


@pytest.fixture
def wandb_key(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)


def test_unreachable_wandb_means_offline_with_one_warning(wandb_key, monkeypatch):
    tried = []

    def refuse(address, timeout=None, *args, **kwargs):
        tried.append((address, timeout))
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli.configure_wandb_mode() == "offline"
    assert os.environ["WANDB_MODE"] == "offline"
    assert [str(w.message) for w in caught if "W&B" in str(w.message)] == [
        ("W&B: api.wandb.ai:443 unreachable (OSError: [Errno 101] Network is unreachable); logging offline instead "
        "(sync later with `wandb sync <save_dir>/wandb`)")]
    assert tried == [(("api.wandb.ai", 443), cli.WANDB_PROBE_TIMEOUT_S)]


def test_a_hanging_network_does_not_block(wandb_key, monkeypatch):
    never = threading.Event()

    def hang(address, timeout=None, *args, **kwargs):
        never.wait(60)  # a resolver or connect that never answers
        raise OSError("gave up")

    monkeypatch.setattr(socket, "create_connection", hang)
    monkeypatch.setattr(cli, "WANDB_PROBE_TIMEOUT_S", 0.2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli.configure_wandb_mode() == "offline"
    never.set()
    assert any("did not answer" in str(w.message) for w in caught)


def test_reachable_wandb_stays_online_and_no_key_never_probes(wandb_key, monkeypatch):
    class Connection:
        def close(self):
            pass

    tried = []
    monkeypatch.setattr(socket, "create_connection", lambda address, timeout=None: tried.append(address) or
                        Connection())
    assert cli.configure_wandb_mode() == "online"
    assert tried == [("api.wandb.ai", 443)]
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.delenv("WANDB_MODE")
    assert cli.configure_wandb_mode() == "offline" and len(tried) == 1
