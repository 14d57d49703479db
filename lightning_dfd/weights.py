"""``python -m lightning_dfd weights fetch NAME ...`` / ``weights list``: pretrained backbones for offline clusters.

``pretrained: true`` never downloads at run time (:mod:`lightning_dfd.models.backbones`); it reads timm's weights
from the local caches, resolved exactly as timm resolves them: the Hugging Face hub cache (``HF_HOME`` /
``HF_HUB_CACHE``, the default for timm's ``hf_hub_id`` weights) and torch hub's ``checkpoints`` folder
(``TORCH_HOME``, for weights that only have a URL). ``fetch`` is the one command of the package that uses the network:
run it on a login node that shares the cluster's home or ``HF_HOME``, then train offline. ``list`` shows what the
caches hold. Light module: Lightning is not imported.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from lightning_dfd.errors import UserError

#: files timm reads from a ``timm/<model>`` Hugging Face repository, in its order of preference.
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class CachedWeights:
    """One cached weights file: the timm model (or file) name, the cache it is in, its size and path."""

    name: str
    cache: str
    size_bytes: int
    path: Path


def hf_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()`` without importing torch: ``$TORCH_HOME/hub``, else ``$XDG_CACHE_HOME/torch/hub``."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "torch")
    return Path(os.path.expanduser(torch_home)) / "hub"


def download_weights(name: str) -> Path:
    """Download timm's default pretrained weights for ``name`` into the cache ``pretrained: true`` reads."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        raise UserError(f"weights fetch: '{name}' has no pretrained weights in timm {timm.__version__}; list them "
                        "with `python -c \"import timm; print(timm.list_models(pretrained=True))\"`")
    if cfg.hf_hub_id:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        repo, _, revision = cfg.hf_hub_id.partition("@")
        last_error: Exception | None = None
        for filename in filter(None, (cfg.hf_hub_filename, *HF_WEIGHT_FILES)):
            try:
                return Path(hf_hub_download(repo, filename, revision=revision or None))
            except EntryNotFoundError as err:
                if isinstance(err, LocalEntryNotFoundError):  # offline (no network or HF_HUB_OFFLINE=1)
                    raise
                last_error = err
        raise UserError(f"weights fetch: {repo} has none of {HF_WEIGHT_FILES}") from last_error
    if cfg.url:
        import torch

        target = torch_hub_dir() / "checkpoints" / os.path.basename(cfg.url)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            torch.hub.download_url_to_file(cfg.url, str(target), progress=False)
        return target
    raise UserError(f"weights fetch: timm lists no download location for '{name}'")


def fetch(names: list[str]) -> list[Path]:
    """Download timm's pretrained weights into the local cache that ``pretrained: true`` reads (needs internet).

    Args:
        names: timm model names, as in a config's ``backbone`` (``efficientnet_b4``, ``xception41``,
            ``resnet18.a1_in1k``). Run on a machine with internet that shares the cache (``HF_HOME``,
            ``TORCH_HOME``) with the offline nodes.
    """
    from lightning_dfd.models.backbones import _cached_weights

    paths, failed = [], []
    for name in names:
        try:
            path = download_weights(name)
        except Exception as err:  # noqa: BLE001 - one line per failed name, then a summary error
            failed.append(name)
            print(f"{name}: failed ({' '.join(str(err).split())})", file=sys.stderr)
            continue
        readable = _cached_weights(name)
        note = "" if readable is not None else "  (warning: not where `pretrained: true` looks; check HF_HOME)"
        print(f"{name}: {path} ({format_size(path.stat().st_size)}){note}")
        paths.append(path)
    if failed:
        raise UserError(f"weights fetch: {len(failed)} of {len(names)} failed ({', '.join(failed)}); is there "
                        "internet here, and is HF_HUB_OFFLINE unset?")
    return paths


def cached_weights(hf_cache: Path | None = None, torch_hub: Path | None = None) -> list[CachedWeights]:
    """The timm weights in the Hugging Face cache (``models--timm--*``) and torch hub's ``checkpoints`` folder."""
    hf_cache = Path(hf_cache) if hf_cache is not None else hf_cache_dir()
    torch_hub = Path(torch_hub) if torch_hub is not None else torch_hub_dir()
    found: list[CachedWeights] = []
    for repo in sorted(hf_cache.glob("models--timm--*")) if hf_cache.is_dir() else []:
        files = {}
        for snapshot_file in (repo / "snapshots").glob("*/*"):
            if snapshot_file.name in HF_WEIGHT_FILES and snapshot_file.exists():
                files[snapshot_file.resolve()] = snapshot_file
        for resolved, link in sorted(files.items()):
            found.append(CachedWeights(repo.name.removeprefix("models--timm--"), "huggingface",
                                       resolved.stat().st_size, link))
    checkpoints = torch_hub / "checkpoints"
    for path in sorted(checkpoints.iterdir()) if checkpoints.is_dir() else []:
        if path.is_file() and path.suffix in (".pth", ".pt", ".bin", ".safetensors"):
            found.append(CachedWeights(path.name, "torch-hub", path.stat().st_size, path))
    return found


def list_cached(hf_cache: Path | None = None, torch_hub: Path | None = None) -> list[CachedWeights]:
    """Show the pretrained weights cached on this machine (what ``pretrained: true`` can use offline).

    Args:
        hf_cache: Hugging Face hub cache folder (default: ``HF_HUB_CACHE`` / ``HF_HOME``/hub).
        torch_hub: torch hub folder (default: ``TORCH_HOME``/hub).
    """
    entries = cached_weights(hf_cache, torch_hub)
    if not entries:
        print(f"no timm weights cached in {hf_cache or hf_cache_dir()} or {torch_hub or torch_hub_dir()}; "
              "fetch some with `python -m lightning_dfd weights fetch NAME`")
    width = max((len(entry.name) for entry in entries), default=0)
    for entry in entries:
        print(f"{entry.name:<{width}}  {entry.cache:<11}  {format_size(entry.size_bytes):>9}  {entry.path}")
    return entries


def format_size(size_bytes: int) -> str:
    size = float(size_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size_bytes} B"


#: the ``weights`` subcommand's own subcommands (jsonargparse ``auto_cli`` with a dict).
COMMANDS = {"fetch": fetch, "list": list_cached}
