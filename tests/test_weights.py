"""``weights fetch`` / ``weights list``: filling and showing the cache that ``pretrained: true`` reads (no network)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from lightning_dfd import weights
from lightning_dfd.commands import EXTRA_COMMANDS, collect_list_argument, run_extra_command
from lightning_dfd.models.backbones import pretrained_kwargs


def fake_hf_repo(cache, model: str, payload: bytes):
    """A Hugging Face cache entry laid out as huggingface_hub writes it: blob + snapshot symlink + ref."""
    repo = cache / f"models--timm--{model}"
    blob = repo / "blobs" / "0123abcd"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(payload)
    snapshot = repo / "snapshots" / "c0ffee"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c0ffee")
    return snapshot / "model.safetensors"


def test_weights_is_registered():
    assert EXTRA_COMMANDS["weights"] == "lightning_dfd.weights:COMMANDS"
    assert set(weights.COMMANDS) == {"fetch", "list"}


def test_list_shows_cached_weights_with_sizes(tmp_path, capsys):
    hf, hub = tmp_path / "hf", tmp_path / "torch"
    fake_hf_repo(hf, "resnet18.a1_in1k", b"x" * 3 * 1024 * 1024)
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / "xception-43020ad28.pth").write_bytes(b"y" * 2048)
    (hub / "checkpoints" / "notes.txt").write_text("not weights")
    entries = weights.list_cached(hf_cache=hf, torch_hub=hub)
    assert [(e.name, e.cache, e.size_bytes) for e in entries] == [
        ("resnet18.a1_in1k", "huggingface", 3 * 1024 * 1024), ("xception-43020ad28.pth", "torch-hub", 2048)]
    lines = capsys.readouterr().out.splitlines()
    assert "resnet18.a1_in1k" in lines[0] and "3.0 MiB" in lines[0]
    assert "xception-43020ad28.pth" in lines[1] and "2.0 KiB" in lines[1]


def test_list_on_empty_cache_says_how_to_fill_it(tmp_path, capsys):
    assert weights.list_cached(hf_cache=tmp_path / "a", torch_hub=tmp_path / "b") == []
    assert "weights fetch NAME" in capsys.readouterr().out


def test_torch_hub_dir_matches_torch(monkeypatch, tmp_path):
    assert weights.torch_hub_dir() == __import__("pathlib").Path(torch.hub.get_dir())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert weights.torch_hub_dir() == tmp_path / "hub"


def test_fetch_fills_the_cache_that_pretrained_true_reads(tmp_path, monkeypatch, capsys):
    """fetch (download monkeypatched: no network) -> the offline resolver of backbones.py finds the file."""
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    downloaded = []

    def fake_hf_hub_download(repo_id, filename, revision=None, **kwargs):
        downloaded.append((repo_id, filename))
        return str(fake_hf_repo(tmp_path / "hf", repo_id.split("/", 1)[1], b"w" * 4096))

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hf_hub_download)
    with pytest.raises(Exception, match="not available offline"):
        pretrained_kwargs("resnet18", True)
    paths = weights.fetch(["resnet18"])
    assert downloaded == [("timm/resnet18.a1_in1k", "model.safetensors")]
    assert "resnet18: " in capsys.readouterr().out
    resolved = pretrained_kwargs("resnet18", True)
    assert resolved["pretrained_cfg_overlay"]["file"] == str(paths[0])
    assert [e.name for e in weights.cached_weights(tmp_path / "hf", tmp_path / "torch")] == ["resnet18.a1_in1k"]


def test_fetch_failure_is_one_line_naming_the_models(monkeypatch, capsys):
    def offline(name):
        raise OSError("Name or service not known")

    monkeypatch.setattr(weights, "download_weights", offline)
    with pytest.raises(SystemExit) as exit_info:
        run_extra_command("weights", ["fetch", "resnet18", "efficientnet_b4"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["resnet18: failed (Name or service not known)",
                   "efficientnet_b4: failed (Name or service not known)",
                   ("error: weights fetch: 2 of 2 failed (resnet18, efficientnet_b4); is there internet here, and is "
                   "HF_HUB_OFFLINE unset?")]


def test_fetch_takes_names_as_words():
    assert collect_list_argument("weights", ["fetch", "a", "b.c_in1k"]) == ["fetch", "--names=[a,b.c_in1k]"]
    assert collect_list_argument("weights", ["list", "--hf_cache", "x"]) == ["list", "--hf_cache", "x"]
    assert collect_list_argument("synth", ["--dataset", "ffpp"]) == ["--dataset", "ffpp"]


def test_weights_help_runs_without_lightning():
    code = ("import sys\nimport lightning_dfd.__main__ as entry\nsys.argv = ['lightning_dfd', 'weights', 'list', "
            "'--help']\ntry:\n    entry.run()\nexcept SystemExit:\n    pass\n"
            "print('LOADED', 'lightning.pytorch' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "--hf_cache" in out.stdout and "LOADED False False" in out.stdout
