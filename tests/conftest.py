"""Shared fixtures: CPU only, offline W&B, quiet Lightning."""

from __future__ import annotations

import logging
import os
import warnings

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", message=".*LeafSpec.*")


@pytest.fixture(autouse=True)
def _quiet_lightning():
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    yield


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


TWINS = {  # synth dataset -> (preprocess dataset, synth options)
    "ffpp": ("ffpp", {"videos": 6, "compressions": ["c23", "c40", "raw"]}),  # c40: DLDFD, two-branch configs
    "celebdf": ("celebdf_v2", {"videos": 6}),
    "celebdf_v1": ("celebdf_v1", {"videos": 6}),
    "dfdc": ("dfdc", {"videos": 6}),
    "dfdc_preview": ("dfdc_preview", {"videos": 6}),
    "casia_surf": ("casia_surf", {"identities": 9}),
    "uadfv": ("uadfv", {"videos": 5}),
    "wilddeepfake": ("wilddeepfake", {"videos": 8}),
    "dfd": ("dfd", {"videos": 2, "compressions": ["c23"]}),
    "deeperforensics": ("deeperforensics", {"videos": 3}),
}


@pytest.fixture(scope="session")
def twins(tmp_path_factory):
    """name -> (raw twin root, preprocess output) for every dataset, 3 frames of 64 px per video.

    Built once per test session (synth + preprocess with the sidecar landmarks) and shared by the data-layer
    tests and the config smoke tests.
    """
    from lightning_dfd.data.preprocess import preprocess
    from lightning_dfd.data.synthetic.cli import synth

    base = tmp_path_factory.mktemp("twins")
    out = {}
    for name, (dataset, options) in TWINS.items():
        options = {"identities": 4, **options}
        raw = synth(name, base / name / "raw", seed=0, frames=3, size=64, **options)
        cache = base / name / "cache"
        preprocess(dataset, raw, cache, frames=3, backend="sidecar", size=64, progress=False)
        out[name] = (raw, cache)
    return out
