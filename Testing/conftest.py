"""pytest configuration: engine tests run on few threads and share one tiny trained model per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # paper_protocols/ (kept outside the engine)
os.environ.setdefault("OMP_NUM_THREADS", "2")


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
