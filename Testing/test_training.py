"""Training loops: loss goes down, exact resume, and 2-rank DDP (gloo, CPU) equals one process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from contrastive_anomaly.cli.main import main
from contrastive_anomaly.storage.checkpoint import load_model_folder
from engine_fixtures import small_config

# 2-rank DDP vs single process, same global batch: gradients are averaged in another summation order.
DDP_TOLERANCE = 1e-4


def _config_file(tmp_path: Path, **train_overrides) -> Path:
    cfg = small_config()
    for key, value in train_overrides.items():
        setattr(cfg.diffusion_training, key, value)
    path = tmp_path / "config.json"
    cfg.save(path)
    return path


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_model_folder(folder)[1]


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a if a[k].is_floating_point())


def test_stage2_validation_loss_decreases(tmp_path):
    config = _config_file(tmp_path, steps=24, validate_every=8, intensity_augmentation=False)
    assert main(["train", "--config", str(config), "--phantoms", "5", "--out", str(tmp_path / "run"),
                 "--progress", "none"]) == 0
    history = load_model_folder(tmp_path / "run" / "last")[2]
    state = (tmp_path / "run" / "last" / "trainer_state.json").read_text(encoding="utf-8")
    assert history["step"] == 24 and '"history"' in state
    import json

    losses = [row["val_loss"] for row in json.loads(state)["history"]]
    assert losses[-1] < losses[0]


def test_resume_continues_exactly(tmp_path):
    config = _config_file(tmp_path, steps=6, validate_every=3)
    common = ["train", "--config", str(config), "--phantoms", "4", "--progress", "none"]
    assert main([*common, "--out", str(tmp_path / "straight")]) == 0
    assert main([*common, "--out", str(tmp_path / "resumed"), "--steps", "3"]) == 0
    assert main([*common, "--out", str(tmp_path / "resumed"), "--resume"]) == 0
    difference = _max_difference(_weights(tmp_path / "straight" / "last"), _weights(tmp_path / "resumed" / "last"))
    assert difference < 1e-6


def test_encoder_stage_trains_and_feeds_stage2(tmp_path):
    cfg_path = tmp_path / "config.json"
    small_config().save(cfg_path)
    assert main(["train-encoder", "--config", str(cfg_path), "--phantoms", "4", "--out", str(tmp_path / "enc"),
                 "--progress", "none"]) == 0
    kind = load_model_folder(tmp_path / "enc" / "best")[2]["kind"]
    assert kind == "encoder"
    assert main(["train", "--config", str(cfg_path), "--phantoms", "4", "--encoder", str(tmp_path / "enc" / "best"),
                 "--encoder-mode", "frozen", "--steps", "2", "--out", str(tmp_path / "ddpm"),
                 "--progress", "none"]) == 0
    stage1 = _weights(tmp_path / "enc" / "best")
    stage2 = _weights(tmp_path / "ddpm" / "model")
    # the frozen trunk must still hold exactly the stage-1 weights
    trunk_keys = [k for k in stage2 if k.startswith("encoder.trunk.") and "num_batches" not in k]
    assert trunk_keys
    for key in trunk_keys:
        assert torch.equal(stage2[key], stage1["encoder." + key.removeprefix("encoder.trunk.")]), key


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_rank_ddp_matches_single_process(tmp_path):
    config = _config_file(tmp_path, steps=4, validate_every=2, batch_size=8, encoder_mode="frozen")
    args = ["train", "--config", str(config), "--phantoms", "6", "--progress", "none", "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "single")]) == 0
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
               f"--master_port={_free_port()}", "-m", "contrastive_anomaly.cli.main", *args,
               "--out", str(tmp_path / "ddp")]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, encoding="utf-8", errors="replace",
                               timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    difference = _max_difference(_weights(tmp_path / "single" / "last"), _weights(tmp_path / "ddp" / "last"))
    assert difference < DDP_TOLERANCE
    from contrastive_anomaly.method.diffusion_model import AnomalyDiffusionModel

    torch.manual_seed(small_config().diffusion_training.seed)
    initial = AnomalyDiffusionModel(small_config()).state_dict()
    # it did train: Adam moves each weight by about the learning rate per step
    assert _max_difference(_weights(tmp_path / "ddp" / "last"), initial) > 10 * DDP_TOLERANCE
